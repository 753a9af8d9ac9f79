"""Mixtures of any component family: parameters, densities, sampling and
the information criteria (the same definitions as for Gaussian mixtures).

>>> import jax, jax.numpy as jnp
>>> from jaxmix.families import Bernoulli, MixtureParams, log_prob
>>> p = MixtureParams(jnp.array([0.5, 0.5]), jnp.array([[0.9, 0.1], [0.2, 0.8]]))
>>> [round(float(v), 4) for v in jnp.exp(log_prob(Bernoulli(), p, jnp.array([[1.0, 0.0]])))]
[0.425]
"""

from __future__ import annotations

from typing import Any, NamedTuple

import functools

import jax
import jax.numpy as jnp
import numpy as np

from jaxmix.compiling import jit
from jaxmix.data.chunked import chunk, chunk_rows
from jaxmix.validation import check_data, check_int


class MixtureParams(NamedTuple):
    """Attributes:
      weights: ``(k,)`` mixture weights (leading restart axes allowed).
      theta: the family's component parameters (leaves lead with ``k``).
    """

    weights: jax.Array
    theta: Any


def weighted_log_prob(family, params: MixtureParams, x):
    """``(n, k)``: ``log w_j + log p(x_n | component j)``."""
    return jnp.log(params.weights) + family.log_prob(params.theta, x)


def log_prob(family, params: MixtureParams, x):
    """``(n,)`` log-density of the mixture."""
    return jax.nn.logsumexp(weighted_log_prob(family, params, x), axis=1)


def responsibilities(family, params: MixtureParams, x):
    """``(n, k)`` posterior component probabilities."""
    return jax.nn.softmax(weighted_log_prob(family, params, x), axis=1)


def predict(family, params: MixtureParams, x):
    """``(n,)`` most probable component."""
    return jnp.argmax(weighted_log_prob(family, params, x), axis=1)


def sample(family, key, params: MixtureParams, n: int):
    """``(x (n, d), labels (n,))`` drawn from the mixture (one compiled program)."""
    return _sample(key, params, family=family, n=int(n))


@functools.partial(jit, static_argnames=("family", "n"))
def _sample(key, params: MixtureParams, *, family, n: int):
    k_labels, k_x = jax.random.split(key)
    labels = jax.random.categorical(k_labels, jnp.log(params.weights), shape=(n,))
    return family.sample(k_x, params.theta, labels), labels


def n_parameters(family, params: MixtureParams, n_features: int) -> int:
    """Free parameters on ``n_features`` columns: ``k - 1`` weights plus ``k``
    components' own."""
    k = params.weights.shape[-1]
    return k - 1 + k * family.n_free(n_features)


def score_samples_chunked(family, params: MixtureParams, x, chunk_size: int | None = None):
    """``(n,)`` log-density of each row (``-inf`` outside the family's
    support), computed in chunks of ``chunk_size`` rows (memory ``O(chunk *
    k * d)``; one compiled program per chunk shape)."""
    x = check_data(x)
    n, d = x.shape
    size = (chunk_rows(n, params.weights.shape[-1] * d) if chunk_size is None
            else check_int(chunk_size, "chunk_size"))
    return _score_chunks(params, chunk(x, size).x, family=family).reshape(-1)[:n]


@functools.partial(jit, static_argnames=("family",))
def _score_chunks(params: MixtureParams, xs, *, family):
    """Rows outside the family's support have density 0 (score ``-inf``), so
    they are the first anomalies, never the most typical rows."""
    return jax.lax.map(lambda x: jnp.where(family.in_support(x), log_prob(family, params, x),
                                           -jnp.inf), xs)


def _total(family, params, x) -> float:
    return float(np.sum(np.asarray(score_samples_chunked(family, params, x), np.float64)))


def bic(family, params: MixtureParams, x) -> float:
    """``-2 log L + n_parameters log n`` (scikit-learn's definition)."""
    return -2 * _total(family, params, x) + n_parameters(family, params, np.shape(x)[1]) * \
        np.log(np.shape(x)[0])


def aic(family, params: MixtureParams, x) -> float:
    """``-2 log L + 2 n_parameters``."""
    return -2 * _total(family, params, x) + 2 * n_parameters(family, params, np.shape(x)[1])
