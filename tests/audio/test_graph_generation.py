"""The static-buffer step (what the CUDA graphs capture), run eagerly, against the eager multinomial loop.

Same generator seed -> the same tokens and the same log-likelihoods, bit for bit, for Mamba and S4D U-Nets, with
temperature and top-p, over clip lengths that are not a multiple of the pooling period, and when the sampler's
buffers are reset in place for a second batch. The capture itself needs CUDA (last test, skipped here).
"""

import pytest
import torch

from audio.generation import sample_batch_eager, sample_tokens
from audio.graph_generation import StaticStepSampler, state_pointers
from audio.sashimi import SaShiMi

TINY = {"d_model": 8, "n_layers": 1, "mamba_d_state": 4, "s4d_d_state": 8, "attn_head_dim": 16}


def _model(block="mamba", center=None, pool=(2, 2), seed=0):
    torch.manual_seed(seed)
    return SaShiMi(block=block, center_block=center, pool=list(pool), **TINY).eval()


@pytest.mark.parametrize("block,pool,temperature,top_p", [("mamba", (2, 2), 1.3, 0.9), ("mamba", (2, 3), 1.0, 1.0),
                                                          ("s4d", (2, 2), 0.8, 0.95)])
def test_static_step_equals_eager_loop(block, pool, temperature, top_p):
    model = _model(block, pool=pool)
    length, batch = 15, 3  # 15 is not a multiple of the period (4 or 6)
    eager_gen, static_gen = torch.Generator().manual_seed(7), torch.Generator().manual_seed(7)
    sampler = StaticStepSampler(model, batch, temperature, top_p, generator=static_gen)
    assert sampler.period == pool[0] * pool[1]
    for _ in range(2):  # the second batch reuses the sampler: its buffers and counters are reset in place
        ref_tokens, ref_ll = sample_batch_eager(model, batch, length, temperature, top_p, eager_gen)
        tokens, ll = sampler.run(length)
        assert torch.equal(tokens, ref_tokens)
        assert torch.equal(ll, ref_ll)
    assert len(set(ref_tokens.flatten().tolist())) > 5  # really sampled, not a constant


def test_static_step_differs_with_another_seed():
    """The comparison above can fail: another seed gives other tokens."""
    model = _model()
    a, _ = StaticStepSampler(model, 2, generator=torch.Generator().manual_seed(1)).run(12)
    b, _ = sample_batch_eager(model, 2, 12, generator=torch.Generator().manual_seed(2))
    assert not torch.equal(a, b)


@pytest.mark.parametrize("block,center,in_place", [("mamba", None, True), ("s4d", None, True),
                                                   ("mamba", "mha", False)])
def test_state_stays_in_place(block, center, in_place):
    """What graph capture requires: the state's tensors keep their storage over a full pooling period."""
    model = _model(block, center)
    sampler = StaticStepSampler(model, 2)
    before = state_pointers(sampler.state)
    sampler.run(2 * sampler.period)
    assert (state_pointers(sampler.state) == before) is in_place


def test_sample_tokens_falls_back_to_eager_on_cpu():
    model = _model()
    kw = {"num_samples": 3, "length": 9, "batch_size": 2, "progress": False}
    a = sample_tokens(model, generator=torch.Generator().manual_seed(3), use_cuda_graph=True, **kw)
    b = sample_tokens(model, generator=torch.Generator().manual_seed(3), use_cuda_graph=False, **kw)
    assert torch.equal(a[0], b[0]) and torch.equal(a[1], b[1])


def test_graph_needs_cuda_and_valid_arguments():
    model = _model()
    with pytest.raises(ValueError, match="CUDA"):
        StaticStepSampler(model, 2, cuda_graph=True)
    with pytest.raises(ValueError, match="top_p"):
        StaticStepSampler(model, 2, top_p=0.0)
    with pytest.raises(ValueError, match="length"):
        StaticStepSampler(model, 2).run(0)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="CUDA graph capture needs a GPU")
def test_cuda_graph_matches_eager_on_gpu():
    model = _model(pool=(4, 4)).cuda()
    sampler = StaticStepSampler(model, 4, 1.1, 0.95, generator=torch.Generator("cuda").manual_seed(5),
                                cuda_graph=True)
    tokens, ll = sampler.run(40)
    ref_tokens, ref_ll = sample_batch_eager(model, 4, 40, 1.1, 0.95, torch.Generator("cuda").manual_seed(5))
    assert torch.equal(tokens, ref_tokens)
    torch.testing.assert_close(ll, ref_ll, rtol=1e-9, atol=1e-6)
