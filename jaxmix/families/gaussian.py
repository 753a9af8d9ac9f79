r"""Diagonal Gaussian components on the protocol: real features, independent
within a component (for products with other families; whole-data Gaussian
mixtures of every covariance type are :func:`jaxmix.fit_gmm`'s).

``theta = (means (k, d), variances (k, d))``. The statistics are taken about
the current means (centred, as the library's covariance families do: no
``E[x^2] - mu^2`` cancellation in float32): ``s1 = sum r (x - c)``,
``s2 = sum r (x - c)^2``; the M-step ``mu = c + s1 / n``,
``var = s2 / n - (s1 / n)^2 + reg_covar``. No prior (maximum likelihood with
the ``reg_covar`` floor, as ``fit_gmm``'s default).
"""

from __future__ import annotations

import dataclasses
from typing import NamedTuple

import jax
import jax.numpy as jnp

from jaxmix.numerics import LOG_2PI


class DiagParams(NamedTuple):
    means: jax.Array      # (k, d)
    variances: jax.Array  # (k, d)


@dataclasses.dataclass(frozen=True)
class DiagGaussian:
    """Real features with a diagonal covariance per component."""

    reg_covar: float = 1e-6
    name: str = "diagonal Gaussian"
    support: str = "finite values"

    def log_prob(self, theta, x):
        m, v = theta
        prec = 1 / v
        quad = (jnp.matmul(x * x, prec.T) - 2 * jnp.matmul(x, (m * prec).T)
                + jnp.sum(m * m * prec, axis=1))
        return -0.5 * (x.shape[1] * LOG_2PI + jnp.sum(jnp.log(v), axis=1) + quad)

    def stats(self, theta, x, r):
        shift = jnp.zeros((r.shape[1], x.shape[1]), x.dtype) if theta is None else theta.means
        s1 = jnp.matmul(r.T, x) - jnp.sum(r, axis=0)[:, None] * shift
        s2 = (jnp.matmul(r.T, x * x) - 2 * shift * jnp.matmul(r.T, x)
              + jnp.sum(r, axis=0)[:, None] * shift * shift)
        return s1, s2

    def m_step(self, theta, nk, stats, prior):
        s1, s2 = stats
        n = jnp.maximum(nk, jnp.finfo(s1.dtype).tiny)[:, None]
        shift = jnp.zeros_like(s1) if theta is None else theta.means
        delta = s1 / n
        return DiagParams(shift + delta, jnp.maximum(s2 / n - delta * delta, 0) + self.reg_covar)

    def log_prior(self, theta, prior):
        return jnp.zeros((), theta.means.dtype)

    def default_prior(self, x, w, k: int):
        return None

    def n_free(self, d: int) -> int:
        return 2 * d

    def in_support(self, x):
        return jnp.all(jnp.isfinite(x), axis=1)

    def sample(self, key, theta, labels):
        m, v = theta.means[labels], theta.variances[labels]
        return m + jnp.sqrt(v) * jax.random.normal(key, m.shape, m.dtype)
