"""Multi-GPU scaling of DNA pretraining: tokens/s on 1 vs N GPUs through ``mamba-dna pretrain fit`` (Lightning DDP).

For each device count it runs the real CLI on a pretraining config (default: the HG38 1.4M model at L = 2^16,
``configs/dna/pretrain_hg38_1.4M_L16.yaml``) with only these overrides: a synthetic random genome written here
(the GPU machine has no network and no hg38), no sequence-length warmup (every step at the full length), no
validation, no logger, ``max_steps`` = warm-up + measured steps, and ``--trainer.devices N --trainer.strategy ddp``
(N = 1 runs the plain single-device strategy: the honest baseline). A callback defined here times the measured
optimizer steps on rank 0 after a CUDA sync and sums the tokens every rank consumed.

Global batch: ``--global-batch fixed`` (default) divides ``accumulate_grad_batches`` by N so every run takes the
same optimizer steps of the same size (the recipe docs/scaling.md recommends: same LR, same schedule);
``per-device`` keeps the config's accumulation on every GPU (the global batch grows N times).

Reported: tokens/s, seconds per optimizer step, peak GPU memory, speedup over 1 device and scaling efficiency
(speedup / N); target speedup on 2 GPUs >= 1.8. Results go to <out>/results.json and <out>/results.md (replaced
on each invocation); every run keeps its own folder <out>/devices<N>_<time>/ (config, checkpoint, throughput.json).

GPU (2 GPUs; NVLink SHARP multicast off):
    NCCL_NVLS_ENABLE=0 PYTHONPATH=. python benchmarks/ddp_scaling.py --devices 1 2 --out runs/ddp_scaling
CPU smoke run of the plumbing (gloo, tiny model, 64-base windows):
    PYTHONPATH=. python benchmarks/ddp_scaling.py --smoke --devices 1 2 --out /tmp/ddp_smoke
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import lightning.pytorch as pl
import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_CONFIG = ROOT / "configs" / "dna" / "pretrain_hg38_1.4M_L16.yaml"
TARGET_SPEEDUP_2 = 1.8
SMOKE_ARGS = ["--model.d_model=16", "--model.n_layer=1", "--model.d_state=4", "--model.gradient_checkpointing=false",
              "--data.length=64", "--data.batch_size=2", "--data.num_workers=0", "--trainer.accelerator=cpu",
              "--trainer.precision=32-true"]
LAUNCH_ENV_VARS = ("MASTER_ADDR", "MASTER_PORT", "LOCAL_RANK", "NODE_RANK", "WORLD_SIZE", "RANK", "GROUP_RANK",
                   "LOCAL_WORLD_SIZE", "TORCHELASTIC_RUN_ID")


class ThroughputMeter(pl.Callback):
    """Times optimizer steps ``warmup_steps`` .. ``max_steps``; rank 0 writes the tokens/s of all ranks to a file."""

    def __init__(self, warmup_steps: int, result_file: str):
        self.warmup_steps = warmup_steps
        self.result_file = result_file
        self.started_at: float | None = None
        self.start_step = 0
        self.tokens = 0
        self.done = False

    @staticmethod
    def _sync(pl_module: pl.LightningModule) -> None:
        if pl_module.device.type == "cuda":
            torch.cuda.synchronize(pl_module.device)

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx: int) -> None:
        if self.done:
            return
        if self.started_at is None:
            if trainer.global_step >= self.warmup_steps:  # the warm-up's last optimizer step just ran
                self._sync(pl_module)
                self.started_at, self.start_step = time.perf_counter(), trainer.global_step
                if pl_module.device.type == "cuda":
                    torch.cuda.reset_peak_memory_stats(pl_module.device)
            return
        self.tokens += batch["input_ids"].numel()
        self.length = batch["input_ids"].shape[-1]
        if trainer.global_step >= trainer.max_steps:
            self._finish(trainer, pl_module)

    def _finish(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._sync(pl_module)
        seconds = time.perf_counter() - self.started_at
        self.done = True
        device = pl_module.device
        tokens = trainer.strategy.reduce(torch.tensor(float(self.tokens), device=device), reduce_op="sum")
        peak = torch.cuda.max_memory_allocated(device) / 2**30 if device.type == "cuda" else 0.0
        peak = trainer.strategy.reduce(torch.tensor(peak, device=device), reduce_op="max")
        steps = trainer.global_step - self.start_step
        if trainer.is_global_zero:
            result = {"devices": trainer.world_size, "length": self.length, "strategy": type(trainer.strategy).__name__,
                      "accumulate_grad_batches": trainer.accumulate_grad_batches,
                      "tokens": int(tokens.item()), "seconds": seconds, "steps": steps,
                      "tokens_per_s": float(tokens.item()) / seconds, "seconds_per_step": seconds / steps,
                      "tokens_per_step": int(tokens.item()) // max(steps, 1), "peak_gib": float(peak.item()),
                      "device_name": torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu",
                      "torch": torch.__version__, "nccl_nvls_enable": os.environ.get("NCCL_NVLS_ENABLE")}
            Path(self.result_file).write_text(json.dumps(result, indent=1))


def write_random_genome(path: Path, records: int, record_length: int, seed: int = 0) -> None:
    """Uniform random ACGT records, 80 bases per line (the data pipeline's cost does not depend on the letters)."""
    rng = np.random.default_rng(seed)
    letters = np.frombuffer(b"ACGT", dtype=np.uint8)
    tmp = path.with_suffix(".tmp")
    with open(tmp, "wb") as out:
        for r in range(records):
            lines = letters[rng.integers(0, 4, size=(record_length // 80, 80))]
            out.write(f">chr{r + 1}\n".encode())
            out.write(np.concatenate([lines, np.full((len(lines), 1), ord("\n"), np.uint8)], axis=1).tobytes())
    os.replace(tmp, path)


def config_accumulation(config: Path) -> int:
    import yaml

    return int(yaml.safe_load(config.read_text()).get("trainer", {}).get("accumulate_grad_batches", 1))


def run_one(args, devices: int, genome: Path, out: Path) -> dict:
    run_dir = out / f"devices{devices}_{time.strftime('%Y%m%d-%H%M%S')}"  # new each time: nothing is overwritten
    result_file = run_dir / "throughput.json"
    run_dir.mkdir(parents=True)
    accumulate = config_accumulation(args.config)
    if args.global_batch == "fixed":
        if accumulate % devices:
            raise SystemExit(f"accumulate_grad_batches {accumulate} of {args.config} is not divisible by {devices} "
                             "devices; use --global-batch per-device")
        accumulate //= devices
    meter = {"class_path": "benchmarks.ddp_scaling.ThroughputMeter",
             "init_args": {"warmup_steps": args.warmup_steps, "result_file": str(result_file)}}
    strategy = args.strategy if devices > 1 or args.baseline_strategy == "same" else "auto"
    if strategy == "fsdp":  # shard parameters per Mamba block; a full (not sharded) checkpoint
        strategy = json.dumps({"class_path": "lightning.pytorch.strategies.FSDPStrategy",
                               "init_args": {"auto_wrap_policy": ["mamba_core.modules.Block"],
                                             "state_dict_type": "full"}})
    command = [sys.executable, "-m", "apps.dna", "pretrain", "fit", "--config", str(args.config),
               f"--data.fasta={genome}", "--data.bed=null", "--data.warmup_min_length=null",
               f"--data.num_workers={args.num_workers}", f"--trainer.devices={devices}",
               f"--trainer.strategy={strategy}", f"--trainer.accumulate_grad_batches={accumulate}",
               f"--trainer.max_steps={args.warmup_steps + args.steps}", "--trainer.max_epochs=-1",
               "--trainer.limit_val_batches=0", "--trainer.num_sanity_val_steps=0", "--trainer.logger=false",
               "--trainer.enable_progress_bar=false", f"--trainer.default_root_dir={run_dir}",
               f"--trainer.callbacks+={json.dumps(meter)}", *(SMOKE_ARGS if args.smoke else []), *args.cli_arg]
    env = {k: v for k, v in os.environ.items() if k not in LAUNCH_ENV_VARS}
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT), env.get("PYTHONPATH", "")])
    env.setdefault("NCCL_NVLS_ENABLE", "0")
    if args.smoke:
        env["OMP_NUM_THREADS"] = "1"
    print(f"\n== {devices} device(s): {' '.join(command[2:])}", flush=True)
    proc = subprocess.Popen(command, cwd=ROOT, env=env, start_new_session=True)
    try:
        proc.wait(timeout=args.timeout)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)  # rank 0 and the ranks it launched
        raise SystemExit(f"{devices}-device run did not finish in {args.timeout} s") from None
    if proc.returncode != 0 or not result_file.exists():
        raise SystemExit(f"{devices}-device run failed (exit {proc.returncode}, no {result_file.name})")
    return json.loads(result_file.read_text())


def table(results: list[dict]) -> str:
    base = next((r for r in results if r["devices"] == 1), None)
    first = results[0]
    lines = [f"DNA pretraining, L = {first['length']}; {first['device_name']}, torch {first['torch']}", "",
             "| devices | strategy | accumulate | tokens/step | s/step | tokens/s | peak GiB | speedup | efficiency |",
             "|---|---|---|---|---|---|---|---|---|"]
    for r in results:
        speedup = r["tokens_per_s"] / base["tokens_per_s"] if base else float("nan")
        lines.append(f"| {r['devices']} | {r['strategy']} | {r['accumulate_grad_batches']} | {r['tokens_per_step']} "
                     f"| {r['seconds_per_step']:.3f} | {r['tokens_per_s']:,.0f} | {r['peak_gib']:.2f} | "
                     f"{speedup:.2f}x | {speedup / r['devices']:.0%} |")
    two = next((r for r in results if r["devices"] == 2), None)
    if base and two:
        speedup = two["tokens_per_s"] / base["tokens_per_s"]
        verdict = "PASS" if speedup >= TARGET_SPEEDUP_2 else "FAIL"
        lines += ["", f"2-device speedup {speedup:.2f}x (target >= {TARGET_SPEEDUP_2}x): {verdict}"]
    return "\n".join(lines)


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--devices", type=int, nargs="+", default=[1, 2])
    p.add_argument("--config", type=Path, default=DEFAULT_CONFIG)
    p.add_argument("--strategy", choices=("ddp", "fsdp"), default="ddp", help="strategy for runs with >1 device")
    p.add_argument("--baseline-strategy", choices=("auto", "same"), default="auto",
                   help="1-device run: plain single-device strategy (auto) or the same as the others")
    p.add_argument("--global-batch", choices=("fixed", "per-device"), default="fixed")
    p.add_argument("--warmup-steps", type=int, default=3, help="optimizer steps before timing (compile, autotune)")
    p.add_argument("--steps", type=int, default=10, help="timed optimizer steps")
    p.add_argument("--num-workers", type=int, default=4, help="data loader workers per rank")
    p.add_argument("--genome-mb", type=int, default=32, help="size of the synthetic genome (4 records)")
    p.add_argument("--timeout", type=float, default=270, help="seconds per device count before giving up")
    p.add_argument("--smoke", action="store_true", help="CPU plumbing check: tiny model, 64-base windows, gloo")
    p.add_argument("--cli-arg", action="append", default=[], help="extra mamba-dna option, e.g. --data.batch_size=2")
    p.add_argument("--out", type=Path, default=Path("runs/ddp_scaling"))
    return p.parse_args(argv)


def main(argv=None) -> int:
    args = parse_args(argv)
    args.config = args.config.resolve()
    out = args.out.resolve()
    out.mkdir(parents=True, exist_ok=True)
    genome = out / "random_genome.fa"
    if args.smoke:
        args.genome_mb, args.num_workers = min(args.genome_mb, 1), 0
    if not genome.exists():
        write_random_genome(genome, records=4, record_length=args.genome_mb * 2**20 // 4)
    sys.path.insert(0, str(ROOT))
    from genomics.fasta import FastaReader

    FastaReader(genome)  # build the .fai once here, not in every rank
    results = []
    for devices in args.devices:  # results are written after every run, so a failed later run keeps the earlier
        results.append(run_one(args, devices, genome, out))
        report = table(results)
        (out / "results.json").write_text(json.dumps(results, indent=1))
        (out / "results.md").write_text(report + "\n")
    print("\n" + report)
    return 0


if __name__ == "__main__":
    sys.exit(main())
