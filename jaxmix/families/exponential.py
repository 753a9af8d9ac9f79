r"""Exponential components: positive features, independent within a component.

``log p(x | lambda_j) = sum_i log lambda_ji - lambda_ji x_i``; statistics
``s_j = sum_n r_nj x_n``, M-step ``lambda_j = n_j / s_j``; under the prior
``lambda_ji ~ Gamma(shape a, rate b)`` the MAP ``(n_j + a - 1) / (s_j + b)``.
"""

from __future__ import annotations

import dataclasses
from typing import NamedTuple

import jax
import jax.numpy as jnp
from jax.scipy.special import gammaln

from jaxmix.families.summed import SummedFeatures


class RatePrior(NamedTuple):
    """``lambda_ji ~ Gamma(shape, rate)``."""
    shape: jax.Array
    rate: jax.Array


@dataclasses.dataclass(frozen=True)
class Exponential(SummedFeatures):
    """Positive values; ``theta`` is the ``(k, d)`` array of rates."""

    name: str = "exponential"
    support: str = "values >= 0"

    def log_prob(self, theta, x):
        return jnp.sum(jnp.log(theta), axis=1) - jnp.matmul(x, theta.T)

    def m_step(self, theta, nk, stats, prior):
        tiny = jnp.finfo(stats.dtype).tiny ** 0.5
        if prior is None:
            return jnp.maximum(nk[:, None], tiny) / jnp.maximum(stats, tiny)
        return jnp.maximum(nk[:, None] + prior.shape - 1, tiny) / (stats + prior.rate)

    def constrain(self, raw):
        """The gradient fits' bijector: rates ``exp(raw)``."""
        return jnp.exp(raw)

    def unconstrain(self, theta):
        return jnp.log(theta)

    def log_prior(self, theta, prior):
        if prior is None:
            return jnp.zeros((), theta.dtype)
        a, b = prior.shape, prior.rate
        return jnp.sum(a * jnp.log(b) - gammaln(a) + (a - 1) * jnp.log(theta) - b * theta)

    def default_prior(self, x, w, k: int):
        """``Gamma(1.01, m / 100)`` per feature (``m``: its mean): a hundredth
        of a sample at the data's mean."""
        mean = jnp.sum(w[:, None] * x, axis=0) / jnp.sum(w)
        return RatePrior(jnp.full_like(mean, 1.01), mean / 100)

    def n_free(self, d: int) -> int:
        return d

    def in_support(self, x):
        return jnp.all(x >= 0, axis=1)

    def sample(self, key, theta, labels):
        return jax.random.exponential(key, theta[labels].shape, theta.dtype) / theta[labels]
