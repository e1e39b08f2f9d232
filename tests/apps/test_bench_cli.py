"""mamba-bench finds the benchmark scripts by name and refuses unknown ones."""

from apps.bench import available, main


def test_lists_the_benchmark_scripts(capsys):
    assert {"scan", "dna_length", "audio_throughput", "ddp_scaling"} <= set(available())
    assert main([]) == 0
    assert "scan" in capsys.readouterr().out


def test_unknown_benchmark_is_refused(capsys):
    assert main(["no_such_bench"]) == 2
    assert "unknown benchmark 'no_such_bench'" in capsys.readouterr().err


def test_runs_a_script_with_its_arguments(capsys):
    try:
        main(["scan", "--help"])
    except SystemExit as stop:  # argparse's --help exits 0
        assert stop.code == 0
    assert "--decode" in capsys.readouterr().out
