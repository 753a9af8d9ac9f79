r"""Categorical components: one categorical feature per column, column ``i``
taking the codes ``0 .. C_i - 1`` (``n_categories``), independent within a
component.

``theta`` is ``(k, d, C)`` (``C = max C_i``; probabilities of codes a column
does not have are 0): ``log p(x | j) = sum_i log theta[j, i, x_i]``. The
statistics are the responsibility-weighted code counts, the M-step their
normalisation per column; under a symmetric Dirichlet(``alpha``) prior per
column the MAP adds ``alpha - 1`` to every count of a real code.
"""

from __future__ import annotations

import dataclasses
from typing import NamedTuple

import jax
import jax.numpy as jnp
from jax.scipy.special import gammaln


class DirichletPrior(NamedTuple):
    """Symmetric Dirichlet(``alpha``) on each component's column distributions."""
    alpha: jax.Array


@dataclasses.dataclass(frozen=True)
class Categorical:
    """``n_categories``: a tuple, the number of codes of each column."""

    n_categories: tuple = ()
    name: str = "categorical"
    support: str = "integer codes 0 .. n_categories - 1 per column"

    def _real(self, dtype):
        """``(d, C)`` 1 where column ``i`` has code ``c``."""
        c = max(self.n_categories)
        return (jnp.arange(c)[None, :] < jnp.asarray(self.n_categories)[:, None]).astype(dtype)

    def _onehot(self, x):
        return jax.nn.one_hot(x.astype(jnp.int32), max(self.n_categories), dtype=x.dtype)

    def log_prob(self, theta, x):
        tiny = jnp.finfo(theta.dtype).tiny
        return jnp.einsum("mdc,kdc->mk", self._onehot(x), jnp.log(jnp.maximum(theta, tiny)))

    def stats(self, theta, x, r):
        return jnp.einsum("mk,mdc->kdc", r, self._onehot(x))

    def m_step(self, theta, nk, stats, prior):
        real = self._real(stats.dtype)
        counts = stats if prior is None else stats + (prior.alpha - 1) * real
        counts = jnp.maximum(counts, 0) * real
        total = jnp.sum(counts, axis=-1, keepdims=True)
        even = real / jnp.sum(real, axis=-1, keepdims=True)  # a component with no weight
        return jnp.where(total > 0, counts / jnp.where(total > 0, total, 1), even)

    def constrain(self, raw):
        """The gradient fits' bijector: a softmax over each column's codes."""
        real = self._real(raw.dtype) > 0
        return jax.nn.softmax(jnp.where(real, raw, -jnp.inf), axis=-1)

    def unconstrain(self, theta):
        tiny = jnp.finfo(theta.dtype).tiny
        return jnp.where(self._real(theta.dtype) > 0, jnp.log(jnp.maximum(theta, tiny)), 0.0)

    def log_prior(self, theta, prior):
        if prior is None:
            return jnp.zeros((), theta.dtype)
        real = self._real(theta.dtype)
        sizes = jnp.asarray(self.n_categories, theta.dtype)
        a = prior.alpha
        norm = gammaln(a * sizes) - sizes * gammaln(a)
        logs = jnp.sum(jnp.where(real > 0, (a - 1) * jnp.log(jnp.maximum(
            theta, jnp.finfo(theta.dtype).tiny)), 0.0), axis=-1)
        return jnp.sum(logs + norm)

    def default_prior(self, x, w, k: int):
        """Dirichlet(1.01): nearly flat, no code's probability exactly 0."""
        return DirichletPrior(jnp.asarray(1.01, x.dtype))

    def n_free(self, d: int) -> int:
        return sum(c - 1 for c in self.n_categories)

    def in_support(self, x):
        if x.shape[1] != len(self.n_categories):
            raise ValueError(f"X has {x.shape[1]} columns but n_categories gives "
                             f"{len(self.n_categories)}: one number of categories per column")
        sizes = jnp.asarray(self.n_categories, x.dtype)
        return jnp.all((x >= 0) & (x < sizes) & (x == jnp.floor(x)), axis=1)

    def sample(self, key, theta, labels):
        logits = jnp.log(jnp.maximum(theta[labels], jnp.finfo(theta.dtype).tiny))
        return jax.random.categorical(key, logits, axis=-1).astype(theta.dtype)
