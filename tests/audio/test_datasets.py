"""SC09 and long-waveform datasets: split lists, the autoregressive shift, padding, windows, bad-file errors."""

from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch

from audio import mulaw
from audio.datasets import (
    IGNORE_INDEX,
    DatasetLayoutError,
    LongWaveformDataModule,
    LongWaveformDataset,
    SC09DataModule,
    SC09Dataset,
    collate_autoregressive,
)
from audio.wav_io import AudioFileError


def _tone(n, freq=440.0, rate=16000, seed=0):
    t = np.arange(n) / rate
    rng = np.random.default_rng(seed)
    return (0.5 * np.sin(2 * np.pi * freq * t) + 0.05 * rng.standard_normal(n)).astype(np.float32)


def make_sc09(root: Path, per_class=3, length=400) -> dict[str, set[str]]:
    names = {"train": set(), "validation": set(), "test": set()}
    for c, label in enumerate(["zero", "one", "two"]):
        (root / label).mkdir(parents=True)
        for i in range(per_class):
            name = f"{label}/spk{i}_nohash_0.wav"
            sf.write(root / name, _tone(length + 16 * i, 200 + 50 * c, seed=i), 16000, subtype="PCM_16")
            names[["train", "validation", "test"][i % 3]].add(name)
    # A non-digit entry as in the full Speech Commands lists must be ignored.
    (root / "validation_list.txt").write_text("\n".join(sorted(names["validation"]) + ["bed/abc_nohash_0.wav"]) + "\n")
    (root / "testing_list.txt").write_text("\n".join(sorted(names["test"])) + "\n")
    return names


def _rel(ds):
    return {f"{p.parent.name}/{p.name}" for p in ds.files}


def test_sc09_splits_follow_list_files(tmp_path):
    names = make_sc09(tmp_path)
    for split in ("train", "validation", "test"):
        assert _rel(SC09Dataset(tmp_path, split)) == names[split]


def test_sc09_item_is_shifted_mu_law(tmp_path):
    make_sc09(tmp_path)
    ds = SC09Dataset(tmp_path, "train")
    x, y = ds[0]
    wave, _ = sf.read(ds.files[0], dtype="float32")
    assert torch.equal(y, mulaw.encode(torch.from_numpy(wave)))
    assert x[0].item() == mulaw.ZERO_TOKEN and torch.equal(x[1:], y[:-1])
    short = SC09Dataset(tmp_path, "train", sample_len=100)
    assert len(short[0][1]) == 100


def test_collate_pads_inputs_with_zero_token_and_ignores_target_padding():
    a = (torch.arange(5), torch.arange(5) + 1)
    b = (torch.arange(18), torch.arange(18) + 2)
    x, y = collate_autoregressive([a, b], pad_multiple=16)
    assert x.shape == y.shape == (2, 32)
    assert (x[0, 5:] == mulaw.ZERO_TOKEN).all() and (y[0, 5:] == IGNORE_INDEX).all()
    assert torch.equal(y[1, :18], b[1]) and (y[1, 18:] == IGNORE_INDEX).all()


def test_sc09_datamodule_batches(tmp_path):
    make_sc09(tmp_path)
    dm = SC09DataModule(str(tmp_path), batch_size=2)
    dm.setup("fit")
    x, y = next(iter(dm.train_dataloader()))
    assert x.shape[0] == 2 and x.shape[1] % 16 == 0 and x.dtype == torch.long
    assert len(dm.datasets["validation"]) == 3


def test_sc09_bad_audio_propagates_named_error(tmp_path):
    make_sc09(tmp_path)
    bad = tmp_path / "zero" / "spk0_nohash_0.wav"
    bad.write_bytes(b"RIFF not really a wav")
    ds = SC09Dataset(tmp_path, "train")
    index = ds.files.index(bad)
    with pytest.raises(AudioFileError, match="spk0_nohash_0.wav"):
        ds[index]


def test_sc09_layout_errors(tmp_path):
    make_sc09(tmp_path)
    (tmp_path / "one" / "spk1_nohash_0.wav").unlink()  # listed in validation_list.txt
    with pytest.raises(DatasetLayoutError, match="spk1_nohash_0"):
        SC09Dataset(tmp_path, "train")
    (tmp_path / "testing_list.txt").unlink()
    with pytest.raises(DatasetLayoutError, match="testing_list.txt"):
        SC09Dataset(tmp_path, "train")
    with pytest.raises(ValueError, match="split"):
        SC09Dataset(tmp_path, "dev")


def _make_long(folder: Path, lengths, rate=16000):
    folder.mkdir()
    waves = []
    for i, n in enumerate(lengths):
        wave = _tone(n, 100 + 30 * i, rate, seed=i)
        sf.write(folder / f"mix{i + 1}.wav", wave, rate, subtype="FLOAT")
        waves.append(wave)
    return waves


def test_long_waveform_windows(tmp_path):
    # Natural sort: mix2 < mix10; 10 files -> 8 train (int(0.88*10)), 1 validation, 1 test.
    waves = _make_long(tmp_path / "mix", [1000 + 7 * i for i in range(10)])
    train = LongWaveformDataset(tmp_path / "mix", "train", sample_len=256)
    assert [p.name for p in train.files] == [f"mix{i}.wav" for i in range(1, 9)]
    assert len(train) == sum(len(w) // 256 for w in waves[:8])
    x, y = train[4]  # second file's first window (first file holds 3 full windows, the 4th is window 1 of file 1)
    assert torch.equal(y, mulaw.encode(torch.from_numpy(waves[1][256:512])))
    assert x[0] == mulaw.ZERO_TOKEN and torch.equal(x[1:], y[:-1])
    test = LongWaveformDataset(tmp_path / "mix", "test", sample_len=256, drop_last=False)
    assert [p.name for p in test.files] == ["mix10.wav"] and len(test[len(test) - 1][0]) == len(waves[9]) % 256


def test_long_waveform_resamples_other_rates(tmp_path):
    _make_long(tmp_path / "mix", [8000], rate=8000)
    ds = LongWaveformDataset(tmp_path / "mix", "test", sample_len=4000, train_fraction=0.5)
    assert len(ds) == 4 and ds[3][1].shape == (4000,)


def test_long_waveform_corrupt_file_named(tmp_path):
    _make_long(tmp_path / "mix", [2000, 2000])
    (tmp_path / "mix" / "mix3.wav").write_bytes(b"garbage")
    with pytest.raises(AudioFileError, match="mix3.wav"):
        LongWaveformDataset(tmp_path / "mix", "test", sample_len=256, train_fraction=0.5)
    with pytest.raises(ValueError, match="sample_len"):
        LongWaveformDataset(tmp_path / "mix", "train", sample_len=0)


def test_long_waveform_datamodule(tmp_path):
    _make_long(tmp_path / "mix", [1000, 1000])
    dm = LongWaveformDataModule(str(tmp_path / "mix"), sample_len=320, batch_size=3, train_fraction=0.5)
    x, y = next(iter(dm.train_dataloader()))
    assert x.shape == (3, 320) and (y != IGNORE_INDEX).all()
