"""Summaries of several runs: validation metric vs sequence length as a PNG plot and a markdown table.

A run is a CSVLogger folder (``metrics.csv`` + ``hparams.yaml``, as written by ``mamba-dna``); its sequence length
is the data module's ``length`` hyperparameter, its series name the parent folder (e.g. ``runs/ape_mamba_1.4M/
version_0`` -> ``ape_mamba_1.4M``) unless a ``name=path`` label is given. The best value of the metric over the run
is reported (max for accuracy, min for loss/perplexity), and the test value if the run was tested.
``mamba-dna classify test --ckpt_path ...`` logs into a new version folder holding only test metrics: give it next to
the fit folder and the two are merged (same series and length: best value from the fit, test value from the test).
"""

from __future__ import annotations

import csv
import math
import os
from dataclasses import dataclass
from pathlib import Path

import yaml


@dataclass
class RunSummary:
    series: str
    path: Path
    length: int
    best: float | None  # None: a test-only run (merged into the fit run of the same series and length)
    test: float | None
    epochs: int
    n_params: float | None


def _higher_is_better(metric: str) -> bool:
    return not any(word in metric for word in ("loss", "ppl", "perplexity"))


def _column(rows: list[dict], key: str) -> list[float]:
    return [float(r[key]) for r in rows if r.get(key) not in (None, "")]


def summarize_run(run: str | os.PathLike, metric: str = "val/acc", series: str | None = None) -> RunSummary:
    run = Path(run)
    metrics_file, hparams_file = run / "metrics.csv", run / "hparams.yaml"
    for needed in (metrics_file, hparams_file):
        if not needed.is_file():
            raise ValueError(f"{run}: not a run folder (missing {needed.name}); give CSVLogger version folders")
    hparams = yaml.safe_load(hparams_file.read_text()) or {}
    if "length" not in hparams:
        raise ValueError(f"{hparams_file}: no 'length' hyperparameter (not a mamba-dna run?)")
    with open(metrics_file, newline="") as handle:
        rows = list(csv.DictReader(handle))
    values = _column(rows, metric)
    test_key = metric.replace("val/", "test/")
    tests = _column(rows, test_key) if test_key != metric else []
    if not values and not tests:
        raise ValueError(f"{metrics_file}: no values for metric {metric!r} (columns: {list(rows[0]) if rows else []})")
    best = (max(values) if _higher_is_better(metric) else min(values)) if values else None
    params = _column(rows, "n_params")
    epochs = _column(rows, "epoch")
    return RunSummary(series or run.parent.name, run, int(hparams["length"]), best, tests[-1] if tests else None,
                      int(max(epochs)) + 1 if epochs else 0, params[0] if params else None)


def merge_runs(runs: list[RunSummary], metric: str) -> list[RunSummary]:
    """One summary per (series, length): the best value over the runs that have one, the last given test value
    (a fit folder followed by its ``classify test`` folder, or a run and its resumed continuation)."""
    merged: dict[tuple[str, int], RunSummary] = {}
    for r in runs:
        key = (r.series, r.length)
        if key not in merged:
            merged[key] = RunSummary(**vars(r))
            continue
        m = merged[key]
        if r.best is not None:
            better = max if _higher_is_better(metric) else min
            m.best = r.best if m.best is None else better(m.best, r.best)
        m.test = r.test if r.test is not None else m.test
        m.epochs = max(m.epochs, r.epochs)
        m.n_params = m.n_params if m.n_params is not None else r.n_params
    missing = [str(m.path) for m in merged.values() if m.best is None]
    if missing:
        raise ValueError(f"{missing}: only test values for {metric!r}; give the fit run folder (same series and "
                         "length) as well")
    return list(merged.values())


def markdown_table(runs: list[RunSummary], metric: str) -> str:
    lines = [f"| series | length | log2 L | params | epochs | best {metric} | test |",
             "|---|---:|---:|---:|---:|---:|---:|"]
    for r in sorted(runs, key=lambda r: (r.series, r.length)):
        params = f"{r.n_params / 1e6:.2f}M" if r.n_params else "-"
        test = f"{r.test:.4f}" if r.test is not None else "-"
        lines.append(f"| {r.series} | {r.length} | {int(math.log2(r.length))} | {params} | {r.epochs} | "
                     f"{r.best:.4f} | {test} |")
    return "\n".join(lines) + "\n"


def plot_runs(runs: list[RunSummary], metric: str, out: Path, chance: float | None = None) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 4))
    for series in sorted({r.series for r in runs}):
        points = sorted((r.length, r.best) for r in runs if r.series == series)
        line, = ax.plot([p[0] for p in points], [p[1] for p in points], marker="o", label=series)
        tested = sorted((r.length, r.test) for r in runs if r.series == series and r.test is not None)
        if tested:
            ax.plot([p[0] for p in tested], [p[1] for p in tested], marker="x", linestyle="none", markersize=9,
                    color=line.get_color(), label=f"{series} (test)")
    if chance is not None:
        ax.axhline(chance, color="gray", linestyle="--", label="chance")
    ax.set_xscale("log", base=2)
    ax.set_xlabel("sequence length (bp)")
    ax.set_ylabel(f"best {metric} (o), test (x)" if any(r.test is not None for r in runs) else f"best {metric}")
    ax.grid(True, alpha=0.3)
    ax.legend()
    fig.tight_layout()
    fig.savefig(out, dpi=120)
    plt.close(fig)


def write_report(runs: list[str], out_dir: str | os.PathLike, metric: str = "val/acc", chance: float | None = None,
                 overwrite: bool = False) -> tuple[Path, Path]:
    """Summarise ``runs`` (paths, or ``label=path``) into ``out_dir``/metric_vs_length.{png,md}."""
    out_dir = Path(out_dir)
    png, md = out_dir / "metric_vs_length.png", out_dir / "metric_vs_length.md"
    if not overwrite and (png.exists() or md.exists()):
        raise FileExistsError(f"{out_dir} already holds a report; pass --overwrite or another --out")
    summaries = []
    for item in runs:
        label, _, path = item.rpartition("=") if "=" in item else (None, "", item)
        summaries.append(summarize_run(path, metric, label or None))
    summaries = merge_runs(summaries, metric)
    out_dir.mkdir(parents=True, exist_ok=True)
    plot_runs(summaries, metric, png, chance)
    md.write_text(markdown_table(summaries, metric))
    return png, md
