"""mamba-audio CLI: tiny fit, resume via --ckpt_path, validate, generate (no overwrite), dispatch to B's tools."""

from pathlib import Path

import pytest

import apps.audio_metrics
from apps.audio import PLOT_FILE, main, run_lightning_cli

REPO = Path(__file__).resolve().parents[2]
TINY = str(REPO / "configs" / "audio" / "sc09_tiny.yaml")
SC09_MINI = REPO / "tests" / "data" / "sc09_mini"


def _common(tmp_path):
    return ["--config", TINY, "--data.root", str(SC09_MINI), "--data.sample_len", "128",
            "--trainer.default_root_dir", str(tmp_path), "--trainer.logger.init_args.save_dir", str(tmp_path),
            "--trainer.limit_val_batches", "1", "--trainer.num_sanity_val_steps", "0",
            "--trainer.enable_progress_bar", "false"]


@pytest.mark.slow
def test_fit_resume_validate_generate(tmp_path, capsys):
    first = run_lightning_cli(["fit", *_common(tmp_path), "--trainer.max_steps", "2"])
    assert first.trainer.global_step == 2
    ckpt = tmp_path / "sc09_tiny" / "version_0" / "checkpoints" / "last.ckpt"
    assert ckpt.is_file()

    resumed = run_lightning_cli(["fit", *_common(tmp_path), "--trainer.max_steps", "3", "--ckpt_path", str(ckpt)])
    assert resumed.trainer.global_step == 3
    assert resumed.model.train_steps_this_run == 1  # continued from step 2, not restarted

    checked = run_lightning_cli(["validate", *_common(tmp_path), "--ckpt_path", str(ckpt)])
    nll = float(checked.trainer.callback_metrics["val/nll"])
    assert 0 < nll < 6.0  # below log(256) = 5.55 + slack: a real per-sample NLL in nats
    assert float(checked.trainer.callback_metrics["val/bits_per_sample"]) == pytest.approx(nll / 0.6931472, rel=1e-4)

    out = tmp_path / "gen"
    args = ["generate", "--checkpoint", str(ckpt), "--out-dir", str(out), "--num-samples", "3", "--length", "24",
            "--batch-size", "2", "--no-progress", "--plot-clips", "2", "--sort-by-likelihood"]
    assert main(args) == 0
    assert sorted(p.name for p in out.glob("*.wav")) == ["sample_00000.wav", "sample_00001.wav", "sample_00002.wav"]
    rows = (out / "likelihoods.tsv").read_text().splitlines()[1:]
    lls = [float(r.split("\t")[1]) for r in rows]
    assert lls == sorted(lls, reverse=True)
    assert (out / PLOT_FILE).is_file() and (out / PLOT_FILE).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    before = (out / "sample_00000.wav").read_bytes()
    capsys.readouterr()
    assert main(args) == 2
    assert "overwrite" in capsys.readouterr().err
    assert (out / "sample_00000.wav").read_bytes() == before
    assert main([*args, "--overwrite"]) == 0


def test_generate_missing_checkpoint_is_clear(tmp_path, capsys):
    code = main(["generate", "--checkpoint", str(tmp_path / "nope.ckpt"), "--out-dir", str(tmp_path / "o"),
                 "--no-progress"])
    assert code == 2 and "nope.ckpt" in capsys.readouterr().err


@pytest.mark.parametrize("command,target", [("score", "score_main"), ("train-classifier", "train_classifier_main"),
                                            ("convert", "convert_main")])
def test_dispatches_to_metrics_tools(monkeypatch, command, target):
    seen = []
    monkeypatch.setattr(apps.audio_metrics, target, lambda argv: seen.append(list(argv)) or 0)
    assert main([command, "--x", "1"]) == 0
    assert seen == [["--x", "1"]]
