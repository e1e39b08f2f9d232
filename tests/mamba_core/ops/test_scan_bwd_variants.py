"""The opt-in thread-backward variants (``_impl="bwd_<name>"``) against the PyTorch loop reference.

Each variant pairs the default forward with a version of the thread backward: variable dB/dC summed over a
program's channels by a tensor-core product into per-program partials (``BC_DOT``), fp32 or bf16 B/C tiles,
software exponentials, 2 lanes per channel, Triton-pipelined tile loops (run as plain loops here), and sequence
segments (a carry pass, then every segment in parallel).
Under the Triton interpreter on CPU (conftest) one SM is assumed, so a program per (batch, 32 channels) and lengths
of a few chunks split the sequence into segments (once the 8-chunk minimum per segment is lifted); the launches are
spied on to make sure the paths under test ran.
"""

import pytest
import torch

import mamba_core.ops.selective_scan_triton as sst
from mamba_core.ops.selective_scan_ref import selective_scan_ref
from mamba_core.ops.selective_scan_triton import KERNEL_PAIRS, THREAD_BWD_VARIANTS, selective_scan_triton
from tests.mamba_core.scan_cases import ARG_NAMES, LaunchSpy, make_inputs

# (variant, N, B form, C form, dtype, groups, dim, length): N = 4, 16 and 5 (padded, not a power of two); lengths
# not a multiple of the chunk (16) nor of the tile (2), over 3 chunks (one chunk: no segments); dim 64 with 2
# groups: two programs, one each (split2: 16 channels per program, so dim 32).
CHUNK = 16
CASES = [
    ("thread_dot", 16, "var", "var", torch.float32, 1, 32, 37),
    ("thread_dot_poly1", 5, "fixed", "var", torch.bfloat16, 1, 32, 41),
    ("thread_dot_seg1", 4, "group", "group", torch.float32, 2, 64, 35),
    ("thread_seg", 16, "var", "fixed", torch.bfloat16, 1, 32, 37),
    ("thread_dot_bf16bc", 4, "var", "var", torch.bfloat16, 1, 32, 45),
    ("thread_dot_g16", 16, "group", "group", torch.float32, 2, 64, 21),
    ("thread_dot_split2", 16, "var", "var", torch.float32, 1, 32, 37),
    ("thread_dot_split2", 5, "fixed", "var", torch.bfloat16, 1, 32, 41),
    ("thread_dot_split2", 4, "group", "group", torch.float32, 2, 32, 35),
    ("thread_dot_split2", 16, "var", "fixed", torch.bfloat16, 1, 32, 13),
    ("thread_dot_stages3", 16, "var", "var", torch.float32, 1, 32, 37),
    ("thread_dot_stages3", 5, "group", "group", torch.bfloat16, 2, 64, 41),
    ("thread_dot_split2_stages3", 16, "var", "var", torch.bfloat16, 1, 32, 37),
    ("thread_shfl_stages3", 16, "var", "var", torch.float32, 1, 32, 37),
    ("thread_shfl_stages3", 16, "group", "group", torch.bfloat16, 2, 64, 41),
    ("thread_shfl_stages3", 5, "var", "var", torch.bfloat16, 1, 32, 21),  # 8 states: falls back on the product
    ("thread_shfl_g32_stages3", 16, "var", "var", torch.float32, 1, 32, 37),
    ("thread_shfl_g32_atomic_stages3", 16, "var", "var", torch.float32, 1, 64, 37),  # two programs add
    ("thread_shfl_g32_atomic_stages3", 16, "group", "group", torch.bfloat16, 2, 64, 41),
]
TOLERANCE = {torch.float32: 1e-5, torch.bfloat16: 2e-2}  # max |error| / max |reference gradient|


def _grads_against_reference(inp, **kw):
    """Gradients of sum(selective_scan_triton(...)) with ``kw`` against the loop reference's, fp32 to 1e-4."""
    args = [inp[k] for k in ARG_NAMES]
    grads = torch.autograd.grad(selective_scan_triton(*args, delta_softplus=True, **kw).sum(), args)
    ref_args = [a.detach().requires_grad_() for a in args]
    ref_grads = torch.autograd.grad(selective_scan_ref(*ref_args, delta_softplus=True).sum(), ref_args)
    for grad, ref in zip(grads, ref_grads, strict=True):
        torch.testing.assert_close(grad, ref, rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("variant,dstate,b_form,c_form,dtype,groups,dim,seqlen", CASES)
def test_bwd_variant_gradients_match_reference(monkeypatch, variant, dstate, b_form, c_form, dtype, groups, dim,
                                               seqlen):
    variant_cfg = THREAD_BWD_VARIANTS[variant]
    bwd_spy = LaunchSpy(sst._thread_bwd_kernel)
    carry_spy = LaunchSpy(sst._thread_bwd_carry_kernel)
    monkeypatch.setattr(sst, "_thread_bwd_kernel", bwd_spy)
    monkeypatch.setattr(sst, "_thread_bwd_carry_kernel", carry_spy)
    monkeypatch.setattr(sst, "THREAD_BWD_MIN_SEG_CHUNKS", 1)  # split even these short inputs
    inp = make_inputs(1, dim, seqlen, dstate, b_form, c_form, dtype=dtype, groups=groups)
    args = [inp[k] for k in ARG_NAMES]
    out = selective_scan_triton(*args, delta_softplus=True, _impl=f"bwd_{variant}", _chunk=CHUNK)
    dout = torch.randn(out.shape, generator=torch.Generator().manual_seed(1)).to(out.device, out.dtype)
    grads = torch.autograd.grad(out, args, dout)
    ref_args = [a.detach().float().requires_grad_() for a in args]
    ref_out = selective_scan_ref(*ref_args, delta_softplus=True)
    ref_grads = torch.autograd.grad(ref_out, ref_args, dout.float())

    for name, grad, ref in zip(ARG_NAMES, grads, ref_grads, strict=True):
        assert grad.shape == ref.shape and grad.dtype == args[ARG_NAMES.index(name)].dtype, name
        err = (grad.float() - ref).abs().max().item() / ref.abs().max().item()
        assert err < TOLERANCE[dtype], f"d{name}: relative error {err:.2e}"
    # fp32 dB/dC: the exact (4-term) channel sums; 2 terms (16 bits) miss the 1e-5 above
    # (shuffle: exact fp32 butterfly sums where 32 channels x 16 states fit it)
    exact = variant_cfg.bc_dot and dtype == torch.float32
    shuffled = variant_cfg.shuffle and dstate == 16 and b_form != "fixed" and c_form != "fixed"
    bc_dot = (4 if variant_cfg.atomic else 3) if shuffled else variant_cfg.bc_dot + exact
    assert len(bwd_spy.launches) == 1 and bwd_spy.launches[0]["BC_DOT"] == bc_dot
    assert bwd_spy.launches[0]["DOT_COLS"] == variant_cfg.dot_cols
    assert bwd_spy.launches[0]["STAGES"] == variant_cfg.stages
    assert bwd_spy.launches[0]["S"] == variant_cfg.lanes and bwd_spy.launches[0]["BLOCK_D"] == 32 // variant_cfg.lanes
    # the interpreter counts one SM: a variant splits a sequence of several chunks unless told not to
    assert len(carry_spy.launches) == (0 if variant_cfg.n_seg == 1 or seqlen <= CHUNK else 1)


def test_bwd_variants_are_registered_with_the_default_forward():
    for name in THREAD_BWD_VARIANTS:
        assert KERNEL_PAIRS[f"bwd_{name}"] == (KERNEL_PAIRS["auto"][0], name)
        assert f"bwd_{name}" in sst.IMPLS
    assert KERNEL_PAIRS["auto"] == ("thread_split2_stages3_seg", "thread_shfl_g32_atomic_stages3")


@pytest.mark.parametrize("batch,dim,seqlen,n_seg", [
    (8, 2048, 2048, 1),      # 512 programs on 132 SMs: >= 3 per SM, unsplit
    (2, 2048, 2048, 4),      # 128 programs: 17 segments would reach 16 per SM, but a segment keeps >= 8 chunks
    (1, 2048, 65536, 33),    # 64 programs: 16 warps per SM
    (1, 256, 1048576, 264),  # 8 programs
    (1, 32, 100, 1),         # 2 chunks: too short to split
])
def test_auto_backward_segment_rule(monkeypatch, batch, dim, seqlen, n_seg):
    # the H100's 132 SMs, CHUNK 64: the counts that measured fastest in benchmarks/scan.py --bwd-sweep
    monkeypatch.setattr(sst, "_num_sms", lambda device: 132)
    config = sst._pick_thread_config(batch, dim, seqlen, dim, torch.device("cpu"), backward=True)
    assert config[1] == sst.THREAD_CHUNK == 64 and config[4] == n_seg


def test_bwd_variant_falls_back_to_scan_backward_for_large_n(monkeypatch):
    """N > 16 does not fit the thread kernels: the pair runs the seq forward and the scan backward."""
    scan_spy = LaunchSpy(sst._scan_bwd_kernel)
    monkeypatch.setattr(sst, "_scan_bwd_kernel", scan_spy)
    _grads_against_reference(make_inputs(1, 4, 19, 17, "var", "var"), _impl="bwd_thread_dot")
    assert len(scan_spy.launches) == 1


def test_split2_falls_back_to_one_lane_for_small_groups(monkeypatch):
    """Groups of 8 channels cap a program at 8 channels, too few for the dB/dC products that the 2-lane kernel
    needs for variable B/C: it runs one lane per channel (with atomics), still correct."""
    bwd_spy = LaunchSpy(sst._thread_bwd_kernel)
    monkeypatch.setattr(sst, "_thread_bwd_kernel", bwd_spy)
    _grads_against_reference(make_inputs(1, 32, 13, 4, "group", "group", groups=4), _impl="bwd_thread_dot_split2",
                             _chunk=CHUNK)
    assert [(k["S"], k["BLOCK_D"], k["BC_DOT"]) for k in bwd_spy.launches] == [(1, 8, False)]


@pytest.fixture
def deterministic():
    """torch.use_deterministic_algorithms(True) for one test (``deterministic(warn_only=...)``), restored after."""
    before = (torch.are_deterministic_algorithms_enabled(), torch.is_deterministic_algorithms_warn_only_enabled())

    def enable(warn_only=False):
        torch.use_deterministic_algorithms(True, warn_only=warn_only)

    yield enable
    torch.use_deterministic_algorithms(before[0], warn_only=before[1])


def test_deterministic_mode_runs_the_stored_channel_sums(monkeypatch, deterministic):
    """The default backward adds dB/dC with atomics (BC_DOT 4); under torch.use_deterministic_algorithms it stores
    per-program sums (BC_DOT 3) that torch adds in a fixed order."""
    bwd_spy = LaunchSpy(sst._thread_bwd_kernel)
    monkeypatch.setattr(sst, "_thread_bwd_kernel", bwd_spy)
    inp = make_inputs(1, 32, 37, 16, "var", "var")
    _grads_against_reference(inp, _chunk=CHUNK)
    deterministic()
    _grads_against_reference(inp, _chunk=CHUNK)
    assert [k["BC_DOT"] for k in bwd_spy.launches] == [4, 3]


def test_deterministic_mode_refuses_atomic_backwards(deterministic):
    """N > 16 runs the scan backward, whose variable dB/dC are atomic adds: refused like torch's nondeterministic
    ops, or a warning with warn_only; fixed B/C need no atomics; B/C groups of 8 channels make 8-channel programs,
    too few for the stored sums, so the default backward adds atomically there and is refused too."""
    inp = make_inputs(1, 4, 19, 17, "var", "var")
    args = [inp[k] for k in ARG_NAMES]
    deterministic()
    out = selective_scan_triton(*args, delta_softplus=True)
    with pytest.raises(RuntimeError, match="'scan' backward adds variable dB/dC with atomics.*deterministic"):
        torch.autograd.grad(out.sum(), args)
    deterministic(warn_only=True)
    with pytest.warns(UserWarning, match="nondeterministic"):
        _grads_against_reference(inp)
    deterministic()
    _grads_against_reference(make_inputs(1, 4, 19, 17, "fixed", "fixed"))
    small_groups = make_inputs(1, 32, 13, 4, "group", "group", groups=4)  # 8-channel programs: atomic sums
    args = [small_groups[k] for k in ARG_NAMES]
    with pytest.raises(RuntimeError, match="'thread' backward adds variable dB/dC with atomics"):
        torch.autograd.grad(selective_scan_triton(*args, delta_softplus=True).sum(), args)
