"""mamba-audio generate: --cuda-graph (default) / --no-cuda-graph reach sample_tokens; output unchanged on the CPU."""

import pytest
import torch

import apps.audio as audio_app
import audio.generation as generation
from audio.sashimi import SaShiMi


@pytest.fixture
def tiny_model(monkeypatch):
    torch.manual_seed(0)
    model = SaShiMi(d_model=8, n_layers=1, pool=[2, 2], mamba_d_state=4).eval()
    monkeypatch.setattr(audio_app, "_load_model", lambda checkpoint, device: model)
    return model


def _generate(tmp_path, name, *extra):
    out = tmp_path / name
    argv = ["--checkpoint", "unused.ckpt", "--out-dir", str(out), "--num-samples", "3", "--length", "10",
            "--batch-size", "2", "--no-progress", "--plot-clips", "0", "--device", "cpu", *extra]
    assert audio_app.generate_main(argv) == 0
    return (out / generation.LIKELIHOOD_FILE).read_text()


def test_cuda_graph_flag_is_passed_on(tmp_path, tiny_model, monkeypatch):
    seen = []
    real = generation.sample_tokens

    def spy(*args, **kwargs):
        seen.append(kwargs["use_cuda_graph"])
        return real(*args, **kwargs)

    monkeypatch.setattr(generation, "sample_tokens", spy)
    with_graph = _generate(tmp_path, "a")
    without = _generate(tmp_path, "b", "--no-cuda-graph")
    assert seen == [True, False]
    assert with_graph == without  # on the CPU both take the eager loop: same seed, same clips
    assert audio_app._generate_parser().parse_args(["--checkpoint", "c", "--out-dir", "o", "--cuda-graph"]).cuda_graph
