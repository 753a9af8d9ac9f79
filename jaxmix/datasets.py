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
    from sklearn.datasets import make_blobs

    x1, _ = make_blobs(n_samples=1000, centers=((4, -4), (0, 0)), random_state=42)
    x1 = x1 @ np.array([[0.374, 0.95], [0.732, 0.598]])
    x2, _ = make_blobs(n_samples=250, centers=1, random_state=42)
    return np.concatenate([x1, x2 + [6, -8]])
