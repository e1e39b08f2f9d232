"""PooledBatchNorm on the feature scale of long windows: pooled features of a pretrained backbone vary across windows
by a variance of ~1e-7 (measured at L = 2^16 on the synthetic species), far below BatchNorm's usual eps and initial
running variance. Both must not swamp it, in training and right after the first steps in evaluation."""

import torch

from genomics.pooling import PooledBatchNorm


def _tiny_variance_batch(seed: int, n: int = 8, d: int = 6) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return 1.0 + 3e-4 * torch.randn(n, d, generator=g)  # std 3e-4: variance 9e-8 around a common mean


def test_training_output_is_standardised_despite_tiny_variance():
    x = _tiny_variance_batch(0)
    out = PooledBatchNorm(6)(x)
    reference = (x - x.mean(0)) / x.std(0, unbiased=False)
    assert torch.allclose(out, reference, atol=1e-3)  # eps = 1e-5 would give ~0.03x this
    assert torch.allclose(out.std(0, unbiased=False), torch.ones(6), atol=1e-3)


def test_running_statistics_start_from_the_first_batch():
    norm = PooledBatchNorm(6)
    first, second = _tiny_variance_batch(1), _tiny_variance_batch(2)
    norm(first)
    assert torch.allclose(norm.running_mean, first.mean(0))
    assert torch.allclose(norm.running_var, first.var(0), rtol=1e-4)  # not 0.9 * 1 + 0.1 * var
    norm(second)  # later batches: the usual exponential average with momentum 0.1
    assert torch.allclose(norm.running_mean, 0.9 * first.mean(0) + 0.1 * second.mean(0))
    norm.eval()
    out = norm(first)
    assert 0.5 < out.std(0).mean() < 2.0  # evaluation after two steps is on the training scale, not ~3e-4 of it
    restored = PooledBatchNorm(6)
    restored.load_state_dict(norm.state_dict())
    restored.train()
    restored(second)  # a loaded state is already started: a normal momentum update, not a reset
    assert torch.allclose(restored.running_mean, 0.9 * norm.running_mean + 0.1 * second.mean(0))
    assert int(restored.num_batches_tracked) == 3
