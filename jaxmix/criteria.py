"""Parameter counts and information criteria (BIC, AIC) of a fitted mixture.

Definitions follow scikit-learn (``GaussianMixture.bic`` / ``.aic``)::

    p   = cov_params(k, d) + k d + (k - 1)          (n_parameters)
    BIC = -2 n * mean_loglik + p ln n
    AIC = -2 n * mean_loglik + 2 p

where ``mean_loglik`` is the mean per-sample log-density of the *fitted*
parameters on the data (sklearn's ``score``), computed in chunks.

>>> n_parameters(3, 2, "full")
17
"""

from __future__ import annotations

import math

import jax
import numpy as np

from jaxmix.compiling import jit
from jaxmix.data.chunked import Chunked, chunk, chunk_rows
from jaxmix.gmm.covariance import family
from jaxmix.gmm.density import log_prob
from jaxmix.params import GMMParams
from jaxmix.validation import check_data, check_gmm_params, check_int


def n_parameters(k: int, d: int, covariance_type: str = "full") -> int:
    """Free parameters of a ``k``-component, ``d``-feature mixture (sklearn's count).

    Covariance parameters (the family's ``n_params``) plus ``k d`` means plus
    ``k - 1`` weights.

    >>> n_parameters(3, 2, "full"), n_parameters(3, 2, "spherical")
    (17, 11)
    """
    k = check_int(k, "k")
    d = check_int(d, "d")
    return int(family(covariance_type).n_params(k, d) + k * d + k - 1)


def criteria(mean_loglik, n: int, p):
    """``(BIC, AIC)`` from the mean per-sample log-likelihood (host, float64)."""
    total = -2.0 * n * np.asarray(mean_loglik, np.float64)
    return total + np.asarray(p) * math.log(n), total + 2.0 * np.asarray(p)


def score_chunks(params: GMMParams, data: Chunked):
    """``log p(x)`` per row of every chunk, ``(n_chunks, chunk)`` (exact path)."""
    return jax.lax.map(lambda x: log_prob(params, x), data.x)


@jit
def _score_samples(params: GMMParams, data: Chunked):
    return score_chunks(params, data).reshape(-1)


def score_samples_chunked(params: GMMParams, x, chunk_size: int | None = None) -> jax.Array:
    """``log p(x_n)`` for each row (sklearn's ``score_samples``), computed in
    chunks of ``chunk_size`` rows so memory stays ``O(chunk * k * d)``."""
    x = check_data(x)
    n, d = x.shape
    params = check_gmm_params(params, "params", d=d, dtype=x.dtype)
    size = (chunk_rows(n, params.n_components * d) if chunk_size is None
            else check_int(chunk_size, "chunk_size"))
    return _score_samples(params, chunk(x, size))[:n]


def bic(params: GMMParams, x, chunk_size: int | None = None) -> float:
    """Bayesian information criterion of ``params`` on ``x`` (lower is better).

    ``-2 n * mean_loglik + p ln n`` with ``p = n_parameters(k, d, type)``,
    as ``sklearn.mixture.GaussianMixture.bic``.
    """
    return float(criteria(*_loglik_and_p(params, x, chunk_size))[0])


def aic(params: GMMParams, x, chunk_size: int | None = None) -> float:
    """Akaike information criterion ``-2 n * mean_loglik + 2 p`` (lower is better)."""
    return float(criteria(*_loglik_and_p(params, x, chunk_size))[1])


def _loglik_and_p(params, x, chunk_size):
    scores = score_samples_chunked(params, x, chunk_size)
    n, d = scores.shape[0], params.n_features
    mean = float(np.mean(np.asarray(scores, np.float64)))
    return mean, n, n_parameters(params.n_components, d, params.covariance_type)
