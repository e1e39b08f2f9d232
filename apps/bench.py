"""``mamba-bench``: run one of the GPU speed/memory scripts in ``benchmarks/`` by name.

    mamba-bench scan --check --bench --decode     # Triton selective scan: correctness, speed, decode step
    mamba-bench dna_length --max-log2-len 20      # DNA training step: peak memory and tokens/s vs length
    mamba-bench audio_throughput                  # SaShiMi U-Net: training and generation samples/s
    mamba-bench ddp_scaling --devices 1 2         # DNA pretraining tokens/s on 1 vs 2 GPUs

The scripts live in the repository (they are measurement tools, not library code), so this works from a source
checkout (``pip install -e .``); each prints a table.
"""

from __future__ import annotations

import runpy
import sys
from pathlib import Path

BENCHMARKS = Path(__file__).resolve().parents[1] / "benchmarks"


def available() -> list[str]:
    return sorted(p.stem for p in BENCHMARKS.glob("*.py")) if BENCHMARKS.is_dir() else []


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    names = available()
    if not argv or argv[0] in ("-h", "--help"):
        print(__doc__.strip())
        print("\navailable: " + (", ".join(names) if names else f"none ({BENCHMARKS} not found)"))
        return 0
    name, rest = argv[0], argv[1:]
    if name not in names:
        print(f"mamba-bench: unknown benchmark {name!r}; available: {', '.join(names) or 'none'} "
              f"(looked in {BENCHMARKS})", file=sys.stderr)
        return 2
    sys.argv = [str(BENCHMARKS / f"{name}.py"), *rest]
    runpy.run_path(sys.argv[0], run_name="__main__")
    return 0


if __name__ == "__main__":
    sys.exit(main())
