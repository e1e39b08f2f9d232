"""``python3 -m apps.synthetic.report METRICS_CSV --out-stem PATH``: the validation curve of a ``fit`` run.

Reads the ``metrics.csv`` that Lightning's CSVLogger writes (one row per logged step; validation rows carry
``val/loss``, ``val/acc`` and, for selective copying, ``val/seq_acc``) and writes ``PATH.md`` (one table row per
validation) and ``PATH.png`` (validation accuracy against step), so that a GPU run leaves a readable learning curve
next to its logs.
"""

from __future__ import annotations

import argparse
import csv
import sys
from pathlib import Path

VALIDATION_KEYS = ("val/loss", "val/acc", "val/seq_acc")


class ReportError(ValueError):
    """The metrics file is missing or holds no validation rows."""


def read_validation_curve(path: str | Path) -> list[dict]:
    """One dict per validation row: step (int) and whichever of VALIDATION_KEYS were logged (float)."""
    path = Path(path)
    if not path.is_file():
        raise ReportError(f"{path} does not exist or is not a file")
    with path.open(newline="") as handle:
        rows = list(csv.DictReader(handle))
    curve = []
    for row in rows:
        if not row.get("val/acc"):
            continue
        try:
            curve.append({"step": int(float(row["step"])),
                          **{k: float(row[k]) for k in VALIDATION_KEYS if row.get(k)}})
        except (KeyError, ValueError) as err:
            raise ReportError(f"{path}: unreadable validation row {row}: {err}") from err
    if not curve:
        raise ReportError(f"{path} holds no validation rows (no val/acc column with values)")
    return sorted(curve, key=lambda r: r["step"])


def write_curve(curve: list[dict], out_stem: str | Path, title: str) -> list[Path]:
    """``out_stem``.md (table) and ``out_stem``.png (accuracy vs step); returns both paths."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    out_stem = Path(out_stem)
    out_stem.parent.mkdir(parents=True, exist_ok=True)
    keys = [k for k in VALIDATION_KEYS if any(k in r for r in curve)]
    lines = [f"# {title}", "", "| step | " + " | ".join(keys) + " |", "|---:|" + "---:|" * len(keys)]
    for row in curve:
        cells = [f"{row[k]:.4f}" if k in row else "" for k in keys]
        lines.append(f"| {row['step']} | " + " | ".join(cells) + " |")
    md_path, png_path = Path(f"{out_stem}.md"), Path(f"{out_stem}.png")
    md_path.write_text("\n".join(lines) + "\n")

    figure, axis = plt.subplots(figsize=(7, 4))
    for key in ("val/acc", "val/seq_acc"):
        points = [r for r in curve if key in r]
        if points:
            axis.plot([r["step"] for r in points], [r[key] for r in points], "o-", markersize=3, label=key)
    axis.set_ylim(-0.02, 1.02)
    axis.set_xlabel("training step")
    axis.set_ylabel("validation accuracy")
    axis.set_title(title)
    axis.legend(loc="best")
    axis.grid(alpha=0.3)
    figure.tight_layout()
    figure.savefig(png_path, dpi=120)
    plt.close(figure)
    return [md_path, png_path]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python3 -m apps.synthetic.report", description=__doc__.split("\n\n")[0])
    parser.add_argument("metrics", help="metrics.csv of a mamba-synthetic fit run (CSVLogger)")
    parser.add_argument("--out-stem", required=True, help="write OUT_STEM.md and OUT_STEM.png")
    parser.add_argument("--title", default="validation curve")
    args = parser.parse_args(argv)
    try:
        curve = read_validation_curve(args.metrics)
    except ReportError as err:
        print(f"apps.synthetic.report: error: {err}", file=sys.stderr)
        return 2
    paths = write_curve(curve, args.out_stem, args.title)
    last = curve[-1]
    shown = " ".join(f"{k} {last[k]:.4f}" for k in VALIDATION_KEYS if k in last)
    print(f"{len(curve)} validations; last at step {last['step']}: {shown}; wrote {', '.join(map(str, paths))}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
