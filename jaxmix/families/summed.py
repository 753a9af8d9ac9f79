"""What families whose sufficient statistic is the feature itself share
(Bernoulli, Poisson, exponential): the statistics ``r^T x``, and the
per-component weighted mean they give."""

from __future__ import annotations

import jax.numpy as jnp


class SummedFeatures:
    """Base of the families with statistic ``x``: ``stats = r^T x`` ``(k, d)``."""

    def stats(self, theta, x, r):
        return jnp.matmul(r.T, x)

    @staticmethod
    def weighted_mean(nk, stats):
        """``stats / nk`` per component (a component of no weight: 0)."""
        return stats / jnp.maximum(nk, jnp.finfo(stats.dtype).tiny)[:, None]
