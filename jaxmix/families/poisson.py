r"""Poisson components: count features, independent within a component.

.. math::

    \log p(x \mid \lambda_j) = \sum_i x_i \log \lambda_{ji} - \lambda_{ji} - \log x_i!,

statistics ``s_j = sum_n r_nj x_n``, the M-step ``lambda_j = s_j / n_j``; under
the prior ``lambda_ji ~ Gamma(shape alpha, rate beta)`` the MAP
``lambda_j = (s_j + alpha - 1) / (n_j + beta)``. Rates are floored at
``sqrt(tiny)`` (a component with no counts in a feature keeps a finite
log-density).
"""

from __future__ import annotations

import dataclasses
from typing import NamedTuple

import jax
import jax.numpy as jnp
from jax.scipy.special import gammaln

from jaxmix.families.summed import SummedFeatures


class GammaPrior(NamedTuple):
    """``lambda_ji ~ Gamma(shape, rate)`` for every component and feature."""
    shape: jax.Array
    rate: jax.Array


def _floor(lam):
    return jnp.maximum(lam, jnp.finfo(lam.dtype).tiny ** 0.5)


@dataclasses.dataclass(frozen=True)
class Poisson(SummedFeatures):
    """Counts; ``theta`` is the ``(k, d)`` array of rates."""

    name: str = "poisson"
    support: str = "integers >= 0"

    def log_prob(self, theta, x):
        lam = _floor(theta)
        return (jnp.matmul(x, jnp.log(lam).T) - jnp.sum(lam, axis=1)
                - jnp.sum(gammaln(x + 1), axis=1, keepdims=True))

    def m_step(self, theta, nk, stats, prior):
        if prior is None:
            return _floor(self.weighted_mean(nk, stats))
        return _floor((stats + prior.shape - 1) / (nk[:, None] + prior.rate))

    def constrain(self, raw):
        """The gradient fits' bijector: rates ``exp(raw)``."""
        return _floor(jnp.exp(raw))

    def unconstrain(self, theta):
        return jnp.log(theta)

    def log_prior(self, theta, prior):
        if prior is None:
            return jnp.zeros((), theta.dtype)
        lam, a, b = _floor(theta), prior.shape, prior.rate
        return jnp.sum(a * jnp.log(b) - gammaln(a) + (a - 1) * jnp.log(lam) - b * lam)

    def default_prior(self, x, w, k: int):
        """``Gamma(1 + m / 100, 1 / 100)`` per feature (``m``: its mean): the
        weight of one hundredth of a sample at the data's mean."""
        mean = jnp.sum(w[:, None] * x, axis=0) / jnp.sum(w)
        return GammaPrior(1 + mean / 100, jnp.full_like(mean, 0.01))

    def n_free(self, d: int) -> int:
        return d

    def in_support(self, x):
        return jnp.all((x >= 0) & (x == jnp.floor(x)), axis=1)

    def sample(self, key, theta, labels):
        return jax.random.poisson(key, theta[labels]).astype(theta.dtype)
