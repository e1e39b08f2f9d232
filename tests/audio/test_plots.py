"""audio.plots.plot_clips: one waveform + spectrogram row per clip, from paths, tensors or a batch."""

from pathlib import Path

import matplotlib.image
import numpy as np
import pytest
import torch

from audio.plots import plot_clips

SC09_MINI = Path(__file__).resolve().parents[1] / "data" / "sc09_mini"


def test_plot_clips_from_paths_and_tensors(tmp_path):
    t = torch.arange(8000) / 16000
    tone = 0.5 * torch.sin(2 * np.pi * 440 * t)
    out = plot_clips([SC09_MINI / "three" / "george_nohash_0.wav", tone, tone.numpy() * 0.1], tmp_path / "a.png")
    one = plot_clips(torch.stack([tone]), tmp_path / "b.png", titles=["tone"])
    img3, img1 = matplotlib.image.imread(out), matplotlib.image.imread(one)
    assert img3.shape[1] == img1.shape[1] and img3.shape[0] > 2.5 * img1.shape[0]  # a row per clip
    assert img3.std() > 0.05  # not a blank canvas
    with pytest.raises(ValueError, match=r"b\.png.*refusing to overwrite"):
        plot_clips([tone], tmp_path / "b.png")
    plot_clips([tone], tmp_path / "b.png", overwrite=True)


def test_plot_clips_rejects_bad_input(tmp_path):
    with pytest.raises(ValueError, match="at least one clip"):
        plot_clips([], tmp_path / "x.png")
    with pytest.raises(ValueError, match="titles"):
        plot_clips([torch.zeros(100)], tmp_path / "x.png", titles=["a", "b"])
    with pytest.raises(ValueError, match=r"missing\.wav.*no such"):
        plot_clips([tmp_path / "missing.wav"], tmp_path / "x.png")
    assert not (tmp_path / "x.png").exists()
