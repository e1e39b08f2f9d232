"""``mamba-dna``: DNA pretraining, classification, prediction and reports from the command line.

    mamba-dna pretrain {fit,validate,test} --config configs/dna/<...>.yaml [--ckpt_path last.ckpt]
    mamba-dna classify {fit,validate,test,predict} --config configs/dna/<...>.yaml [--ckpt_path ...]
    mamba-dna report --runs runs/apes/*/version_* --out reports/apes [--metric val/acc] [--chance 0.2]
    mamba-dna synth --out data/synthetic_apes [--chromosome-length 1000000]
    mamba-dna export --ckpt pretrain.ckpt --out pretrained_folder

``pretrain`` trains the next-nucleotide model (genomics.lm_module.DNALanguageModel on
genomics.pretrain_data.GenomePretrainDataModule); ``classify`` the sequence classifier (genomics.classifier.
DNAClassifier on genomics.classify_data.SequenceClassificationDataModule). Both are LightningCLI programs: every
constructor argument is a ``--model.*`` / ``--data.*`` / ``--trainer.*`` option, a progress bar shows, the last and
best checkpoints are kept (``<log dir>/checkpoints``) and ``--ckpt_path`` resumes a run.
"""

from __future__ import annotations

import argparse
import sys
import warnings
from collections.abc import Sequence

USAGE = __doc__.split("\n\n")[1]


def _checkpoint_callbacks(monitor: str, mode: str) -> list:
    """``best-<epoch>-<step>.ckpt`` (best ``monitor``) and ``last.ckpt`` (the latest state, rewritten at every
    validation). Two callbacks, because since Lightning 2.6 ``save_last=True`` writes ``last.ckpt`` only when a new
    best is saved at the same step, which would make ``last.ckpt`` a copy of the best one, not the state to resume."""
    from lightning.pytorch.callbacks import ModelCheckpoint

    best = ModelCheckpoint(monitor=monitor, mode=mode, save_top_k=1, filename="best-{epoch}-{step}",
                           auto_insert_metric_name=False)
    last = ModelCheckpoint(monitor=None, save_top_k=1, filename="last", enable_version_counter=False)
    return [best, last]


def run_lightning_cli(group: str, args: list[str]):
    import torch
    from lightning.pytorch.cli import LightningCLI

    torch.set_float32_matmul_precision("high")
    if group == "pretrain":
        from genomics.lm_module import DNALanguageModel as model_class
        from genomics.pretrain_data import GenomePretrainDataModule as data_class

        callbacks = _checkpoint_callbacks("val/loss", "min")
    else:
        from genomics.classifier import DNAClassifier as model_class
        from genomics.classify_data import SequenceClassificationDataModule as data_class

        callbacks = _checkpoint_callbacks("val/acc", "max")
    # sys.argv must stay intact: Lightning's DDP launcher re-runs it for the other ranks. LightningCLI warns when
    # args and sys.argv are both given, which is exactly the intent here (the group word is not a CLI argument).
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="LightningCLI's args parameter")
        return LightningCLI(model_class, data_class, args=args, seed_everything_default=1234,
                            trainer_defaults={"callbacks": callbacks})


def report_main(argv: list[str]) -> int:
    from genomics.report import write_report

    parser = argparse.ArgumentParser(prog="mamba-dna report",
                                     description="Plot a validation metric vs sequence length over several runs")
    parser.add_argument("--runs", nargs="+", required=True,
                        help="CSVLogger run folders (with metrics.csv, hparams.yaml); 'label=path' names a series")
    parser.add_argument("--out", required=True, help="output folder for metric_vs_length.png and .md")
    parser.add_argument("--metric", default="val/acc")
    parser.add_argument("--chance", type=float, default=None, help="draw a chance line (e.g. 0.2 for 5 species)")
    parser.add_argument("--overwrite", action="store_true")
    args = parser.parse_args(argv)
    png, md = write_report(args.runs, args.out, args.metric, args.chance, args.overwrite)
    print(md.read_text())
    print(f"wrote {png} and {md}")
    return 0


def synth_main(argv: list[str]) -> int:
    from genomics.synthetic import APE_SPECIES, make_species_genomes

    parser = argparse.ArgumentParser(prog="mamba-dna synth",
                                     description="Write synthetic great-ape-like genomes (one FASTA per species)")
    parser.add_argument("--out", required=True)
    parser.add_argument("--species", nargs="+", default=list(APE_SPECIES))
    parser.add_argument("--chromosomes", type=int, default=4)
    parser.add_argument("--chromosome-length", type=int, default=1_000_000)
    parser.add_argument("--divergence", type=float, default=1.0)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--overwrite", action="store_true")
    args = parser.parse_args(argv)
    paths = make_species_genomes(args.out, tuple(args.species), args.chromosomes, args.chromosome_length,
                                 args.divergence, args.seed, overwrite=args.overwrite)
    for name, path in paths.items():
        print(f"{name}\t{path}")
    return 0


def export_main(argv: list[str]) -> int:
    from genomics.backbone import load_pretrained

    parser = argparse.ArgumentParser(prog="mamba-dna export",
                                     description="Write a pretraining .ckpt as a save_pretrained folder")
    parser.add_argument("--ckpt", required=True)
    parser.add_argument("--out", required=True)
    args = parser.parse_args(argv)
    from pathlib import Path

    if Path(args.out).exists() and any(Path(args.out).iterdir()):
        raise SystemExit(f"mamba-dna export: {args.out} exists and is not empty; choose a new folder")
    model = load_pretrained(args.ckpt)
    model.set_gradient_checkpointing(False)
    print(model.save_pretrained(args.out))
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    words = list(sys.argv[1:] if argv is None else argv)
    commands = {"report": report_main, "synth": synth_main, "export": export_main}
    if not words or words[0] in ("-h", "--help"):
        print(USAGE)
        return 0
    if words[0] in commands:
        return commands[words[0]](words[1:])
    if words[0] in ("pretrain", "classify"):
        run_lightning_cli(words[0], words[1:])
        return 0
    print(f"mamba-dna: unknown command {words[0]!r}\n{USAGE}", file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main())
