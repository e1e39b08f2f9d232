"""mamba-dna end to end on CPU: pretrain fit -> resume from --ckpt_path -> classify fit/predict -> report."""

import csv
from pathlib import Path

import pytest
import torch
import yaml

from apps.dna import main
from genomics.synthetic import make_species_genomes

ROOT = Path(__file__).resolve().parents[2]


def _fit_args(tmp_path, *extra):
    return ["pretrain", "fit", "--config", str(ROOT / "configs" / "dna" / "pretrain_mt_human_cpu.yaml"),
            "--data.fasta", str(tmp_path / "mt.fa"), "--data.train_windows", "64", "--data.valid_windows", "16",
            "--trainer.logger.init_args.save_dir", str(tmp_path / "runs"), "--trainer.enable_progress_bar", "false",
            "--trainer.log_every_n_steps", "1",
            *extra]


def test_pretrain_fit_resume_classify_predict_report(tmp_path, capsys):
    (tmp_path / "mt.fa").write_bytes((ROOT / "tests" / "data" / "dna" / "MT-human.fa").read_bytes())
    assert main(_fit_args(tmp_path)) == 0  # 1 epoch = 4 steps
    run0 = tmp_path / "runs" / "mt_human_cpu" / "version_0"
    last = run0 / "checkpoints" / "last.ckpt"
    state = torch.load(last, map_location="cpu", weights_only=True)
    assert state["global_step"] == 4 and state["epoch"] == 0
    best = list((run0 / "checkpoints").glob("best-*.ckpt"))
    assert len(best) == 1

    assert main(_fit_args(tmp_path, "--trainer.max_epochs", "2", "--ckpt_path", str(last))) == 0
    run1 = tmp_path / "runs" / "mt_human_cpu" / "version_1"
    resumed = torch.load(run1 / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=True)
    assert resumed["global_step"] == 8 and resumed["epoch"] == 1
    with open(run1 / "metrics.csv") as handle:
        steps = [int(r["step"]) for r in csv.DictReader(handle) if r.get("train/loss")]
    assert steps and min(steps) >= 4  # continued, not restarted

    # a classifier on top of the pretrained checkpoint, then predict
    genomes = make_species_genomes(tmp_path / "genomes", ("human", "orangutan"), n_chromosomes=3,
                                   chromosome_length=3000)
    config = {
        "model": {"pretrained": str(last), "lr": 1e-2, "warmup_steps": 1,
                  "predict_output": str(tmp_path / "pred")},
        "data": {"fasta_files": {k: str(v) for k, v in genomes.items()}, "length": 256, "batch_size": 4,
                 "train_windows": 8, "valid_windows": 8, "test_windows": 8},
        "trainer": {"accelerator": "cpu", "max_epochs": 1, "enable_progress_bar": False,
                    "logger": {"class_path": "lightning.pytorch.loggers.CSVLogger",
                               "init_args": {"save_dir": str(tmp_path / "runs"), "name": "cls"}}},
    }
    cfg = tmp_path / "classify.yaml"
    cfg.write_text(yaml.safe_dump(config))
    assert main(["classify", "fit", "--config", str(cfg)]) == 0
    cls_ckpt = tmp_path / "runs" / "cls" / "version_0" / "checkpoints" / "last.ckpt"
    assert torch.load(cls_ckpt, map_location="cpu", weights_only=True)["class_names"] == ["human", "orangutan"]
    assert main(["classify", "predict", "--config", str(cfg), "--ckpt_path", str(cls_ckpt),
                 "--data.predict_fasta", str(genomes["orangutan"])]) == 0
    with open(tmp_path / "pred" / "records.tsv") as handle:
        rows = list(csv.DictReader(handle, delimiter="\t"))
    assert [r["record"] for r in rows] == ["chr1", "chr2", "chr3"] and all(r["status"] == "ok" for r in rows)

    capsys.readouterr()
    assert main(["report", "--runs", f"mt={run0}", f"mt={run1}", "--metric", "val/loss",
                 "--out", str(tmp_path / "report")]) == 0
    table = (tmp_path / "report" / "metric_vs_length.md").read_text()
    assert "| mt | 64 | 6 |" in table
    assert (tmp_path / "report" / "metric_vs_length.png").stat().st_size > 1000
    with pytest.raises(FileExistsError):
        main(["report", "--runs", str(run0), "--metric", "val/loss", "--out", str(tmp_path / "report")])


def test_unknown_command_and_help(capsys):
    assert main(["frobnicate"]) == 2
    assert main([]) == 0
    assert "mamba-dna pretrain" in capsys.readouterr().out
