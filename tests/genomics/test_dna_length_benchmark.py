"""The GPU length benchmark must at least run (and report sane rows) on the CPU at tiny lengths."""

import importlib.util
from pathlib import Path

SCRIPT = Path(__file__).resolve().parents[2] / "benchmarks" / "dna_length.py"


def test_benchmark_runs_on_cpu_and_writes_csv(tmp_path, capsys):
    spec = importlib.util.spec_from_file_location("dna_length", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    out = tmp_path / "bench.csv"
    assert module.main(["--device", "cpu", "--min-log2-len", "5", "--max-log2-len", "6", "--d-model", "16",
                        "--n-layer", "1", "--d-state", "4", "--steps", "1", "--warmup", "0",
                        "--checkpoint-from", "6", "--csv", str(out)]) == 0
    table = capsys.readouterr().out
    assert "| pretrain | 2^6 | 1 | y |" in table and "| classify | 2^5 | 1 | n |" in table
    rows = out.read_text().splitlines()
    assert len(rows) == 1 + 4 and all(",ok," in r for r in rows[1:])
