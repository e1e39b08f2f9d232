"""Throughput of the SaShiMi U-Net with Mamba blocks vs the S4D + MLP variant of (nearly) equal size.

Measures, per model config:
* training: samples/s of forward + backward + AdamW step on random mu-law tokens (batch x seq_len samples);
* generation: samples/s of recurrent sampling (``SaShiMi.step`` + sampling) at each generation batch size,
  i.e. batch x generated steps / seconds, after a warm-up of the first steps.

    python benchmarks/audio_throughput.py --device cuda --out runs/audio_throughput.json
    python benchmarks/audio_throughput.py --device cpu --tiny          # seconds-long smoke run of the script itself
"""

from __future__ import annotations

import argparse
import inspect
import json
import sys
import time
from pathlib import Path

import torch
import yaml

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from audio.sashimi import SaShiMi, count_parameters  # noqa: E402  (needs torch + mamba_core only)

CONFIGS = {"mamba": REPO / "configs/audio/sc09_mamba_6m.yaml", "s4d": REPO / "configs/audio/sc09_s4d_6m.yaml"}
TINY = {"d_model": 8, "n_layers": 1, "mamba_d_state": 4, "s4d_d_state": 8}


def build(name: str, tiny: bool, device: torch.device) -> SaShiMi:
    args = yaml.safe_load(CONFIGS[name].read_text())["model"]
    if tiny:
        args.update(TINY)
    model_keys = inspect.signature(SaShiMi).parameters  # drop the optimiser settings of the YAML
    return SaShiMi(**{k: v for k, v in args.items() if k in model_keys}).to(device)


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def train_throughput(model: SaShiMi, batch: int, seq_len: int, steps: int, warmup: int, device, dtype) -> float:
    model.train()
    opt = torch.optim.AdamW(model.parameters(), lr=1e-4, betas=(0.9, 0.95), weight_decay=0.1)
    tokens = torch.randint(0, 256, (batch, seq_len + 1), device=device)
    autocast = torch.autocast(device.type, dtype=dtype, enabled=dtype != torch.float32)
    for i in range(warmup + steps):
        if i == warmup:
            _sync(device)
            start = time.perf_counter()
        with autocast:
            logits = model(tokens[:, :-1])
            loss = torch.nn.functional.cross_entropy(logits.reshape(-1, 256).float(), tokens[:, 1:].reshape(-1))
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
    _sync(device)
    return batch * seq_len * steps / (time.perf_counter() - start)


@torch.no_grad()
def generation_throughput(model: SaShiMi, batch: int, steps: int, warmup: int, device) -> float:
    model.eval()
    state = model.init_state(batch, device=device)
    current = torch.full((batch,), 128, dtype=torch.long, device=device)
    for i in range(warmup + steps):
        if i == warmup:
            _sync(device)
            start = time.perf_counter()
        probs = model.step(current, state).float().softmax(-1)
        current = torch.multinomial(probs, 1).squeeze(-1)
    _sync(device)
    return batch * steps / (time.perf_counter() - start)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--models", default="mamba,s4d", help="comma list of: " + ",".join(CONFIGS))
    parser.add_argument("--batch-size", type=int, default=16, help="training batch (the paper's 16)")
    parser.add_argument("--seq-len", type=int, default=16000, help="training clip length (SC09: 16000)")
    parser.add_argument("--train-steps", type=int, default=20)
    parser.add_argument("--gen-batches", default="1,64")
    parser.add_argument("--gen-steps", type=int, default=1024, help="timed generation steps (samples per clip)")
    parser.add_argument("--warmup", type=int, default=16, help="untimed warm-up steps (multiple of 16 for gen)")
    parser.add_argument("--dtype", choices=["fp32", "bf16"], default="fp32", help="training autocast dtype")
    parser.add_argument("--tiny", action="store_true", help="tiny models and sizes (CPU smoke run)")
    parser.add_argument("--out", default=None, help="also write the results as JSON here")
    args = parser.parse_args(argv)
    device = torch.device(args.device)
    torch.backends.cuda.matmul.allow_tf32 = True
    torch.backends.cudnn.allow_tf32 = True
    if args.tiny:
        args.seq_len, args.batch_size, args.train_steps, args.gen_steps, args.warmup = 256, 2, 2, 32, 16
        args.gen_batches = "1,4"
    dtype = torch.bfloat16 if args.dtype == "bf16" else torch.float32
    results = []
    for name in args.models.split(","):
        torch.manual_seed(0)
        model = build(name, args.tiny, device)
        row = {"model": name, "parameters": count_parameters(model), "device": str(device),
               "gpu": torch.cuda.get_device_name(device) if device.type == "cuda" else None,
               "train_batch": args.batch_size, "seq_len": args.seq_len, "dtype": args.dtype,
               "train_samples_per_s": train_throughput(model, args.batch_size, args.seq_len, args.train_steps,
                                                       max(1, args.warmup // 4), device, dtype)}
        for gen_batch in (int(b) for b in args.gen_batches.split(",")):
            row[f"gen_samples_per_s_batch{gen_batch}"] = generation_throughput(
                model, gen_batch, args.gen_steps, args.warmup, device)
        results.append(row)
        print(json.dumps(row), flush=True)
        del model
        if device.type == "cuda":
            torch.cuda.empty_cache()
    header = f"{'model':6} {'params':>8} {'train samples/s':>16} " + " ".join(
        f"{'gen b' + b + ' samples/s':>18}" for b in args.gen_batches.split(","))
    print(header)
    for row in results:
        gens = " ".join(f"{row[f'gen_samples_per_s_batch{b}']:>18.0f}" for b in args.gen_batches.split(","))
        print(f"{row['model']:6} {row['parameters'] / 1e6:>7.2f}M {row['train_samples_per_s']:>16.0f} {gens}")
    if args.out:
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        Path(args.out).write_text(json.dumps(results, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
