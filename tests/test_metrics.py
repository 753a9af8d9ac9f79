"""Silhouette against sklearn.metrics (to 1e-5), chunked, float32 and float64."""

from __future__ import annotations

import jax

jax.config.update("jax_enable_x64", True)  # as tests/conftest.py; idempotent

import numpy as np  # noqa: E402
import pytest  # noqa: E402
from sklearn import metrics  # noqa: E402
from sklearn.datasets import make_blobs  # noqa: E402

from jaxmix import silhouette_samples, silhouette_score  # noqa: E402
from jaxmix.datasets import seed_blobs  # noqa: E402


def data(name):
    if name == "seed":
        x = seed_blobs()
        y = np.where(x[:, 0] > 3.0, 0, np.where(x[:, 1] < -4.0, 1, 2))
        return x, y
    x, y = make_blobs(700, centers=5, n_features=4, cluster_std=2.0, random_state=1)
    return x + 50.0, y  # far from the origin: centring must keep float32 accurate


@pytest.mark.parametrize("name", ["seed", "blobs"])
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("chunk_size", [None, 97])
def test_silhouette_matches_sklearn(name, dtype, chunk_size):
    x, y = data(name)
    x = x.astype(dtype)
    expected = metrics.silhouette_score(x, y)
    got = silhouette_score(x, y, chunk_size=chunk_size)
    assert abs(got - expected) < 1e-5
    s = np.asarray(silhouette_samples(x, y, chunk_size=chunk_size))
    np.testing.assert_allclose(s, metrics.silhouette_samples(x, y), atol=1e-5)


def test_silhouette_singletons_duplicates_and_label_types():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(60, 3))
    x[5] = x[6]  # a zero distance that is not a self-distance
    y = np.array(["a", "b", "c"])[rng.integers(0, 3, 60)]
    y[0] = "lonely"  # singleton cluster: s = 0 there
    np.testing.assert_allclose(silhouette_score(x, y), metrics.silhouette_score(x, y), atol=1e-9)
    s = np.asarray(silhouette_samples(x, y))
    assert s[0] == 0.0
    np.testing.assert_allclose(s, metrics.silhouette_samples(x, y), atol=1e-9)


def test_silhouette_detects_bad_labels():
    """A clear clustering scores high, a shuffled one near zero."""
    x, y = make_blobs(300, centers=3, cluster_std=0.5, random_state=0)
    good = silhouette_score(x, y)
    bad = silhouette_score(x, np.random.default_rng(0).permutation(y))
    assert good > 0.6 and abs(bad) < 0.1


@pytest.mark.parametrize("labels,match", [
    (np.zeros(10), "number of labels"), (np.arange(10), "number of labels"),
    (np.zeros(9), "shape"),
])
def test_silhouette_validates(labels, match):
    with pytest.raises(ValueError, match=match):
        silhouette_score(np.arange(20.0).reshape(10, 2), labels)
