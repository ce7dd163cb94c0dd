"""Synthetic one-image traces with the shapes of the built-in models, for figure tests.

``synthetic_inputs("dinov2")`` has dinov2-small's shapes (L=12, H=6, 16×16 patches of 14 px,
T=257, D=384, no class head); ``"fashion"`` has fashion-vit's (L=4, H=4, 7×7 patches of 4 px,
T=50, K=10 Fashion-MNIST classes); ``"registers"`` is dinov2 with four register tokens
(T=261). The arrays are random but consistent where the figures check it (attention is the
softmax of q·k/√d, the stream is the sum of its updates), and include the cases that break
layouts: one very sharp head (a colour scale of a single bright patch) and heads that put
almost all attention on CLS (patch weights around 1e-6).
"""
from __future__ import annotations

import math

import numpy as np

from app_core import faithfulness, views
from app_core.figures import FigureInputs
from model.faithfulness import Curves, step_counts
from model.sanity import RandomisationCheck
from model.trace import Trace

FASHION_LABELS = ("T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag",
                  "Ankle boot")
SHAPES = {
    "dinov2": dict(L=12, H=6, grid=(16, 16), P=14, D=384, prefix=("CLS",), K=0),
    "registers": dict(L=12, H=6, grid=(16, 16), P=14, D=384, prefix=("CLS", "REG0", "REG1", "REG2", "REG3"), K=0),
    "fashion": dict(L=4, H=4, grid=(7, 7), P=4, D=64, prefix=("CLS",), K=10),
}


def _softmax(x, axis=-1):
    x = x - x.max(axis=axis, keepdims=True)
    e = np.exp(x)
    return e / e.sum(axis=axis, keepdims=True)


def synthetic_trace(kind: str = "dinov2", seed: int = 0) -> Trace:
    s = SHAPES[kind]
    rng = np.random.default_rng(seed)
    L, H, (h, w), P, D, prefix, K = s["L"], s["H"], s["grid"], s["P"], s["D"], s["prefix"], s["K"]
    p, N = len(prefix), h * w
    T, d = p + N, D // H
    # an image with structure: a bright blob on a gradient
    yy, xx = np.mgrid[0:h * P, 0:w * P] / float(h * P)
    blob = np.exp(-((yy - 0.45) ** 2 + (xx - 0.55) ** 2) / 0.03)
    image = np.stack([0.2 + 0.6 * blob, 0.3 + 0.4 * xx, 0.5 - 0.3 * yy], axis=-1)
    image = np.clip(image * 255 + rng.normal(0, 8, image.shape), 0, 255).astype(np.uint8)
    # queries and keys: heads of different sharpness; some put (almost) everything on CLS
    rows, cols = np.divmod(np.arange(N), w)
    pos = np.concatenate([np.zeros((p, 2)), np.stack([rows, cols], -1) / max(h, w)], axis=0)
    queries = rng.normal(size=(L, H, T, d))
    keys = rng.normal(size=(L, H, T, d))
    for layer in range(L):
        for head in range(H):
            sharp = 0.4 + 2.5 * ((layer * H + head) % 5) / 4
            keys[layer, head] *= sharp
            if (layer + head) % 4 == 1:  # a CLS sink: every query's score for CLS is ~ +14
                u = rng.normal(size=d)
                u /= np.linalg.norm(u)
                queries[layer, head] += 3.0 * u
                keys[layer, head, 0] = u * 14 * math.sqrt(d) / 3.0
    queries[0, 0, 0] = 0.0  # layer 0, head 0, CLS: one patch takes 0.6 (a single sharp head)
    queries[0, 0, 0, 0] = 1.0
    keys[0, 0, :, 0] = 0.0
    keys[0, 0, p + N // 2 + w // 2, 0] = math.log(0.6 / 0.4 * (T - 1)) * math.sqrt(d)
    attentions = _softmax(np.einsum("lhtd,lhsd->lhts", queries, keys) / math.sqrt(d))
    values = rng.normal(size=(L, H, T, d))
    # the stream: z_{l+1} = z_l + a_l + m_l; a few high-norm artifact patches late
    z = [rng.normal(size=(T, D)) * 0.8 + np.sin(pos @ rng.normal(size=(2, D)) * 6)]
    attn_res, mlp_res = [], []
    for layer in range(L):
        a = rng.normal(size=(T, D)) * 0.5
        m = rng.normal(size=(T, D)) * (0.8 + 0.2 * layer)
        if layer >= L - 3:
            m[[p + 3, p + N - 5]] *= 12
        attn_res.append(a)
        mlp_res.append(m)
        z.append(z[-1] + a + m)
    hidden_states = np.stack(z)
    pix = image.astype(np.float64) / 255.0
    patches = pix.reshape(h, P, w, P, 3).transpose(0, 2, 4, 1, 3).reshape(N, 3 * P * P)
    patch_embeddings = patches @ rng.normal(size=(3 * P * P, D)) / math.sqrt(3 * P * P)
    pos_embed = np.concatenate([rng.normal(size=(p, D)) * 0.1, np.cos(pos[p:] @ rng.normal(size=(2, D)) * 4)])
    logits = None
    if K:
        logits = rng.normal(size=K)
        logits[9] += 6.0  # "Ankle boot" wins
    def batch(x):
        return None if x is None else np.ascontiguousarray(np.asarray(x)[None], dtype=np.float32)

    return Trace(
        attentions=batch(attentions), queries=batch(queries), keys=batch(keys), values=batch(values),
        hidden_states=batch(hidden_states), attn_residuals=batch(np.stack(attn_res)),
        mlp_residuals=batch(np.stack(mlp_res)), last_hidden_state=batch(hidden_states[-1]), patches=batch(patches),
        patch_embeddings=batch(patch_embeddings), pos_embed=np.ascontiguousarray(pos_embed, dtype=np.float32),
        logits=batch(logits), pixel_values=batch(pix.transpose(2, 0, 1)), grid=(h, w), patch_size=P,
        num_prefix_tokens=p, prefix_names=list(prefix), labels=list(FASHION_LABELS) if K else None,
    ).numpy()


def synthetic_inputs(kind: str = "dinov2", seed: int = 0) -> FigureInputs:
    """The registry's inputs for a synthetic trace (statistics and maps computed as the app does)."""
    td = synthetic_trace(kind, seed)
    rng = np.random.default_rng(seed + 1)
    gradients = rng.normal(size=td.attentions[0].shape) * 1e-3 if td.has_head else None
    hidden = rng.normal(size=(td.L, td.T, 4 * td.D))
    stats = views.head_statistics(td)

    def explanations(view):
        return views.explanation_maps(td, gradients, fusion=view.fusion, discard_ratio=view.discard_ratio,
                                      residual_alpha=view.residual_alpha, start_layer=view.start_layer,
                                      query=view.query)

    def mlp_hidden(layer, token):
        x = hidden[layer, token]
        return 0.5 * x * (1 + np.tanh(0.7978845608 * (x + 0.044715 * x ** 3)))  # GELU

    curve = None
    if td.has_head:
        epochs = list(range(1, 11))
        curve = {"epoch": epochs, "train_loss": [2.3 * 0.8 ** e for e in epochs],
                 "test_loss": [2.3 * 0.82 ** e + 0.05 for e in epochs], "test_acc": [0.5 + 0.04 * e for e in epochs]}
    def faithfulness_of(view):  # curves of the right shapes (the numbers are model.faithfulness's, tested there)
        steps = step_counts(td.N)
        fr = steps / td.N

        def curves(a):
            return Curves(steps, fr, (1 - fr) ** a, fr ** (1 / a), 1 / (a + 1), a / (a + 1))

        return faithfulness.MapsFaithfulness({t: curves(2 + i) for i, t in enumerate(explanations(view))}, curves(1),
                                             9, td.class_names()[9], 0.9, view.baseline)

    def randomisation(view):
        steps = ("trained",) + (("head",) if td.has_head else ()) + tuple(f"block {l}" for l in
                                                                           reversed(range(td.L))) + ("embeddings",)
        rho = {m: np.linspace(1, -0.2 * i, len(steps)) for i, m in enumerate(("attention", "rollout"))}
        maps = {m: rng.random((len(steps), *td.grid)) for m in rho}
        return RandomisationCheck(steps, maps, rho, 9 if td.has_head else None, None)

    def compare(view):
        faith = faithfulness_of(view) if td.has_head else None
        return faithfulness.compare_panels([(t, td, m, faith and faith.curves[t], faith and faith.random, view.query)
                                            for t, m in explanations(view).items()])

    return FigureInputs(trace=td, model_name=f"synthetic {kind}", statistics=lambda: stats,
                        explanations=explanations, mlp_hidden=mlp_hidden, training_curve=curve,
                        faithfulness=faithfulness_of, randomisation=randomisation, compare=compare)
