"""mamba-dna report: a `classify test` run (its own version folder, test metrics only) is merged into the fit run of
the same series and length, so the table and plot carry the test value."""

import pytest

from genomics.report import write_report


def _run(folder, length, rows):
    folder.mkdir(parents=True)
    (folder / "hparams.yaml").write_text(f"length: {length}\n")
    keys = sorted({k for r in rows for k in r})
    lines = [",".join(keys)] + [",".join(str(r.get(k, "")) for k in keys) for r in rows]
    (folder / "metrics.csv").write_text("\n".join(lines) + "\n")
    return folder


def test_fit_and_test_folders_merge_into_one_row(tmp_path):
    fit = _run(tmp_path / "runs" / "cls" / "version_0", 65536,
               [{"epoch": 0, "step": 9, "val/acc": 0.6}, {"epoch": 1, "step": 19, "val/acc": 0.95},
                {"epoch": 2, "step": 29, "val/acc": 0.9}, {"n_params": 1400000.0, "step": 0}])
    test = _run(tmp_path / "runs" / "cls" / "version_1", 65536, [{"epoch": 0, "step": 0, "test/acc": 0.93}])
    other = _run(tmp_path / "runs" / "cls" / "version_2", 1024, [{"epoch": 0, "step": 5, "val/acc": 0.4}])
    png, md = write_report([str(fit), str(test), str(other)], tmp_path / "report", chance=0.2)
    rows = [line for line in md.read_text().splitlines() if line.startswith("| cls ")]
    assert rows == ["| cls | 1024 | 10 | - | 1 | 0.4000 | - |", "| cls | 65536 | 16 | 1.40M | 3 | 0.9500 | 0.9300 |"]
    assert png.stat().st_size > 1000
    with pytest.raises(ValueError, match="only test values"):
        write_report([str(test)], tmp_path / "report_test_only")
