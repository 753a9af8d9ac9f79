r"""Bernoulli components: binary features, independent within a component.

.. math::

    \log p(x \mid p_j) = \sum_i x_i \log p_{ji} + (1 - x_i) \log(1 - p_{ji}),

statistics ``s_j = sum_n r_nj x_n``, the M-step ``p_j = s_j / n_j``; under
the prior ``p_ji ~ Beta(a, b)`` the MAP ``p_j = (s_j + a - 1) / (n_j + a + b - 2)``.
Probabilities are clipped to ``[eps, 1 - eps]`` so a feature constant within a
component keeps a finite log-density.
"""

from __future__ import annotations

import dataclasses
from typing import NamedTuple

import jax
import jax.numpy as jnp

from jaxmix.families.summed import SummedFeatures


class BetaPrior(NamedTuple):
    """``p_ji ~ Beta(a, b)`` for every component and feature."""
    a: jax.Array
    b: jax.Array


def _clip(p):
    eps = jnp.finfo(p.dtype).eps
    return jnp.clip(p, eps, 1 - eps)


@dataclasses.dataclass(frozen=True)
class Bernoulli(SummedFeatures):
    """Binary features; ``theta`` is the ``(k, d)`` array of probabilities."""

    name: str = "bernoulli"
    support: str = "0 or 1"

    def log_prob(self, theta, x):
        p = _clip(theta)
        return jnp.matmul(x, jnp.log(p).T) + jnp.matmul(1 - x, jnp.log1p(-p).T)

    def m_step(self, theta, nk, stats, prior):
        if prior is None:
            return _clip(self.weighted_mean(nk, stats))
        return _clip((stats + prior.a - 1) / (nk[:, None] + prior.a + prior.b - 2))

    def constrain(self, raw):
        """The gradient fits' bijector: probabilities ``sigmoid(raw)``."""
        return _clip(jax.nn.sigmoid(raw))

    def unconstrain(self, theta):
        return jnp.log(theta) - jnp.log1p(-theta)

    def log_prior(self, theta, prior):
        if prior is None:
            return jnp.zeros((), theta.dtype)
        p = _clip(theta)
        a, b = prior.a, prior.b
        norm = jax.scipy.special.betaln(a, b)
        return jnp.sum((a - 1) * jnp.log(p) + (b - 1) * jnp.log1p(-p) - norm)

    def default_prior(self, x, w, k: int):
        """``Beta(1.01, 1.01)``: nearly flat, keeps probabilities off 0 and 1."""
        one = jnp.asarray(1.01, x.dtype)
        return BetaPrior(one, one)

    def n_free(self, d: int) -> int:
        return d

    def in_support(self, x):
        return jnp.all((x == 0) | (x == 1), axis=1)

    def sample(self, key, theta, labels):
        return jax.random.bernoulli(key, theta[labels]).astype(theta.dtype)
