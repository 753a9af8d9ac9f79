"""Density-based anomaly detection: the threshold is np.percentile of score_samples."""

from __future__ import annotations

import jax

jax.config.update("jax_enable_x64", True)  # as tests/conftest.py; idempotent

import numpy as np  # noqa: E402
import pytest  # noqa: E402
from sklearn.mixture import GaussianMixture  # noqa: E402

from jaxmix import (GMMParams, density_threshold, flag_anomalies,  # noqa: E402
                    score_samples_chunked)
from jaxmix.datasets import seed_blobs  # noqa: E402


@pytest.fixture(scope="module")
def model():
    """sklearn's fit on the seed data and the same parameters as GMMParams."""
    x = seed_blobs()
    gm = GaussianMixture(3, n_init=2, random_state=42).fit(x)
    p = GMMParams(gm.weights_, gm.means_, gm.precisions_cholesky_, "full")
    return x, gm, p


@pytest.mark.parametrize("percentile", [0.0, 4.0, 33.3, 100.0])
def test_threshold_matches_np_percentile_of_score_samples(model, percentile):
    x, gm, p = model
    expected = np.percentile(gm.score_samples(x), percentile)
    np.testing.assert_allclose(density_threshold(p, x, percentile), expected, rtol=1e-10)
    np.testing.assert_allclose(density_threshold(p, x, percentile, chunk_size=100), expected,
                               rtol=1e-10)


def test_flags_are_points_below_threshold(model):
    """The seeds' rule: 4th percentile of the training densities."""
    x, gm, p = model
    t = density_threshold(p, x)  # default percentile 4
    flags = flag_anomalies(p, x, t)
    scores = gm.score_samples(x)
    np.testing.assert_array_equal(flags, scores < np.percentile(scores, 4))
    assert flags.sum() == int(np.ceil(0.04 * (len(x) - 1)))  # 50 of 1250
    new = np.array([[0.0, 0.0], [30.0, 30.0], [-20.0, 5.0]])
    np.testing.assert_array_equal(flag_anomalies(p, new, t), gm.score_samples(new) < t)
    assert flag_anomalies(p, new, t).tolist()[1:] == [True, True]


def test_float32(model):
    _, _, p64 = model
    x = seed_blobs().astype(np.float32)
    p = jax.tree.map(lambda a: np.asarray(a, np.float32), p64)
    scores = np.asarray(score_samples_chunked(p, x))
    assert scores.dtype == np.float32
    t = density_threshold(p, x, 4.0)
    np.testing.assert_allclose(t, np.percentile(scores.astype(np.float64), 4.0), rtol=1e-12)
    assert abs(flag_anomalies(p, x, t).mean() - 0.04) < 0.002


def test_validation(model):
    x, _, p = model
    with pytest.raises(ValueError, match="percentile"):
        density_threshold(p, x, 101)
    with pytest.raises(ValueError, match="threshold"):
        flag_anomalies(p, x, np.nan)
    with pytest.raises(ValueError, match="features"):
        density_threshold(p, x[:, :1])
