"""Helpers shared by the parity tests: the reference model's outputs and the comparison with
a Patchlight trace (transformers' eager implementation is the reference)."""
from __future__ import annotations

import torch

# float32 against transformers' eager float32 on the small test models (D = 48, 3 layers), whose
# values stay small; at realistic sizes see test_parity_vit_s.py (tolerances in float32 ulps of
# each tensor's largest value, and a float64 comparison that agrees to ~1e-14).
TOL = 1e-4


def reference_outputs(ref, pixels):
    with torch.no_grad():
        return ref(pixel_values=pixels, output_attentions=True, output_hidden_states=True)


def assert_parity(trace, out, has_logits: bool):
    L = len(out.attentions)
    assert trace.attentions.shape[1] == L
    for l in range(L):
        torch.testing.assert_close(trace.attentions[:, l], out.attentions[l], atol=TOL, rtol=0)
    assert trace.hidden_states.shape[1] == len(out.hidden_states) == L + 1
    for l, h in enumerate(out.hidden_states):
        torch.testing.assert_close(trace.hidden_states[:, l], h, atol=TOL, rtol=0)
    if has_logits:
        torch.testing.assert_close(trace.logits, out.logits, atol=TOL, rtol=0)
    else:
        assert trace.logits is None
        torch.testing.assert_close(trace.last_hidden_state, out.last_hidden_state, atol=TOL, rtol=0)
