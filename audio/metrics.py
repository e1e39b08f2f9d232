"""Sample-quality metrics for generated audio, computed from a classifier's outputs (SaShiMi / Mamba SC09 protocol).

Notation: ``p_i = p(y | x_i)`` is the classifier's softmax over the C classes for clip ``x_i`` (i = 1..N), ``f_i``
its penultimate-layer features, ``H(p) = -sum_c p_c log p_c`` and ``KL(p || q) = sum_c p_c log(p_c / q_c)``.

* FID (Heusel et al. 2017): ``||mu_r - mu_g||^2 + Tr(S_r + S_g - 2 (S_r S_g)^(1/2))`` with mean ``mu`` and unbiased
  (N-1) covariance ``S`` of the features of the reference set r and the generated set g. Lower is better.
* IS, textbook (Salimans et al. 2016): ``exp( mean_i KL(p_i || p_bar) )``, ``p_bar = mean_i p_i``; between 1 and C,
  higher is better. Optionally averaged over ``num_splits`` equal splits.
* IS, SaShiMi-script variant (:func:`inception_score_sashimi`): the widely used
  ``state-spaces/s4/sashimi/sc09_classifier/test_speech_commands.py`` shuffles the set (numpy seed 0), splits it
  into halves A and B and calls ``scipy.stats.entropy(P_A, tile(mean(P_B)))`` on the (N/2, C) matrices. scipy takes
  the KL along axis 0, i.e. along the *sample* axis, per class: for each class c the column ``P_A[:, c]`` and the
  constant column ``mean(P_B)[c]`` are each normalised over the samples, giving
  ``KL_c = log(N_A) - H(P_A[:, c] / sum_i P_A[i, c])``; the score is ``exp(mean_c KL_c)``. (Half B cancels out.)
  It agrees with the textbook IS on the extremes (uniform -> 1; one-hot and balanced -> C when the shuffled half
  is balanced) but not in general, notably for class-imbalanced sets. A class that gets exactly zero probability
  from every sample in half A (only possible with hard one-hot inputs) counts as KL 0 instead of scipy's NaN.
* Modified IS (Gurumurthy et al. 2017): ``exp( E_{i,j} KL(p_i || p_j) )`` over independent draws i, j. The exact
  value over all N^2 ordered pairs has the closed form
  ``mean_{i,j} KL(p_i || p_j) = -mean_i H(p_i) - sum_c p_bar_c * mean_j log p_{j,c}``;
  :func:`modified_inception_score` computes that, :func:`modified_inception_score_sampled` the SaShiMi script's
  Monte-Carlo estimate (10000 index pairs drawn with replacement, numpy seed 0). Higher is better.
* AM score (Zhou et al. 2018): ``KL(p_bar_ref || p_bar_gen) + mean_i H(p_gen_i)`` where ``p_bar_ref`` is the
  classifier's mean prediction on the reference (training) set. Lower is better.

Logs of probabilities that appear as the *second* argument of a KL are floored at ``eps`` (default 1e-12) so an
exactly-zero probability gives a large finite number instead of inf; ``0 log 0`` is 0. Everything is computed in
float64. The :mod:`torchmetrics` classes at the end accumulate batches and call these functions.
"""

from __future__ import annotations

import numpy as np
import torch
from torchmetrics import Metric
from torchmetrics.utilities import dim_zero_cat

__all__ = [
    "frechet_distance",
    "feature_statistics",
    "fid_from_features",
    "inception_score",
    "inception_score_sashimi",
    "modified_inception_score",
    "modified_inception_score_sampled",
    "am_score",
    "FrechetDistance",
    "InceptionScore",
    "ModifiedInceptionScore",
    "AMScore",
]

EPS = 1e-12


def _as_probs(probs, name: str = "probs") -> torch.Tensor:
    p = torch.as_tensor(np.asarray(probs) if not torch.is_tensor(probs) else probs).detach().to("cpu", torch.float64)
    if p.ndim != 2 or p.shape[0] == 0 or p.shape[1] < 2:
        raise ValueError(f"{name} must be a non-empty (num_samples, num_classes>=2) matrix, got shape {tuple(p.shape)}")
    if not torch.isfinite(p).all() or (p < 0).any():
        raise ValueError(f"{name} must hold finite non-negative probabilities")
    if not torch.allclose(p.sum(1), torch.ones(p.shape[0], dtype=p.dtype), atol=1e-3):
        raise ValueError(f"{name} rows must sum to 1 (pass softmax outputs, not logits)")
    return p / p.sum(1, keepdim=True)


def _as_features(feats, name: str) -> torch.Tensor:
    f = torch.as_tensor(np.asarray(feats) if not torch.is_tensor(feats) else feats).detach().to("cpu", torch.float64)
    if f.ndim != 2 or f.shape[0] < 2:
        raise ValueError(f"{name} must be a (num_samples>=2, dim) matrix, got shape {tuple(f.shape)}")
    if not torch.isfinite(f).all():
        raise ValueError(f"{name} contains NaN or infinite values")
    return f


def _entropy(p: torch.Tensor) -> torch.Tensor:
    return -torch.special.xlogy(p, p).sum(-1)


def _kl(p: torch.Tensor, q: torch.Tensor, eps: float = EPS) -> torch.Tensor:
    return (torch.special.xlogy(p, p) - p * torch.log(q.clamp_min(eps))).sum(-1)


def _psd_sqrt(m: torch.Tensor) -> torch.Tensor:
    vals, vecs = torch.linalg.eigh((m + m.T) / 2)
    return (vecs * vals.clamp_min(0).sqrt()) @ vecs.T


def frechet_distance(mu1, sigma1, mu2, sigma2) -> float:
    """``||mu1 - mu2||^2 + Tr(S1 + S2 - 2 (S1 S2)^(1/2))`` for Gaussians N(mu1, S1), N(mu2, S2).

    ``Tr((S1 S2)^(1/2))`` is computed as the sum of square roots of the eigenvalues of the symmetric PSD matrix
    ``S1^(1/2) S2 S1^(1/2)`` (same eigenvalues as S1 S2), which needs no complex arithmetic.
    """
    mu1, mu2 = (torch.as_tensor(np.asarray(m), dtype=torch.float64) for m in (mu1, mu2))
    s1, s2 = (torch.as_tensor(np.asarray(s), dtype=torch.float64) for s in (sigma1, sigma2))
    if mu1.shape != mu2.shape or s1.shape != s2.shape or s1.shape != (mu1.numel(), mu1.numel()):
        raise ValueError(f"shape mismatch: mu {tuple(mu1.shape)} vs {tuple(mu2.shape)}, "
                         f"sigma {tuple(s1.shape)} vs {tuple(s2.shape)}")
    root1 = _psd_sqrt(s1)
    tr_covmean = torch.linalg.eigvalsh(root1 @ s2 @ root1).clamp_min(0).sqrt().sum()
    value = (mu1 - mu2).pow(2).sum() + torch.trace(s1) + torch.trace(s2) - 2 * tr_covmean
    return float(value.clamp_min(0))


def feature_statistics(features) -> tuple[torch.Tensor, torch.Tensor]:
    """Mean and unbiased (N-1) covariance of (N, dim) features, float64."""
    f = _as_features(features, "features")
    return f.mean(0), torch.cov(f.T, correction=1).reshape(f.shape[1], f.shape[1])


def fid_from_features(features_ref, features_gen) -> float:
    """FID between two feature sets (N_r, dim) and (N_g, dim); see the module docstring."""
    mu_r, s_r = feature_statistics(_as_features(features_ref, "features_ref"))
    mu_g, s_g = feature_statistics(_as_features(features_gen, "features_gen"))
    return frechet_distance(mu_r, s_r, mu_g, s_g)


def inception_score(probs, num_splits: int = 1) -> float:
    """Textbook IS ``exp(mean_i KL(p_i || p_bar))``; with ``num_splits > 1`` the mean of the scores of that many
    contiguous equal splits (Salimans et al. used 10)."""
    p = _as_probs(probs)
    if not 1 <= num_splits <= p.shape[0]:
        raise ValueError(f"num_splits must be in [1, {p.shape[0]}], got {num_splits}")
    scores = [torch.exp(_kl(part, part.mean(0, keepdim=True)).mean()) for part in torch.tensor_split(p, num_splits)]
    return float(torch.stack(scores).mean())


def inception_score_sashimi(probs, seed: int = 0) -> float:
    """IS as computed by the SaShiMi SC09 script (KL along the sample axis); see the module docstring."""
    p = _as_probs(probs)
    if p.shape[0] < 2:
        raise ValueError("inception_score_sashimi needs at least 2 samples")
    order = np.random.RandomState(seed).permutation(p.shape[0])
    half = p[torch.as_tensor(order)][: p.shape[0] // 2]  # (N_A, C)
    totals = half.sum(0, keepdim=True)
    # each class column normalised over samples; a class no sample gives any mass to is taken as the limit of
    # equal tiny probabilities (uniform column, KL 0) where scipy would return NaN
    col = torch.where(totals > 0, half / totals.clamp_min(EPS), torch.full_like(half, 1.0 / half.shape[0]))
    kl_per_class = np.log(half.shape[0]) - _entropy(col.T)  # (C,)
    return float(torch.exp(kl_per_class.mean()))


def modified_inception_score(probs, eps: float = EPS) -> float:
    """Exact mIS over all N^2 ordered pairs: ``exp(-mean_i H(p_i) - sum_c p_bar_c mean_j log p_jc)``."""
    p = _as_probs(probs)
    mean_log = torch.log(p.clamp_min(eps)).mean(0)
    return float(torch.exp(-_entropy(p).mean() - (p.mean(0) * mean_log).sum()))


def modified_inception_score_sampled(probs, num_pairs: int = 10000, seed: int = 0, eps: float = EPS) -> float:
    """The SaShiMi script's mIS estimate: ``exp(mean KL(p_i || p_j))`` over ``num_pairs`` index pairs, each drawn as
    ``numpy.random.choice(N, size=2, replace=True)`` from a generator seeded with ``seed``."""
    p = _as_probs(probs)
    rng = np.random.RandomState(seed)
    pairs = torch.as_tensor(np.stack([rng.choice(np.arange(p.shape[0]), size=2, replace=True)
                                      for _ in range(num_pairs)]))
    return float(torch.exp(_kl(p[pairs[:, 0]], p[pairs[:, 1]], eps).mean()))


def am_score(probs_ref, probs_gen, eps: float = EPS) -> float:
    """AM score ``KL(p_bar_ref || p_bar_gen) + mean_i H(p_gen_i)`` (lower is better)."""
    ref, gen = _as_probs(probs_ref, "probs_ref"), _as_probs(probs_gen, "probs_gen")
    if ref.shape[1] != gen.shape[1]:
        raise ValueError(f"class count differs: probs_ref has {ref.shape[1]}, probs_gen has {gen.shape[1]}")
    return float(_kl(ref.mean(0), gen.mean(0), eps) + _entropy(gen).mean())


class _ProbsMetric(Metric):
    """Accumulates (batch, C) probabilities; subclasses turn the stacked matrix into a score."""

    is_differentiable = False
    full_state_update = False

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.add_state("probs", default=[], dist_reduce_fx="cat")

    def update(self, probs: torch.Tensor) -> None:
        self.probs.append(probs.detach().to(torch.float64))


class InceptionScore(_ProbsMetric):
    """Inception score of accumulated softmax outputs. ``variant="textbook"`` (default, :func:`inception_score`)
    or ``"sashimi"`` (:func:`inception_score_sashimi`, KL along the sample axis)."""

    higher_is_better = True

    def __init__(self, variant: str = "textbook", num_splits: int = 1, **kwargs):
        super().__init__(**kwargs)
        if variant not in ("textbook", "sashimi"):
            raise ValueError(f"variant must be 'textbook' or 'sashimi', got {variant!r}")
        self.variant, self.num_splits = variant, num_splits

    def compute(self) -> torch.Tensor:
        p = dim_zero_cat(self.probs)
        value = inception_score(p, self.num_splits) if self.variant == "textbook" else inception_score_sashimi(p)
        return torch.tensor(value, dtype=torch.float64)


class ModifiedInceptionScore(_ProbsMetric):
    """Modified inception score of accumulated softmax outputs: exact all-pairs mean (default) or, with
    ``num_pairs``, the SaShiMi script's sampled estimate."""

    higher_is_better = True

    def __init__(self, num_pairs: int | None = None, **kwargs):
        super().__init__(**kwargs)
        self.num_pairs = num_pairs

    def compute(self) -> torch.Tensor:
        p = dim_zero_cat(self.probs)
        value = modified_inception_score(p) if self.num_pairs is None else modified_inception_score_sampled(
            p, self.num_pairs)
        return torch.tensor(value, dtype=torch.float64)


class AMScore(Metric):
    """AM score; ``update(probs, real=True)`` feeds the reference set, ``real=False`` the generated set."""

    is_differentiable = False
    higher_is_better = False
    full_state_update = False

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.add_state("ref_probs", default=[], dist_reduce_fx="cat")
        self.add_state("gen_probs", default=[], dist_reduce_fx="cat")

    def update(self, probs: torch.Tensor, real: bool) -> None:
        (self.ref_probs if real else self.gen_probs).append(probs.detach().to(torch.float64))

    def compute(self) -> torch.Tensor:
        return torch.tensor(am_score(dim_zero_cat(self.ref_probs), dim_zero_cat(self.gen_probs)), dtype=torch.float64)


class FrechetDistance(Metric):
    """FID on features you extract yourself; ``update(features, real=True/False)``."""

    is_differentiable = False
    higher_is_better = False
    full_state_update = False

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.add_state("ref_feats", default=[], dist_reduce_fx="cat")
        self.add_state("gen_feats", default=[], dist_reduce_fx="cat")

    def update(self, features: torch.Tensor, real: bool) -> None:
        (self.ref_feats if real else self.gen_feats).append(features.detach().to(torch.float64))

    def compute(self) -> torch.Tensor:
        value = fid_from_features(dim_zero_cat(self.ref_feats), dim_zero_cat(self.gen_feats))
        return torch.tensor(value, dtype=torch.float64)
