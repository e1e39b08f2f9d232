"""The opt-in thread-forward variants (lane split, software exponentials, fp32 B/C tiles) against the loop reference.

``selective_scan_triton(..., _impl=name)`` for every name in ``THREAD_VARIANTS`` (each pairs the variant forward with
the scan backward), on the cases the default thread forward handles: N < 16 (state padding), lengths that are not a
multiple of the tile, fixed / grouped B and C, fp32 and half inputs; and the dispatcher's fallbacks. Under the Triton
interpreter on CPU (conftest), so sizes are tiny. ``_exp2_fma`` is checked on its own against exp2 in float64.
"""

import pytest
import torch
import triton
import triton.language as tl

import mamba_core.ops.selective_scan_triton as sst
from mamba_core.ops.selective_scan_ref import selective_scan_ref
from mamba_core.ops.selective_scan_triton import THREAD_VARIANTS, selective_scan_triton
from mamba_core.ops.selective_scan_triton_lanes import _exp2_fma
from tests.mamba_core.scan_cases import (
    ARG_NAMES,
    DEVICE,
    LaunchSpy,
    assert_close_scaled,
    check_against_reference,
    make_inputs,
)


@pytest.fixture
def lanes_spy(monkeypatch):
    """Records the launches of the three lanes forwards in one list, each tagged with its kernel: "plain"
    (``_thread_lanes_fwd_kernel``), "pf" (register prefetch) and "seg" (pipelined, on one segment or several)."""
    spy = LaunchSpy(sst._thread_lanes_fwd_kernel, "plain")
    for name, tag in (("_thread_lanes_pf_fwd_kernel", "pf"), ("_thread_lanes_seg_fwd_kernel", "seg")):
        other = LaunchSpy(getattr(sst, name), tag)
        other.launches = spy.launches
        monkeypatch.setattr(sst, name, other)
    monkeypatch.setattr(sst, "_thread_lanes_fwd_kernel", spy)
    return spy


@triton.jit
def _exp2_fma_kernel(x_ptr, out_ptr, n, BLOCK: tl.constexpr):
    offs = tl.program_id(0) * BLOCK + tl.arange(0, BLOCK)
    tl.store(out_ptr + offs, _exp2_fma(tl.load(x_ptr + offs, mask=offs < n, other=0.0)), mask=offs < n)


def test_exp2_fma_accuracy():
    # Dense grid over [-126, 0] plus every integer and half-integer (the rounding boundaries of the split), then
    # below the clamp. Relative error <= 2 ulp of fp32 on [-125, 0] (MUFU.EX2 is documented at 2 ulp), 0 from -127.
    grid = torch.linspace(-126.0, 0.0, 1 << 18)
    steps = torch.arange(-252, 1) * 0.5
    x = torch.cat([grid, steps, steps + 2e-6, steps - 2e-6, -torch.rand(4096) * 1e-3]).clamp(max=0.0)
    below = torch.tensor([-127.0, -130.0, -1000.0, -1e30])
    xs = torch.cat([x, below]).to(DEVICE, torch.float32)
    out = torch.empty_like(xs)
    _exp2_fma_kernel[(triton.cdiv(xs.numel(), 4096),)](xs, out, xs.numel(), BLOCK=4096)
    out = out.cpu().double()
    exact = torch.exp2(xs.cpu().double())
    ok = xs.cpu() >= -125.0
    rel = ((out[ok] - exact[ok]).abs() / exact[ok]).max().item()
    assert rel <= 2 * 2.0**-23, f"max relative error {rel:.3e}"
    tiny = (xs.cpu() < -125.0) & (xs.cpu() > -127.0)
    assert (out[tiny] >= 0).all() and (out[tiny] < 2.0**-124).all()
    assert (out[-len(below):] == 0).all()


VARIANT_CASES = [
    # impl, dstate, seqlen, b_form, c_form, groups, tile
    ("thread_split2", 16, 45, "var", "var", 1, 8),
    ("thread_split4", 5, 37, "group", "group", 2, 4),
    ("thread_split4_poly1", 16, 21, "fixed", "var", 1, 8),
    ("thread_split2_poly1", 3, 40, "var", "fixed", 1, 2),
    ("thread_poly4", 16, 29, "group", "group", 2, 8),
    ("thread_poly1", 8, 19, "fixed", "fixed", 1, 4),
    ("thread_lanes1", 4, 33, "var", "var", 1, 8),
    ("thread_lanes1_bf16bc", 16, 27, "var", "group", 1, 8),
    # flat tile loop: lengths past the last full tile and chunk, a whole number of chunks, shorter than a tile
    ("thread_split2_poly1_pf", 16, 45, "var", "var", 1, 8),
    ("thread_split2_poly1_pf", 5, 32, "group", "group", 2, 4),
    ("thread_split2_poly1_pf", 16, 6, "var", "fixed", 1, 8),
    ("thread_split2_poly1_stages4", 3, 37, "group", "group", 2, 8),
    ("thread_split2_poly1_stages3", 16, 21, "var", "fixed", 1, 2),
    ("thread_split2_poly1_stages3_seg", 16, 37, "var", "var", 1, 8),  # enough warps: no segments
    ("thread_split2_stages3_seg", 5, 40, "group", "group", 2, 8),
    ("thread_split2_stages3_seg", 16, 53, "var", "var", 1, 16),  # 16-step tiles (its default) and a 5-step tail
]


@pytest.mark.parametrize("impl, dstate, seqlen, b_form, c_form, groups, tile", VARIANT_CASES)
def test_variant_matches_reference_fp32(impl, dstate, seqlen, b_form, c_form, groups, tile, lanes_spy):
    if {b_form, c_form} == {"var", "group"}:
        b_form = c_form = "group"  # B and C must have the same number of groups
    inputs = make_inputs(2, 4, seqlen, dstate, b_form, c_form, groups=groups, seed=len(impl))
    check_against_reference(inputs, 1e-5, 1e-5, _impl=impl, _chunk=16, _block_d=2, _tile=tile, _n_seg=1)
    assert len(lanes_spy.launches) == 1
    variant = THREAD_VARIANTS[impl]
    np2 = triton.next_power_of_2(dstate)
    launch = lanes_spy.launches[0]
    assert launch["S"] == min(variant.lanes, np2)
    assert launch["POLY"] == min(variant.poly, np2 // min(variant.lanes, np2))
    assert launch["_kernel"] == ("seg" if variant.stages else "pf" if variant.prefetch else "plain")
    if variant.stages:  # one segment: the full pass only
        assert (launch["STAGES"], launch["LOCAL"]) == (variant.stages, False)


def test_every_variant_has_a_case():
    assert {case[0] for case in VARIANT_CASES} == set(THREAD_VARIANTS)


@pytest.mark.parametrize("impl, dtype", [("thread_split2_poly1", torch.bfloat16), ("thread_split4", torch.float16),
                                         ("thread_split2_poly1_pf", torch.bfloat16),
                                         ("thread_split2_poly1_stages3", torch.bfloat16)])
def test_variant_half_precision(impl, dtype, lanes_spy):
    inputs = make_inputs(1, 4, 37, 16, "var", "var", dtype=dtype, seed=4)
    check_against_reference(inputs, 2e-2, 3e-2, _impl=impl, _chunk=16, _n_seg=1)
    assert len(lanes_spy.launches) == 1


def test_env_override_and_chunks(monkeypatch, lanes_spy):
    # Chosen through MAMBA_CORE_SCAN_IMPL. No autograd: a state every THREAD_CHUNK steps; with autograd, paired
    # with the scan backward, every SCAN_BWD_CHUNK (the scan backward's fastest).
    monkeypatch.setenv("MAMBA_CORE_SCAN_IMPL", "thread_split4_poly1")
    inputs = make_inputs(1, 8, 70, 16, "var", "var", seed=5)
    args = [None if inputs[k] is None else inputs[k].detach() for k in ARG_NAMES]
    with torch.no_grad():
        out, last = selective_scan_triton(*args, delta_softplus=True, return_last_state=True, _n_seg=1)
    out_r, last_r = selective_scan_ref(*args, delta_softplus=True, return_last_state=True)
    assert_close_scaled(out, out_r, 1e-5, "out")
    assert_close_scaled(last, last_r, 1e-5, "last_state")
    leaves = [None if a is None else a.requires_grad_() for a in args]
    with torch.no_grad():  # parameters that require grad, but no backward will run
        selective_scan_triton(*leaves, delta_softplus=True, _n_seg=1)
    selective_scan_triton(*leaves, delta_softplus=True, _n_seg=1)
    assert [launch["CHUNK"] for launch in lanes_spy.launches] == [sst.THREAD_CHUNK] * 2 + [sst.SCAN_BWD_CHUNK]


def test_fallbacks_to_thread_forward(lanes_spy):
    # Segments asked for, too few warps for the GPU (here: 1 SM, 1 program) or N > 16: the default kernels run.
    inputs = make_inputs(1, 3, 30, 4, "var", "var", seed=6)
    check_against_reference(inputs, 1e-5, 1e-5, _impl="thread_split2", _chunk=16, _block_d=2, _n_seg=2)
    check_against_reference(inputs, 1e-5, 1e-5, _impl="thread_split2", _chunk=16)
    wide = make_inputs(1, 2, 20, 20, "var", "fixed", seed=7)
    check_against_reference(wide, 1e-5, 1e-5, _impl="thread_poly4", _chunk=16)
    assert lanes_spy.launches == []


SEG_CASES = [
    # dstate, seqlen, b_form, c_form, groups, n_seg (None: thin input, the "thread" rule's count), dtype
    (16, 45, "var", "var", 1, 2, torch.float32),
    (5, 40, "group", "group", 2, 3, torch.float32),
    (16, 37, "var", "fixed", 1, None, torch.float32),
    (16, 37, "var", "var", 1, 2, torch.bfloat16),
]


@pytest.mark.parametrize("dstate, seqlen, b_form, c_form, groups, n_seg, dtype", SEG_CASES)
def test_segmented_variant_matches_reference(dstate, seqlen, b_form, c_form, groups, n_seg, dtype, lanes_spy):
    # Output, last state and gradients (the scan backward reads the chunk-end states); with dim 2 and
    # _block_d=2 a single one-warp program is thin for the interpreter's 1 SM, so segments come unasked.
    tol, grad_tol = (1e-5, 1e-5) if dtype == torch.float32 else (2e-2, 3e-2)
    inputs = make_inputs(1, 2, seqlen, dstate, b_form, c_form, groups=groups, dtype=dtype, seed=seqlen)
    check_against_reference(inputs, tol, grad_tol, _impl=sst.KERNEL_PAIRS["auto"][0], _chunk=16,
                            _block_d=2, _n_seg=n_seg)
    assert [(launch["_kernel"], launch["LOCAL"]) for launch in lanes_spy.launches] == [("seg", True), ("seg", False)]


def test_segmented_chunk_states_match_unsegmented():
    # The chunk-end states the backward reads, per segment count, against the one-lane "thread" forward unsplit.
    inputs = make_inputs(1, 2, 75, 16, "var", "var", seed=9)
    args = [None if inputs[k] is None else inputs[k].detach() for k in ARG_NAMES]
    kw = dict(chunk=16, block_d=2, tile=8)
    with torch.no_grad():
        out1, states1, _ = sst._forward(*args, True, impl="thread", n_seg=1, **kw)
        for n_seg in (2, 3):
            out, states, _ = sst._forward(*args, True, impl=sst.KERNEL_PAIRS["auto"][0], n_seg=n_seg, **kw)
            assert_close_scaled(out, out1, 1e-5, "out")
            assert_close_scaled(states, states1, 1e-5, "states")
