"""audio.metrics on inputs with known answers, and against scipy re-statements of the SaShiMi script's formulas."""

import math

import numpy as np
import pytest
import scipy.linalg
import torch
from scipy.stats import entropy

from audio.metrics import (
    AMScore,
    FrechetDistance,
    InceptionScore,
    ModifiedInceptionScore,
    am_score,
    fid_from_features,
    frechet_distance,
    inception_score,
    inception_score_sashimi,
    modified_inception_score,
    modified_inception_score_sampled,
)


def _dirichlet(n, c=10, alpha=0.3, seed=0):
    return np.random.default_rng(seed).dirichlet(np.full(c, alpha), size=n)


def test_fid_of_a_set_with_itself_is_zero():
    f = np.random.default_rng(0).normal(size=(300, 12))
    assert fid_from_features(f, f) == pytest.approx(0.0, abs=1e-8)


def test_frechet_distance_closed_form_for_two_gaussians():
    d = 6
    rng = np.random.default_rng(1)
    q, _ = np.linalg.qr(rng.normal(size=(d, d)))
    a, b = rng.uniform(0.5, 2.0, d), rng.uniform(0.5, 2.0, d)
    s1, s2 = q @ np.diag(a) @ q.T, q @ np.diag(b) @ q.T  # commuting: Tr sqrt(S1 S2) = sum sqrt(a b)
    mu1, mu2 = rng.normal(size=d), rng.normal(size=d)
    expected = np.sum((mu1 - mu2) ** 2) + np.sum(a + b - 2 * np.sqrt(a * b))
    assert frechet_distance(mu1, s1, mu2, s2) == pytest.approx(expected, rel=1e-9)
    # non-commuting covariances: compare with scipy's matrix square root (the formula the SaShiMi script uses)
    m1, m2 = rng.normal(size=(d, d)), rng.normal(size=(d, d))
    s1, s2 = m1 @ m1.T + 0.1 * np.eye(d), m2 @ m2.T + 0.1 * np.eye(d)
    covmean = scipy.linalg.sqrtm(s1 @ s2).real
    ref = np.sum((mu1 - mu2) ** 2) + np.trace(s1 + s2 - 2 * covmean)
    assert frechet_distance(mu1, s1, mu2, s2) == pytest.approx(ref, rel=1e-7)


def test_fid_from_samples_approaches_the_population_value():
    rng = np.random.default_rng(2)
    x = rng.normal(size=(20000, 3))
    y = rng.normal(size=(20000, 3)) * 2.0 + np.array([1.0, 0.0, -1.0])
    expected = 2.0 + 3 * (1 + 4 - 2 * 2)  # ||dmu||^2 + sum(1 + 4 - 2*sqrt(4))
    assert fid_from_features(x, y) == pytest.approx(expected, rel=0.05)


@pytest.mark.parametrize("score", [inception_score, inception_score_sashimi])
def test_is_of_confident_balanced_predictions_is_num_classes_and_uniform_is_one(score):
    confident = np.eye(10)[np.arange(200) % 10]
    # the SaShiMi variant scores a random half, whose class counts are only roughly balanced
    assert score(confident) == pytest.approx(10.0, rel=1e-9 if score is inception_score else 0.03)
    assert score(np.full((50, 10), 0.1)) == pytest.approx(1.0, abs=1e-9)
    collapsed = np.eye(10)[np.zeros(40, dtype=int)]  # every clip the same confident class
    assert score(collapsed) == pytest.approx(1.0, abs=1e-9)


def test_textbook_is_hand_checked_and_splits():
    p = np.array([[1.0, 0.0], [0.5, 0.5]])
    kl1 = math.log(1 / 0.75)
    kl2 = 0.5 * math.log(0.5 / 0.75) + 0.5 * math.log(0.5 / 0.25)
    assert inception_score(p) == pytest.approx(math.exp((kl1 + kl2) / 2))
    q = _dirichlet(40)
    assert inception_score(q, num_splits=4) == pytest.approx(np.mean([inception_score(s) for s in np.split(q, 4)]))


def test_sashimi_is_matches_the_scipy_statement_and_differs_from_textbook():
    alpha = np.array([3.0, 1.0, 0.5, 0.3, 0.2, 0.2, 0.1, 0.1, 0.1, 0.1])  # class-imbalanced predictions
    p = np.random.default_rng(3).dirichlet(alpha, size=101)
    # the SaShiMi script: seed 0, permute, halves, scipy entropy (axis 0 = samples) vs the tiled mean of half 2
    np.random.seed(0)
    shuffled = p[np.random.permutation(len(p))]
    h1, h2 = shuffled[: len(p) // 2], shuffled[len(p) // 2:]
    ref = np.exp(entropy(h1, np.repeat(h2.mean(0)[None, :], len(h1), axis=0)).mean())
    assert inception_score_sashimi(p) == pytest.approx(ref, rel=1e-10)
    assert abs(inception_score_sashimi(p) - inception_score(p)) > 0.1


def test_modified_is_exact_hand_checked_and_brute_force():
    a, b = np.array([0.5, 0.5]), np.array([0.9, 0.1])
    kl_ab, kl_ba = entropy(a, b), entropy(b, a)
    assert modified_inception_score(np.stack([a, b])) == pytest.approx(math.exp((kl_ab + kl_ba) / 4))
    p = _dirichlet(30, seed=4) * 0.98 + 0.002
    brute = np.mean([entropy(p[i], p[j]) for i in range(len(p)) for j in range(len(p))])
    assert modified_inception_score(p) == pytest.approx(math.exp(brute), rel=1e-10)
    assert modified_inception_score(np.eye(10)[np.arange(20) % 10]) > 1e9  # distinct one-hots: KL ~ inf (floored)
    assert modified_inception_score(np.full((5, 10), 0.1)) == pytest.approx(1.0)


def test_sampled_modified_is_matches_the_script_loop():
    p = _dirichlet(25, seed=5) * 0.98 + 0.002
    np.random.seed(0)
    kls = []
    for _ in range(500):
        i, j = np.random.choice(np.arange(len(p)), size=2, replace=True)
        kls.append(entropy(p[i], p[j]))
    assert modified_inception_score_sampled(p, num_pairs=500) == pytest.approx(math.exp(np.mean(kls)), rel=1e-10)


def test_am_score_hand_checked():
    ref = np.array([[0.5, 0.5]])
    gen = np.array([[0.8, 0.2], [0.6, 0.4]])
    kl = 0.5 * math.log(0.5 / 0.7) + 0.5 * math.log(0.5 / 0.3)
    ent = (entropy([0.8, 0.2]) + entropy([0.6, 0.4])) / 2
    assert am_score(ref, gen) == pytest.approx(kl + ent)
    confident = np.eye(10)[np.arange(100) % 10]
    assert am_score(confident, confident) == pytest.approx(0.0, abs=1e-12)


def test_torchmetrics_classes_accumulate_batches():
    p = torch.from_numpy(_dirichlet(64, seed=6))
    r = torch.from_numpy(_dirichlet(48, seed=7))
    feats_r, feats_g = torch.randn(80, 5), torch.randn(70, 5) + 0.5
    is_t, is_s, mis, am, fid = InceptionScore(), InceptionScore("sashimi"), ModifiedInceptionScore(), AMScore(), \
        FrechetDistance()
    for chunk in p.split(20):
        for m in (is_t, is_s, mis):
            m.update(chunk)
        am.update(chunk, real=False)
    for chunk in r.split(20):
        am.update(chunk, real=True)
    for chunk in feats_r.split(30):
        fid.update(chunk, real=True)
    for chunk in feats_g.split(30):
        fid.update(chunk, real=False)
    assert float(is_t.compute()) == pytest.approx(inception_score(p))
    assert float(is_s.compute()) == pytest.approx(inception_score_sashimi(p))
    assert float(mis.compute()) == pytest.approx(modified_inception_score(p))
    assert float(am.compute()) == pytest.approx(am_score(r, p))
    assert float(fid.compute()) == pytest.approx(fid_from_features(feats_r, feats_g))


def test_bad_inputs_are_rejected():
    with pytest.raises(ValueError, match="softmax"):
        inception_score(np.random.default_rng(0).normal(size=(5, 3)) + 3)
    with pytest.raises(ValueError, match="shape"):
        inception_score(np.ones(4) / 4)
    with pytest.raises(ValueError, match="class count"):
        am_score(np.full((2, 3), 1 / 3), np.full((2, 4), 0.25))
    with pytest.raises(ValueError, match="features_gen"):
        fid_from_features(np.zeros((5, 2)), np.zeros((1, 2)))
