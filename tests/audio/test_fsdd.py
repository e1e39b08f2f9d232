"""audio.fsdd converter and the shipped tests/data/sc09_mini folder."""

from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from apps.audio_metrics import convert_main
from audio.fsdd import DIGIT_WORDS, ConversionError, convert_to_sc09
from audio.wav_io import read_audio

SC09_MINI = Path(__file__).resolve().parents[1] / "data" / "sc09_mini"


def _fake_fsdd(root: Path, speakers=("ann", "bob", "cat"), takes=2, sr=8000) -> Path:
    rec = root / "recordings"
    rec.mkdir(parents=True)
    for digit in range(10):
        for s, speaker in enumerate(speakers):
            for take in range(takes):
                freq = 200 + 50 * digit + 7 * s + take
                x = 0.4 * np.sin(2 * np.pi * freq * np.arange(sr // 10) / sr)
                sf.write(str(rec / f"{digit}_{speaker}_{take}.wav"), x.astype(np.float32), sr, subtype="PCM_16")
    (root / "README.md").write_text("not audio")
    return root


def test_fsdd_to_sc09_layout_with_speaker_split(tmp_path):
    src = _fake_fsdd(tmp_path / "fsdd")
    summary = convert_to_sc09(src, tmp_path / "out", takes=[0, 1], validation_speakers=["bob"], progress=False)
    out = tmp_path / "out"
    assert summary.source_kind == "fsdd"
    assert summary.counts == {"train": 40, "validation": 20, "test": 0}
    assert sorted(p.name for p in out.iterdir() if p.is_dir()) == sorted(DIGIT_WORDS)
    val = (out / "validation_list.txt").read_text().split()
    assert len(val) == 20 and all("/bob_nohash_" in v for v in val)
    assert (out / "testing_list.txt").read_text() == ""
    assert "CC BY-SA 4.0" in (out / "LICENSE.txt").read_text()
    wav = out / "seven" / "cat_nohash_1.wav"
    info = sf.info(str(wav))
    assert (info.samplerate, info.subtype, info.frames) == (16000, "PCM_16", 1600)
    # the content is the source tone, resampled: compare against the analytic 16 kHz tone away from the edges
    freq = 200 + 50 * 7 + 7 * 2 + 1
    ref = 0.4 * np.sin(2 * np.pi * freq * np.arange(1600) / 16000)
    assert np.abs(read_audio(wav, 16000).numpy() - ref)[100:-100].max() < 5e-3


def test_default_split_and_filters_and_refusal_to_overwrite(tmp_path):
    src = _fake_fsdd(tmp_path / "fsdd")
    summary = convert_to_sc09(src / "recordings", tmp_path / "out", digits=[3, 4], progress=False)
    assert summary.counts == {"train": 4, "validation": 4, "test": 4}  # bob validation, cat test (last two sorted)
    assert {p.parent.name for p in (tmp_path / "out").rglob("*.wav")} == {"three", "four"}
    with pytest.raises(ConversionError, match=r"out.*already exists"):
        convert_to_sc09(src, tmp_path / "out", progress=False)
    with pytest.raises(ConversionError, match="not among the speakers"):
        convert_to_sc09(src, tmp_path / "out2", test_speakers=["zed"], progress=False)
    with pytest.raises(ConversionError, match="not an FSDD checkout"):
        convert_to_sc09(tmp_path / "out" / "three", tmp_path / "out3", progress=False)
    assert not (tmp_path / "out2").exists() and not (tmp_path / "out3").exists()
    assert not list(tmp_path.glob(".out*partial*"))


def test_speech_commands_copy_keeps_its_lists_and_drops_other_words(tmp_path):
    src = tmp_path / "sc"
    for word in ("zero", "one", "yes"):
        (src / word).mkdir(parents=True)
        for spk in ("aa11", "bb22"):
            sf.write(str(src / word / f"{spk}_nohash_0.wav"), np.zeros(160, np.float32), 16000)
    (src / "validation_list.txt").write_text("zero/aa11_nohash_0.wav\nyes/aa11_nohash_0.wav\n")
    (src / "testing_list.txt").write_text("one/bb22_nohash_0.wav\n")
    assert convert_main([str(src), str(tmp_path / "out"), "--no-progress"]) == 0
    out = tmp_path / "out"
    assert (out / "validation_list.txt").read_text() == "zero/aa11_nohash_0.wav\n"
    assert (out / "testing_list.txt").read_text() == "one/bb22_nohash_0.wav\n"
    assert len(list(out.rglob("*.wav"))) == 4 and not (out / "yes").exists()


def test_a_corrupt_source_file_is_named_and_nothing_is_left_behind(tmp_path):
    src = _fake_fsdd(tmp_path / "fsdd", takes=1)
    (src / "recordings" / "5_bob_0.wav").write_bytes(b"RIFFjunkjunkjunk")
    with pytest.raises(ValueError, match=r"5_bob_0\.wav"):
        convert_to_sc09(src, tmp_path / "out", progress=False)
    assert not (tmp_path / "out").exists() and not list(tmp_path.glob(".out*"))


def test_shipped_sc09_mini_is_in_sc09_layout():
    wavs = sorted(SC09_MINI.rglob("*.wav"))
    assert len(wavs) == 300
    assert sum(p.stat().st_size for p in SC09_MINI.rglob("*")) < 6 * 2**20
    assert {p.parent.name for p in wavs} == set(DIGIT_WORDS)
    val = set((SC09_MINI / "validation_list.txt").read_text().split())
    test = set((SC09_MINI / "testing_list.txt").read_text().split())
    assert len(val) == len(test) == 50 and not val & test
    assert {v.split("/")[1].split("_nohash_")[0] for v in val} == {"jackson"}
    assert {v.split("/")[1].split("_nohash_")[0] for v in test} == {"theo"}
    assert all((SC09_MINI / rel).is_file() for rel in val | test)
    info = sf.info(str(wavs[0]))
    assert (info.samplerate, info.channels, info.subtype) == (16000, 1, "PCM_16")
    assert (SC09_MINI / "LICENSE.txt").is_file()
