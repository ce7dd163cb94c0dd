"""The walkthrough's step-by-step figures (viz.steps_attention, viz.steps_stream, and the mass
mask and patch-flatten figures of viz.explain and viz.patches), checked by their data, their
legends and their errors. (What a figure looks like as PNG is plotly's business:
tests/viz/test_viz_export.py; whether it fits its width: tests/app/test_figure_layouts.py.)"""

import math

import numpy as np
import plotly.graph_objects as go
import pytest

import viz
from viz import TokenLayout
from viz import colormaps as cm

RNG = np.random.default_rng(7)


# ---------------------------------------------------------------------------------------------
# helpers
# ---------------------------------------------------------------------------------------------
def _legend(fig):
    """(name, colour) of every legend entry, in order; checks the legend sits above the plot."""
    assert fig.layout.showlegend
    leg = fig.layout.legend
    assert leg.orientation == "h" and leg.y >= 1 and leg.yanchor == "bottom"  # between title and plot
    assert leg.font.size == fig.layout.font.size  # the body font: readable on a projector
    shown = [t for t in fig.data if t.showlegend is not False]
    shown.sort(key=lambda t: t.legendrank if t.legendrank is not None else 1000)
    return [(t.name, t.marker.color if t.type == "bar" or t.mode == "markers" else t.line.color) for t in shown]


def _softmax_case(T, d=16, hot=()):
    q = RNG.normal(size=d)
    k = RNG.normal(size=(T, d))
    for j in hot:
        k[j] += 0.6 * q
    s = k @ q / math.sqrt(d)
    return s, viz.softmax(s)


def _fonts(fig):
    sizes = []

    def walk(o):
        if isinstance(o, dict):
            for key, v in o.items():
                if key in ("font", "tickfont", "textfont") and isinstance(v, dict) and v.get("size") is not None:
                    sizes.append(v["size"])
                if key != "template":
                    walk(v)
        elif isinstance(o, (list, tuple)):
            for v in o:
                walk(v)

    walk(fig.to_plotly_json())
    return sizes


# ---------------------------------------------------------------------------------------------
# builders with small inputs, for the shared checks
# ---------------------------------------------------------------------------------------------
IMG = RNG.integers(0, 256, (32, 48, 3), dtype=np.uint8)  # 4 x 6 patches of 8 px
MAP = RNG.random((4, 6))


def _mask_for(m, thr):
    order = np.argsort(-m.ravel(), kind="stable")
    k = int(np.searchsorted(np.cumsum(m.ravel()[order]), thr * m.sum())) + 1
    mask = np.zeros(m.size, bool)
    mask[order[:k]] = True
    return mask.reshape(m.shape)


def _residual_case(L=4, D=12):
    z = [RNG.normal(size=D)]
    a_n, m_n = [], []
    for _ in range(L):
        a, m = RNG.normal(size=D), RNG.normal(size=D) * 2
        a_n.append(np.linalg.norm(a))
        m_n.append(np.linalg.norm(m))
        z.append(z[-1] + a + m)
    return np.array(a_n), np.array(m_n), np.array([np.linalg.norm(v) for v in z])


def _builders():
    s, p = _softmax_case(25, hot=(0, 7))
    tokens = TokenLayout(1, grid=(4, 6))
    a, m, z = _residual_case()
    return {
        "scores_tokens": lambda **k: viz.attention_scores_figure(s, p, query=0, tokens=tokens, **k),
        "scores_top": lambda **k: viz.attention_scores_figure(s, p, query=0, tokens=tokens, top=5, **k),
        "values": lambda **k: viz.value_mixing_figure(p, RNG.normal(size=(25, 8)), None, tokens=tokens, top=4, **k),
        "residual": lambda **k: viz.residual_stream_figure(a, m, z, token_name="CLS", **k),
        "mlp": lambda **k: viz.mlp_activation_figure(RNG.normal(size=64), token_name="CLS", **k),
        "mask": lambda **k: viz.mass_mask_figure(IMG, MAP, _mask_for(MAP, 0.6), threshold=0.6, **k),
        "norms_lines": lambda **k: viz.token_norms_lines_figure(RNG.random((4, 25)) + 1, artifact_tokens=[5], **k),
        "flatten": lambda **k: viz.patch_flatten_figure(IMG[:8, :8], RNG.normal(size=16), patch_index=0, **k),
    }


BUILDERS = _builders()


@pytest.mark.parametrize("name", sorted(BUILDERS))
def test_every_walkthrough_figure_is_readable_and_themable(name):
    fig = BUILDERS[name]()
    assert isinstance(fig, go.Figure) and fig.layout.title.text
    assert min(_fonts(fig)) >= 14
    big = BUILDERS[name](theme="classroom")
    assert min(_fonts(big)) >= 20
    assert big.layout.font.size == viz.CLASSROOM.font_size
    assert not [a.text for a in fig.layout.annotations or () if a.text in ("■", "▬")]  # no hand-made legends
    if fig.layout.showlegend:
        _legend(fig)
        _legend(big)


def test_walkthrough_builders_are_exported():
    for name in ("attention_scores_figure", "value_mixing_figure", "residual_stream_figure", "mlp_activation_figure",
                 "mass_mask_figure", "token_norms_lines_figure", "patch_flatten_figure", "flatten_patch"):
        assert name in viz.__all__ and callable(getattr(viz, name))


# ---------------------------------------------------------------------------------------------
# 1. scores and softmax
# ---------------------------------------------------------------------------------------------
def test_scores_small_T_every_key_in_token_order():
    T = 50
    s, p = _softmax_case(T, hot=(0, 20, 21))
    tokens = TokenLayout(1, grid=(7, 7))
    names = tokens.names()
    fig = viz.attention_scores_figure(s, p, query=10, tokens=tokens)
    sc, wt = fig.data[:2]
    assert sc.type == wt.type == "bar" and sc.name == "scores" and wt.name == "softmax weights"
    assert list(sc.x) == names == list(wt.x)
    np.testing.assert_allclose(sc.y, s)
    np.testing.assert_allclose(wt.y, p)
    np.testing.assert_array_equal(sc.customdata, np.arange(T))
    assert fig.layout.meta["mode"] == "tokens" and fig.layout.meta["keys"] == list(range(T))
    assert fig.layout.meta["shown_weight"] == pytest.approx(1.0)
    # prefix token distinguishable: its own colour, a separator after it, and CLS as a tick label
    assert sc.marker.color[0] == viz.SCREEN.second_color and set(sc.marker.color[1:]) == {viz.SCREEN.bar_color}
    assert any(sh.x0 == 0.5 and sh.x1 == 0.5 for sh in fig.layout.shapes)
    assert "CLS" in fig.layout.xaxis.ticktext and fig.layout.xaxis.type == "category"
    assert all(t == "CLS" or t.startswith("p") for t in fig.layout.xaxis.ticktext)  # patch numbers, not tokens
    assert names[21] == "p20 (r2,c6)" and list(sc.x)[21] == "p20 (r2,c6)"
    title = fig.layout.title.text.replace("<br>", " ")
    assert "all 50 keys" in title and "patch 9 (row 1, col 2)" in title  # token 10 = patch 9
    # aligned panels: the same x axis, stacked domains
    assert sc.yaxis == "y2" and wt.yaxis in (None, "y") and sc.xaxis == wt.xaxis
    assert fig.layout.yaxis2.domain[0] > fig.layout.yaxis.domain[1]
    # tick labels do not collide (every label fits its slot)
    assert len(fig.layout.xaxis.tickvals) < T
    # the two bar colours are named in a real legend; the bars themselves are not legend entries
    assert _legend(fig) == [("prefix token", viz.SCREEN.second_color), ("patch tokens", viz.SCREEN.bar_color)]
    assert sc.showlegend is False and wt.showlegend is False
    assert all(x is None for t in fig.data[2:] for x in t.x)  # legend keys draw nothing


@pytest.mark.parametrize("top, expect", [(None, 20), (7, 7), (300, 257)])
def test_scores_large_T_top_keys_sorted_and_stated(top, expect):
    T = 257
    s, p = _softmax_case(T, d=64, hot=(0, 30, 31))
    names = TokenLayout(1, grid=(16, 16)).names()
    fig = viz.attention_scores_figure(s, p, query=0, tokens=TokenLayout(1, grid=(16, 16)), top=top)
    idx = np.argsort(-p, kind="stable")[:expect]
    sc, wt = fig.data[:2]
    assert sc.orientation == wt.orientation == "h"
    assert list(sc.y) == [names[j] for j in idx] == list(wt.y)
    np.testing.assert_allclose(sc.x, s[idx])
    np.testing.assert_allclose(wt.x, p[idx])
    assert np.all(np.diff(wt.x) <= 0)
    assert fig.layout.meta["mode"] == "top" and fig.layout.meta["keys"] == idx.tolist()
    assert fig.layout.meta["shown_weight"] == pytest.approx(p[idx].sum())
    title = fig.layout.title.text.replace("<br>", " ")
    assert f"top {expect} of 257 keys" in title
    # side by side, sharing the category axis
    assert wt.xaxis == "x2" and fig.layout.xaxis2.domain[0] > fig.layout.xaxis.domain[1]
    assert fig.layout.yaxis.range[0] > fig.layout.yaxis.range[1]  # top key on top


def test_scores_bars_coloured_by_token_kind_with_a_legend():
    s, p = _softmax_case(257, d=64, hot=(0,))
    s[0] += 10  # CLS is the top key by far
    p = viz.softmax(s)
    fig = viz.attention_scores_figure(s, p, query=6, tokens=TokenLayout(1, grid=(16, 16)), top=10)
    sc, wt = fig.data[:2]
    assert sc.marker.color[0] == wt.marker.color[0] == viz.SCREEN.second_color  # CLS: prefix colour
    assert set(sc.marker.color[1:]) == {viz.SCREEN.bar_color}
    assert _legend(fig) == [("prefix token", viz.SCREEN.second_color), ("patch tokens", viz.SCREEN.bar_color)]
    # two prefix tokens: the plural; no prefix token among the keys shown: no legend at all
    two = viz.attention_scores_figure(*_softmax_case(30, hot=(0,)), query=0,
                                      tokens=TokenLayout(2, ["CLS", "DIST"], (4, 7)))
    assert _legend(two)[0][0] == "prefix tokens"
    s2, _ = _softmax_case(257, d=64, hot=(40,))
    s2[0] -= 20
    none = viz.attention_scores_figure(s2, viz.softmax(s2), query=0, tokens=TokenLayout(1, grid=(16, 16)), top=5)
    assert 0 not in none.layout.meta["keys"] and not none.layout.showlegend and len(none.data) == 2


@pytest.mark.parametrize("kwargs, match", [
    (dict(probs=np.full(5, 0.2), scores=np.zeros(6)), "probs has 5 entries but scores has T=6"),
    (dict(probs=np.full(6, 0.5)), "sums to 3"),
    (dict(probs=np.array([2.0, -1, 0, 0, 0, 0])), r"expected softmax weights in \[0, 1\]"),
    (dict(tokens=TokenLayout(1, grid=(2, 3))), r"scores has T=6 tokens but the layout has 1 prefix \+ 6"),
    (dict(top=0), "top=0"),
    (dict(tokens=TokenLayout(7)), "num_prefix_tokens=7"),
    (dict(query=6), "query token 6 is out of range"),
    (dict(scores=np.zeros((1, 6))), "batch"),
])
def test_scores_errors_name_the_value_and_fix(kwargs, match):
    args = dict(scores=np.zeros(6), probs=np.full(6, 1 / 6), query=0)
    args.update(kwargs)
    with pytest.raises(ValueError, match=match):
        viz.attention_scores_figure(args.pop("scores"), args.pop("probs"), **args)


# ---------------------------------------------------------------------------------------------
# 2. value mixing
# ---------------------------------------------------------------------------------------------
def test_value_mixing_output_is_the_weighted_sum():
    T, d = 257, 16
    s, _ = _softmax_case(T, hot=(3, 90))
    s[0] += 5  # CLS among the top keys
    p = viz.softmax(s)
    V = RNG.normal(size=(T, d))
    tokens = TokenLayout(1, grid=(16, 16))
    names = tokens.names()
    fig = viz.value_mixing_figure(p, V, p @ V, query=0, tokens=tokens, top=8)
    bars, heat, out = fig.data
    idx = np.argsort(-p, kind="stable")[:8]
    assert list(bars.y) == [names[j] for j in idx] == list(heat.y)
    np.testing.assert_allclose(bars.x, p[idx])
    np.testing.assert_allclose(heat.z, V[idx])
    expected = sum(p[j] * V[j] for j in range(T))  # Σ_j p_j v_j, written out
    np.testing.assert_allclose(np.asarray(out.z)[0], expected, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(fig.layout.meta["output"], expected)
    assert heat.coloraxis == out.coloraxis == "coloraxis"
    top = max(np.abs(V[idx]).max(), np.abs(expected).max())
    assert (fig.layout.coloraxis.cmin, fig.layout.coloraxis.cmax) == (-top, top)
    assert "top 8 of 257" in fig.layout.title.text.replace("<br>", " ")
    assert bars.marker.color[list(idx).index(0)] == viz.SCREEN.second_color  # CLS is a prefix token
    # without output, the same figure; with T <= top every token is shown
    again = viz.value_mixing_figure(p, V, None, tokens=tokens, top=8)
    np.testing.assert_allclose(again.data[2].z, out.z)
    small = viz.value_mixing_figure(p[:4] / p[:4].sum(), V[:4], None, top=8)  # no grid: CLS, p0, p1, p2
    assert len(small.data[1].z) == 4 and list(small.data[0].y) == [["CLS", "p0", "p1", "p2"][j] for j in
                                                                    np.argsort(-p[:4], kind="stable")]


def test_value_mixing_errors():
    p = np.full(4, 0.25)
    V = np.ones((4, 3))
    with pytest.raises(ValueError, match=r"values has shape \(5, 3\) but probs has T=4"):
        viz.value_mixing_figure(p, np.ones((5, 3)))
    with pytest.raises(ValueError, match="output differs from"):
        viz.value_mixing_figure(p, V, np.zeros(3))
    with pytest.raises(ValueError, match="output has 2 entries"):
        viz.value_mixing_figure(p, V, np.ones(2))
    with pytest.raises(ValueError, match="values has shape"):
        viz.value_mixing_figure(p, np.ones((2, 4, 3)))
    with pytest.raises(ValueError, match="top=-1"):
        viz.value_mixing_figure(p, V, top=-1)


# ---------------------------------------------------------------------------------------------
# 4. residual stream
# ---------------------------------------------------------------------------------------------
def test_residual_stream_bars_and_line():
    a, m, z = _residual_case(L=6)
    fig = viz.residual_stream_figure(a, m, z, token_name="patch 3")
    stream, attn, mlp = fig.data
    np.testing.assert_allclose(stream.y, z)
    np.testing.assert_allclose(stream.x, np.arange(7) - 0.5)  # block boundaries
    np.testing.assert_allclose(attn.y, a)
    np.testing.assert_allclose(mlp.y, m)
    np.testing.assert_allclose(attn.x, np.arange(6) - 0.2)
    np.testing.assert_allclose(mlp.x, np.arange(6) + 0.2)
    assert attn.marker.color != mlp.marker.color
    assert stream.yaxis == "y2" and fig.layout.yaxis2.domain[0] > fig.layout.yaxis.domain[1]
    assert stream.hovertext[0] == "after the embeddings" and stream.hovertext[6] == "after block 5"
    assert "patch 3" in fig.layout.title.text
    assert fig.layout.meta["stream"] == pytest.approx(z.tolist())
    assert _legend(fig) == [("‖stream z‖", viz.SCREEN.font_color), ("‖attention update‖", viz.SCREEN.bar_color),
                            ("‖MLP update‖", viz.SCREEN.second_color)]


def test_residual_stream_errors():
    a, m, z = _residual_case(L=3)
    with pytest.raises(ValueError, match="expected L\\+1 = 4"):
        viz.residual_stream_figure(a, m, z[1:], token_name="CLS")
    with pytest.raises(ValueError, match="mlp_norms has 2 entries"):
        viz.residual_stream_figure(a, m[:2], z, token_name="CLS")
    with pytest.raises(ValueError, match="negative"):
        viz.residual_stream_figure(-a, m, z, token_name="CLS")
    with pytest.raises(ValueError, match="do not belong together"):  # stream jumps more than the updates allow
        viz.residual_stream_figure(a, m, z + np.array([0, 0, 100.0, 0]), token_name="CLS")


# ---------------------------------------------------------------------------------------------
# 5. MLP activations
# ---------------------------------------------------------------------------------------------
def test_mlp_histogram_counts_and_active_units():
    x = RNG.normal(size=(5, 300))
    fig = viz.mlp_activation_figure(x, token=2, bins=20)
    bar = fig.data[0]
    edges = np.array(fig.layout.meta["edges"])
    counts, _ = np.histogram(x[2], bins=edges)
    np.testing.assert_array_equal(bar.y, counts)
    np.testing.assert_allclose(bar.x, (edges[:-1] + edges[1:]) / 2)
    assert bar.y.sum() == 300 and np.isclose(edges, 0).any()  # 0 is a bin edge
    active = int((x[2] > 0).sum())
    assert f"{active} of 300 active" in fig.layout.title.text and fig.layout.meta["active"] == active
    assert all(c == viz.SCREEN.second_color for c, v in zip(bar.marker.color, bar.x) if v > 0)
    with pytest.raises(ValueError, match="pass token="):
        viz.mlp_activation_figure(x)
    with pytest.raises(ValueError, match="out of range"):
        viz.mlp_activation_figure(x, token=9)
    with pytest.raises(ValueError, match="bins=0"):
        viz.mlp_activation_figure(x[0], bins=0)


def test_mlp_bar_colours_named_in_the_legend():
    x = np.concatenate([np.full(50, -0.1), RNG.random(20) + 0.5])
    fig = viz.mlp_activation_figure(x, bins=10)
    bar = fig.data[0]
    keys = _legend(fig)
    assert keys == [("active (> 0)", viz.SCREEN.second_color), ("inactive (≤ 0)", viz.SCREEN.muted_color)]
    assert bar.showlegend is False
    assert {c for c, v in zip(bar.marker.color, bar.x) if v > 0} == {keys[0][1]}
    assert {c for c, v in zip(bar.marker.color, bar.x) if v <= 0} == {keys[1][1]}


# ---------------------------------------------------------------------------------------------
# 6. attention-mass mask
# ---------------------------------------------------------------------------------------------
def test_mass_mask_image_title_and_outline():
    m = MAP / MAP.sum()
    mask = _mask_for(m, 0.6)
    fig = viz.mass_mask_figure(IMG, m, mask, tokens=TokenLayout(patch_size=8), threshold=0.6, dim=0.25)
    img = viz.image_pixels(fig.data[0])
    keep = np.kron(mask, np.ones((8, 8), bool))
    np.testing.assert_array_equal(img[keep], IMG[keep])
    np.testing.assert_array_equal(img[~keep], np.rint(IMG[~keep] * 0.25).astype(np.uint8))
    k = int(mask.sum())
    assert fig.layout.title.text.startswith(f"60% of attention in {k} of 24 patches")
    assert fig.layout.meta["kept"] == k and fig.layout.meta["kept_mass"] >= 0.6
    # the outline: every segment lies on patch edges; its total length is the region's perimeter
    xs, ys = fig.data[2].x, fig.data[2].y
    length = 0.0
    for i in range(0, len(xs), 3):
        assert xs[i + 2] is None
        assert (xs[i] + 0.5) % 8 == 0 and (ys[i] + 0.5) % 8 == 0
        length += abs(xs[i + 1] - xs[i]) + abs(ys[i + 1] - ys[i])
    pad = np.pad(mask, 1)
    perimeter = int((pad[1:, :] != pad[:-1, :]).sum() + (pad[:, 1:] != pad[:, :-1]).sum())
    assert length == perimeter * 8
    assert fig.data[2].line.color == viz.SCREEN.highlight_color
    assert len(fig.data[3].x) == 24  # hover per patch: its number, row and column, and its attention
    assert fig.data[3].customdata[8].tolist() == [8, 1, 2, m[1, 2]]


def test_mass_mask_two_patches():
    grey = np.full((32, 48, 3), 200, np.uint8)
    m = np.zeros((4, 6))
    m[1, 1] = m[1, 2] = 1.0  # two patches hold all the attention
    fig = viz.mass_mask_figure(grey, m, m > 0, threshold=0.6, dim=0.3)
    img = viz.image_pixels(fig.data[0])
    assert (img[12, 12] == 200).all() and (img[28, 40] == 60).all()  # kept; dimmed: round(200 * 0.3)
    assert "100% of attention" not in fig.layout.title.text and "in 2 of 24 patches" in fig.layout.title.text


@pytest.mark.parametrize("kwargs, match", [
    (dict(mask=np.ones((3, 6), bool)), r"mask has shape \(3, 6\)"),
    (dict(mask=np.full((4, 6), 2)), "0/1"),
    (dict(threshold=1.5), "threshold=1.5"),
    (dict(dim=-1), "dim=-1"),
    (dict(mask=np.zeros((4, 6), bool)), "mask keeps 0% of the attention"),
    (dict(attn_map=-MAP), "negative"),
    (dict(tokens=TokenLayout(patch_size=7)), "patch_size=7"),
])
def test_mass_mask_errors(kwargs, match):
    args = dict(attn_map=MAP, mask=_mask_for(MAP, 0.6))
    args.update(kwargs)
    with pytest.raises(ValueError, match=match):
        viz.mass_mask_figure(IMG, args.pop("attn_map"), args.pop("mask"), **args)


# ---------------------------------------------------------------------------------------------
# 7. token norms as lines
# ---------------------------------------------------------------------------------------------
def _norms_case(L=5, p=3, N=40, arts=(10, 20)):
    v = np.empty((L + 1, p + N))
    v[:, p:] = np.linspace(5, 20, L + 1)[:, None] + RNG.random((L + 1, N))
    v[:, :p] = np.linspace(1, 3, L + 1)[:, None] * np.arange(1, p + 1)
    for a in arts:
        v[3:, a] = 80
    return v


def test_norms_lines_stats_prefix_and_artifacts():
    v = _norms_case()
    arts = [10, 20]
    fig = viz.token_norms_lines_figure(v, tokens=TokenLayout(3, ["CLS", "REG0", "REG1"], (5, 8)),
                                       artifact_tokens=arts)
    names = [t.name for t in fig.data]
    assert names == ["patch 5–95%", "patch 25–75%", "patch median", "patch max", "CLS", "REG0", "REG1",
                     "artifact p7 (r0,c7)", "artifact p17 (r2,c1)"]  # tokens 10, 20 = patches 7, 17
    typical = [j for j in range(3, v.shape[1]) if j not in arts]
    np.testing.assert_allclose(fig.data[2].y, np.median(v[:, typical], axis=1))
    np.testing.assert_allclose(fig.data[2].x, np.arange(6))
    q25, q75 = np.percentile(v[:, typical], [25, 75], axis=1)
    band = fig.data[1]
    assert band.fill == "toself"
    np.testing.assert_allclose(band.y, np.concatenate([q75, q25[::-1]]))
    np.testing.assert_allclose(band.x, np.concatenate([np.arange(6), np.arange(6)[::-1]]))
    np.testing.assert_allclose(fig.data[3].y, v[:, typical].max(axis=1))  # artifacts left out of the stats
    np.testing.assert_allclose(fig.data[4].y, v[:, 0])
    np.testing.assert_allclose(fig.data[8].y, v[:, 20])
    assert fig.data[7].line.color == fig.data[8].line.color == viz.SCREEN.accent_color
    assert len({fig.data[i].line.color for i in (4, 5, 6)}) == 3
    # every trace in the legend: the median first, then the bands, the max, prefix and artifact lines
    assert [n for n, _ in _legend(fig)] == ["patch median", "patch 25–75%", "patch 5–95%", "patch max", "CLS",
                                            "REG0", "REG1", "artifact p7 (r0,c7)", "artifact p17 (r2,c1)"]
    assert not fig.layout.annotations  # no labels drawn by hand
    # nine entries do not fit one row: the top margin grows by the extra rows, the plot keeps its size
    assert fig.layout.margin.t > viz.SCREEN.margin["t"]
    one = viz.token_norms_lines_figure(v[:, 3:], tokens=TokenLayout(0))
    assert one.layout.margin.t == viz.SCREEN.margin["t"]
    assert (fig.layout.height - fig.layout.margin.t) == (one.layout.height - one.layout.margin.t)
    assert "2 artifact tokens" in fig.layout.title.text
    assert fig.layout.meta["artifact_tokens"] == arts


def test_norms_lines_bands_fill_lighter_for_the_wider_range():
    fig = viz.token_norms_lines_figure(_norms_case(arts=()), tokens=TokenLayout(3))
    wide, middle = fig.data[:2]
    assert wide.fill == middle.fill == "toself"
    assert cm.parse_color(wide.fillcolor)[:3] == cm.parse_color(viz.SCREEN.bar_color)[:3]
    assert cm.parse_color(wide.fillcolor)[3] < cm.parse_color(middle.fillcolor)[3]


def test_norms_lines_errors():
    with pytest.raises(ValueError, match="out of range"):
        viz.token_norms_lines_figure(np.ones((3, 5)), artifact_tokens=[9])
    with pytest.raises(ValueError, match="transposed"):
        viz.token_norms_lines_figure(np.ones((3, 1)))
    with pytest.raises(ValueError, match="T=5 tokens but the layout has 1 prefix"):
        viz.token_norms_lines_figure(np.ones((3, 5)), tokens=TokenLayout(1, grid=(2, 3)))
    with pytest.raises(ValueError, match=r"norms has shape \(5,\).*np.linalg.norm\(hidden_states"):
        viz.token_norms_lines_figure(np.ones(5))


# ---------------------------------------------------------------------------------------------
# 8. patch -> numbers -> embedding
# ---------------------------------------------------------------------------------------------
def test_flatten_patch_orders():
    x = RNG.integers(0, 256, (4, 4, 3), dtype=np.uint8)
    chw = viz.flatten_patch(x)
    assert chw.shape == (48,)
    np.testing.assert_array_equal(chw[:16], x[..., 0].ravel())  # all red, row by row
    np.testing.assert_array_equal(chw[32:], x[..., 2].ravel())
    hwc = viz.flatten_patch(x, "hwc")
    np.testing.assert_array_equal(hwc[:3], x[0, 0])
    img = RNG.integers(0, 256, (8, 12, 3), dtype=np.uint8)
    np.testing.assert_array_equal(viz.flatten_patch(img[4:8, 8:12], "hwc"), viz.flatten_patches(img, 4)[5])
    with pytest.raises(ValueError, match="order="):
        viz.flatten_patch(x, "cwh")


def test_patch_flatten_figure_data():
    x = RNG.integers(0, 256, (8, 8, 3), dtype=np.uint8)
    e = RNG.normal(size=20)
    fig = viz.patch_flatten_figure(x, e, patch_index=13, tokens=TokenLayout(1, grid=(4, 6)))
    img, flat, emb = fig.data
    np.testing.assert_array_equal(img.z, x)
    np.testing.assert_array_equal(np.asarray(flat.z)[0], x.transpose(2, 0, 1).ravel())
    np.testing.assert_allclose(np.asarray(emb.z)[0], e)
    assert (flat.zmin, flat.zmax) == (0, 255)
    assert emb.zmin == -np.abs(e).max() and emb.zmax == np.abs(e).max()
    title = fig.layout.title.text.replace("<br>", " ")
    assert "Patch 13 (row 2, col 1)" in title and "192" in title and "20-dim" in title
    assert fig.layout.annotations[0].text.startswith("patch 13 (row 2, col 1)")
    assert len([s for s in fig.layout.shapes if s.type == "rect"]) == 3  # R, G, B blocks
    # panels aligned: stacked top to bottom, strips spanning the same width
    assert fig.layout.yaxis.domain[0] > fig.layout.yaxis2.domain[1] > fig.layout.yaxis3.domain[1]
    assert tuple(fig.layout.xaxis2.domain) == tuple(fig.layout.xaxis3.domain)
    hwc = viz.patch_flatten_figure(x, e, patch_index=0, order="hwc")
    np.testing.assert_array_equal(np.asarray(hwc.data[1].z)[0], x.ravel())
    assert not hwc.layout.shapes


def test_patch_flatten_errors():
    with pytest.raises(ValueError, match="square patch"):
        viz.patch_flatten_figure(np.zeros((8, 6, 3), np.uint8), np.ones(4), patch_index=0)
    with pytest.raises(ValueError, match="dtype float64"):
        viz.patch_flatten_figure(np.zeros((8, 8, 3)), np.ones(4), patch_index=0)
    with pytest.raises(ValueError, match="channels first"):
        viz.patch_flatten_figure(np.zeros((3, 8, 8), np.uint8), np.ones(4), patch_index=0)
    with pytest.raises(ValueError, match="embedding has shape"):
        viz.patch_flatten_figure(np.zeros((8, 8, 3), np.uint8), np.ones((2, 4)), patch_index=0)
    with pytest.raises(ValueError, match="patch_index=-1"):
        viz.patch_flatten_figure(np.zeros((8, 8, 3), np.uint8), np.ones(4), patch_index=-1)
    with pytest.raises(ValueError, match="patch_index=24 is out of range"):
        viz.patch_flatten_figure(np.zeros((8, 8, 3), np.uint8), np.ones(4), patch_index=24,
                                 tokens=TokenLayout(1, grid=(4, 6)))
