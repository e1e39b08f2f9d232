"""``mamba-synthetic eval-induction``: accuracy of a trained induction-heads model at lengths 2^min .. 2^max.

The paper's length-generalisation test (Mamba trained at 256 stays perfect up to 2^20). Each length gets its own
fixed, seeded set of ``num_samples`` sequences; only the prediction at the final trigger is scored.

Two ways to run a Mamba/S4 model, chosen per length (``--mode auto``):
* ``forward``: the whole sequence at once (Triton scan on GPU, chunked PyTorch scan on CPU); memory grows with
  batch * length, so the batch shrinks to fit ``--token-budget`` tokens per call.
* ``step``: the recurrent decoding step, one token at a time on a constant-size state; memory does not depend on
  the length. ``auto`` uses it only where a single sequence would exceed the token budget.
The Transformer only has ``forward`` (quadratic attention), so lengths above ``--max-attention-len`` are skipped.

Precision: fp32 by default on every device, with TF32 turned off for matmuls and convolutions while it runs.
Remembering the key over 2^20 steps needs delta' = softplus(dt) on the ~2^20 noise tokens around 1e-7 and the
state untouched by them; bf16 autocast rounds dt, B, C and u to 8 significant bits, a different model from the one
being measured (``--precision bf16`` is still there to see the difference). The scan itself always keeps its
state and delta' in fp32.

Writes ``<out-dir>/induction_heads_length.{csv,md,png}``; existing files are not overwritten without ``--overwrite``.
Several checkpoints (``--ckpt A B C``, e.g. S6, S6 with state passing, S4, Transformer) are measured on the same
sequences and reported side by side, one column and one curve per model (the paper's Table 2).
"""

from __future__ import annotations

import argparse
import csv
import inspect
import math
import time
from contextlib import contextmanager
from pathlib import Path

import torch
from tqdm.auto import tqdm

from mamba_core.ops import resolve_backend

from .data import InductionHeadsSpec, induction_heads_batch, seeded_generator
from .module import SyntheticLM

OUTPUT_STEM = "induction_heads_length"
ATTENTION_SCORE_BUDGET = 2**28  # query-key pairs per Transformer call (e.g. one sequence of 2^14)


class EvaluationError(ValueError):
    """The checkpoint or the requested evaluation cannot be used."""


def load_induction_checkpoint(path: str | Path, device: torch.device) -> tuple[SyntheticLM, int | None]:
    """The trained module (eval mode, on ``device``) and the sequence length it was trained at (None if unknown)."""
    path = Path(path)
    if not path.is_file():
        raise EvaluationError(f"checkpoint {path} does not exist or is not a file")
    try:
        checkpoint = torch.load(path, map_location="cpu", weights_only=False)
    except Exception as err:  # a truncated or foreign file: say which one
        raise EvaluationError(f"checkpoint {path} could not be read: {err}") from err
    if not isinstance(checkpoint, dict) or "state_dict" not in checkpoint or "hyper_parameters" not in checkpoint:
        raise EvaluationError(f"checkpoint {path} is not a mamba-synthetic Lightning checkpoint")
    task = checkpoint["hyper_parameters"].get("task")
    if task != "induction_heads":
        raise EvaluationError(f"checkpoint {path} was trained on task {task!r}, not 'induction_heads'")
    accepted = inspect.signature(SyntheticLM.__init__).parameters
    module = SyntheticLM(**{k: v for k, v in checkpoint["hyper_parameters"].items() if k in accepted})
    module.load_state_dict(checkpoint["state_dict"])
    train_len = checkpoint.get("datamodule_hyper_parameters", {}).get("seq_len")
    return module.to(device).eval(), train_len


@contextmanager
def exact_fp32():
    """fp32 matmuls and convolutions (no TF32 on CUDA) inside the block; the previous settings come back after."""
    saved = (torch.get_float32_matmul_precision(), torch.backends.cuda.matmul.allow_tf32,
             torch.backends.cudnn.allow_tf32)
    torch.set_float32_matmul_precision("highest")
    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = False
    try:
        yield
    finally:
        torch.set_float32_matmul_precision(saved[0])
        torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = saved[1], saved[2]


@torch.no_grad()
def predict_final_token(module: SyntheticLM, inputs: torch.Tensor, mode: str) -> torch.Tensor:
    """Predicted answer (batch,) at the last position, by full forward or by the recurrent step."""
    vocab = module.vocab_size
    if mode == "forward":
        if module.arch == "transformer":
            logits = module.model(inputs)[:, -1]
        else:
            logits = module.model(inputs, num_last_tokens=1)[:, -1]
        return logits[:, :vocab].argmax(-1)
    if module.arch == "transformer":
        raise EvaluationError("the Transformer has no recurrent step; use --mode forward")
    cache = module.model.allocate_inference_cache(inputs.shape[0])
    for t in range(inputs.shape[1]):
        logits = module.model.step(inputs[:, t], cache)
    return logits[:, :vocab].argmax(-1)


def evaluate_induction(
    module: SyntheticLM,
    lengths: list[int],
    num_samples: int = 128,
    token_budget: int = 2**16,
    mode: str = "auto",
    seed: int = 1234,
    autocast_dtype: torch.dtype | None = None,
    max_attention_len: int = 2**14,
    progress: bool = True,
    on_row=None,
) -> list[dict]:
    """One row per length: length, log2_length, accuracy (None if skipped), correct, num_samples, path, seconds.

    ``on_row(row)`` is called as soon as each length is done (the CLI prints it, so a run cut short by a time
    limit still shows the lengths it finished)."""
    if mode not in ("auto", "forward", "step"):
        raise EvaluationError(f"mode must be auto, forward or step, got {mode!r}")
    device = next(module.parameters()).device
    rows = []
    for length in tqdm(lengths, desc="lengths", disable=not progress):
        row = {"length": length, "log2_length": round(math.log2(length), 3), "num_samples": num_samples}
        if module.arch == "transformer" and length > max_attention_len:
            rows.append({**row, "accuracy": None, "correct": None, "path": "skipped", "seconds": 0.0})
            if on_row is not None:
                on_row(rows[-1])
            continue
        path = mode
        if mode == "auto":
            path = "forward" if module.arch == "transformer" or length <= token_budget else "step"
        batch_size = num_samples if path == "step" else max(1, min(num_samples, token_budget // length))
        if module.arch == "transformer":  # attention may materialise (batch, heads, L, L) scores
            batch_size = max(1, min(batch_size, ATTENTION_SCORE_BUDGET // length**2))
        spec = InductionHeadsSpec(seq_len=length, vocab_size=module.vocab_size)
        start, correct, done = time.perf_counter(), 0, 0
        while done < num_samples:
            size = min(batch_size, num_samples - done)
            # one generator per sample: the same sequences whatever the batch size, device or token budget
            pairs = [induction_heads_batch(spec, 1, seeded_generator(seed + length, done + i)) for i in range(size)]
            inputs, targets = torch.cat([p[0] for p in pairs]), torch.cat([p[1] for p in pairs])
            autocast = torch.autocast(device.type, autocast_dtype) if autocast_dtype is not None else exact_fp32()
            with autocast:
                predicted = predict_final_token(module, inputs.to(device), path)
            correct += int((predicted.cpu() == targets).sum())
            done += size
        if device.type == "cuda":
            torch.cuda.synchronize()
        rows.append({**row, "accuracy": correct / num_samples, "correct": correct, "path": path,
                     "seconds": round(time.perf_counter() - start, 3)})
        if on_row is not None:
            on_row(rows[-1])
    return rows


def _format_accuracy(value: float | None) -> str:
    return "skipped" if value is None else f"{100 * value:.1f}%"


def _print_row(row: dict) -> None:
    print(f"length 2^{row['log2_length']:g} = {row['length']}: {_format_accuracy(row['accuracy'])} "
          f"({row['path']}, {row['seconds']}s)", flush=True)


def write_results(results: list[tuple[str, list[dict]]], out_dir: Path, train_len: int | None, chance: float,
                  setting: str = "") -> list[Path]:
    """CSV, markdown table and PNG plot of accuracy vs length for one or more models; returns the paths written.

    ``results`` holds (model label, rows of :func:`evaluate_induction`) pairs measured at the same lengths. One
    model gives the detailed table (samples, path, seconds per length); several give one accuracy column each.
    ``setting`` (device, precision, scan backend) is printed under the title of the table."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    out_dir.mkdir(parents=True, exist_ok=True)
    csv_path, md_path, png_path = (out_dir / f"{OUTPUT_STEM}.{ext}" for ext in ("csv", "md", "png"))
    fields = ["model", "length", "log2_length", "accuracy", "correct", "num_samples", "path", "seconds"]
    with csv_path.open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=fields)
        writer.writeheader()
        for label, rows in results:
            for row in rows:
                writer.writerow({k: ("" if row.get(k) is None else row[k]) for k in fields[1:]} | {"model": label})
    header = f"trained at length {train_len}; chance {100 * chance:.1f}%" + (f"; {setting}" if setting else "")
    labels = [label for label, _ in results]
    lines = [f"# {' vs '.join(labels)}", "", header, ""]
    if len(results) == 1:
        lines += ["| length | log2 | accuracy | samples | path | seconds |", "|---:|---:|---:|---:|:--|---:|"]
        for row in results[0][1]:
            lines.append(f"| {row['length']} | {row['log2_length']:g} | {_format_accuracy(row['accuracy'])} | "
                         f"{row['num_samples']} | {row['path']} | {row['seconds']} |")
    else:
        lines += ["| length | log2 | " + " | ".join(labels) + " |", "|---:|---:|" + "---:|" * len(labels)]
        for i, row in enumerate(results[0][1]):
            cells = [_format_accuracy(rows[i]["accuracy"]) for _, rows in results]
            lines.append(f"| {row['length']} | {row['log2_length']:g} | " + " | ".join(cells) + " |")
    md_path.write_text("\n".join(lines) + "\n")

    figure, axis = plt.subplots(figsize=(7, 4))
    for label, rows in results:
        measured = [r for r in rows if r["accuracy"] is not None]
        axis.plot([r["length"] for r in measured], [r["accuracy"] for r in measured], "o-", label=label)
    axis.axhline(chance, color="grey", linestyle=":", label="chance")
    if train_len:
        axis.axvline(train_len, color="red", linestyle="--", label=f"train length {train_len}")
    axis.set_xscale("log", base=2)
    axis.set_ylim(-0.02, 1.02)
    axis.set_xlabel("test sequence length")
    axis.set_ylabel("accuracy at the final trigger")
    axis.set_title("Induction heads: length generalisation")
    axis.legend(loc="best")
    axis.grid(alpha=0.3)
    figure.tight_layout()
    figure.savefig(png_path, dpi=120)
    plt.close(figure)
    return [csv_path, md_path, png_path]


ARCH_TITLES = {"mamba": "Mamba (S6)", "s4": "Mamba without selection (S4)", "transformer": "Transformer (sinusoidal)"}


def model_label(module: SyntheticLM) -> str:
    """A readable name for a checkpoint's model: its architecture, and state passing if it was trained with it."""
    label = ARCH_TITLES[module.arch]
    return label + " + state passing" if module.hparams.get("state_passing", False) else label


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="mamba-synthetic eval-induction", description=__doc__.split("\n\n")[0])
    parser.add_argument("--ckpt", required=True, nargs="+",
                        help="Lightning checkpoint(s) of induction_heads runs; several are compared side by side")
    parser.add_argument("--labels", nargs="+", default=None,
                        help="one name per --ckpt for the table and plot (default: architecture, + state passing)")
    parser.add_argument("--min-log2-len", type=int, default=6)
    parser.add_argument("--max-log2-len", type=int, default=20)
    parser.add_argument("--num-samples", type=int, default=128, help="sequences per length")
    parser.add_argument("--mode", choices=("auto", "forward", "step"), default="auto")
    parser.add_argument("--token-budget", type=int, default=None,
                        help="tokens per forward call (default 2^22 on CUDA, 2^16 on CPU)")
    parser.add_argument("--max-attention-len", type=int, default=2**14, help="longest length tried for a Transformer")
    parser.add_argument("--device", default="auto", help="auto, cpu or cuda[:i]")
    parser.add_argument("--precision", choices=("fp32", "bf16"), default="fp32",
                        help="fp32 (default, TF32 off) or bf16 autocast; the scan state is fp32 either way")
    parser.add_argument("--seed", type=int, default=1234)
    parser.add_argument("--out-dir", default="runs/induction_eval")
    parser.add_argument("--overwrite", action="store_true", help="replace existing result files in --out-dir")
    parser.add_argument("--no-progress", action="store_true")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if not 1 <= args.min_log2_len <= args.max_log2_len <= 30:
        raise EvaluationError(f"need 1 <= --min-log2-len <= --max-log2-len <= 30, got {args.min_log2_len}, "
                              f"{args.max_log2_len}")
    if args.min_log2_len < 2:
        raise EvaluationError("induction heads needs length >= 3, so --min-log2-len must be >= 2")
    if args.num_samples <= 0:
        raise EvaluationError(f"--num-samples must be positive, got {args.num_samples}")
    out_dir = Path(args.out_dir)
    existing = [p for p in (out_dir / f"{OUTPUT_STEM}.{e}" for e in ("csv", "md", "png")) if p.exists()]
    if existing and not args.overwrite:
        raise EvaluationError(f"{existing[0]} already exists; pass --overwrite or choose another --out-dir")
    device = torch.device(("cuda" if torch.cuda.is_available() else "cpu") if args.device == "auto" else args.device)
    token_budget = args.token_budget or (2**22 if device.type == "cuda" else 2**16)

    if args.labels is not None and len(args.labels) != len(args.ckpt):
        raise EvaluationError(f"--labels needs one name per --ckpt ({len(args.ckpt)}), got {len(args.labels)}")
    modules = [load_induction_checkpoint(path, device) for path in args.ckpt]  # all read before any is measured
    labels = args.labels or [model_label(module) for module, _ in modules]
    if len(set(labels)) < len(labels):
        labels = [f"{label} [{i + 1}]" for i, label in enumerate(labels)]
    vocab_sizes = {module.vocab_size for module, _ in modules}
    if len(vocab_sizes) > 1:
        raise EvaluationError(f"the checkpoints were trained with different vocabularies {sorted(vocab_sizes)}")
    lengths = [2**k for k in range(args.min_log2_len, args.max_log2_len + 1)]
    results = []
    for (module, _), label in zip(modules, labels, strict=True):
        if len(modules) > 1:
            print(f"{label} ({module.arch}):", flush=True)
        rows = evaluate_induction(
            module, lengths, num_samples=args.num_samples, token_budget=token_budget, mode=args.mode,
            seed=args.seed, autocast_dtype=torch.bfloat16 if args.precision == "bf16" else None,
            max_attention_len=args.max_attention_len, progress=not args.no_progress, on_row=_print_row,
        )
        results.append((label, rows))
    train_lens = {train_len for _, train_len in modules}
    train_len = train_lens.pop() if len(train_lens) == 1 else None
    chance = 1.0 / (modules[0][0].vocab_size - 1)
    archs = {module.arch for module, _ in modules}
    scan = resolve_backend("auto", device.type == "cuda")
    backend = "attention" if archs == {"transformer"} else f"scan {scan}"
    precision = "fp32 (TF32 off)" if args.precision == "fp32" else "bf16 autocast"
    setting = f"{device.type}, {precision}, {backend}"
    paths = write_results(results, out_dir, train_len, chance, setting)
    print(f"({setting}) wrote " + ", ".join(str(p) for p in paths))
    return 0
