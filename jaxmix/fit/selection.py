"""Results of model selection sweeps: the table of a ``k`` grid
(:class:`Selection`, from :func:`jaxmix.select_k`) and the K-Means elbow
(:class:`InertiaCurve`, from :func:`jaxmix.inertia_curve`). Host-side numpy."""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from jaxmix.kmeans.assign import assign
from jaxmix.params import GMMParams
from jaxmix.validation import check_choice, check_data

CRITERIA = ("bic", "aic")


class Selection(NamedTuple):
    """A grid of fits: one row per (covariance type, k), best of ``R`` restarts.

    Arrays are ``(T, G)`` for ``T`` covariance types and ``G`` values of ``k``.

    Attributes:
      ks: ``(G,)`` the grid.
      covariance_types: the ``T`` types.
      n_samples: ``n`` used in the criteria.
      n_parameters: free parameters (sklearn's count).
      log_likelihood: mean per-sample log-likelihood of the best restart's
        final parameters (sklearn's ``score``); the best restart is the one
        with the highest objective (``lower_bound_``), as in sklearn.
      bic, aic: criteria of those parameters (``inf`` if every restart failed).
      converged, n_iter, degenerate: of the best restart.
      n_converged: restarts (of ``R``) that converged.
      failed: every restart failed.
      params: ``params[t][g]``, the best restart's :class:`GMMParams` (``k`` components).
    """

    ks: np.ndarray
    covariance_types: tuple
    n_samples: int
    n_parameters: np.ndarray
    log_likelihood: np.ndarray
    bic: np.ndarray
    aic: np.ndarray
    converged: np.ndarray
    n_converged: np.ndarray
    n_iter: np.ndarray
    degenerate: np.ndarray
    failed: np.ndarray
    params: tuple

    def _type_index(self, covariance_type):
        if covariance_type is None:
            return 0
        return self.covariance_types.index(check_choice(
            covariance_type, "covariance_type", self.covariance_types))

    def chosen_k(self, criterion: str = "bic", covariance_type: str | None = None) -> int:
        """The ``k`` minimising ``criterion`` for one covariance type (default: the first)."""
        values = getattr(self, check_choice(criterion, "criterion", CRITERIA))
        return int(self.ks[int(np.argmin(values[self._type_index(covariance_type)]))])

    def chosen(self, criterion: str = "bic") -> tuple:
        """``(covariance_type, k)`` minimising ``criterion`` over the whole table."""
        values = getattr(self, check_choice(criterion, "criterion", CRITERIA))
        t, g = np.unravel_index(int(np.argmin(values)), values.shape)
        return self.covariance_types[t], int(self.ks[g])

    def best_params(self, k: int, covariance_type: str | None = None) -> GMMParams:
        """The best restart's parameters at ``k``."""
        where = np.flatnonzero(self.ks == k)
        if where.size == 0:
            raise ValueError(f"k={k} is not in the grid {self.ks.tolist()}")
        return self.params[self._type_index(covariance_type)][int(where[0])]

    def rows(self) -> list:
        """The table as a list of dicts, one per (covariance type, k)."""
        out = []
        for t, ct in enumerate(self.covariance_types):
            kb, ka = self.chosen_k("bic", ct), self.chosen_k("aic", ct)
            for g, k in enumerate(self.ks):
                out.append(dict(
                    covariance_type=ct, k=int(k), n_parameters=int(self.n_parameters[t, g]),
                    log_likelihood=float(self.log_likelihood[t, g]),
                    bic=float(self.bic[t, g]), aic=float(self.aic[t, g]),
                    converged=bool(self.converged[t, g]),
                    n_converged=int(self.n_converged[t, g]), n_iter=int(self.n_iter[t, g]),
                    degenerate=bool(self.degenerate[t, g]), failed=bool(self.failed[t, g]),
                    chosen_bic=bool(k == kb), chosen_aic=bool(k == ka)))
        return out

    def to_markdown(self) -> str:
        """The table in markdown; ``*`` marks the k each criterion chooses per type."""
        head = ("| covariance | k | params | mean log-lik | BIC | AIC | converged "
                "| restarts converged | n_iter | degenerate |")
        lines = [head, "|" + "---|" * 10]
        for row in self.rows():
            lines.append(
                f"| {row['covariance_type']} | {row['k']} | {row['n_parameters']} "
                f"| {row['log_likelihood']:.5f} "
                f"| {row['bic']:.2f}{' *' if row['chosen_bic'] else ''} "
                f"| {row['aic']:.2f}{' *' if row['chosen_aic'] else ''} "
                f"| {row['converged']} | {row['n_converged']} | {row['n_iter']} "
                f"| {row['degenerate']} |")
        tb, kb = self.chosen("bic")
        ta, ka = self.chosen("aic")
        lines += ["", f"Chosen by BIC: {tb}, k={kb}. Chosen by AIC: {ta}, k={ka}. "
                  f"(n = {self.n_samples}; `*` = minimum per covariance type.)"]
        return "\n".join(lines)


class InertiaCurve(NamedTuple):
    """Best-of-``R`` K-Means inertia for each ``k`` (the elbow plot).

    Attributes:
      ks: ``(G,)`` the grid.
      inertia: ``(G,)`` sum of squared distances to the nearest centroid
        (sklearn's ``inertia_``) of the best restart.
      centroids: ``centroids[g]``, ``(k, d)`` of the best restart.
      converged: ``(G,)`` of the best restart.
    """

    ks: np.ndarray
    inertia: np.ndarray
    centroids: tuple
    converged: np.ndarray

    def labels(self, x, k: int) -> jax.Array:
        """Nearest-centroid labels of ``x`` for the ``k``-cluster solution."""
        where = np.flatnonzero(self.ks == k)
        if where.size == 0:
            raise ValueError(f"k={k} is not in the grid {self.ks.tolist()}")
        x = check_data(x)
        return assign(x, jnp.asarray(self.centroids[int(where[0])], x.dtype))[0]
