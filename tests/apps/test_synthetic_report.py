"""apps.synthetic.report: the validation rows of a CSVLogger metrics.csv become a markdown table and a PNG."""

import pytest

from apps.synthetic.report import ReportError, main, read_validation_curve

# The layout Lightning's CSVLogger writes: one column per logged key, empty where a row did not log it.
METRICS = """epoch,lr-AdamW,step,train/acc,train/loss,val/acc,val/loss,val/seq_acc
0,0.001,49,0.0625,2.6,,,
0,,499,,,0.0714,2.56,0.0
1,0.001,549,0.5,1.2,,,
1,,999,,,0.9950,0.021,0.925
"""


def test_validation_rows_become_table_and_plot(tmp_path, capsys):
    metrics = tmp_path / "metrics.csv"
    metrics.write_text(METRICS)
    assert read_validation_curve(metrics) == [
        {"step": 499, "val/loss": 2.56, "val/acc": 0.0714, "val/seq_acc": 0.0},
        {"step": 999, "val/loss": 0.021, "val/acc": 0.995, "val/seq_acc": 0.925},
    ]
    stem = tmp_path / "out" / "selective_copying_curve"
    assert main([str(metrics), "--out-stem", str(stem), "--title", "copying"]) == 0
    table = (tmp_path / "out" / "selective_copying_curve.md").read_text().splitlines()
    assert table[2] == "| step | val/loss | val/acc | val/seq_acc |"
    assert table[-1] == "| 999 | 0.0210 | 0.9950 | 0.9250 |"
    assert (tmp_path / "out" / "selective_copying_curve.png").read_bytes()[:4] == b"\x89PNG"
    assert "2 validations; last at step 999: val/loss 0.0210 val/acc 0.9950" in capsys.readouterr().out


def test_missing_or_empty_metrics_are_reported(tmp_path, capsys):
    with pytest.raises(ReportError, match="does not exist"):
        read_validation_curve(tmp_path / "missing.csv")
    train_only = tmp_path / "train_only.csv"
    train_only.write_text("epoch,step,train/loss\n0,1,2.7\n")
    assert main([str(train_only), "--out-stem", str(tmp_path / "x")]) == 2
    assert "no validation rows" in capsys.readouterr().err
