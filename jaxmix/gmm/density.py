"""Pure Gaussian-mixture densities.

All functions take a :class:`~jaxmix.params.GMMParams` and data ``x`` of shape
``(n, d)`` and use the centred (exact) distance, as scikit-learn does. They
are jit-able; for very large ``n`` call them on chunks.

>>> import jax.numpy as jnp
>>> from jaxmix import GMMParams
>>> from jaxmix.gmm import log_prob
>>> p = GMMParams(jnp.array([1.0]), jnp.zeros((1, 2)), jnp.eye(2)[None])
>>> float(log_prob(p, jnp.zeros((1, 2)))[0])  # log N(0 | 0, I) in 2-D
-1.837877...
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from jaxmix.gmm.covariance import family
from jaxmix.numerics import LOG_2PI, safe_log
from jaxmix.params import GMMParams


def component_log_prob(params: GMMParams, x: jax.Array) -> jax.Array:
    """``log N(x_n | mu_k, Sigma_k)``, shape ``(n, k)`` (weights not included)."""
    fam = family(params.covariance_type)
    d = x.shape[-1]
    maha = fam.sq_mahalanobis(x, params.means, params.precisions_cholesky)
    # inf - inf: a sample and a mean both beyond the dtype's range apart
    maha = jnp.where(jnp.isnan(maha), jnp.inf, maha)
    return -0.5 * (d * LOG_2PI + maha) + fam.log_det(params.precisions_cholesky, d)


def weighted_log_prob(params: GMMParams, x: jax.Array) -> jax.Array:
    """``log w_k + log N(x_n | mu_k, Sigma_k)``, shape ``(n, k)``."""
    return component_log_prob(params, x) + safe_log(params.weights)


def log_prob(params: GMMParams, x: jax.Array) -> jax.Array:
    """Per-sample log-density ``log p(x_n)`` (sklearn's ``score_samples``), ``(n,)``."""
    return jax.nn.logsumexp(weighted_log_prob(params, x), axis=-1)


def mean_log_likelihood(params: GMMParams, x: jax.Array) -> jax.Array:
    """Mean log-likelihood per sample (sklearn's ``score``)."""
    return jnp.mean(log_prob(params, x))


def responsibilities(params: GMMParams, x: jax.Array) -> jax.Array:
    """Posterior ``p(z_n = k | x_n)``, shape ``(n, k)`` (sklearn's ``predict_proba``)."""
    return jax.nn.softmax(weighted_log_prob(params, x), axis=-1)


def predict(params: GMMParams, x: jax.Array) -> jax.Array:
    """Most probable component of each sample, shape ``(n,)``."""
    return jnp.argmax(weighted_log_prob(params, x), axis=-1)


def sample(key: jax.Array, params: GMMParams, n: int):
    """Draw ``n`` samples; returns ``(x (n, d), labels (n,))``.

    Labels are drawn from the weights, then ``x = mu_z + noise`` with the
    component's covariance.
    """
    fam = family(params.covariance_type)
    k_label, k_noise = jax.random.split(key)
    labels = jax.random.categorical(k_label, jnp.log(params.weights), shape=(n,))
    z = jax.random.normal(k_noise, (n, params.n_features), params.means.dtype)
    noise = fam.sample_noise(z, params.precisions_cholesky, labels)
    return params.means[labels] + noise, labels
