"""Reading and writing audio files for the audio app, with clear errors for bad files.

:func:`read_audio` returns a float32 mono waveform at the rate the caller asks for (mixing channels down and
resampling with :func:`audio.dsp.resample` as needed); :func:`write_wav` writes 16-bit PCM and never replaces an
existing file unless told to. Every problem with a file -- missing, unreadable/corrupt, empty, multi-channel where
mono is required, wrong sample rate where resampling is off, non-finite samples -- raises :class:`AudioFileError`
(a ``ValueError``) whose message names the file and says what is wrong.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import soundfile as sf
import torch

from audio.dsp import resample as _resample

__all__ = ["AudioFileError", "read_audio", "write_wav"]


class AudioFileError(ValueError):
    """An audio file is missing, unreadable, empty, or not in the form the caller asked for."""


def read_audio(path: str | os.PathLike, sample_rate: int, mono: bool = True, resample: bool = True) -> torch.Tensor:
    """Read ``path`` and return a float32 tensor of shape (num_samples,) at ``sample_rate`` Hz, values in [-1, 1].

    ``mono=True`` (default) averages all channels into one. ``mono=False`` is the strict mode: the file must already
    have exactly one channel, and a multi-channel file raises :class:`AudioFileError` instead of being mixed down
    (use it where silently averaging a stereo file would hide a data problem). The return shape is (num_samples,)
    in both modes; there is no multi-channel output.

    With ``resample=True`` (default) a file at another rate is resampled to ``sample_rate``; with ``resample=False``
    a rate mismatch raises :class:`AudioFileError`. Integer PCM is scaled to [-1, 1) by soundfile; float files and
    resampling overshoot are clipped to [-1, 1].
    """
    path = Path(path)
    if isinstance(sample_rate, bool) or not isinstance(sample_rate, int) or sample_rate <= 0:
        raise ValueError(f"sample_rate must be a positive int, got {sample_rate!r} (reading {path})")
    if not path.exists():
        raise AudioFileError(f"{path}: no such audio file")
    if not path.is_file():
        raise AudioFileError(f"{path}: not a regular file")
    if path.stat().st_size == 0:
        raise AudioFileError(f"{path}: file is empty (0 bytes)")
    try:
        data, file_sr = sf.read(str(path), dtype="float32", always_2d=True)
    except (sf.LibsndfileError, RuntimeError, TypeError, ValueError) as err:
        raise AudioFileError(f"{path}: cannot decode audio (corrupt or unsupported format): {err}") from err
    num_samples, channels = data.shape
    if num_samples == 0:
        raise AudioFileError(f"{path}: audio has zero samples")
    if channels != 1 and not mono:
        raise AudioFileError(
            f"{path}: has {channels} channels but mono=False requires a single-channel file "
            "(pass mono=True to mix the channels down)"
        )
    if not np.isfinite(data).all():
        raise AudioFileError(f"{path}: contains NaN or infinite samples")
    wave = torch.from_numpy(np.ascontiguousarray(data.mean(axis=1) if channels > 1 else data[:, 0]))
    if file_sr != sample_rate:
        if not resample:
            raise AudioFileError(
                f"{path}: sample rate is {file_sr} Hz but {sample_rate} Hz was required (resample=False)"
            )
        wave = _resample(wave, int(file_sr), sample_rate)
    return wave.clamp_(-1.0, 1.0).to(torch.float32)


def write_wav(
    path: str | os.PathLike, waveform: torch.Tensor | np.ndarray, sample_rate: int, overwrite: bool = False
) -> Path:
    """Write a mono waveform (num_samples,) or (1, num_samples) with values in [-1, 1] as 16-bit PCM WAV.

    Values outside [-1, 1] are clipped. Parent folders are created. An existing ``path`` is left alone and raises
    :class:`AudioFileError` unless ``overwrite=True``. Returns the path written.
    """
    path = Path(path)
    if isinstance(sample_rate, bool) or not isinstance(sample_rate, int) or sample_rate <= 0:
        raise ValueError(f"sample_rate must be a positive int, got {sample_rate!r} (writing {path})")
    if path.exists() and not overwrite:
        raise AudioFileError(f"{path}: file exists; refusing to overwrite it (pass overwrite=True to replace it)")
    if torch.is_tensor(waveform):
        waveform = waveform.detach().to("cpu", torch.float32).numpy()
    data = np.asarray(waveform, dtype=np.float32)
    if data.ndim == 2 and data.shape[0] == 1:
        data = data[0]
    if data.ndim != 1:
        raise ValueError(f"write_wav writes mono audio: expected shape (num_samples,), got {data.shape} ({path})")
    if not np.isfinite(data).all():
        raise ValueError(f"waveform for {path} contains NaN or infinite values")
    path.parent.mkdir(parents=True, exist_ok=True)
    sf.write(str(path), np.clip(data, -1.0, 1.0), sample_rate, subtype="PCM_16", format="WAV")
    return path
