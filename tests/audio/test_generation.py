"""Recurrent sampling: reported likelihoods match teacher forcing, top-p, seeding, and safe file writing."""

import math

import pytest
import soundfile as sf
import torch

from audio import mulaw
from audio.generation import (
    LIKELIHOOD_FILE,
    filter_logits,
    sample_tokens,
    teacher_forced_log_likelihood,
    write_clips,
)
from audio.sashimi import SaShiMi
from audio.wav_io import AudioFileError


@pytest.fixture(scope="module")
def model():
    torch.manual_seed(0)
    return SaShiMi(d_model=8, n_layers=1, pool=[2, 2], mamba_d_state=4).eval()


def test_sampled_log_likelihood_matches_teacher_forcing(model):
    tokens, ll = sample_tokens(model, num_samples=3, length=12, batch_size=2, temperature=1.3,
                               generator=torch.Generator().manual_seed(0), progress=False)
    assert tokens.shape == (3, 12) and tokens.min() >= 0 and tokens.max() < 256
    torch.testing.assert_close(ll, teacher_forced_log_likelihood(model, tokens), atol=1e-3, rtol=1e-5)


def test_seeded_sampling_is_reproducible(model):
    a, _ = sample_tokens(model, 2, 8, generator=torch.Generator().manual_seed(5), progress=False)
    b, _ = sample_tokens(model, 2, 8, generator=torch.Generator().manual_seed(5), progress=False)
    assert torch.equal(a, b)


def test_tiny_top_p_is_greedy(model):
    tokens, _ = sample_tokens(model, 2, 10, top_p=1e-6, generator=torch.Generator().manual_seed(1), progress=False)
    inputs = torch.cat([torch.full((2, 1), mulaw.ZERO_TOKEN), tokens[:, :-1]], dim=1)
    with torch.no_grad():
        assert torch.equal(tokens, model(inputs).argmax(-1))


def test_filter_logits_nucleus():
    logits = torch.log(torch.tensor([[0.5, 0.3, 0.15, 0.05]]))
    kept = torch.isfinite(filter_logits(logits, top_p=0.7))
    assert kept.tolist() == [[True, True, False, False]]
    assert torch.isfinite(filter_logits(logits, top_p=1.0)).all()
    with pytest.raises(ValueError):
        filter_logits(logits, temperature=0.0)


def test_write_clips_sorted_and_never_overwrites(tmp_path):
    tokens = torch.stack([torch.full((160,), 128), torch.randint(0, 256, (160,)), torch.arange(160) % 256])
    ll = torch.tensor([-900.0, -100.0, -500.0], dtype=torch.float64)
    paths = write_clips(tmp_path / "gen", tokens, ll, sort_by_likelihood=True)
    rows = (tmp_path / "gen" / LIKELIHOOD_FILE).read_text().splitlines()
    assert rows[0].split("\t")[0] == "file" and [float(r.split("\t")[1]) for r in rows[1:]] == [-100.0, -500.0, -900.0]
    assert float(rows[1].split("\t")[3]) == pytest.approx(100 / 160 / math.log(2), rel=1e-5)
    wave, rate = sf.read(paths[0], dtype="float32")
    assert rate == 16000 and len(wave) == 160
    assert torch.allclose(torch.from_numpy(wave), mulaw.decode(tokens[1]), atol=1 / 32768 + 1e-6)
    before = paths[0].read_bytes()
    with pytest.raises(AudioFileError, match="overwrite"):
        write_clips(tmp_path / "gen", tokens[:1], ll[:1])
    assert paths[0].read_bytes() == before
    write_clips(tmp_path / "gen", tokens[:1], ll[:1], overwrite=True)
    assert len((tmp_path / "gen" / LIKELIHOOD_FILE).read_text().splitlines()) == 2
