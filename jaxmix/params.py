"""Parameter pytrees.

A Gaussian mixture is stored the way scikit-learn stores it: weights, means
and the Cholesky factor of each precision matrix (``precisions_cholesky``),
so that ``y = (x - mu) @ precisions_cholesky`` is whitened.

The covariance type is static metadata of the pytree (it changes shapes and
control flow), so ``jax.jit`` specialises on it and ``jax.vmap`` / tree maps
leave it alone. It cannot be inferred from shapes: tied ``(d, d)`` and diag
``(k, d)`` coincide when ``k == d``.

Batched restarts add a leading axis ``R`` to every leaf.
"""

from __future__ import annotations

import dataclasses
from typing import NamedTuple

import jax

COVARIANCE_TYPES = ("full", "tied", "diag", "spherical")


@jax.tree_util.register_dataclass
@dataclasses.dataclass(frozen=True)
class GMMParams:
    """Gaussian-mixture parameters.

    Attributes:
      weights: ``(k,)`` mixing weights, positive, summing to one.
      means: ``(k, d)`` component means.
      precisions_cholesky: Cholesky factor of the precisions, with shape
        full ``(k, d, d)`` (upper triangular, ``P_k = L_k L_k^T``),
        tied ``(d, d)``, diag ``(k, d)``, spherical ``(k,)``.
      covariance_type: one of ``"full", "tied", "diag", "spherical"`` (static).
    """

    weights: jax.Array
    means: jax.Array
    precisions_cholesky: jax.Array
    covariance_type: str = dataclasses.field(default="full", metadata=dict(static=True))

    @property
    def n_components(self) -> int:
        return self.means.shape[-2]

    @property
    def n_features(self) -> int:
        return self.means.shape[-1]

    def replace(self, **changes) -> "GMMParams":
        return dataclasses.replace(self, **changes)

    def shifted(self, offset) -> "GMMParams":
        """The same mixture moved by ``offset`` ``(d,)`` (means + offset)."""
        return self.replace(means=self.means + offset)


class KMeansParams(NamedTuple):
    """K-Means parameters.

    Attributes:
      centroids: ``(k, d)`` cluster centres.
    """

    centroids: jax.Array

    def shifted(self, offset) -> "KMeansParams":
        """The same centroids moved by ``offset`` ``(d,)``."""
        return KMeansParams(self.centroids + offset)
