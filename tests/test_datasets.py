"""The built-in data sets are what their docstrings say they are."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.datasets import make_blobs

from jaxmix.datasets import _blobs, seed_blobs


def test_seed_blobs_is_the_seed_notebooks_data():
    x1, _ = make_blobs(n_samples=1000, centers=((4, -4), (0, 0)), random_state=42)
    x2, _ = make_blobs(n_samples=250, centers=1, random_state=42)
    expected = np.concatenate([x1 @ np.array([[0.374, 0.95], [0.732, 0.598]]), x2 + [6, -8]])
    np.testing.assert_array_equal(seed_blobs(), expected)


@pytest.mark.parametrize("n, centers, seed", [(7, [[1.0, 2.0], [3.0, 4.0], [5.0, 6.0]], 0),
                                              (10, None, 3), (1, [[0.0, 0.0]], 1)])
def test_blobs_draws_as_make_blobs(n, centers, seed):
    expected, _ = make_blobs(n_samples=n, centers=1 if centers is None else centers,
                             random_state=seed)
    got = _blobs(n, None if centers is None else np.asarray(centers), seed)
    np.testing.assert_array_equal(got, expected)
