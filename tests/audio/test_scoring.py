"""audio.scoring end to end: a tiny classifier checkpoint, the shipped sc09_mini as train/test, two sample folders."""

import csv
import shutil
from pathlib import Path

import lightning.pytorch as pl
import numpy as np
import pytest
import soundfile as sf

from apps.audio_metrics import main as metrics_main
from audio.classifier import SC09ClassifierModule, SC09DataModule, load_classifier
from audio.metrics import am_score, fid_from_features, inception_score, modified_inception_score
from audio.scoring import extract_features, sc09_set

SC09_MINI = Path(__file__).resolve().parents[1] / "data" / "sc09_mini"


@pytest.fixture
def tiny_checkpoint(tmp_path):
    pl.seed_everything(0)
    module = SC09ClassifierModule(widths=(4, 8), groups=1, pool_size=4, hidden_dim=16)
    trainer = pl.Trainer(max_steps=3, limit_val_batches=0, logger=False, enable_checkpointing=False,
                         enable_progress_bar=False, enable_model_summary=False, default_root_dir=tmp_path)
    trainer.fit(module, SC09DataModule(str(SC09_MINI), batch_size=32, augment=False))
    path = tmp_path / "tiny.ckpt"
    trainer.save_checkpoint(path)
    return path


def _read_rows(path):
    with open(path) as fh:
        return {row["set"]: row for row in csv.DictReader(fh)}


def test_score_end_to_end_with_cache_and_table(tmp_path, tiny_checkpoint, capsys):
    copy_of_test = tmp_path / "copy_of_test"
    copy_of_test.mkdir()
    for rel in (SC09_MINI / "testing_list.txt").read_text().split():
        shutil.copy(SC09_MINI / rel, copy_of_test / rel.replace("/", "_"))
    noise = tmp_path / "noise8k"
    noise.mkdir()
    rng = np.random.default_rng(0)
    for i in range(6):  # 8 kHz clips: the scorer resamples to the classifier's 16 kHz
        sf.write(str(noise / f"clip_{i}.wav"), (0.3 * rng.standard_normal(8000)).astype(np.float32), 8000)
    cache = tmp_path / "cache"
    argv = ["score", str(copy_of_test), str(noise), "--classifier", str(tiny_checkpoint), "--train-root",
            str(SC09_MINI), "--cache-dir", str(cache), "--out", str(tmp_path / "table"), "--no-progress"]
    assert metrics_main(argv) == 0
    printed = capsys.readouterr().out
    assert "| set | N | NLL | FID ↓ | IS ↑ | mIS ↑ | AM ↓ |" in printed
    rows = _read_rows(tmp_path / "table.csv")
    assert list(rows) == ["train", "test", "copy_of_test", "noise8k"]
    assert (tmp_path / "table.md").read_text().startswith("| set |")
    assert rows["train"]["NLL"] == "" and rows["copy_of_test"]["acc"] == ""
    assert [int(rows[k]["N"]) for k in rows] == [200, 50, 50, 6]
    assert float(rows["train"]["FID"]) == pytest.approx(0.0, abs=1e-6)

    # independent recomputation from the classifier's outputs
    model = load_classifier(tiny_checkpoint)
    train = extract_features(model, sc09_set(SC09_MINI, "train", model.classes), progress=False)
    test = extract_features(model, sc09_set(SC09_MINI, "test", model.classes), progress=False)
    assert float(rows["test"]["FID"]) == pytest.approx(fid_from_features(train.features, test.features), rel=1e-5)
    assert float(rows["test"]["IS"]) == pytest.approx(inception_score(test.probs), rel=1e-5)
    assert float(rows["test"]["mIS"]) == pytest.approx(modified_inception_score(test.probs), rel=1e-5)
    assert float(rows["test"]["AM"]) == pytest.approx(am_score(train.probs, test.probs), rel=1e-5)
    assert float(rows["test"]["acc"]) == pytest.approx(np.mean(test.probs.argmax(1) == np.repeat(np.arange(10), 5)))
    # a sample folder holding exactly the test clips scores like the test set (order-free metrics)
    for col in ("FID", "IS", "mIS", "AM"):
        assert float(rows["copy_of_test"][col]) == pytest.approx(float(rows["test"][col]), rel=1e-4)

    # cache: one file per set; a rerun reuses them; changing a clip makes a new entry
    assert len(list(cache.glob("*.npz"))) == 4
    with pytest.raises(ValueError, match=r"table\.csv.*refusing to overwrite"):
        metrics_main(argv)
    assert metrics_main(argv + ["--overwrite"]) == 0
    assert _read_rows(tmp_path / "table.csv") == rows
    assert len(list(cache.glob("*.npz"))) == 4
    sf.write(str(noise / "clip_0.wav"), np.zeros(8000, np.float32), 8000)
    assert metrics_main(argv + ["--overwrite", "--no-test"]) == 0
    assert len(list(cache.glob("*.npz"))) == 5
    assert list(_read_rows(tmp_path / "table.csv")) == ["train", "copy_of_test", "noise8k"]


def test_score_rejects_empty_and_corrupt_sample_folders(tmp_path, tiny_checkpoint):
    empty = tmp_path / "empty"
    empty.mkdir()
    base = ["--classifier", str(tiny_checkpoint), "--train-root", str(SC09_MINI), "--no-cache", "--no-progress"]
    with pytest.raises(ValueError, match=r"empty: need at least 2 \.wav"):
        metrics_main(["score", str(empty), *base])
    bad = tmp_path / "bad"
    bad.mkdir()
    sf.write(str(bad / "ok.wav"), np.zeros(100, np.float32), 16000)
    (bad / "broken.wav").write_bytes(b"RIFF....WAVEjunk")
    with pytest.raises(ValueError, match=r"broken\.wav.*cannot decode"):
        metrics_main(["score", str(bad), "--no-test", *base])
