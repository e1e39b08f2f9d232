"""Standardisation of pooled sequence features before the classification head.

Mean-pooled hidden states of long windows are nearly the same vector for every window: classes differ by small
shifts around a common mean (a long window averages most variation away), so a linear head on raw features learns
very slowly (on synthetic species at L = 1024: ~40 % accuracy after 60 steps without, ~75 % with). ``PooledBatchNorm``
is a BatchNorm without affine parameters: batch statistics in training, running statistics in evaluation. A training
batch of one window (1 Mbp windows) has no batch statistics; it is normalised with the running statistics instead
(identity until batches of two or more have updated them), so use batch size >= 2 where memory allows.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


class PooledBatchNorm(torch.nn.BatchNorm1d):
    def __init__(self, num_features: int, momentum: float = 0.1, eps: float = 1e-5):
        super().__init__(num_features, eps=eps, momentum=momentum, affine=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.training and x.shape[0] < 2:
            return F.batch_norm(x, self.running_mean, self.running_var, training=False, eps=self.eps)
        return super().forward(x)
