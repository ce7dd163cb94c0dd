"""Walkthrough: the six steps of a ViT on this image, each with words, its equation, the real
shapes and numbers, the figures, and a question to think about before opening the answer.

Every step has the same layout: the idea in words beside its equation and this image's
numbers, then the figure at its full width (figures are drawn for ~800 px and must stay
readable on a projector), then the details and the questions.
"""
import math

import streamlit as st

from app_pages import session, shared
from app_core import safe_text, traces, views
from model import cards, heads, steps

ctx = shared.context()
trace = ctx.trace
n = traces.shapes(trace, ctx.facts)
STEPS = list(steps.STEPS)
PREFIX = list(trace.prefix_names)


def _go(delta: int) -> None:
    i = STEPS.index(st.session_state["step"])
    session.set_setting("step", STEPS[max(0, min(len(STEPS) - 1, i + delta))])


def question(text: str, answer: str) -> None:
    st.markdown(f":material/lightbulb: **Think first:** {text}")
    with st.expander("Answer"):
        st.markdown(answer)


def numbers(text: str) -> None:
    st.markdown(f"**On this image:** {text}")


def not_available(step: str) -> None:
    """Say why a step needs a classification head this model lacks, and what to choose instead."""
    st.info(f"**Not available for {ctx.model_label}:** {cards.unavailable_reason(ctx.model, step)}. "
            "Teach it a few classes of your own on the **Teach classes** page, or choose **fashion-vit** in the "
            "sidebar, to see this step.", icon=":material/info:")


def head_in_use() -> None:
    """Which head gives the logits (built-in, taught, CLIP prompts): one phrase for steps 5 and 6."""
    st.markdown(f":material/model_training: **Logits from:** "
                f"{heads.head_description(ctx.model, quote=safe_text.md_text)}.")


HEAD_EQUATIONS = {  # y for each head type a model can carry (model.vit.ViT.forward_head)
    "cls": r"y=\mathrm{LN}(z_L)_{\mathrm{cls}}\,W_{\mathrm{head}}+b",
    # two lines where one would not fit the maths column at a 1280-px screen
    "cls_dist_mean": r"y=\tfrac12\big(\mathrm{LN}(z_L)_{\mathrm{cls}}W_{\mathrm{head}}\\"
                     r"+\,\mathrm{LN}(z_L)_{\mathrm{dist}}W_{\mathrm{dist}}\big)+b",
    "cls_patch_mean": r"x=\big[\mathrm{LN}(z_L)_{\mathrm{cls}};\ \tfrac1N\textstyle\sum_p\mathrm{LN}(z_L)_p\big]\\"
                      r"y=x\,W_{\mathrm{head}}+b",
    "clip": r"y_k=s\cdot\cos\big(P\,\mathrm{LN}(z_L)_{\mathrm{cls}},\ t_k\big)",
}


def pair(ratio=(3, 2)):
    """Two boxes side by side on a screen, one under the other on a projector (larger type)."""
    if session.classroom():
        return st.container(), st.container()
    return st.columns(list(ratio), gap="large")


def figure_choice(options: dict, key: str) -> str:
    """A radio over {choice: (label, registry figure name)}; returns the chosen figure's name."""
    choice = st.radio("Figure", list(options), key=key, horizontal=True, format_func=lambda c: options[c][0])
    return options[choice][1]


shared.page_title("Walkthrough: one image through the Vision Transformer",
                  f"Model **{ctx.model_label}** on **{ctx.image_label}** — {n['H_px']}×{n['W_px']} px in, "
                  f"{n['T']} tokens of width {n['D']}, {n['L']} layers × {n['H']} heads.")
st.segmented_control("Step", STEPS, **session.kept("step"), format_func=steps.STEP_SHORT.get, required=True,
                     label_visibility="collapsed")
step = st.session_state["step"]
st.header(steps.STEP_TITLES[step])
words, maths = pair((1, 1))  # the maths column holds the widest equation at a 1280-px screen

# ------------------------------------------------------------------------------------ 1 patches
if step == "patches":
    W, b = traces.patch_projection(ctx.model)
    patch = views.centre_patch(trace)
    chk = views.projection_check(trace, W, b, patch)
    with words:
        st.markdown(
            "A transformer reads a **sequence of vectors**, not a picture. The ViT cuts the prepared image into "
            "a grid of P×P **patches**, flattens each patch into one long vector of C·P·P pixel values, and "
            "multiplies it by one learned matrix **E** — the same for every patch — to get a D-dimensional "
            "**token**. (Written as a convolution with kernel and stride P, it is the very same operation.)")
    with maths:
        st.latex(r"\begin{gathered}N=\frac{H\,W}{P^2},\qquad x_p^i\in\mathbb{R}^{P^2C}\\"
                 r"e^i = x_p^i\,E + b,\qquad E\in\mathbb{R}^{P^2C\times D}\end{gathered}")
        numbers(
            f"H×W = {n['H_px']}×{n['W_px']} px, P = {n['P']} → a {n['h']}×{n['w']} grid, "
            f"N = {n['H_px']}·{n['W_px']}/{n['P']}² = **{n['N']} patches**. Each patch flattens to "
            f"{n['P']}·{n['P']}·{n['C']} = **{n['patch_len']} numbers**; E is **{W.shape[1]} × {W.shape[0]}**, so "
            f"[{n['N']} × {n['patch_len']}] · [{n['patch_len']} × {n['D']}] = **[{n['N']} × {n['D']}]** embeddings.")
    what = figure_choice({"grid": ("Patch grid", "patch_grid"), "one": ("One patch → its embedding", "patch_one"),
                          "mosaic": ("As a sequence", "patch_mosaic"),
                          "flattened": ("All patches flattened", "patch_matrix"),
                          "embeddings": ("Embedding matrix", "patch_embeddings"),
                          "pca": ("PCA of embeddings", "patch_pca")}, "wt_patch_fig")
    shared.show(ctx, what, "wt_patches")
    details, questions = pair((1, 1))
    with details:
        st.markdown(
            f"Patch {patch} (token {patch + n['p']}, the centre of the grid): x_p = `{shared.fmt_vec(chk['x'])}` → "
            f"x_p·E + b = `{shared.fmt_vec(chk['y'])}`. Recomputed here from the weights, it matches the model's "
            f"own patch embedding to {chk['max_diff']:.1e}.")
    with questions:
        question(
            "The PCA picture colours patches by their embedding. Before any attention, can an embedding know that "
            "two patches belong to the same object?",
            "No. x_p·E sees only the pixels of its own patch, so patches with similar colour and texture get "
            "similar embeddings — that is all the PCA can show at this stage. Grouping patches into objects needs "
            "information from other patches, which only attention (step 3) provides.")
        question(
            "What happens to pixels beyond the last whole patch?",
            "They are dropped, exactly as a stride-P convolution drops them. That is why the preprocessing "
            f"resizes{' (and here pads)' if ctx.model.preprocessor.pad_to else ''} the image to a multiple of "
            f"{n['P']} px first.")

# ------------------------------------------------------------------------------------ 2 positions
elif step == "positions":
    token = n["p"] + views.centre_patch(trace)
    ps = views.position_sum(trace, token)
    with words:
        st.markdown(
            "Attention treats its input as a **set**: shuffle the patches and the outputs are shuffled the same "
            "way — the model could not tell top from bottom. So the ViT adds a learned **position embedding** "
            "E_pos to every token, one vector per grid position (and one for CLS). The sum is what enters layer 1.")
    with maths:
        st.latex(r"\begin{gathered}z_0=\big[\,x_{\mathrm{cls}};\;x_p^1E;\;\dots;\;x_p^NE\,\big]+E_{pos}\\"
                 r"E_{pos}\in\mathbb{R}^{T\times D}\end{gathered}")
        resized = ""
        if n["native_grid"] and tuple(n["native_grid"]) != (n["h"], n["w"]):
            g = n["native_grid"]
            resized = (f" The model learned a {g[0]}×{g[1]} table; for this {n['h']}×{n['w']} grid it is resized "
                       "bicubically.")
        numbers(
            f"T = {n['p']} prefix token{'s' if n['p'] != 1 else ''} ({', '.join(PREFIX) or 'none'}) + "
            f"{n['N']} patches = **{n['T']} tokens** of width {n['D']}.{resized} For {trace.token_name(token)}: "
            f"‖x_p·E‖ = {ps['content_norm']:.2f}, ‖E_pos‖ = {ps['pos_norm']:.2f}, ‖z₀‖ = {ps['sum_norm']:.2f}.")
        if ctx.model.cfg.pre_norm:
            st.caption("CLIP normalises the sum once more before layer 1, z₀ = LN_pre([x_cls; x_pE] + E_pos): "
                       "z₀ here (its norm and the figure) is after that LayerNorm, as transformers reports it.")
    what = figure_choice({"similarity": ("Position similarity", "position_similarity"),
                          "z0": ("The sum z₀", "z0")}, "wt_pos_fig")
    shared.show(ctx, what, "wt_positions")
    question(
        "In the similarity grid, what does each tile look like? What would you expect if the position "
        "embeddings were random vectors?",
        "Each tile lights up around its own position and along its own row and column: the learned embeddings "
        "rediscover the 2-D layout of the grid, although the model was only given a flat list (ViT paper, "
        "Fig. 7). Random vectors would only match themselves — one bright cell per tile and noise elsewhere.")

# ------------------------------------------------------------------------------------ 3 attention
elif step == "attention":
    with words:
        st.markdown(
            "Every token makes three vectors from its (normalised) self: a **query** q — what it is looking for, "
            "a **key** k — what it offers, and a **value** v — what it passes on. Token i scores every token j by "
            "q_i·k_j/√d; a **softmax** turns the row of scores into weights that sum to 1; the output is the "
            "weighted sum of the values. Each head does this in its own d-dimensional subspace; the heads' "
            "outputs are concatenated and mixed by W_O.")
    with maths:
        st.latex(r"\begin{gathered}(q,\,k,\,v)=\mathrm{LN}(z)\,(W_Q,\,W_K,\,W_V)\\"
                 r"A_{ij}=\operatorname{softmax}_j\!\Big(\frac{q_i\cdot k_j}{\sqrt d}\Big)\\"
                 r"\mathrm{out}_i=\sum_j A_{ij}\,v_j\end{gathered}")

    @st.fragment
    def attention_step() -> None:
        """Token, layer and head change only this part (the model is never re-run)."""
        c1, c2, c3 = st.columns([3, 3, 3])
        c1.selectbox("Token (the query)", views.query_options(trace), **session.kept("query"),
                     format_func=trace.token_name)
        c2.slider("Layer", 0, trace.L - 1, **session.kept("layer"))
        shared.head_picker(c3, trace.H)
        layer, head, query = st.session_state["layer"], st.session_state["head"], st.session_state["query"]
        q = views.qkv_step(trace, layer, head, query)
        numbers(
            f"{trace.token_name(query)}, layer {layer}, head {head}: d = {q['d']}, √d = {q['sqrt_d']:.2f}. "
            f"The {trace.T} scores softmax to weights summing to {q['weight_sum']:.4f} (equal to the traced "
            f"attention within {q['max_diff']:.1e}); {100 * q['prefix_share']:.1f}% of the weight goes to "
            f"prefix tokens.")
        what = figure_choice({"scores": ("Scores → softmax", "attention_scores"),
                              "mix": ("Weighted sum of values", "value_mixing"),
                              "row": ("Softmax row on the image", "attention_overlay"),
                              "heads": ("All heads of the layer", "heads_of_layer")}, "wt_attn_fig")
        shared.show(ctx, what, "wt_attention")
        table, questions = pair((1, 1))
        with table:
            st.markdown(f"q = `{shared.fmt_vec(q['q'])}`, out = Σ A·v = `{shared.fmt_vec(q['out'])}`; "
                        "the keys with the largest weights:")
            shared.table(q["top"], {"q·k": ".3f", "q·k/√d": ".3f", "softmax weight": ".4f"})
        with questions:
            question(
                "Why divide by √d? What would the softmax look like if every score were 8 times larger?",
                "A dot product of two d-dimensional vectors grows like √d, so without the scaling the largest "
                "score would dominate: the softmax becomes almost one-hot and its gradients vanish. Dividing by "
                "√d keeps the scores near unit size (Vaswani et al. 2017). Eight times larger scores would put "
                "nearly all weight on the single best key.")
            question(
                "Look at all heads of one layer. Do they attend to the same patches?",
                "Usually not: each head has its own W_Q, W_K and W_V, so each can look for something different — "
                "nearby patches, the same object, the CLS token. That division of labour is why a layer has "
                "several heads.")

    attention_step()

# ------------------------------------------------------------------------------------ 4 MLP
elif step == "mlp":
    stats = shared.head_statistics(ctx.model_key, ctx.digest, trace)
    with words:
        st.markdown(
            "Attention **mixes** information between tokens. The feed-forward network (MLP) then **processes** "
            "every token on its own: widen D → 4D, a GELU non-linearity, back to D. Both sub-blocks *add* their "
            "result to the token (residual connections), so each token is a running sum — the **residual "
            "stream** — that every layer reads from and writes into."
            + (" DINOv2 scales each update by a learned per-channel γ (LayerScale)." if ctx.facts["layer_scale"]
               else ""))
    with maths:
        st.latex(r"\begin{gathered}z'_l=z_{l-1}+\gamma_1\,\mathrm{MSA}(\mathrm{LN}(z_{l-1}))\\"
                 r"z_l=z'_l+\gamma_2\,\mathrm{MLP}(\mathrm{LN}(z'_l))\\"
                 r"\mathrm{MLP}(x)=\mathrm{GELU}(xW_1+b_1)\,W_2+b_2\end{gathered}")
        st.selectbox("Token", views.query_options(trace), **session.kept("query"), format_func=trace.token_name)
        token = st.session_state["query"]
        rows = views.residual_table(trace, token)
        numbers(
            f"W₁ is {n['D']} × {n['mlp']}, W₂ is {n['mlp']} × {n['D']}, applied to each of the {n['T']} tokens. "
            f"{trace.token_name(token)}: ‖z‖ goes from {rows[0]['‖z before‖']:.1f} to {rows[-1]['‖z after‖']:.1f} "
            f"over {n['L']} layers; z_l = z_(l−1) + attention + MLP holds within "
            f"{max(r['check'] for r in rows):.1e}.")
    what = figure_choice({"stream": ("This token's residual stream", "residual_stream"),
                          "units": ("Its MLP units", "mlp_units"), "lines": ("All token norms", "token_norm_lines"),
                          "heatmap": ("Token norms, every token", "token_norms")}, "wt_mlp_fig")
    if what == "mlp_units":
        st.slider("Block", 0, trace.L - 1, **session.kept("layer"))
    shared.show(ctx, what, "wt_norms")
    table, questions = pair((1, 1))
    with table:
        st.markdown(f"**{trace.token_name(token)}, layer by layer:** the stream's norm before the block, the sizes "
                    "of the two updates it adds, and the norm after.")
        shared.table([{k: v for k, v in r.items() if k != "check"} for r in rows],
                     {c: ".2f" for c in ("‖z before‖", "‖attention update‖", "‖MLP update‖", "‖z after‖")})
    with questions:
        question(
            "Some tokens' norms can grow far larger than the rest in late layers. What could the model be using "
            "them for?",
            "Darcet et al. (2023, *Vision Transformers Need Registers*) found that large ViTs recycle a few "
            "low-information background patches as scratch space for global information; their norms jump about "
            "ten-fold and their attention maps turn noisy. Giving the model extra *register* tokens removes the "
            "artifacts." + (f" Here: {len(stats['artifacts'])} artifact token(s) in the last layer."
                            if stats["artifacts"] else " This image shows none in the last layer."))
        question(
            "The MLP sees one token at a time. Where, then, does a token learn about the rest of the image?",
            "Only in attention. The MLP transforms what attention has already mixed into the token; the two "
            "alternate, layer after layer, through the residual stream.")

# ------------------------------------------------------------------------------------ 5 logits
elif step == "logits":
    head_type = ctx.model.cfg.head_type if trace.has_head else "cls"
    with words:
        reads = {"cls_patch_mean": "the (normalised) **CLS token** and the **mean of the patch tokens**, side by side,",
                 "cls_dist_mean": "the (normalised) **CLS and distillation tokens**"}.get(
            head_type, "the (normalised) **CLS token**")
        st.markdown(
            f"After the last block, {reads} summarise{'s' if head_type in ('cls', 'clip') else ''} the image. "
            + ("The image embedding is compared with the **text embedding of each prompt**: the scaled cosine "
               "similarity is the **logit**" if head_type == "clip" else
               "A linear **head** maps it to one score — a **logit** — per class")
            + ", and a softmax turns the logits into probabilities.")
        if trace.has_head:
            head_in_use()
    with maths:
        st.latex(r"\begin{gathered}" + HEAD_EQUATIONS.get(head_type, HEAD_EQUATIONS["cls"]) + r"\\"
                 r"p_c=\frac{e^{y_c}}{\sum_k e^{y_k}}\end{gathered}")
        if trace.has_head:
            top = views.top_classes(trace, 5)
            F = ctx.model.head.weight.shape[1]
            numbers(f"K = {trace.K} classes; the head is a {F} × {trace.K} matrix. Top class: "
                    f"**{safe_text.md_text(top[0]['class'])}** with p = {top[0]['probability']:.3f}.")
    if not trace.has_head:
        not_available("logits")
    else:
        shared.show(ctx, "topk", "wt_logits")
    table, questions = pair((1, 1))
    if trace.has_head:
        with table:
            shared.table(top, {"logit": ".3f", "probability": ".4f"})
    with questions:
        question(
            "If you add the same number to every logit, what happens to the probabilities?",
            "Nothing: e^(y+c) / Σ e^(y_k+c) = e^y / Σ e^(y_k). Only the differences between logits matter — "
            "which is also why implementations subtract the largest logit before exponentiating.")

# ------------------------------------------------------------------------------------ 6 loss
else:
    with words:
        st.markdown(
            "Training compares the prediction with the true label through the **cross-entropy loss**: minus the "
            "log of the probability the model gave the correct class. Pick any label to see the loss the model "
            "would get if that label were the truth.")
        if trace.has_head:
            head_in_use()
    with maths:
        st.latex(r"\mathcal{L}=-\log p_{y}=-y_{c}+\log\sum_k e^{y_k}")
        if trace.has_head:
            names = trace.class_names()
            auto = ctx.true_label if ctx.true_label is not None else int(trace.logits[0].argmax())
            st.selectbox("Label", [-1] + list(range(trace.K)), **session.kept("loss_label"),
                         format_func=lambda i: (f"automatic: {names[auto]}"
                                                + (" (true label)" if ctx.true_label is not None else " (top class)"))
                         if i == -1 else names[i])
            label = st.session_state["loss_label"]
            loss = views.loss_for(trace, auto if label == -1 else label)
            numbers(f"p({safe_text.md_text(names[loss['label']])}) = {loss['p']:.4f}, so the loss is −log {loss['p']:.4f} = "
                    f"**{loss['loss']:.3f} nats**. The best possible loss is 0 (p = 1); a uniform guess over "
                    f"{trace.K} classes costs ln {trace.K} = {loss['uniform']:.2f}.")
            if target := cards.label_smoothing_target(ctx.model):
                st.caption(f"{ctx.facts['name']} was trained with label smoothing: its target for the true class "
                           f"was p = {target:.2f}, not 1, so even its surest answers sit near p ≈ {target:.2f} "
                           f"and a loss of about −log {target:.2f} = {-math.log(target):.3f}.")
    if not trace.has_head:
        not_available("loss")
    else:
        shared.show(ctx, "loss", "wt_loss")
        curve = cards.training_curve_of(ctx.model)
        if curve and heads.head_kind(ctx.model) == "taught":
            recipe = ctx.model.attached_head.recipe
            st.markdown(f"**Where the weights came from.** The head was taught on the **Teach classes** page: "
                        f"{len(curve['epoch']) - 1} steps of gradient descent (Adam) lowered this loss, averaged "
                        f"over its {recipe.get('train_views', '?')} training views ({recipe.get('train_images', '?')} "
                        "images, each also mirrored and cropped); the backbone stayed frozen:")
            shared.show(ctx, "training_curve", "wt_training")
            if curve.get("test_loss"):
                st.caption(f"The held-out loss is measured on {recipe.get('heldout_images')} images kept out of the "
                           "fit; where it stops falling while the training loss still falls, the head is learning "
                           "its examples rather than the classes.")
        elif curve:
            st.markdown(f"**Where the weights came from.** Training lowered this loss, averaged over the "
                        f"{len(curve['epoch'])} passes over the training images (epochs), by gradient descent:")
            shared.show(ctx, "training_curve", "wt_training")
            st.caption("The training loss is measured on augmented images (flipped; half with a random box "
                       "erased) against smoothed targets, so it sits above the test loss; the test images were "
                       "never trained on.")
    table, questions = pair((1, 1))
    if trace.has_head:
        with table:
            st.markdown("**The loss for every possible label:**")
            shared.table(views.loss_table(trace), {"p": ".4f", "loss −log p": ".3f"})
    with questions:
        question(
            "What loss does a model get for p = 0.99 on the right class? For p = 0.001?",
            "−ln 0.99 ≈ 0.01 and −ln 0.001 ≈ 6.9. The loss grows without bound as the probability of the true "
            "class goes to 0, so confident mistakes are punished hardest.")

st.divider()
back, _, forward = st.columns([1, 4, 1])
back.button("Back", key="step_back", icon=":material/arrow_back:", on_click=_go, args=(-1,),
            disabled=step == STEPS[0], width="stretch")
forward.button("Next step", key="step_next", icon=":material/arrow_forward:", on_click=_go, args=(1,),
               disabled=step == STEPS[-1], width="stretch")
