"""Built-in data sets."""

from __future__ import annotations

import numpy as np


def seed_blobs() -> np.ndarray:
    """The seed notebook's data: 1250 two-dimensional points from three blobs.

    Two blobs from ``make_blobs(n_samples=1000, centers=((4, -4), (0, 0)),
    random_state=42)`` sheared by ``[[0.374, 0.95], [0.732, 0.598]]``, plus
    250 points of ``make_blobs(n_samples=250, centers=1, random_state=42)``
    shifted by ``(6, -8)``.
    """
    x1 = _blobs(1000, np.array([[4.0, -4.0], [0.0, 0.0]]), 42)
    x1 = x1 @ np.array([[0.374, 0.95], [0.732, 0.598]])
    x2 = _blobs(250, None, 42)
    return np.concatenate([x1, x2 + [6, -8]])


def _blobs(n: int, centers, seed: int) -> np.ndarray:
    """``sklearn.datasets.make_blobs(n_samples=n, centers=centers or 1,
    random_state=seed)[0]`` for unit-variance 2-D blobs, with the same draws
    in the same order (tested against it): scikit-learn's import would take
    half a second of the ``jaxmix demo`` start."""
    rng = np.random.RandomState(seed)
    if centers is None:  # one centre drawn in make_blobs' default box
        centers = rng.uniform(-10.0, 10.0, size=(1, 2))
    per = [n // len(centers) + (i < n % len(centers)) for i in range(len(centers))]
    x = np.concatenate([rng.normal(loc=c, scale=1.0, size=(m, 2)) for c, m in zip(centers, per)])
    order = np.arange(n)
    rng.shuffle(order)
    return x[order]
