"""Building the DNA Mamba model and loading pretrained weights from a Lightning .ckpt or a save_pretrained folder.

The DNA models are ``mamba_core.models.MambaLMHeadModel`` over the character vocabulary of
``genomics.tokenizer``; pretraining checkpoints store the model's ``MambaConfig`` (key ``mamba_config``) next to
the weights (under the ``model.`` prefix), so a classifier can rebuild the exact backbone from either format.
"""

from __future__ import annotations

import os
from pathlib import Path

import torch

from genomics.tokenizer import VOCAB_SIZE
from mamba_core.models import MambaConfig, MambaLMHeadModel

MODEL_PREFIX = "model."


def dna_mamba_config(d_model: int = 128, n_layer: int = 6, d_state: int = 16, d_conv: int = 4, expand: int = 2,
                     bidirectional: bool = False, residual_in_fp32: bool = True) -> MambaConfig:
    return MambaConfig(d_model=d_model, n_layer=n_layer, vocab_size=VOCAB_SIZE,
                       ssm_cfg={"d_state": d_state, "d_conv": d_conv, "expand": expand},
                       residual_in_fp32=residual_in_fp32, pad_vocab_size_multiple=8, tie_embeddings=True,
                       bidirectional=bidirectional)


def load_pretrained(source: str | os.PathLike) -> MambaLMHeadModel:
    """A DNA language model from a pretraining ``.ckpt`` (Lightning) or a ``save_pretrained`` folder."""
    source = Path(source)
    if source.is_dir():
        model = MambaLMHeadModel.from_pretrained(source)
    elif source.is_file():
        try:
            checkpoint = torch.load(source, map_location="cpu", weights_only=True)
        except Exception as exc:  # pickle errors come in many types
            raise ValueError(f"{source}: not a readable PyTorch checkpoint ({exc})") from exc
        if "mamba_config" not in checkpoint or "state_dict" not in checkpoint:
            raise ValueError(f"{source}: not a DNA pretraining checkpoint (no 'mamba_config'/'state_dict'); "
                             "give a `mamba-dna pretrain fit` .ckpt or a save_pretrained folder")
        model = MambaLMHeadModel(MambaConfig.from_dict(checkpoint["mamba_config"]))
        state = {k[len(MODEL_PREFIX):]: v for k, v in checkpoint["state_dict"].items() if k.startswith(MODEL_PREFIX)}
        missing, unexpected = model.load_state_dict(state, strict=False)
        missing = [k for k in missing if not (k == "lm_head.weight" and model.config.tie_embeddings)]
        if missing or unexpected:
            raise ValueError(f"{source}: weights do not match the stored config (missing {missing[:3]}, "
                             f"unexpected {unexpected[:3]})")
    else:
        raise FileNotFoundError(f"{source}: no such pretrained checkpoint file or folder")
    if model.config.vocab_size != VOCAB_SIZE:
        raise ValueError(f"{source}: vocabulary size {model.config.vocab_size} is not the DNA tokenizer's "
                         f"{VOCAB_SIZE}; was it trained on DNA with genomics.tokenizer?")
    return model
