r"""Diagonal Gaussian components on the protocol: real features, independent
within a component (for products with other families; whole-data Gaussian
mixtures of every covariance type are :func:`jaxmix.fit_gmm`'s).

``theta = (means (k, d), variances (k, d))``. The statistics are taken about
the current means and the log-density from the differences themselves, an
``(m, k, d)`` chunk intermediate (centred, as the library's covariance
families are: no ``E[x^2] - mu^2`` cancellation in float32 far from the
origin): ``s1 = sum r (x - c)``, ``s2 = sum r (x - c)^2``; the M-step ``mu = c + s1 / n``,
``var = s2 / n - (s1 / n)^2 + reg_covar``. No prior (maximum likelihood with
the ``reg_covar`` floor, as ``fit_gmm``'s default).
"""

from __future__ import annotations

import dataclasses
from typing import NamedTuple

import jax
import jax.numpy as jnp

from jaxmix.families.protocol import shifted_moments
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
        diff = x[:, None, :] - m[None, :, :]  # (m, k, d): no cancellation far from 0
        quad = jnp.sum(diff * diff / v, axis=-1)
        return -0.5 * (x.shape[1] * LOG_2PI + jnp.sum(jnp.log(v), axis=1) + quad)

    def stats(self, theta, x, r):
        shift = jnp.zeros((r.shape[1], x.shape[1]), x.dtype) if theta is None else theta.means
        diff = x[:, None, :] - shift[None, :, :]
        return jnp.einsum("mk,mkd->kd", r, diff), jnp.einsum("mk,mkd->kd", r, diff * diff)

    def recentre(self, stats, nk, old, new):
        """Statistics about ``old``'s means re-expressed about ``new``'s."""
        return shifted_moments(nk, *stats, old.means - new.means, outer=False)

    def degenerate(self, theta):
        """Components with a variance at the ``reg_covar`` floor (collapsed)."""
        return jnp.any(theta.variances <= 2 * self.reg_covar, axis=-1)

    def m_step(self, theta, nk, stats, prior):
        s1, s2 = stats
        n = jnp.maximum(nk, jnp.finfo(s1.dtype).tiny)[:, None]
        shift = jnp.zeros_like(s1) if theta is None else theta.means
        delta = s1 / n
        return DiagParams(shift + delta, jnp.maximum(s2 / n - delta * delta, 0) + self.reg_covar)

    def constrain(self, raw):
        """The gradient fits' bijector: variances ``reg_covar + exp(raw)``,
        the floor EM's M-step keeps them above."""
        return DiagParams(raw.means, self.reg_covar + jnp.exp(raw.variances))

    def unconstrain(self, theta):
        low = 100 * jnp.finfo(theta.variances.dtype).eps * self.reg_covar
        return DiagParams(theta.means, jnp.log(jnp.maximum(theta.variances - self.reg_covar,
                                                           low + 1e-30)))

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
