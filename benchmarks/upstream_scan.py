"""The Triton selective scan against upstream mamba_ssm's fused CUDA kernel, built here from its sdist.

    PYTHONPATH=. python benchmarks/upstream_scan.py --source .upstream/mamba_ssm-2.3.2.post1.tar.gz

mamba_ssm's CUDA extension is not on PyPI as a wheel and its full build takes tens of minutes, so this script compiles
only what the comparison runs: the bf16 forward and the bf16 real-weight backward of ``selective_scan_cuda``, for
this GPU's architecture (TORCH_CUDA_ARCH_LIST, default from the device), with upstream's nvcc flags. The other
dtype instantiations that upstream's dispatcher names are defined here as functions that raise, so the extension
links. Needs nvcc and ninja on the machine; the build directory is reused between runs.

Prints, for the shapes of ``scan.py --bench`` (bf16, z, D, delta_bias, softplus, input-dependent B/C):
- a cross-check on small shapes: forward and every gradient of both kernels against the fp32 loop reference;
- upstream forward / forward+backward ms and peak extra memory beside ours, and ours / upstream.
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import tarfile
import time
from pathlib import Path

import torch
from torch.utils import cpp_extension

from benchmarks.scan import ARGS, bench_ms, call, fwd_bwd_fn, make_inputs, peak_extra_gib, settled_ms
from mamba_core.ops import selective_scan_ref
from mamba_core.ops.selective_scan_triton import selective_scan_triton

BUILT_SOURCES = ("selective_scan.cpp", "selective_scan_fwd_bf16.cu", "selective_scan_bwd_bf16_real.cu")
# (function, input type, weight type) that upstream's dispatcher references but BUILT_SOURCES do not define
UNBUILT = [("fwd", i, w) for i in ("float", "at::Half") for w in ("float", "c10::complex<float>")] + [
    ("bwd", i, w) for i in ("float", "at::Half", "at::BFloat16") for w in ("float", "c10::complex<float>")
    if (i, w) != ("at::BFloat16", "float")]
# upstream setup.py's nvcc flags, without the verbose ones
NVCC_FLAGS = ["-O3", "-std=c++17", "-U__CUDA_NO_HALF_OPERATORS__", "-U__CUDA_NO_HALF_CONVERSIONS__",
              "-U__CUDA_NO_BFLOAT16_OPERATORS__", "-U__CUDA_NO_BFLOAT16_CONVERSIONS__",
              "-U__CUDA_NO_BFLOAT162_OPERATORS__", "-U__CUDA_NO_BFLOAT162_CONVERSIONS__", "--expt-relaxed-constexpr",
              "--expt-extended-lambda", "--use_fast_math"]


# where the extension is built, and where a build carried to the device is unpacked to be reused
DEFAULT_BUILD_DIR = Path("/tmp/selective_scan_cuda_build")


def unbuilt_stubs() -> str:
    """C++ defining every UNBUILT instantiation as a function that raises (explicit specialisations)."""
    decl = "template<typename input_t, typename weight_t> void selective_scan_{}_cuda({} &, cudaStream_t);"
    lines = [f"#include {h}" for h in ("<cstdint>", "<c10/util/BFloat16.h>", "<c10/util/Half.h>",
                                        "<c10/util/complex.h>", "<c10/util/Exception.h>", "<cuda_runtime.h>",
                                        '"selective_scan.h"')]
    lines += [decl.format("fwd", "SSMParamsBase"), decl.format("bwd", "SSMParamsBwd")]
    for fn, itype, wtype in UNBUILT:
        params = "SSMParamsBase" if fn == "fwd" else "SSMParamsBwd"
        lines.append(f"template<> void selective_scan_{fn}_cuda<{itype}, {wtype}>({params} &, cudaStream_t) "
                     f'{{ TORCH_CHECK(false, "this comparison build has no {fn} for {itype}/{wtype}"); }}')
    return "\n".join(lines) + "\n"


def build(source: Path, build_dir: Path):
    """Extracts upstream's csrc/selective_scan from the sdist (or takes a source tree) and compiles BUILT_SOURCES;
    an extension already built in ``build_dir`` is loaded as it is."""
    built = build_dir / "selective_scan_cuda.so"
    if built.exists():
        spec = importlib.util.spec_from_file_location("selective_scan_cuda", built)
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        print(f"loaded the selective_scan_cuda built before in {built}")
        return module
    src = build_dir / "src"
    src.mkdir(parents=True, exist_ok=True)
    if source.is_dir():
        csrc = next(source.rglob("csrc/selective_scan"), None)
        if csrc is None:
            raise SystemExit(f"{source}: no csrc/selective_scan in this tree; is it mamba_ssm's source?")
    else:
        with tarfile.open(source) as tar:
            members = [m for m in tar.getmembers() if "/csrc/selective_scan/" in m.name and m.isfile()]
            if not members:
                raise SystemExit(f"{source}: no csrc/selective_scan in this archive; is it a mamba_ssm sdist?")
            for m in members:
                m.name = Path(m.name).name
                tar.extract(m, src, filter="data")
        csrc = src
    stub = src / "unbuilt_instantiations.cu"
    stub.write_text(unbuilt_stubs())
    if "TORCH_CUDA_ARCH_LIST" not in os.environ:
        major, minor = torch.cuda.get_device_capability()
        os.environ["TORCH_CUDA_ARCH_LIST"] = f"{major}.{minor}"
    t0 = time.perf_counter()
    module = cpp_extension.load(
        name="selective_scan_cuda", sources=[str(csrc / s) for s in BUILT_SOURCES] + [str(stub)],
        extra_cflags=["-O3", "-std=c++17"], extra_cuda_cflags=NVCC_FLAGS, extra_include_paths=[str(csrc)],
        build_directory=str(build_dir), verbose=False)
    print(f"built selective_scan_cuda ({', '.join(BUILT_SOURCES)}) for sm_{os.environ['TORCH_CUDA_ARCH_LIST']} "
          f"in {time.perf_counter() - t0:.0f} s", flush=True)
    return module


def upstream_fn(ext):
    """selective_scan_fn's signature over upstream's fwd/bwd entry points (as mamba_ssm's SelectiveScanFn calls
    them: B/C (batch, N, L) become (batch, 1, N, L); the backward recomputes from the saved chunk states)."""

    class UpstreamScan(torch.autograd.Function):
        @staticmethod
        def forward(ctx, u, delta, A, B, C, D, z, delta_bias, delta_softplus):
            squeeze_b, squeeze_c = B.dim() == 3, C.dim() == 3
            B = B.unsqueeze(1) if squeeze_b else B
            C = C.unsqueeze(1) if squeeze_c else C
            out, x, *rest = ext.fwd(u, delta, A, B, C, D, z, delta_bias, delta_softplus)
            ctx.save_for_backward(u, delta, A, B, C, D, z, delta_bias, x, out)
            ctx.flags = (delta_softplus, squeeze_b, squeeze_c, z is not None)
            return rest[0] if z is not None else out

        @staticmethod
        def backward(ctx, dout):
            u, delta, A, B, C, D, z, delta_bias, x, out = ctx.saved_tensors
            softplus, squeeze_b, squeeze_c, has_z = ctx.flags
            du, ddelta, dA, dB, dC, dD, ddelta_bias, *rest = ext.bwd(
                u, delta, A, B, C, D, z, delta_bias, dout.contiguous(), x, out, None, softplus, False)
            dB = dB.squeeze(1) if squeeze_b else dB
            dC = dC.squeeze(1) if squeeze_c else dC
            dz = rest[0] if has_z else None
            return du, ddelta, dA, dB, dC, dD if D is not None else None, dz, \
                ddelta_bias if delta_bias is not None else None, None

    def fn(u, delta, A, B, C, D=None, z=None, delta_bias=None, delta_softplus=False):
        return UpstreamScan.apply(u, delta, A, B, C, D, z, delta_bias, delta_softplus)

    return fn


def cross_check(upstream):
    """Forward and every gradient of both kernels against the fp32 loop reference (max abs error / max |ref|)."""
    print("\ncross-check, bf16, var B/C, D, z, bias, softplus: max |x - ref| / max |ref| vs the fp32 loop reference")
    print("| (batch, dim, L, N) | kernel | out | " + " | ".join(f"d{k}" for k in ARGS) + " |")
    print("|---|---|---|" + "---|" * len(ARGS))
    for batch, dim, seqlen, dstate in ((2, 96, 373, 16), (2, 64, 4100, 16)):
        inp = make_inputs(batch, dim, seqlen, dstate, torch.bfloat16)
        out_r = call(selective_scan_ref, inp)
        dout = torch.randn_like(out_r)
        grads_r = torch.autograd.grad(out_r, [inp[k] for k in ARGS], dout)
        for name, fn in (("upstream", upstream), ("triton", selective_scan_triton)):
            out = call(fn, inp)
            grads = torch.autograd.grad(out, [inp[k] for k in ARGS], dout)
            errs = [(a.float() - b.float()).abs().max().item() / b.float().abs().max().item()
                    for a, b in zip((out, *grads), (out_r, *grads_r), strict=True)]
            print(f"| ({batch}, {dim}, {seqlen}, {dstate}) | {name} | " + " | ".join(f"{e:.1e}" for e in errs) + " |")


SHAPES = [(8, 2048, 2048, 16), (8, 2048, 8192, 16), (1, 65536, 2048, 16), (1, 1048576, 256, 16),
          (64, 1024, 1536, 16)]


def compare(upstream, rows):
    print(f"\n{torch.cuda.get_device_name()}: bf16 u/delta/z/B/C, B/C (batch, N, L), D, z, delta_bias, softplus. "
          "ms; mem = peak extra GiB of fwd+bwd beyond the inputs; ratio = triton / upstream (< 1: triton faster)")
    print("| (batch, L, dim, N) | fwd upstream | fwd triton | ratio | fwd+bwd upstream | fwd+bwd triton | ratio "
          "| mem upstream | mem triton |")
    print("|---|---|---|---|---|---|---|---|---|")
    for batch, seqlen, dim, dstate in [SHAPES[i] for i in rows]:
        inp = make_inputs(batch, dim, seqlen, dstate, torch.bfloat16)
        cells = {}
        for name, fn in (("upstream", upstream), ("triton", selective_scan_triton)):
            with torch.no_grad():
                cells[f"fwd {name}"] = settled_ms(lambda fn=fn, inp=inp: call(fn, inp))
            fb = fwd_bwd_fn(inp, fn)
            cells[f"mem {name}"] = peak_extra_gib(fb)
            cells[f"fb {name}"] = bench_ms(fb, rep=50)
            del fb
        print(f"| ({batch}, {seqlen}, {dim}, {dstate}) | {cells['fwd upstream']:.3f} | {cells['fwd triton']:.3f} | "
              f"{cells['fwd triton'] / cells['fwd upstream']:.2f} | {cells['fb upstream']:.3f} | "
              f"{cells['fb triton']:.3f} | {cells['fb triton'] / cells['fb upstream']:.2f} | "
              f"{cells['mem upstream']:.2f} | {cells['mem triton']:.2f} |", flush=True)
        del inp


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--source", type=Path, required=True, help="mamba_ssm sdist (.tar.gz) or its source tree")
    parser.add_argument("--build-dir", type=Path, default=DEFAULT_BUILD_DIR,
                        help="where the extension is built; one built there before is reused")
    parser.add_argument("--rows", default=",".join(str(i) for i in range(len(SHAPES))),
                        help="0-based rows of the table to time (default: all)")
    args = parser.parse_args()
    if not torch.cuda.is_available():
        raise SystemExit("upstream_scan.py compares CUDA kernels: it needs a GPU")
    if not args.source.exists():
        raise SystemExit(f"{args.source}: no such file or directory")
    upstream = upstream_fn(build(args.source, args.build_dir))
    cross_check(upstream)
    compare(upstream, [int(i) for i in args.rows.split(",")])


if __name__ == "__main__":
    main()
