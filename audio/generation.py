"""Autoregressive sampling of waveforms from a SaShiMi model in recurrent (step) mode, and writing the results.

:func:`sample_tokens` runs the whole U-Net one sample at a time (:meth:`audio.sashimi.SaShiMi.step`), batched, with
memory independent of the clip length for the SSM blocks. The first input is the zero token (128), as in training.
Sampling uses temperature and nucleus (top-p) filtering; the returned log-likelihood of each clip is the sum of
``log p(sample_t | samples < t)`` under the model's *unmodified* distribution (temperature 1, no top-p), in nats.
On CUDA the step is replayed from CUDA graphs (:mod:`audio.graph_generation`), with the same tokens for the same
generator state as the eager loop (:func:`sample_batch_eager`), which runs on the CPU or with ``use_cuda_graph=False``.

:func:`write_clips` writes the clips as 16-bit WAV files plus ``likelihoods.tsv`` into a folder and never replaces an
existing file unless ``overwrite=True`` (it checks every target before writing any).
"""

from __future__ import annotations

import math
import os
import warnings
from collections.abc import Callable
from pathlib import Path

import torch
from tqdm.auto import tqdm

from audio import mulaw
from audio.sashimi import SaShiMi
from audio.wav_io import AudioFileError, write_wav
from mamba_core.models import filter_logits as core_filter_logits

LIKELIHOOD_FILE = "likelihoods.tsv"


def filter_logits(logits: torch.Tensor, temperature: float = 1.0, top_p: float = 1.0) -> torch.Tensor:
    """Scale by 1 / temperature and mask (to -inf) the tail outside the top-p nucleus; logits (B, V)."""
    if temperature <= 0:
        raise ValueError(f"temperature must be > 0, got {temperature}")
    if not 0 < top_p <= 1:
        raise ValueError(f"top_p must be in (0, 1], got {top_p}")
    return core_filter_logits(logits / temperature, top_p=top_p)


@torch.no_grad()
def sample_batch_eager(model: SaShiMi, batch_size: int, length: int, temperature: float = 1.0, top_p: float = 1.0,
                       generator: torch.Generator | None = None,
                       on_progress: Callable[[int], None] | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """The reference loop: ``batch_size`` clips, one :meth:`SaShiMi.step` and one ``torch.multinomial`` per sample.

    Returns (tokens (B, L) int64, log_likelihood (B,) fp64) on the model's device; ``on_progress(n)`` is told after
    every step how many samples were added.
    """
    device = next(model.parameters()).device
    state = model.init_state(batch_size, device=device)
    current = torch.full((batch_size,), mulaw.ZERO_TOKEN, dtype=torch.long, device=device)
    total = torch.zeros(batch_size, dtype=torch.float64, device=device)
    chunk = torch.empty(batch_size, length, dtype=torch.long, device=device)
    for t in range(length):
        logits = model.step(current, state).float()
        probs = filter_logits(logits, temperature, top_p).softmax(-1)
        current = torch.multinomial(probs, 1, generator=generator).squeeze(-1)
        total += logits.log_softmax(-1).gather(-1, current.unsqueeze(-1)).squeeze(-1).double()
        chunk[:, t] = current
        if on_progress is not None:
            on_progress(batch_size)
    return chunk, total


@torch.no_grad()
def sample_tokens(model: SaShiMi, num_samples: int, length: int, batch_size: int = 16, temperature: float = 1.0,
                  top_p: float = 1.0, generator: torch.Generator | None = None, progress: bool = True,
                  use_cuda_graph: bool = True) -> tuple[torch.Tensor, torch.Tensor]:
    """Sample ``num_samples`` clips of ``length`` mu-law tokens -> (tokens (N, L) int64, log_likelihood (N,) fp64).

    On a CUDA model with ``use_cuda_graph`` (the default) each batch size's step is captured in CUDA graphs
    (:class:`audio.graph_generation.StaticStepSampler`); same tokens for the same generator state, far fewer
    Python launches. On the CPU, with ``use_cuda_graph=False``, or if the capture fails (a warning says why), the
    eager loop :func:`sample_batch_eager` runs.
    """
    if num_samples < 1 or length < 1 or batch_size < 1:
        raise ValueError("num_samples, length and batch_size must be >= 1")
    filter_logits(torch.zeros(1, 2), temperature, top_p)  # validate before the long loop
    model.eval()
    device = next(model.parameters()).device
    graphed = use_cuda_graph and device.type == "cuda"
    samplers: dict = {}  # batch size -> captured StaticStepSampler (the last batch may be smaller)
    tokens = torch.empty(num_samples, length, dtype=torch.long)
    log_likelihood = torch.zeros(num_samples, dtype=torch.float64)
    bar = tqdm(total=num_samples * length, desc="generating", unit="sample", disable=not progress)
    for start in range(0, num_samples, batch_size):
        count = min(batch_size, num_samples - start)
        if graphed and count not in samplers:
            from audio.graph_generation import StaticStepSampler  # imports this module: import here, not on top

            try:
                samplers[count] = StaticStepSampler(model, count, temperature, top_p, generator, cuda_graph=True)
            except Exception as err:  # noqa: BLE001  (capture is best effort: the eager loop gives the same tokens)
                warnings.warn(f"CUDA graph capture failed ({type(err).__name__}: {err}); using the eager loop",
                              RuntimeWarning, stacklevel=2)
                graphed = False
        if graphed:
            chunk, total = samplers[count].run(length, on_progress=bar.update)
        else:
            chunk, total = sample_batch_eager(model, count, length, temperature, top_p, generator, bar.update)
        tokens[start : start + count] = chunk.cpu()
        log_likelihood[start : start + count] = total.cpu()
    bar.close()
    return tokens, log_likelihood


@torch.no_grad()
def teacher_forced_log_likelihood(model: SaShiMi, tokens: torch.Tensor) -> torch.Tensor:
    """Sum of log p(token_t | tokens < t) of each row of ``tokens`` (N, L) in parallel mode, fp64 (N,)."""
    inputs = torch.cat([torch.full_like(tokens[:, :1], mulaw.ZERO_TOKEN), tokens[:, :-1]], dim=1)
    logp = model(inputs).float().log_softmax(-1)
    return logp.gather(-1, tokens.unsqueeze(-1)).squeeze(-1).double().sum(-1)


def clip_names(count: int) -> list[str]:
    return [f"sample_{i:05d}.wav" for i in range(count)]


def check_outputs_free(folder: str | os.PathLike, count: int, overwrite: bool = False,
                       extra: tuple[str, ...] = ()) -> None:
    """Raise :class:`AudioFileError` if a file :func:`write_clips` (or an ``extra`` name) would write exists."""
    folder = Path(folder)
    if folder.exists() and not folder.is_dir():
        raise AudioFileError(f"{folder}: exists and is not a folder")
    targets = [folder / name for name in clip_names(count)] + [folder / LIKELIHOOD_FILE] + [folder / e for e in extra]
    existing = [str(p) for p in targets if p.exists()]
    if existing and not overwrite:
        raise AudioFileError(f"{folder}: {len(existing)} output file(s) already exist (e.g. {existing[0]}); "
                             "refusing to overwrite them (use --overwrite or another folder)")


def write_clips(folder: str | os.PathLike, tokens: torch.Tensor, log_likelihood: torch.Tensor,
                sample_rate: int = 16000, sort_by_likelihood: bool = False, overwrite: bool = False) -> list[Path]:
    """Decode ``tokens`` (N, L) to WAVs ``sample_00000.wav``... plus ``likelihoods.tsv``; returns the WAV paths.

    With ``sort_by_likelihood`` the clips are numbered from most to least likely. The TSV has columns
    file, log_likelihood_nats, nll_nats_per_sample, bits_per_sample.
    """
    folder = Path(folder)
    check_outputs_free(folder, len(tokens), overwrite)
    order = torch.argsort(log_likelihood, descending=True) if sort_by_likelihood else torch.arange(len(tokens))
    names = clip_names(len(tokens))
    folder.mkdir(parents=True, exist_ok=True)
    length = tokens.shape[1]
    rows = ["file\tlog_likelihood_nats\tnll_nats_per_sample\tbits_per_sample"]
    paths = []
    for name, index in zip(names, order.tolist(), strict=True):
        paths.append(write_wav(folder / name, mulaw.decode(tokens[index]), sample_rate, overwrite=overwrite))
        ll = float(log_likelihood[index])
        rows.append(f"{name}\t{ll:.4f}\t{-ll / length:.6f}\t{-ll / length / math.log(2):.6f}")
    (folder / LIKELIHOOD_FILE).write_text("\n".join(rows) + "\n")
    return paths
