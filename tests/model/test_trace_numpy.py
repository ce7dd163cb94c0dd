"""One trace type: `Trace` with torch tensors (ViT.trace) or read-only numpy arrays (Trace.numpy())."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from model.trace import ARRAY_FIELDS


@pytest.fixture()
def traces(tiny_vit):
    x = torch.randn(2, 3, 24, 30, generator=torch.Generator().manual_seed(1))
    t = tiny_vit.trace(x, grad_class="top")
    return t, t.numpy()


def test_numpy_trace_holds_read_only_float32_arrays_with_the_batch_axis(traces):
    t, n = traces
    for name in ARRAY_FIELDS:
        a, ref = getattr(n, name), getattr(t, name)
        assert isinstance(a, np.ndarray), name
        assert a.shape == tuple(ref.shape), name  # batch axis kept
        assert a.dtype == (np.int64 if name == "grad_classes" else np.float32), name
        assert a.flags.c_contiguous and not a.flags.writeable, name
        np.testing.assert_array_equal(a, ref.numpy(), err_msg=name)
        with pytest.raises(ValueError, match="read-only"):
            a.reshape(-1)[0] = 0
    assert n.grid == t.grid and n.prefix_names == t.prefix_names and n.labels == t.labels
    assert n.numpy().attentions is not None  # idempotent


def test_numpy_leaves_the_callers_arrays_writable(traces):
    _, n = traces
    own = n.attentions.copy()
    assert own.flags.writeable
    from dataclasses import replace

    replace(n, attentions=own).numpy()
    assert own.flags.writeable


def test_sizes_are_the_style_symbols(traces, tiny_vit):
    cfg = tiny_vit.cfg
    for tr in traces:
        assert (tr.B, tr.L, tr.H, tr.T, tr.N, tr.D, tr.d, tr.K) == (
            2, cfg.depth, cfg.num_heads, cfg.num_prefix_tokens + 4 * 5, 4 * 5, cfg.embed_dim, cfg.head_dim, 4)
        assert tr.has_head
        assert all(isinstance(v, int) for v in (tr.B, tr.L, tr.H, tr.T, tr.N, tr.D, tr.d, tr.K))


def test_headless_trace_has_k_zero(tiny_vit):
    tiny_vit.head = None
    n = tiny_vit.trace(torch.randn(1, 3, 24, 24)).numpy()
    assert n.K == 0 and not n.has_head and n.class_names() == [] and n.probabilities() is None
    assert n.logits is None and n.attention_grads is None and n.grad_classes is None


def test_class_names_use_labels_only_when_they_match(traces):
    t, n = traces
    assert n.class_names() == ["class 0", "class 1", "class 2", "class 3"]
    from dataclasses import replace

    assert replace(n, labels=["a", "b", "c", "d"]).class_names() == ["a", "b", "c", "d"]
    assert replace(n, labels=["a", "b"]).class_names() == ["class 0", "class 1", "class 2", "class 3"]


def test_image_arrays_probabilities_and_names_agree_for_both_kinds(traces):
    t, n = traces
    for b in range(2):
        np.testing.assert_array_equal(t.image(b), n.image(b))
    a_t, a_n = t.arrays(), n.arrays()
    assert set(a_t) == set(a_n) >= {"attentions", "logits", "attention_grads", "grad_classes"}
    for k in a_t:
        assert a_t[k].dtype == a_n[k].dtype, k
        np.testing.assert_array_equal(a_t[k], a_n[k], err_msg=k)
    np.testing.assert_allclose(n.probabilities(), t.probabilities().numpy(), atol=1e-6)
    assert t.token_names() == n.token_names()
    assert n.token_name(n.num_prefix_tokens + 7) == "patch 7 (row 1, col 2)"
    assert n.short_token_names()[n.num_prefix_tokens] == "p0 (r0,c0)"
