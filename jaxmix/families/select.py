"""Choosing ``k`` for a mixture of any component family: :func:`select_mixture_k`
fits every ``k`` of a grid and tabulates the log-likelihood, BIC and AIC in
the :class:`~jaxmix.fit.selection.Selection` of :func:`jaxmix.select_k`
(its one "covariance type" is the family's name).

Every ``k`` is padded to its component bucket (:mod:`jaxmix.fit.buckets`)
with ``k`` traced, so a grid compiles one program per bucket (``1..8``: one;
``1..12``: two), and restart ``r`` of ``k`` starts from
``fold_in(fold_in(key, k), r)``: a row is ``fit_mixture(fold_in(key, k), x,
k, family, n_restarts=R)``, whatever else is in the grid.

>>> import numpy as np
>>> from jaxmix.families import Poisson, select_mixture_k
>>> rng = np.random.default_rng(0)
>>> x = rng.poisson(np.where(np.arange(600)[:, None] % 2, 2.0, 12.0), (600, 2)).astype(float)
>>> select_mixture_k(0, x, [1, 2, 3, 4], Poisson(), n_restarts=4).chosen_k("bic")
2
"""

from __future__ import annotations

import time
from typing import Sequence

import jax
import numpy as np

from jaxmix.criteria import criteria
from jaxmix.data.source import is_source
from jaxmix.families.fit import fit_mixture
from jaxmix.families.mixture import n_parameters, score_samples_chunked
from jaxmix.fit.select import _check_grid
from jaxmix.fit.selection import Selection
from jaxmix.validation import as_key


def select_mixture_k(key, x, ks: Sequence[int], family, *, n_restarts: int = 8, prior=None,
                     tol: float = 1e-3, max_iter: int = 100, chunk_size: int | None = None,
                     prior_weights: float = 1.0, sample_weight=None, mesh=None,
                     progress=None, callback=None) -> Selection:
    """Fit ``family`` mixtures for every ``k`` in ``ks`` (``R`` restarts each).

    Args:
      key: ``jax.random`` key or int seed (row ``k`` uses ``fold_in(key, k)``).
      x: ``(n, d)`` data in the family's support (an array, possibly sharded).
      ks: the grid (distinct, ``1 <= k <= n``).
      family: the component family.
      n_restarts: as :func:`jaxmix.families.fit_mixture`, and so are ``prior``,
        ``tol``, ``max_iter``, ``chunk_size``, ``prior_weights``,
        ``sample_weight`` and ``mesh``.
      progress: optional ``progress(k, None, None)`` before and
        ``progress(k, result, seconds)`` after the fit of each ``k``.
      callback: each fit's per-iteration callback (:mod:`jaxmix.fit.progress`).

    Returns:
      :class:`~jaxmix.fit.selection.Selection`: ``chosen_k("bic")``,
      ``best_params(k)`` (a :class:`~jaxmix.families.MixtureParams`),
      ``to_markdown()``. The log-likelihood is the (weighted) mean over the
      rows of the best restart's final parameters, as :func:`jaxmix.select_k`'s.
    """
    if is_source(x):
        raise ValueError("x must be an array (possibly sharded over a mesh), not a chunk "
                         "source; fit a streamed source per k with fit_mixture")
    if np.ndim(x) != 2:
        raise ValueError(f"X must be 2-D (n_samples, n_features), got shape {np.shape(x)}")
    grid = _check_grid(ks, np.shape(x)[0])
    key = as_key(key)
    weights = None if sample_weight is None else np.asarray(sample_weight, np.float64)
    rows = []
    for k in grid:
        if progress is not None:
            progress(int(k), None, None)
        start = time.perf_counter()
        result = fit_mixture(jax.random.fold_in(key, int(k)), x, int(k), family,
                             n_restarts=n_restarts, prior=prior, tol=tol, max_iter=max_iter,
                             chunk_size=chunk_size, prior_weights=prior_weights,
                             sample_weight=sample_weight, mesh=mesh, callback=callback)
        if progress is not None:
            progress(int(k), result, time.perf_counter() - start)
        rows.append(_row(family, result, x, weights))
    return _table(grid, family, rows, np.shape(x))


def _row(family, result, x, weights) -> dict:
    best = int(result.best)
    params = result.best_params
    failed = bool(np.all(np.asarray(result.failed)))
    density = np.asarray(score_samples_chunked(family, params, x), np.float64)
    return dict(log_likelihood=-np.inf if failed else float(np.average(density, weights=weights)),
                converged=bool(result.converged[best]),
                n_converged=int(np.sum(np.asarray(result.converged))),
                n_iter=int(result.n_iter[best]), degenerate=bool(result.degenerate[best]),
                failed=failed, params=params)


def _table(grid, family, rows, shape) -> Selection:
    n, d = shape
    column = lambda name: np.array([[r[name] for r in rows]])  # noqa: E731
    p = np.array([[n_parameters(family, r["params"], d) for r in rows]])
    loglik = column("log_likelihood")
    b, a = criteria(loglik, n, p)
    failed = column("failed")
    return Selection(ks=grid, covariance_types=(family.name,), n_samples=n, n_parameters=p,
                     log_likelihood=loglik, bic=np.where(failed, np.inf, b),
                     aic=np.where(failed, np.inf, a), converged=column("converged"),
                     n_converged=column("n_converged"), n_iter=column("n_iter"),
                     degenerate=column("degenerate"), failed=failed,
                     params=(tuple(r["params"] for r in rows),))
