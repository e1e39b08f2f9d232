"""audio.classifier: front end, splits, a short training run clearly above chance, checkpoint round trip, CLI resume."""

from pathlib import Path

import lightning.pytorch as pl
import pytest
import torch

from audio.classifier import (
    CLASSES,
    MelFrontEnd,
    SC09Classifier,
    SC09ClassifierModule,
    SC09DataModule,
    fix_length,
    load_classifier,
    run_classifier_cli,
    sc09_split_files,
)

SC09_MINI = Path(__file__).resolve().parents[1] / "data" / "sc09_mini"
TINY = dict(widths=(8, 16), groups=1, pool_size=8, hidden_dim=64, dropout=0.1, lr=3e-3)


def test_front_end_shape_length_fix_and_gain_invariance():
    torch.manual_seed(0)
    fe = MelFrontEnd()
    x = torch.randn(3, 12000) * torch.linspace(0, 1, 12000)
    out = fe(x)
    assert out.shape == (3, 1, 32, 32)  # SaShiMi's 32 x 32 mel input: 32 mels x (1 + 16000 // 512) frames
    assert torch.allclose(out.amax(dim=(-2, -1)), torch.ones(3))  # 0 dB at each clip's peak -> +1
    assert out.min() >= -1.0 - 1e-6  # floored 80 dB below the peak -> -1
    assert torch.allclose(fe(0.25 * x), out, atol=1e-4)  # levels are relative to the clip's own maximum
    assert fix_length(torch.ones(5), 3).tolist() == [1, 1, 1]
    assert fix_length(torch.ones(2), 4).tolist() == [1, 1, 0, 0]


def test_classifier_outputs_and_penultimate_features():
    model = SC09Classifier(**{k: v for k, v in TINY.items() if k != "lr"}).eval()
    wave = torch.randn(4, 16000) * 0.1
    logits = model(wave)
    feats, probs = model.features_and_probs(wave)
    assert logits.shape == (4, 10) and feats.shape == (4, 64) and model.feature_dim == 64
    assert torch.allclose(model.classifier(feats), logits, atol=1e-5)  # features are the last layer's input
    assert torch.allclose(probs, torch.softmax(logits, -1), atol=1e-6)


def test_sc09_splits_of_the_shipped_data():
    sizes = {s: len(sc09_split_files(SC09_MINI, s)) for s in ("train", "validation", "test", "all")}
    assert sizes == {"train": 200, "validation": 50, "test": 50, "all": 300}
    val = sc09_split_files(SC09_MINI, "validation")
    assert all("jackson" in p.name for p, _ in val)
    assert all(p.parent.name == CLASSES[label] for p, label in val)
    assert len(sc09_split_files(SC09_MINI, "train", classes=("zero", "one"))) == 40
    with pytest.raises(ValueError, match="not an SC09-layout"):
        sc09_split_files(SC09_MINI / "zero", "train")
    with pytest.raises(ValueError, match="split"):
        sc09_split_files(SC09_MINI, "dev")


def test_short_training_run_is_clearly_above_chance_and_checkpoint_round_trips(tmp_path):
    pl.seed_everything(0)
    data = SC09DataModule(str(SC09_MINI), batch_size=16, augment=False)
    module = SC09ClassifierModule(**TINY)
    trainer = pl.Trainer(max_epochs=10, logger=False, enable_checkpointing=False, enable_progress_bar=False,
                         enable_model_summary=False, default_root_dir=tmp_path)
    trainer.fit(module, data)
    val_acc = trainer.validate(module, data, verbose=False)[0]["val_acc"]
    assert val_acc >= 0.3, f"validation accuracy {val_acc:.2f} on an unseen speaker (chance 0.10)"
    ckpt = tmp_path / "clf.ckpt"
    trainer.save_checkpoint(ckpt)
    loaded = load_classifier(ckpt)
    wave = data._set("validation").waves[:8].float() / 32767
    module.eval()
    assert torch.allclose(loaded(wave), module.model(wave), atol=1e-5)
    with pytest.raises(ValueError, match="not found"):
        load_classifier(tmp_path / "missing.ckpt")


def test_cli_trains_checkpoints_and_resumes(tmp_path):
    common = ["--data.root", str(SC09_MINI), "--data.classes", "[zero, one]", "--data.batch_size", "20",
              "--model.widths", "[4]", "--model.hidden_dim", "8", "--model.groups", "1",
              "--trainer.default_root_dir", str(tmp_path), "--trainer.logger", "false",
              "--trainer.enable_progress_bar", "false", "--skip_test", "true"]
    run_classifier_cli(common + ["--trainer.max_epochs", "1"])
    last = tmp_path / "checkpoints" / "last.ckpt"
    assert last.is_file() and (tmp_path / "checkpoints" / "best.ckpt").is_file()
    first = torch.load(last, weights_only=False)
    assert first["epoch"] == 0 and first["hyper_parameters"]["classes"] == ["zero", "one"]
    cli = run_classifier_cli(common + ["--trainer.max_epochs", "2", "--ckpt_path", str(last)])
    resumed = torch.load(last, weights_only=False)
    assert resumed["epoch"] > first["epoch"] and resumed["global_step"] == 2 * first["global_step"]
    assert cli.trainer.current_epoch == 2
