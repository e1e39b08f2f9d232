"""benchmarks/upstream_scan.py without a GPU: the stubbed instantiations, a bad source archive, and the autograd
wrapper around upstream's fwd/bwd entry points (driven by a stand-in extension that computes with the reference)."""

import io
import re
import tarfile

import pytest
import torch
import torch.nn.functional as F

from benchmarks import upstream_scan
from mamba_core.ops.selective_scan_ref import selective_scan_ref
from tests.mamba_core.scan_cases import ARG_NAMES, make_inputs

ITYPES = ("float", "at::Half", "at::BFloat16")
WTYPES = ("float", "c10::complex<float>")
# what the three compiled sources instantiate (selective_scan_fwd_bf16.cu: both weight types)
BUILT = {("fwd", "at::BFloat16", "float"), ("fwd", "at::BFloat16", "c10::complex<float>"),
         ("bwd", "at::BFloat16", "float")}


def test_every_dispatched_instantiation_is_built_or_stubbed_once():
    dispatched = {(fn, i, w) for fn in ("fwd", "bwd") for i in ITYPES for w in WTYPES}
    assert len(upstream_scan.UNBUILT) == len(set(upstream_scan.UNBUILT))
    assert set(upstream_scan.UNBUILT) | BUILT == dispatched and not set(upstream_scan.UNBUILT) & BUILT
    stubs = upstream_scan.unbuilt_stubs()
    specialised = re.findall(r"template<> void selective_scan_(fwd|bwd)_cuda<(.+?), (.+?)>\(", stubs)
    assert set(specialised) == set(upstream_scan.UNBUILT)
    assert stubs.index("template<typename input_t") < stubs.index("template<>")  # declared before specialised


def test_an_archive_without_the_kernels_is_refused(tmp_path):
    archive = tmp_path / "not_mamba.tar.gz"
    with tarfile.open(archive, "w:gz") as tar:
        info = tarfile.TarInfo("pkg/README.md")
        info.size = 2
        tar.addfile(info, io.BytesIO(b"hi"))
    with pytest.raises(SystemExit, match="not_mamba.tar.gz: no csrc/selective_scan"):
        upstream_scan.build(archive, tmp_path / "build")
    with pytest.raises(SystemExit, match="no csrc/selective_scan in this tree"):  # a source tree without them
        upstream_scan.build(tmp_path, tmp_path / "build")


class ReferenceExtension:
    """Stands in for selective_scan_cuda: its fwd/bwd signatures and return lists, computed with the reference."""

    @staticmethod
    def _ref(u, delta, A, B, C, D, z, delta_bias, softplus):
        assert B.dim() == 4 and C.dim() == 4, "upstream takes B/C as (batch, G, N, L)"
        return selective_scan_ref(u, delta, A, B[:, 0], C[:, 0], D, None, delta_bias, softplus)

    def fwd(self, u, delta, A, B, C, D, z, delta_bias, softplus):
        out = self._ref(u, delta, A, B, C, D, z, delta_bias, softplus)
        return [out, torch.zeros(1), out * F.silu(z)]

    def bwd(self, u, delta, A, B, C, D, z, delta_bias, dout, x, out, dz, softplus, recompute_out_z):
        leaves = [t.detach().requires_grad_() for t in (u, delta, A, B, C, D, z, delta_bias)]
        with torch.enable_grad():  # called from an autograd backward, where grad mode is off
            y = self._ref(*leaves, softplus) * F.silu(leaves[6])
            du, ddelta, dA, dB, dC, dD, dz, dbias = torch.autograd.grad(y, leaves, dout)
        return [du, ddelta, dA, dB, dC, dD, dbias, dz]  # upstream's order: dz last


def test_wrapper_maps_upstreams_entry_points_to_selective_scan_fn():
    inp = make_inputs(2, 8, 19, 4, "var", "var", dtype=torch.float32)
    args = [inp[k] for k in ARG_NAMES]
    fn = upstream_scan.upstream_fn(ReferenceExtension())
    out = fn(*args, delta_softplus=True)
    dout = torch.randn_like(out)
    grads = torch.autograd.grad(out, args, dout)
    ref_out = selective_scan_ref(*args, delta_softplus=True)
    ref_grads = torch.autograd.grad(ref_out, args, dout)
    torch.testing.assert_close(out, ref_out)
    for name, grad, ref in zip(ARG_NAMES, grads, ref_grads, strict=True):
        assert grad.shape == ref.shape, name
        torch.testing.assert_close(grad, ref, msg=lambda m, name=name: f"d{name}: {m}")
