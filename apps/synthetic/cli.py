"""``mamba-synthetic``: train and evaluate the synthetic-task models.

    mamba-synthetic fit --config configs/synthetic/selective_copying_s6.yaml [--ckpt_path last.ckpt]
    mamba-synthetic validate --config ... --ckpt_path ...
    mamba-synthetic eval-induction --ckpt model.ckpt --max-log2-len 20 --out-dir runs/induction_eval

Every subcommand except ``eval-induction`` is a LightningCLI over :class:`SyntheticLM` and
:class:`SyntheticDataModule`; the task and vocabulary size are set once, on the data module, and linked into the
model so the two cannot disagree.
"""

from __future__ import annotations

import sys

import torch
from lightning.pytorch.cli import LightningCLI

from .data import SyntheticDataModule
from .module import SyntheticLM


class SyntheticCLI(LightningCLI):
    def add_arguments_to_parser(self, parser) -> None:
        parser.link_arguments("data.task", "model.task", apply_on="parse")
        parser.link_arguments("data.vocab_size", "model.vocab_size", apply_on="parse")


DESCRIPTION = (
    "Train/validate Mamba (S6), its non-selective S4 ablation or a Transformer on selective copying or induction "
    "heads. Length-generalisation test of a trained induction-heads model: mamba-synthetic eval-induction --help"
)


def run_lightning(args: list[str] | None) -> SyntheticCLI:
    """LightningCLI over SyntheticLM + SyntheticDataModule; ``args=None`` reads sys.argv."""
    if torch.cuda.is_available():
        torch.set_float32_matmul_precision("high")
    return SyntheticCLI(SyntheticLM, SyntheticDataModule, args=args, auto_configure_optimizers=False,
                        parser_kwargs={"description": DESCRIPTION})


def main(argv: list[str] | None = None) -> int:
    """Entry point; returns the exit status (2 with a one-line message for bad input, files or settings)."""
    from_command_line = argv is None
    argv = list(sys.argv[1:] if argv is None else argv)
    try:
        if argv and argv[0] == "eval-induction":
            from .evaluate import main as eval_main

            return eval_main(argv[1:])
        run_lightning(None if from_command_line else argv)
    except ValueError as err:  # EvaluationError, SyntheticTaskError and the model's argument checks
        print(f"mamba-synthetic: error: {err}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
