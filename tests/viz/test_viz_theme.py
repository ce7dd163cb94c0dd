"""viz theme and colormaps: one place for colours and sizes; every builder takes theme= alike."""

import numpy as np
import plotly.colors as pc
import plotly.graph_objects as go
import pytest

import viz
from viz import colormaps as cm
from viz.theme import CLASSROOM, SCREEN, resolve_theme

RNG = np.random.default_rng(0)
IMG = RNG.integers(0, 256, (32, 48, 3), dtype=np.uint8)  # 4 x 6 grid of 8 px patches
MAP = RNG.random((4, 6))


def _builders():
    """(name, callable(theme=...)) for every public figure builder, small inputs."""
    A = RNG.random((25, 25))  # CLS + a 4 x 6 grid
    A /= A.sum(1, keepdims=True)
    return {
        "patch_grid": lambda **k: viz.patch_grid_figure(IMG, 8, **k),
        "patch_mosaic": lambda **k: viz.patch_mosaic_figure(IMG, 8, **k),
        "patch_matrix": lambda **k: viz.patch_matrix_figure(IMG, 8, **k),
        "patch_embedding": lambda **k: viz.patch_embedding_figure(RNG.normal(size=(24, 16)), **k),
        "overlay": lambda **k: viz.attention_overlay_figure(IMG, MAP, query=3, **k),
        "heads": lambda **k: viz.attention_heads_figure(RNG.random((3, 4, 6)), image=IMG, query=3, **k),
        "layers": lambda **k: viz.attention_layers_figure(RNG.random((3, 4, 6)), **k),
        "grid": lambda **k: viz.attention_grid_figure(RNG.random((3, 2, 4, 6)), query=3, **k),
        "matrix": lambda **k: viz.attention_matrix_figure(A, tokens=viz.TokenLayout(1, grid=(4, 6)), **k),
        "explain": lambda **k: viz.explanation_figure(IMG, {"a": MAP, "b": MAP ** 2}, **k),
        "distance": lambda **k: viz.attention_distance_figure(RNG.random((3, 4)) * 50, **k),
        "entropy": lambda **k: viz.attention_entropy_figure(RNG.random((3, 4)), num_keys=25, **k),
        "prefix": lambda **k: viz.prefix_attention_figure(RNG.random((3, 4)), **k),
        "norms": lambda **k: viz.token_norms_figure(RNG.random((4, 25)) + 1, artifact_tokens=[5], **k),
        "possim": lambda **k: viz.pos_similarity_figure(RNG.uniform(-1, 1, (4, 6, 4, 6)), **k),
        "pca": lambda **k: viz.pca_image_figure(RNG.random((4, 6, 3)), **k),
        "topk": lambda **k: viz.topk_figure(RNG.normal(size=7), list("abcdefg"), k=3, **k),
        "loss": lambda **k: viz.loss_figure(RNG.normal(size=7), list("abcdefg"), label=2, **k),
    }


BUILDERS = _builders()


def _font_sizes(fig):
    """Every explicit font size in the layout and traces (titles, ticks, annotations, bars)."""
    sizes = []

    def walk(obj):
        if isinstance(obj, dict):
            for k, v in obj.items():
                if k in ("font", "tickfont", "textfont") and isinstance(v, dict) and v.get("size") is not None:
                    sizes.append(v["size"])
                if k != "template":
                    walk(v)
        elif isinstance(obj, (list, tuple)):
            for v in obj:
                walk(v)

    walk(fig.to_plotly_json())
    return sizes


def test_screen_and_classroom_font_sizes():
    assert SCREEN.font_size >= 14 and SCREEN.tick_size >= 14 and SCREEN.small_size >= 14
    assert CLASSROOM.font_size >= 20 and CLASSROOM.tick_size >= 20 and CLASSROOM.small_size >= 20
    assert CLASSROOM.line_width > SCREEN.line_width and CLASSROOM.outline_width > SCREEN.outline_width


def test_resolve_theme_forms():
    assert resolve_theme() is SCREEN
    assert resolve_theme("classroom") is CLASSROOM
    assert resolve_theme(2.0).font_size == 28
    assert resolve_theme(CLASSROOM) is CLASSROOM
    with pytest.raises(ValueError, match="unknown theme"):
        resolve_theme("disco")


def test_no_builder_takes_a_classroom_flag():
    """theme="classroom" is the one way to ask for projector sizes (the old classroom=True is gone)."""
    import inspect

    builders = [getattr(viz, n) for n in viz.__all__ if n.endswith("_figure")]
    assert len(builders) >= 25
    for b in builders:
        params = inspect.signature(b).parameters
        assert "classroom" not in params and "theme" in params, b.__name__
    assert "classroom" not in inspect.signature(resolve_theme).parameters


@pytest.mark.parametrize("name", sorted(BUILDERS))
def test_every_builder_is_readable_and_themable(name):
    fig = BUILDERS[name]()
    assert isinstance(fig, go.Figure)
    assert fig.layout.title.text, "every figure has a title"
    assert min(_font_sizes(fig)) >= 14
    big = BUILDERS[name](theme="classroom")
    assert min(_font_sizes(big)) >= 20
    assert big.layout.font.size == CLASSROOM.font_size


def test_colorscale_names_and_errors():
    assert cm.colorscale("viridis")[0][1] == pc.get_colorscale("viridis")[0][1]
    rev = cm.colorscale("viridis_r")
    assert rev[0][1] == pc.get_colorscale("viridis")[-1][1]
    with pytest.raises(ValueError, match="unknown colormap"):
        cm.colorscale("rainbowz")


def test_sample_matches_stops_and_interpolates_linearly_in_rgb():
    scale = cm.colorscale("viridis")
    first = cm.parse_color(scale[0][1])[:3]
    last = cm.parse_color(scale[-1][1])[:3]
    out = cm.sample(scale, [0.0, 1.0, -5.0, 9.0], 0.0, 1.0)
    np.testing.assert_allclose(out[0, :3], first)
    np.testing.assert_allclose(out[1, :3], last)
    np.testing.assert_allclose(out[2, :3], first)  # clipped
    np.testing.assert_allclose(out[3, :3], last)
    # halfway between two stops is the RGB mean
    p0, c0 = scale[1]
    p1, c1 = scale[2]
    mid = cm.sample(scale, [(p0 + p1) / 2], 0.0, 1.0)[0, :3]
    np.testing.assert_allclose(mid, (np.array(cm.parse_color(c0)[:3]) + cm.parse_color(c1)[:3]) / 2)
    assert cm.sample(scale, [np.nan], 0, 1)[0, 3] == 0.0  # NaN is transparent


def test_parse_color_forms():
    assert cm.parse_color("#ff0000") == (255, 0, 0, 1.0)
    assert cm.parse_color("rgb(1, 2, 3)") == (1, 2, 3, 1.0)
    assert cm.parse_color("rgba(1,2,3,0.5)") == (1, 2, 3, 0.5)
    assert cm.parse_color("white") == (255, 255, 255, 1.0)
    assert cm.lut([[0, "black"], [1, "white"]], 3).tolist() == [[0, 0, 0], [128, 128, 128], [255, 255, 255]]
