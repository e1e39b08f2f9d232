"""Character tokenizer for DNA and reverse complement.

Vocabulary (fixed ids, so checkpoints stay compatible): the special tokens a language model needs first, then the
five nucleotide symbols. Lower-case (soft-masked) bases map to the same ids as upper-case ones. IUPAC ambiguity codes
(R, Y, S, W, K, M, B, D, H, V) and U become N by default or raise in ``strict`` mode; any other symbol always raises.
Encoding is a 256-entry lookup table over the ASCII bytes, so a 1 Mbp window tokenizes in milliseconds.
"""

from __future__ import annotations

import numpy as np
import torch

from genomics.errors import TokenizerError

SPECIAL_TOKENS = ("[PAD]", "[BOS]", "[EOS]", "[MASK]", "[SEP]")
NUCLEOTIDES = "ACGTN"
PAD_ID, BOS_ID, EOS_ID, MASK_ID, SEP_ID = range(len(SPECIAL_TOKENS))
A_ID, C_ID, G_ID, T_ID, N_ID = range(len(SPECIAL_TOKENS), len(SPECIAL_TOKENS) + len(NUCLEOTIDES))
VOCAB = SPECIAL_TOKENS + tuple(NUCLEOTIDES)
VOCAB_SIZE = len(VOCAB)
IGNORE_INDEX = -100  # targets with this id are left out of the loss (padding, and N when asked)

AMBIGUOUS_CODES = "RYSWKMBDHVU"
_COMPLEMENT = str.maketrans("ACGTNacgtnRYSWKMBDHVryswkmbdhvUu", "TGCANtgcanYRSWMKVHDByrswmkvhdbAa")
_REJECT = -1


def _lookup(strict: bool) -> np.ndarray:
    table = np.full(256, _REJECT, dtype=np.int64)
    for symbol, token in zip(NUCLEOTIDES, (A_ID, C_ID, G_ID, T_ID, N_ID), strict=True):
        table[ord(symbol)] = table[ord(symbol.lower())] = token
    if not strict:
        for symbol in AMBIGUOUS_CODES:
            table[ord(symbol)] = table[ord(symbol.lower())] = N_ID
    return table


class DNATokenizer:
    """Maps nucleotide strings to token ids and back. ``strict=True`` rejects IUPAC ambiguity codes."""

    vocab = VOCAB
    vocab_size = VOCAB_SIZE
    pad_id, bos_id, eos_id, mask_id, sep_id = PAD_ID, BOS_ID, EOS_ID, MASK_ID, SEP_ID
    n_id = N_ID

    def __init__(self, strict: bool = False):
        self.strict = strict
        self._table = _lookup(strict)
        self._complement_ids = np.arange(VOCAB_SIZE)
        self._complement_ids[[A_ID, C_ID, G_ID, T_ID]] = [T_ID, G_ID, C_ID, A_ID]

    def encode_array(self, sequence: str) -> np.ndarray:
        try:
            raw = np.frombuffer(sequence.encode("ascii"), dtype=np.uint8)
        except UnicodeEncodeError as exc:
            raise TokenizerError(f"non-ASCII character at position {exc.start} of the sequence", exc.start) from None
        ids = self._table[raw]
        if (ids < 0).any():
            pos = int(np.argmax(ids < 0))
            symbol = sequence[pos]
            why = "an IUPAC ambiguity code (strict mode)" if symbol.upper() in AMBIGUOUS_CODES else "not a nucleotide"
            raise TokenizerError(f"character {symbol!r} at position {pos} is {why}", pos)
        return ids

    def encode(self, sequence: str, add_bos: bool = False, add_eos: bool = False) -> torch.Tensor:
        ids = torch.from_numpy(self.encode_array(sequence))
        parts = ([torch.tensor([BOS_ID])] if add_bos else []) + [ids] + ([torch.tensor([EOS_ID])] if add_eos else [])
        return torch.cat(parts) if len(parts) > 1 else ids

    def decode(self, ids, skip_special: bool = True) -> str:
        ids = ids.tolist() if hasattr(ids, "tolist") else list(ids)
        return "".join(VOCAB[i] for i in ids if not (skip_special and i < len(SPECIAL_TOKENS)))

    def reverse_complement_array(self, ids: np.ndarray) -> np.ndarray:
        """Reverse complement of a 1-D numpy array of token ids."""
        return self._complement_ids[ids[::-1]]

    def reverse_complement_ids(self, ids: torch.Tensor) -> torch.Tensor:
        """Reverse complement along the last axis; specials and N stay themselves."""
        table = torch.as_tensor(self._complement_ids, device=ids.device)
        return table[ids.flip(-1)]


def reverse_complement(sequence: str) -> str:
    """Reverse complement of a nucleotide string, IUPAC-aware and case-preserving."""
    return sequence.translate(_COMPLEMENT)[::-1]
