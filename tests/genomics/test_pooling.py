import torch

from genomics.pooling import PooledBatchNorm


def test_pooled_batchnorm_standardises_batches_and_handles_batch_of_one():
    norm = PooledBatchNorm(3)
    x = torch.tensor([[1.0, 10.0, 100.0], [1.2, 10.0, 101.0], [0.8, 10.0, 99.0]])
    out = norm(x)
    assert torch.allclose(out.mean(0), torch.zeros(3), atol=1e-3)
    assert torch.allclose(out[:, 0], torch.tensor([0.0, 1.2247, -1.2247]), atol=1e-3)  # (x - mean) / std
    assert out[:, 1].abs().max() < 1e-3  # constant feature: no division blow-up
    single = norm(x[:1])  # training batch of one: running statistics, no error
    expected = (x[:1] - norm.running_mean) / torch.sqrt(norm.running_var + norm.eps)
    assert torch.allclose(single, expected)
    norm.eval()
    assert torch.allclose(norm(x[:1]), expected)
