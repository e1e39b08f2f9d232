"""Decode-step operators against their whole-sequence twins: the step path is what generation trusts."""

import pytest
import torch

from mamba_core.ops import (
    causal_conv1d_fn,
    causal_conv1d_update,
    conv_state_from_sequence,
    selective_scan_ref,
    selective_state_update,
    selective_state_update_ref,
)


def test_causal_conv1d_matches_explicit_sum():
    g = torch.Generator().manual_seed(1)
    x, w, b = torch.randn(2, 3, 10, generator=g), torch.randn(3, 4, generator=g), torch.randn(3, generator=g)
    out = causal_conv1d_fn(x, w, b)
    expected = torch.zeros_like(x)
    for t in range(10):
        for k in range(4):
            src = t - (3 - k)
            if src >= 0:
                expected[..., t] += w[:, k] * x[..., src]
    torch.testing.assert_close(out, expected + b[:, None])
    torch.testing.assert_close(causal_conv1d_fn(x, w, b, activation="silu"), torch.nn.functional.silu(out))


def test_conv_update_rolls_state_like_the_sequence_conv():
    g = torch.Generator().manual_seed(2)
    x, w, b = torch.randn(2, 3, 7, generator=g), torch.randn(3, 4, generator=g), torch.randn(3, generator=g)
    full = causal_conv1d_fn(x, w, b, activation="silu")
    state = torch.zeros(2, 3, 4)
    steps = torch.stack([causal_conv1d_update(x[..., t], state, w, b, "silu") for t in range(7)], dim=-1)
    torch.testing.assert_close(steps, full)
    torch.testing.assert_close(state, conv_state_from_sequence(x, 4))
    torch.testing.assert_close(conv_state_from_sequence(x[..., :2], 4)[..., :2], torch.zeros(2, 3, 2))


@pytest.mark.parametrize("groups", [None, 2])
def test_state_update_steps_reproduce_the_scan(groups):
    g = torch.Generator().manual_seed(3)
    batch, dim, seqlen, n = 2, 4, 6, 3
    u, dt, z = (torch.randn(batch, dim, seqlen, generator=g) for _ in range(3))
    A, D, dt_bias = -torch.rand(dim, n, generator=g), torch.randn(dim, generator=g), torch.randn(dim, generator=g)
    bc_shape = (batch, n, seqlen) if groups is None else (batch, groups, n, seqlen)
    B, C = torch.randn(*bc_shape, generator=g), torch.randn(*bc_shape, generator=g)
    y, last = selective_scan_ref(u, dt, A, B, C, D, z, dt_bias, True, return_last_state=True)
    state = torch.zeros(batch, dim, n)
    steps = [selective_state_update(state, u[..., t], dt[..., t], A, B[..., t], C[..., t], D, z[..., t], dt_bias, True)
             for t in range(seqlen)]
    torch.testing.assert_close(torch.stack(steps, dim=-1), y, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(state, last, rtol=1e-5, atol=1e-5)


def test_state_update_rejects_bad_shapes():
    state = torch.zeros(2, 4, 3)
    with pytest.raises(ValueError, match="x must have shape"):
        selective_state_update_ref(state, torch.zeros(2, 5), torch.zeros(2, 4), torch.zeros(4, 3),
                                   torch.zeros(2, 3), torch.zeros(2, 3))
    with pytest.raises(ValueError, match="B must have shape"):
        selective_state_update_ref(state, torch.zeros(2, 4), torch.zeros(2, 4), torch.zeros(4, 3),
                                   torch.zeros(2, 2), torch.zeros(2, 3))


def test_conv_rejects_bad_weight_and_activation():
    with pytest.raises(ValueError, match="weight must be"):
        causal_conv1d_fn(torch.zeros(1, 3, 5), torch.zeros(4, 4))
    with pytest.raises(ValueError, match="activation"):
        causal_conv1d_fn(torch.zeros(1, 3, 5), torch.zeros(3, 4), activation="relu")
