"""The Mamba block: mamba_ssm's parameter layout and init, forward == step, and the bidirectional wrapper."""

import math

import pytest
import torch

from mamba_core.modules import BiMamba, Mamba


def mamba_ssm_block_shapes(d_model, d_state=16, d_conv=4, expand=2):
    """Names and shapes of mamba_ssm.modules.mamba_simple.Mamba's state_dict (bias=False, conv_bias=True)."""
    d_inner, rank = expand * d_model, math.ceil(d_model / 16)
    return {
        "A_log": (d_inner, d_state), "D": (d_inner,),
        "in_proj.weight": (2 * d_inner, d_model),
        "conv1d.weight": (d_inner, 1, d_conv), "conv1d.bias": (d_inner,),
        "x_proj.weight": (rank + 2 * d_state, d_inner),
        "dt_proj.weight": (d_inner, rank), "dt_proj.bias": (d_inner,),
        "out_proj.weight": (d_model, d_inner),
    }


@pytest.mark.parametrize("d_model,d_state", [(16, 16), (40, 8)])
def test_mamba_ssm_state_dict_loads_strictly_and_counts_match(d_model, d_state):
    block = Mamba(d_model, d_state=d_state)
    shapes = mamba_ssm_block_shapes(d_model, d_state)
    assert {k: tuple(v.shape) for k, v in block.state_dict().items()} == shapes
    foreign = {k: torch.randn(s) for k, s in shapes.items()}
    block.load_state_dict(foreign, strict=True)
    d_inner, rank = 2 * d_model, math.ceil(d_model / 16)
    formula = (2 * d_inner * d_model + d_inner * 4 + d_inner + (rank + 2 * d_state) * d_inner
               + rank * d_inner + d_inner + d_inner * d_state + d_inner + d_inner * d_model)
    assert sum(p.numel() for p in block.parameters()) == formula


def test_initialisation_matches_mamba_ssm():
    torch.manual_seed(0)
    block = Mamba(32, d_state=8, dt_min=0.001, dt_max=0.1)
    torch.testing.assert_close(-torch.exp(block.A_log), -torch.arange(1, 9.0).repeat(64, 1))
    torch.testing.assert_close(block.D, torch.ones(64))
    dt = torch.nn.functional.softplus(block.dt_proj.bias)
    assert dt.min() >= 1e-4 - 1e-7 and dt.max() <= 0.1 + 1e-6
    assert block.A_log._no_weight_decay and block.D._no_weight_decay
    std = block.dt_rank ** -0.5
    assert block.dt_proj.weight.abs().max() <= std


def test_forward_equals_token_by_token_step():
    torch.manual_seed(0)
    block = Mamba(16, d_state=8).eval()
    x = torch.randn(2, 13, 16)
    full = block(x)
    conv_state, ssm_state = block.allocate_inference_cache(2)
    steps = torch.cat([block.step(x[:, t:t + 1], conv_state, ssm_state)[0] for t in range(13)], dim=1)
    torch.testing.assert_close(steps, full, rtol=1e-5, atol=1e-5)


def test_prefill_then_step_continues_the_sequence():
    torch.manual_seed(1)
    block = Mamba(16, d_state=4).eval()
    x = torch.randn(1, 10, 16)
    full = block(x)
    cache = block.allocate_inference_cache(1)
    block(x[:, :6], inference_cache=cache)
    tail = torch.cat([block.step(x[:, t:t + 1], *cache)[0] for t in range(6, 10)], dim=1)
    torch.testing.assert_close(tail, full[:, 6:], rtol=1e-5, atol=1e-5)


def test_block_is_causal():
    torch.manual_seed(2)
    block = Mamba(8)
    x = torch.randn(1, 12, 8)
    y = block(x)
    x2 = x.clone()
    x2[:, 7] += 1.0
    y2 = block(x2)
    torch.testing.assert_close(y2[:, :7], y[:, :7])
    assert not torch.allclose(y2[:, 7:], y[:, 7:])


def test_bimamba_sums_forward_and_reversed_directions():
    torch.manual_seed(3)
    bi = BiMamba(8, d_state=4)
    x = torch.randn(2, 9, 8)
    expected = bi.fwd(x) + bi.rev(x.flip(1)).flip(1)
    torch.testing.assert_close(bi(x), expected)
    x2 = x.clone()
    x2[:, -1] += 1.0
    assert not torch.allclose(bi(x2)[:, 0], bi(x)[:, 0])          # sees the future: not causal
    tied = BiMamba(8, tie_projections=True)
    assert tied.fwd.in_proj is tied.rev.in_proj


def test_bad_arguments():
    with pytest.raises(ValueError, match="dt_init"):
        Mamba(8, dt_init="bogus")
    with pytest.raises(ValueError, match="hidden_states must be"):
        Mamba(8)(torch.randn(2, 5, 9))
    block = Mamba(8)
    with pytest.raises(ValueError, match="one token"):
        block.step(torch.randn(2, 3, 8), *block.allocate_inference_cache(2))
