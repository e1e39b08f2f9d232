"""Synthetic tasks of the Mamba paper (selective copying, induction heads): the end-to-end check that selection works.

data: seeded on-the-fly generators; models: Mamba (S6), its non-selective S4-style ablation, a causal Transformer;
module: the LightningModule; cli: ``mamba-synthetic`` (LightningCLI ``fit``/``validate`` and ``eval-induction``);
evaluate: length-generalisation table and plot for a trained induction-heads checkpoint.
"""
