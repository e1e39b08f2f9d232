"""Run one selective-scan forward (or forward + backward) a few times, for a profiler to attach to.

Nsight Compute's stall reasons of the default forward at (8, 2048, 2048, 16) bf16 (benchmarks/README.md, run 10):

    ncu --kernel-name regex:seg_fwd --launch-skip 2 --launch-count 1 --section SchedulerStats \\
        --metrics 'regex:smsp__average_warps_issue_stalled_.*_per_issue_active\\.ratio' \\
        python3 benchmarks/scan_profile.py [--impl NAME] [--backward] [--upstream SDIST]

``device_suite.sh kernel-ncu-bwd`` profiles the backward kernels of ours and of mamba_ssm this way (memory and
issue metrics).
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from scan import call, fwd_bwd_fn, make_inputs  # noqa: E402

from mamba_core.ops.selective_scan_triton import selective_scan_triton  # noqa: E402


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--impl", default="auto", help="selective_scan_triton's _impl")
    p.add_argument("--shape", default="8,2048,2048,16", help="batch,L,dim,N")
    p.add_argument("--backward", action="store_true", help="forward + backward (default: forward under no_grad)")
    p.add_argument("--chunk", type=int, help="steps per saved state (_chunk; default: the kernels' own)")
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--upstream", type=Path, metavar="SDIST",
                   help="run mamba_ssm's CUDA kernels instead (upstream_scan.py builds or reuses them from SDIST)")
    args = p.parse_args()
    batch, seqlen, dim, dstate = (int(x) for x in args.shape.split(","))
    inp = make_inputs(batch, dim, seqlen, dstate, torch.bfloat16, requires_grad=args.backward)
    if args.upstream:
        from upstream_scan import DEFAULT_BUILD_DIR, build, upstream_fn

        fn = upstream_fn(build(args.upstream, DEFAULT_BUILD_DIR))
    else:
        fn = lambda *a, **k: selective_scan_triton(*a, _impl=args.impl, _chunk=args.chunk, **k)  # noqa: E731
    run = fwd_bwd_fn(inp, fn) if args.backward else lambda: call(fn, inp)
    with torch.set_grad_enabled(args.backward):
        for _ in range(args.repeats):
            run()
    torch.cuda.synchronize()


if __name__ == "__main__":
    main()
