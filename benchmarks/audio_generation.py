"""Autoregressive generation speed of the SaShiMi U-Net: the eager loop against the CUDA-graph step.

For each batch size: ms per step and samples/s (batch x steps / s) of

* ``eager``: :func:`audio.generation.sample_batch_eager` (model.step + torch.multinomial from Python, per sample);
* ``graph``: :class:`audio.graph_generation.StaticStepSampler` with ``cuda_graph=True`` (CUDA only), after its
  warm-up and capture (``setup s``, timed apart);
* ``static``: the same sampler run eagerly (on the CPU, where no graph exists; shows the path and its equality).

``same`` says whether the tokens equal the eager loop's for the same seed (they should: same kernels, same draws).
The last column is what one 16,000-sample clip (1 s at 16 kHz) would take at that speed. Random init is fine: the
cost per step does not depend on the weights.

    python3 benchmarks/audio_generation.py --device cuda --steps 320          # H100: ~1-2 minutes
    python3 benchmarks/audio_generation.py --device cpu --steps 8             # smoke run of the script (~10 s)
"""

from __future__ import annotations

import argparse
import csv
import inspect
import sys
import time
from pathlib import Path

import torch
import yaml

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from audio.generation import sample_batch_eager  # noqa: E402
from audio.graph_generation import StaticStepSampler  # noqa: E402
from audio.sashimi import SaShiMi, count_parameters  # noqa: E402

CLIP_STEPS = 16000


def build(config: Path, device: torch.device, seed: int = 0) -> SaShiMi:
    """The YAML's model (optimiser keys dropped), random init, fp32, eval mode."""
    args = yaml.safe_load(config.read_text())["model"]
    keys = inspect.signature(SaShiMi).parameters
    torch.manual_seed(seed)
    return SaShiMi(**{k: v for k, v in args.items() if k in keys}).to(device).eval()


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _timed(fn, device):
    _sync(device)
    start = time.perf_counter()
    out = fn()
    _sync(device)
    return out, time.perf_counter() - start


def bench_batch(model: SaShiMi, batch: int, steps: int, warmup: int, device: torch.device, seed: int) -> list[dict]:
    """Rows for one batch size: eager, then graph (CUDA) or static (CPU), on the same seed."""
    rows = []
    sample_batch_eager(model, batch, warmup, generator=torch.Generator(device).manual_seed(seed))
    (ref_tokens, _), seconds = _timed(
        lambda: sample_batch_eager(model, batch, steps, generator=torch.Generator(device).manual_seed(seed)), device)
    rows.append({"batch": batch, "path": "eager", "steps": steps, "seconds": seconds, "setup_s": 0.0, "same": "ref"})
    graph = device.type == "cuda"
    generator = torch.Generator(device).manual_seed(seed)
    sampler, setup = _timed(lambda: StaticStepSampler(model, batch, generator=generator, cuda_graph=graph), device)
    sampler.run(min(warmup, steps))  # first replays (graph upload) untimed
    generator.manual_seed(seed)  # the graphs read the generator's seed and offset at every replay
    (tokens, _), seconds = _timed(lambda: sampler.run(steps), device)
    rows.append({"batch": batch, "path": "graph" if graph else "static", "steps": steps, "seconds": seconds,
                 "setup_s": setup, "same": "yes" if torch.equal(tokens, ref_tokens) else
                 f"no ({(tokens != ref_tokens).any(0).float().argmax().item()})"})  # first step that differs
    for row in rows:
        row["ms_per_step"] = 1e3 * row["seconds"] / steps
        row["samples_per_s"] = batch * steps / row["seconds"]
        row["speedup"] = rows[0]["seconds"] / row["seconds"]
        row["clip_s"] = row["ms_per_step"] * CLIP_STEPS / 1e3
    return rows


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--config", default=str(REPO / "configs/audio/sc09_mamba_6m.yaml"),
                        help="YAML whose model: section is built (default: the 6.26M SC09 Mamba U-Net)")
    parser.add_argument("--batches", default="1,16,64", help="comma list of generation batch sizes")
    parser.add_argument("--steps", type=int, default=320, help="timed steps (samples per clip) per path")
    parser.add_argument("--warmup", type=int, default=16, help="untimed eager steps before timing")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--csv", default=None, help="also write the rows here")
    args = parser.parse_args(argv)
    if args.steps < 1 or args.warmup < 1:
        parser.error("--steps and --warmup must be >= 1")
    device = torch.device(args.device)
    if device.type == "cuda" and not torch.cuda.is_available():
        parser.error("--device cuda but torch sees no GPU")
    try:
        batches = [int(b) for b in args.batches.split(",") if b.strip()]
    except ValueError:
        parser.error(f"--batches must be a comma list of integers, got {args.batches!r}")
    model = build(Path(args.config), device, args.seed)
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu"
    print(f"{Path(args.config).name}: {count_parameters(model) / 1e6:.2f}M parameters, pooling period "
          f"{model.backbone.total_pool}, fp32, {name}, torch {torch.__version__}", flush=True)
    rows = []
    for batch in batches:
        rows += bench_batch(model, batch, args.steps, args.warmup, device, args.seed)
        for row in rows[-2:]:
            print(f"  batch {batch} {row['path']}: {row['ms_per_step']:.3f} ms/step", flush=True)
    header = (f"{'batch':>5} {'path':>6} {'steps':>6} {'ms/step':>9} {'samples/s':>11} {'speedup':>8} "
              f"{'setup s':>8} {'same':>6} {'16k-step clip s':>16}")
    print(header)
    print("-" * len(header))
    for r in rows:
        print(f"{r['batch']:>5} {r['path']:>6} {r['steps']:>6} {r['ms_per_step']:>9.3f} {r['samples_per_s']:>11.0f} "
              f"{r['speedup']:>7.1f}x {r['setup_s']:>8.2f} {r['same']:>6} {r['clip_s']:>16.1f}")
    if args.csv:
        Path(args.csv).parent.mkdir(parents=True, exist_ok=True)
        with open(args.csv, "w", newline="") as f:
            writer = csv.DictWriter(f, fieldnames=list(rows[0]))
            writer.writeheader()
            writer.writerows(rows)
    return 0


if __name__ == "__main__":
    sys.exit(main())
