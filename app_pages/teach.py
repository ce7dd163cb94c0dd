"""Teach classes (issue 11): name 2–10 classes, give each a few example images (uploads, gallery
photos, crops of them, the current image), and fit a linear head on the frozen backbone while
the class watches the loss fall. The head then gives the model real logits, a loss and class
maps on every page. Its bytes live in this session only; download them to keep them.
"""
import numpy as np
import streamlit as st

import viz
from app_pages import charts, session, shared
from app_core import safe_text, teaching, uploads
from model import cards
from model.gallery import get_sample
from model.heads import head_bytes, head_digest, head_description
from model.preprocess import ImageError
from model.teach import Recipe, example_features, teach

CLASSES = "_teach_classes"  # [{"id": int, "name": str, "examples": [teaching.Example]}]
NOTES = "_teach_notes"  # messages from callbacks (they cannot draw), shown on the next run
RESULT = "_teach_result"  # numbers of the last fit: seconds, counts, held-out accuracy
QUICK_START = (("cat", "chelsea"), ("coffee cup", "coffee"), ("rocket", "rocket"), ("astronaut", "astronaut"))


@st.cache_data(max_entries=2048, ttl=3600, show_spinner=False)  # ≤ 24 KB each
def cached_features(model_key: str, digest: str, head_type: str, views: int, seed: int, _model,
                    _example) -> np.ndarray:
    """(views, F) features of one example, shared by every session (keyed by the image's sha256
    and the recipe's view settings): fitting again, or another class using the same photo,
    costs no backbone pass."""
    recipe = Recipe(head_type=head_type, views=views, seed=seed)
    return example_features(_model, teaching.example_image(_example), recipe)


def classes() -> list[dict]:
    ss = st.session_state
    if CLASSES not in ss:
        ss[CLASSES] = [{"id": 0, "name": "class 1", "examples": []}, {"id": 1, "name": "class 2", "examples": []}]
    return ss[CLASSES]


def note(text: str) -> None:
    st.session_state.setdefault(NOTES, []).append(text)


def find(class_id: int) -> dict:
    return next(c for c in classes() if c["id"] == class_id)


def add_examples(class_id: int, examples: list) -> None:
    cls = find(class_id)
    room = teaching.MAX_PER_CLASS - len(cls["examples"])
    if len(examples) > room:
        note(f"{cls['name']} holds at most {teaching.MAX_PER_CLASS} images; {len(examples) - max(room, 0)} were "
             "not added")
    cls["examples"] += examples[:max(room, 0)]


def add_uploads(class_id: int, key: str) -> None:
    """The uploader's on_change: copy the files into the class (shrunk), then reset the uploader
    so that Streamlit's upload store can let them go."""
    examples = []
    for upload in st.session_state.get(key) or []:
        try:
            examples.append(teaching.example_from_bytes(upload.getvalue(), upload.name))
        except ImageError as err:
            note(str(err))
    add_examples(class_id, examples)
    st.session_state[f"teach_gen_{class_id}"] = st.session_state.get(f"teach_gen_{class_id}", 0) + 1


def add_gallery(class_id: int) -> None:
    keys = st.session_state.get(f"teach_gallery_{class_id}") or []
    crops = int(st.session_state.get(f"teach_crops_{class_id}", 0))
    examples = []
    for key in keys:
        sample = get_sample(key)
        data = shared.sample_bytes(key)
        examples.append(teaching.example_from_bytes(data, sample.path.name))
        examples += teaching.crops_of(data, sample.path.name, crops)
    add_examples(class_id, examples)
    st.session_state[f"teach_gallery_{class_id}"] = []


def add_current(class_id: int) -> None:
    try:
        name, data, _, _ = shared.selected_image()
        add_examples(class_id, [teaching.example_from_bytes(data, name)])
    except (LookupError, ImageError) as err:
        note(str(err))


def rename(class_id: int) -> None:
    find(class_id)["name"] = st.session_state[f"teach_name_{class_id}"].strip()[:40]


def new_class(name: str, examples=None) -> dict:
    """A class with an id never used in this session (widget keys carry it)."""
    ss = st.session_state
    ss["_teach_next_id"] = ss.get("_teach_next_id", 2) + 1
    cid = ss["_teach_next_id"]
    ss[f"teach_name_{cid}"] = name
    return {"id": cid, "name": name, "examples": list(examples or [])}


def add_class() -> None:
    classes().append(new_class(f"class {len(classes()) + 1}"))


def remove_class(class_id: int) -> None:
    st.session_state[CLASSES] = [c for c in classes() if c["id"] != class_id]


def quick_start() -> None:
    """Four classes from the gallery's photos, each the photo and five crops of it."""
    st.session_state[CLASSES] = []
    for name, key in QUICK_START:
        data = shared.sample_bytes(key)
        file = get_sample(key).path.name
        examples = [teaching.example_from_bytes(data, file)] + teaching.crops_of(data, file, 5)
        st.session_state[CLASSES].append(new_class(name, examples))


def thumbnails(cls: dict) -> None:
    count = len(cls["examples"])
    if count:
        st.markdown(f"**{count}** image{'s' if count != 1 else ''}")
        st.image([e.data for e in cls["examples"]], width=110 if session.classroom() else 72)
    else:
        st.caption("No images yet: upload some, pick gallery photos, or add the current image.")


def class_box(cls: dict, can_remove: bool) -> None:
    cid = cls["id"]
    with st.container(border=True):
        name_col, remove_col = st.columns([2.6, 1.6], vertical_alignment="bottom")  # a half-width card: two columns fit
        st.session_state.setdefault(f"teach_name_{cid}", cls["name"])
        name_col.text_input("Class name", key=f"teach_name_{cid}", on_change=rename, args=(cid,), max_chars=40)
        remove_col.button("Remove", key=f"teach_drop_{cid}", on_click=remove_class, args=(cid,),
                          disabled=not can_remove, icon=":material/delete:", help="Remove this class",
                          width="stretch")
        thumbnails(cls)
        with st.expander(f"Add images to {cls['name'] or 'this class'}"):
            gen = st.session_state.get(f"teach_gen_{cid}", 0)
            key = f"teach_up_{cid}_{gen}"
            st.file_uploader("Upload examples", key=key, accept_multiple_files=True, on_change=add_uploads,
                             args=(cid, key),
                             help=f"Up to {teaching.MAX_PER_CLASS} images per class and {uploads.MAX_SESSION_MB} MB "
                                  "at once; each is shrunk to "
                                  f"{teaching.EXAMPLE_SIDE} px and kept in this session only.")
            g1, g2, g3 = st.columns([3, 1, 1], vertical_alignment="bottom")
            g1.multiselect("Gallery photos", shared.samples_for_select(), key=f"teach_gallery_{cid}",
                           format_func=shared.sample_label)
            g2.number_input("crops of each", 0, 8, 0, key=f"teach_crops_{cid}",
                            help="Random crops of each photo, added as images of their own.")
            g3.button("Add", key=f"teach_add_{cid}", on_click=add_gallery, args=(cid,))
            b1, b2, b3 = st.columns(3)
            b1.button("Add the current image", key=f"teach_current_{cid}", on_click=add_current, args=(cid,),
                      help="The image chosen in the sidebar.")
            b2.button("Remove the last image", key=f"teach_pop_{cid}", disabled=not cls["examples"],
                      on_click=lambda: cls["examples"].pop())
            b3.button("Remove all", key=f"teach_clear_{cid}", disabled=not cls["examples"],
                      on_click=lambda: cls["examples"].clear())


def recipe_controls(name: str) -> Recipe:
    """The recipe: set by the widgets, or the defaults in classroom mode (fewer controls)."""
    ss = st.session_state
    for key, value in (("teach_head_name", ""), ("teach_views", 2), ("teach_steps", 150), ("teach_holdout", 0.0)):
        ss.setdefault(key, value)
    if not session.classroom():
        with st.expander("Recipe: views, steps, held-out images"):
            r1, r2, r3, r4 = st.columns(4)
            r1.text_input("Head name", key="teach_head_name", max_chars=40)
            r2.slider("Views per image", 1, teaching.PUBLIC_MAX_VIEWS if session.public() else teaching.MAX_VIEWS,
                      key="teach_views", help="The image, its mirror image, then random crops of it.")
            r3.slider("Adam steps", 20, teaching.MAX_STEPS, step=10, key="teach_steps")
            r4.selectbox("Hold back", [0.0, 0.2, 0.3], key="teach_holdout",
                         format_func=lambda s: "nothing" if s == 0 else f"{100 * s:.0f}% of each class",
                         help="Images kept out of the fit and scored afterwards: how well it does on new images.")
    return Recipe(name=(ss.get("teach_head_name") or name).strip()[:40] or "taught head",
                  views=int(ss.get("teach_views", 2)), steps=int(ss.get("teach_steps", 150)),
                  holdout=float(ss.get("teach_holdout", 0.0)))


def fit(source: str, key: str, backbone, recipe: Recipe, examples: dict) -> None:
    """Teach, drawing the loss as it falls; the head becomes the session's head."""
    progress = st.progress(0.0, text="Features of the frozen backbone…")
    chart = st.empty()
    frame_every = max(1, recipe.steps // 25)
    curve = {"epoch": [], "train_loss": [], "test_loss": None, "x_title": "Adam step",
             "names": ("training", "held-out")}

    def on_features(done: int, total: int) -> None:
        progress.progress(done / total, text=f"Features of the frozen backbone: {done} of {total} images")

    def on_step(step: int, loss: float, held: float | None) -> None:
        curve["epoch"].append(step)
        curve["train_loss"].append(loss)
        if held is not None:
            curve["test_loss"] = (curve["test_loss"] or []) + [held]
        # 25 frames whatever the step count: the fit takes a second or two, and each frame is
        # a figure sent to the browser, so the class sees the curve fall rather than jump.
        if step % frame_every == 0 or step == recipe.steps:
            progress.progress(step / recipe.steps, text=f"Fitting: step {step} of {recipe.steps}, loss {loss:.3f}")
            chart.plotly_chart(viz.training_curve_figure(curve, title="The loss falling", theme=session.theme()),
                               theme=None, key=f"teach_live_{step}")

    def features_of(example):
        return cached_features(key, example.digest, recipe.head_type, recipe.views, recipe.seed, backbone, example)

    def on_wait(ahead: int) -> None:
        progress.progress(0.0, text=f"Waiting for a turn: {ahead} fit{'s' if ahead != 1 else ''} ahead of yours on "
                                    "this server (they run one after another, so that everyone's clicks stay quick)…")

    try:
        with teaching.FITS.turn(on_wait):
            result = teach(backbone, examples, recipe, backbone=source, on_step=on_step, on_features=on_features,
                           features_of=features_of)
    except (ValueError, RuntimeError) as err:  # e.g. an image size the backbone cannot take
        progress.empty()
        st.error(f"**The head could not be taught.** {safe_text.message(err)}", icon=":material/error:")
        return
    progress.empty()
    chart.empty()
    data = head_bytes(result.head)
    st.session_state[shared.TAUGHT] = {"data": data, "digest": head_digest(result.head), "backbone": source,
                                       "name": recipe.name, "active": True}
    st.session_state[RESULT] = {"seconds_features": result.seconds_features, "seconds_fit": result.seconds_fit}
    st.rerun()  # the sidebar and the page below now show the head


def load_head_file(source: str, embed_dim: int) -> None:
    upload = st.session_state.get("teach_head_file")
    if upload is None:
        return
    try:
        head = teaching.read_head_file(upload.getvalue(), source, embed_dim)
    except ValueError as err:
        note(str(err))
        return
    data = head_bytes(head)
    st.session_state[shared.TAUGHT] = {"data": data, "digest": head_digest(head), "backbone": source,
                                       "name": head.recipe.get("name", "head"), "active": True}
    st.session_state.pop(RESULT, None)


def forget_head() -> None:
    st.session_state.pop(shared.TAUGHT, None)
    st.session_state.pop(RESULT, None)


shared.page_title("Teach classes", "Name a few classes, give each some example images, and fit a linear head on "
                  "the frozen backbone: then every page has real logits, a loss and class maps.")
source, base_key, backbone = shared.model_or_stop(shared.load_backbone)
facts = cards.model_facts(backbone)
for message in st.session_state.pop(NOTES, []):
    st.warning(safe_text.message(message), icon=":material/warning:")

words, maths = st.columns([3, 2], gap="large") if not session.classroom() else (st.container(), st.container())
with words:
    st.markdown(
        f"**{safe_text.md_text(facts['name'])}** stays frozen: it turns every example image into a feature "
        "vector (its CLS token and its mean patch token after the last layer). Only a **linear head** — one "
        "row of weights per class — is fitted, by gradient descent on the **cross-entropy loss**: the walkthrough's "
        "steps 5 and 6, happening now. Each image also counts as its mirror image and random crops of it.")
    if facts["has_head"] and not shared.taught_head(source):
        st.caption(f"{safe_text.md_text(facts['name'])} has its own head ({facts['num_classes']} classes); a taught "
                   "head replaces it on every page while it is switched on.")
with maths:
    st.latex(r"\begin{gathered}x=\big[\mathrm{LN}(z_L)_{\mathrm{cls}};\ \tfrac1N\textstyle\sum_p "
             r"\mathrm{LN}(z_L)_p\big]\\ y=W x+b\\ \mathcal{L}=-\log\operatorname{softmax}(y)_{\mathrm{label}}"
             r"\end{gathered}")

current = classes()
st.subheader("Your classes")
st.button("Start from gallery photos (cat, coffee cup, rocket, astronaut)", key="teach_quick", on_click=quick_start,
          icon=":material/photo_library:")
columns = [st.container()] if session.classroom() else st.columns(2, gap="medium")  # two classes a row on a screen
for i, cls in enumerate(current):
    with columns[i % len(columns)]:
        class_box(cls, can_remove=len(current) > 2)
st.button("Add a class", key="teach_add_class", on_click=add_class, disabled=len(current) >= teaching.MAX_CLASSES,
          icon=":material/add:")

st.subheader("Fit the head")
recipe = recipe_controls(" / ".join(c["name"] for c in current)[:40])
examples = {c["name"]: c["examples"] for c in current}
problems = teaching.class_problems(examples) + teaching.recipe_problems(
    recipe, [len(c["examples"]) for c in current], session.public())
for problem in problems:
    st.caption(f":material/info: {safe_text.message(problem)}")
if st.button("Teach the model these classes", key="teach_fit", type="primary", disabled=bool(problems),
             icon=":material/school:"):
    fit(source, base_key, backbone, recipe, examples)

taught = st.session_state.get(shared.TAUGHT)
if taught and taught["backbone"] == source:
    model = shared.model_with_head(base_key, taught["digest"], backbone, taught["data"])
    recipe_done = model.attached_head.recipe
    st.success(f"**{head_description(model, quote=safe_text.md_text)}** — "
               + ("in use on every page." if taught["active"] else "switched off."), icon=":material/check_circle:")
    row = st.container(horizontal=True, gap="large")
    if recipe_done.get("final_loss") is not None:
        row.metric("Final training loss", f"{recipe_done['final_loss']:.3f} nats")
    if recipe_done.get("heldout_accuracy") is not None:
        row.metric("Held-out accuracy", f"{100 * recipe_done['heldout_accuracy']:.0f}%",
                   help=f"{recipe_done['heldout_images']} images kept out of the fit.")
    if result := st.session_state.get(RESULT):
        row.metric("Time", f"{result['seconds_features'] + result['seconds_fit']:.1f} s",
                   help=f"features {result['seconds_features']:.1f} s (cached ones are free), "
                        f"fit {result['seconds_fit']:.2f} s")
    if curve := cards.taught_curve(recipe_done):
        charts.show_figure(viz.training_curve_figure(curve, title="How the loss fell", theme=session.theme()),
                           "teach_curve", "patchlight_taught_head_loss")
    row = st.container(horizontal=True)
    st.session_state["teach_active"] = taught["active"]
    row.toggle("Use the taught head on every page", key="teach_active",
               on_change=lambda: taught.update(active=st.session_state["teach_active"]))
    row.download_button("Download the head", data=taught["data"], key="teach_download",
                        file_name=f"{taught['name'].replace(' ', '_').replace('/', '_')}.safetensors",
                        mime="application/octet-stream", icon=":material/download:", on_click="ignore")
    row.button("Forget the head", key="teach_forget", on_click=forget_head, icon=":material/delete:")
    st.page_link("app_pages/walkthrough.py", label="See its logits and loss in the walkthrough (steps 5 and 6)",
                 icon=":material/school:")
elif taught:
    st.info(f"Your taught head “{safe_text.md_text(taught['name'])}” belongs to "
            f"{safe_text.md_text(taught['backbone'])}; choose it in the sidebar to use it.", icon=":material/info:")

with st.expander("Load a head file (.safetensors from this page or `python -m model fit-head`)"):
    st.file_uploader("Head file", key="teach_head_file", type=["safetensors"],
                     on_change=load_head_file, args=(source, facts["embed_dim"]))
