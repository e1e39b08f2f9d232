"""The fused Triton selective scan against the PyTorch loop reference: output, last state and every gradient.

On CPU the kernels run under the Triton interpreter (conftest sets TRITON_INTERPRET=1), so sizes are tiny; a small
``_chunk`` makes sequences of 40-70 steps span several chunks, which exercises the carried state and adjoint.
"""

import pytest
import torch

from mamba_core.ops.selective_scan_ref import selective_scan_ref
from mamba_core.ops.selective_scan_triton import selective_scan_triton
from tests.mamba_core.scan_cases import (
    ARG_NAMES,
    DEVICE,
    assert_close_scaled,
    check_against_reference,
    make_inputs,
)


@pytest.mark.parametrize(
    "b_form, c_form, has_d, has_z, has_bias, softplus, groups",
    [
        ("fixed", "fixed", False, False, False, False, 1),
        ("var", "var", True, True, True, True, 1),
        ("group", "group", True, False, True, True, 2),
        ("fixed", "group", False, True, False, True, 3),
        ("var", "fixed", True, True, False, False, 1),
    ],
)
def test_fp32_matches_reference_across_chunks(b_form, c_form, has_d, has_z, has_bias, softplus, groups):
    inputs = make_inputs(2, 6, 45, 5, b_form, c_form, has_d, has_z, has_bias, groups=groups)
    check_against_reference(inputs, 1e-5, 1e-5, softplus=softplus, _chunk=16, _block_d=2)


@pytest.mark.parametrize(
    "impl, b_form, c_form, has_d, has_z, has_bias, softplus, groups",
    [
        ("seq", "var", "var", True, True, True, True, 1),
        ("seq", "fixed", "group", False, True, False, False, 2),
        ("scan", "group", "var", True, False, True, True, 1),
        ("thread_scan", "group", "group", True, True, True, True, 2),
        ("thread", "fixed", "var", True, True, True, False, 1),
    ],
)
def test_each_kernel_pair_matches_reference(impl, b_form, c_form, has_d, has_z, has_bias, softplus, groups):
    # The default pairs the thread-per-channel forward and backward; the other kernels on their own too.
    inputs = make_inputs(1, 4, 37, 4, b_form, c_form, has_d, has_z, has_bias, groups=groups, seed=2)
    check_against_reference(inputs, 1e-5, 1e-5, softplus=softplus, _impl=impl, _chunk=8 if impl == "seq" else 16,
                            _block_d=2)


@pytest.mark.parametrize(
    "n_seg, tile, b_form, c_form, dstate, groups",
    [(3, 4, "var", "var", 16, 1), (2, 8, "group", "group", 5, 2), (4, 2, "fixed", "var", 3, 1)],
)
def test_thread_forward_segments_and_tiles(n_seg, tile, b_form, c_form, dstate, groups):
    # The sequence split into segments that run in parallel (each one's start state rebuilt from the earlier ones'
    # local end states) and unrolled tiles that do not divide L must still give the plain recurrence.
    inputs = make_inputs(2, 4, 75, dstate, b_form, c_form, True, True, True, groups=groups, seed=3)
    check_against_reference(inputs, 1e-5, 1e-5, softplus=True, _impl="thread", _chunk=16, _block_d=2, _tile=tile,
                            _n_seg=n_seg)


def test_fp32_state16_default_config_odd_dim():
    inputs = make_inputs(1, 3, 50, 16, "var", "var", True, True, True)
    check_against_reference(inputs, 1e-5, 1e-5, softplus=True)


def test_fp32_large_non_power_of_two_state():
    inputs = make_inputs(1, 3, 40, 20, "var", "fixed", True, False, True)
    check_against_reference(inputs, 1e-5, 1e-5, softplus=True, _chunk=16)


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
def test_half_precision_matches_reference(dtype):
    # Reference and kernel see the same rounded inputs and both accumulate in fp32; what differs is the order of
    # fp32 sums and the final rounding of outputs and gradients to 16 bits (mamba_ssm's test allows 3e-2 for bf16).
    inputs = make_inputs(1, 4, 50, 8, "var", "var", True, True, True, dtype=dtype)
    check_against_reference(inputs, 2e-2, 3e-2, softplus=True, _chunk=16)


def test_non_contiguous_inputs():
    inputs = make_inputs(2, 4, 41, 4, "var", "var", True, True, False)
    for name in ("u", "delta", "z"):
        inputs[name] = inputs[name].detach().transpose(1, 2).contiguous().transpose(1, 2).requires_grad_()
    inputs["B"] = inputs["B"].detach().transpose(1, 2).contiguous().transpose(1, 2).requires_grad_()
    assert inputs["u"].stride(-1) != 1 and inputs["B"].stride(-1) != 1
    check_against_reference(inputs, 1e-5, 1e-5, softplus=False, _chunk=16)


def test_last_state_only_forward_matches_loop():
    inputs = make_inputs(1, 4, 33, 4, "var", "var", False, False, False)
    args = [inputs[k].detach() if inputs[k] is not None else None for k in ARG_NAMES]
    out, last = selective_scan_triton(*args, return_last_state=True, _chunk=16)
    out_r, last_r = selective_scan_ref(*args, return_last_state=True)
    assert_close_scaled(out, out_r, 1e-5, "out")
    assert_close_scaled(last, last_r, 1e-5, "last_state")
    assert selective_scan_triton(*args, _chunk=16).shape == out_r.shape


def _small_args(**overrides):
    args = {
        "u": torch.randn(1, 4, 8), "delta": torch.rand(1, 4, 8), "A": -torch.rand(4, 2),
        "B": torch.randn(1, 2, 8), "C": torch.randn(1, 2, 8),
    }
    args.update(overrides)
    return args


@pytest.mark.parametrize(
    "overrides, match",
    [
        ({"u": torch.randn(1, 4, 8, dtype=torch.float64)}, "u"),
        ({"delta": torch.rand(1, 3, 8)}, "delta"),
        ({"B": torch.randn(1, 3, 8)}, "B"),
        ({"C": torch.randn(1, 2, 2, 8)}, "C"),
        ({"A": -torch.rand(4, 2, dtype=torch.float64)}, "A"),
        ({"A": -torch.rand(4, 300)}, "N=300"),
        ({"delta": torch.rand(1, 4, 8, device="meta")}, "delta is on meta"),
        ({"D": torch.randn(5)}, "D"),
        ({"_impl": "fast"}, "_impl"),
        ({"_chunk": 24}, "_chunk"),
    ],
)
def test_bad_inputs_raise_value_error_naming_argument(overrides, match):
    if "A" in overrides and overrides["A"].shape[1] == 300:
        overrides.update(B=torch.randn(1, 300, 8), C=torch.randn(1, 300, 8))
    with pytest.raises(ValueError, match=match):
        selective_scan_triton(**_small_args(**overrides))


def test_cpu_tensors_rejected_without_interpreter(monkeypatch):
    if DEVICE == "cuda":
        pytest.skip("checks the CPU path")
    monkeypatch.setenv("TRITON_INTERPRET", "0")
    with pytest.raises(ValueError, match="u is on cpu"):
        selective_scan_triton(**_small_args())


def test_scan_impl_environment_variable_is_validated(monkeypatch):
    monkeypatch.setenv("MAMBA_CORE_SCAN_IMPL", "fastest")
    with pytest.raises(ValueError, match="MAMBA_CORE_SCAN_IMPL"):
        selective_scan_triton(**_small_args())


def test_gradient_through_last_state_is_refused_not_dropped():
    inputs = make_inputs(1, 4, 20, 4, "var", "var", seed=7)
    out, last = selective_scan_triton(*[inputs[k] for k in ARG_NAMES], delta_softplus=True, return_last_state=True)
    with pytest.raises(RuntimeError, match="no gradient through last_state"):
        (out.sum() + last.sum()).backward()
    out, last = selective_scan_triton(*[inputs[k] for k in ARG_NAMES], delta_softplus=True, return_last_state=True)
    (out.sum() + 0 * last.detach().sum()).backward()  # an unused or detached last_state is fine
    assert inputs["u"].grad is not None
