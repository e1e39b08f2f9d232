"""Peak memory and throughput of DNA training steps vs sequence length (Mamba paper: 1M-length DNA on one GPU).

For each L = 2^min .. 2^max it times a full training step (forward, backward, AdamW update) of
  - pretrain: next-nucleotide LM (genomics.backbone config, MambaLMHeadModel), cross-entropy over all positions;
  - classify: the same backbone + mean pooling + linear head over 5 classes (genomics.classifier.DNAClassifier);
with per-block activation checkpointing (from --checkpoint-from on), bf16 autocast on CUDA, batch size 1 unless
--batch-tokens asks for more. Prints a markdown table (peak GiB, tokens/s) and optionally writes it as CSV.

GPU (the fixed 1.4M model, 12 blocks x 128):
    python benchmarks/dna_length.py --device cuda --max-log2-len 20
CPU smoke check:
    python benchmarks/dna_length.py --device cpu --max-log2-len 12 --steps 1 --warmup 0
"""

from __future__ import annotations

import argparse
import contextlib
import csv
import sys
import time
from pathlib import Path

import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from genomics.backbone import dna_mamba_config  # noqa: E402
from genomics.classifier import DNAClassifier  # noqa: E402
from genomics.tokenizer import A_ID, VOCAB_SIZE  # noqa: E402
from mamba_core.models import MambaLMHeadModel  # noqa: E402


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    p.add_argument("--min-log2-len", type=int, default=10)
    p.add_argument("--max-log2-len", type=int, default=20)
    p.add_argument("--d-model", type=int, default=128)
    p.add_argument("--n-layer", type=int, default=12)
    p.add_argument("--d-state", type=int, default=16)
    p.add_argument("--batch-tokens", type=int, default=0, help="tokens per step (batch = max(1, this / L)); 0: batch 1")
    p.add_argument("--precision", choices=("bf16", "fp32"), default=None, help="default: bf16 on CUDA, fp32 on CPU")
    p.add_argument("--checkpoint-from", type=int, default=16, help="log2 L from which blocks are checkpointed")
    p.add_argument("--steps", type=int, default=5)
    p.add_argument("--warmup", type=int, default=2)
    p.add_argument("--tasks", nargs="+", default=["pretrain", "classify"], choices=("pretrain", "classify"))
    p.add_argument("--csv", type=Path, default=None)
    p.add_argument("--profile", action="store_true",
                   help="after the timed steps, one more step under torch.profiler: its top kernels by GPU time")
    return p.parse_args(argv)


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def build(task: str, args, device: torch.device):
    config = dna_mamba_config(args.d_model, args.n_layer, args.d_state)
    if task == "pretrain":
        model = MambaLMHeadModel(config).to(device)
    else:
        model = DNAClassifier(d_model=args.d_model, n_layer=args.n_layer, d_state=args.d_state,
                              class_names=["human", "chimpanzee", "bonobo", "gorilla", "orangutan"]).to(device)
    return model, torch.optim.AdamW(model.parameters(), lr=1e-4)


def set_checkpointing(model, enabled: bool) -> None:
    if isinstance(model, MambaLMHeadModel):
        model.set_gradient_checkpointing(enabled)
    else:
        model.backbone.gradient_checkpointing = enabled


def train_step(task: str, model, optimizer, ids: torch.Tensor, labels: torch.Tensor, autocast) -> float:
    with autocast():
        if task == "pretrain":
            logits = model(ids)[..., :VOCAB_SIZE]
            loss = F.cross_entropy(logits.float().flatten(0, 1), labels.flatten())
        else:
            loss = F.cross_entropy(model(ids), labels)
    loss.backward()
    optimizer.step()
    optimizer.zero_grad(set_to_none=True)
    return float(loss.detach())


def print_profile(step, device: torch.device, title: str, rows: int = 15) -> None:
    """One call of ``step`` under torch.profiler: its top operators by self device (or CPU) time."""
    from torch.profiler import ProfilerActivity, profile

    activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if device.type == "cuda" else [])
    with profile(activities=activities) as prof:
        step()
        _sync(device)
    key = "self_cuda_time_total" if device.type == "cuda" else "self_cpu_time_total"
    print(f"# profile: {title}")
    print(prof.key_averages().table(sort_by=key, row_limit=rows, max_name_column_width=60))


def measure(task: str, log2_len: int, args, device: torch.device) -> dict:
    length = 2 ** log2_len
    batch = max(1, args.batch_tokens // length) if args.batch_tokens else 1
    row = {"task": task, "log2_len": log2_len, "length": length, "batch": batch,
           "checkpointing": log2_len >= args.checkpoint_from}
    model, optimizer = build(task, args, device)
    model.train()
    set_checkpointing(model, row["checkpointing"])
    precision = args.precision or ("bf16" if device.type == "cuda" else "fp32")
    autocast = (lambda: torch.autocast(device.type, dtype=torch.bfloat16)) if precision == "bf16" \
        else contextlib.nullcontext
    generator = torch.Generator().manual_seed(log2_len)
    ids = torch.randint(A_ID, A_ID + 4, (batch, length), generator=generator).to(device)
    labels = ids if task == "pretrain" else torch.randint(0, 5, (batch,), generator=generator).to(device)
    try:
        for _ in range(args.warmup):
            train_step(task, model, optimizer, ids, labels, autocast)
        _sync(device)
        if device.type == "cuda":
            torch.cuda.reset_peak_memory_stats(device)
        start = time.perf_counter()
        for _ in range(args.steps):
            loss = train_step(task, model, optimizer, ids, labels, autocast)
        _sync(device)
        seconds = (time.perf_counter() - start) / max(1, args.steps)
        if args.profile:
            print_profile(lambda m=model, o=optimizer: train_step(task, m, o, ids, labels, autocast), device,
                          f"{task} 2^{log2_len}")
        row.update(status="ok", loss=round(loss, 4), step_s=round(seconds, 4),
                   tokens_per_s=round(batch * length / seconds),
                   peak_gib=round(torch.cuda.max_memory_allocated(device) / 2**30, 3) if device.type == "cuda"
                   else None)
    except torch.cuda.OutOfMemoryError:
        row.update(status="OOM", loss=None, step_s=None, tokens_per_s=None, peak_gib=None)
    finally:
        del model, optimizer
        if device.type == "cuda":
            torch.cuda.empty_cache()
    return row


def main(argv=None) -> int:
    args = parse_args(argv)
    device = torch.device(args.device)
    if args.min_log2_len > args.max_log2_len:
        raise SystemExit("--min-log2-len must not exceed --max-log2-len")
    if device.type == "cuda":
        torch.backends.cuda.matmul.allow_tf32 = True
    params = sum(p.numel() for p in MambaLMHeadModel(dna_mamba_config(args.d_model, args.n_layer,
                                                                      args.d_state)).parameters())
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else "CPU"
    print(f"# DNA training step vs length: {args.n_layer} blocks x {args.d_model} ({params / 1e6:.2f}M params), "
          f"{name}, {args.precision or ('bf16' if device.type == 'cuda' else 'fp32')}")
    rows = []
    print("| task | L | batch | ckpt | step s | tokens/s | peak GiB | loss |")
    print("|---|---:|---:|:-:|---:|---:|---:|---:|")
    for log2_len in range(args.min_log2_len, args.max_log2_len + 1):
        for task in args.tasks:
            row = measure(task, log2_len, args, device)
            rows.append(row)
            peak = "-" if row["peak_gib"] is None else f"{row['peak_gib']:.2f}"
            rate = row["status"] if row["tokens_per_s"] is None else f"{row['tokens_per_s']:,}"
            print(f"| {task} | 2^{log2_len} | {row['batch']} | {'y' if row['checkpointing'] else 'n'} | "
                  f"{row['step_s'] if row['step_s'] is not None else '-'} | {rate} | {peak} | "
                  f"{row['loss'] if row['loss'] is not None else '-'} |", flush=True)
    if args.csv:
        with open(args.csv, "w", newline="") as out:
            writer = csv.DictWriter(out, fieldnames=list(rows[0]))
            writer.writeheader()
            writer.writerows(rows)
    return 0


if __name__ == "__main__":
    sys.exit(main())
