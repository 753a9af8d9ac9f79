"""The command's report helpers: the covariances the fit figure draws."""

from __future__ import annotations

import numpy as np
import pytest

from jaxmix import fit_gmm
from jaxmix.cli.report import full_covariances


@pytest.mark.parametrize("covariance_type", ["full", "tied", "diag", "spherical"])
def test_full_covariances_invert_the_precisions(covariance_type):
    """Against the inverse of P = L L^T of each component (float64)."""
    x = np.random.default_rng(0).normal(size=(90, 3)) * [1.0, 2.0, 0.5]
    p = fit_gmm(0, x, 2, covariance_type=covariance_type, max_iter=5).best_params
    L = np.asarray(p.precisions_cholesky, np.float64)
    if covariance_type == "full":
        precisions = L @ np.swapaxes(L, -1, -2)
    elif covariance_type == "tied":
        precisions = np.stack([L @ L.T] * 2)
    elif covariance_type == "diag":
        precisions = np.stack([np.diag(v ** 2) for v in L])
    else:
        precisions = np.stack([np.eye(3) * v ** 2 for v in L])
    np.testing.assert_allclose(full_covariances(p), np.linalg.inv(precisions), rtol=1e-10)
