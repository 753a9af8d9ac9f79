"""Model selection: choosing ``k`` (and the covariance type) over a grid.

Criteria (``n_parameters``, ``bic``, ``aic``; scikit-learn's definitions)
live in :mod:`jaxmix.criteria`; this module fits the grid, :mod:`jaxmix.fit.selection`
tabulates it.

How the grid is vectorised (``strategy="padded"``, the default)
---------------------------------------------------------------
Every ``k`` in the grid is padded to ``k_max``, the component bucket of
``max(ks)`` (:mod:`jaxmix.fit.buckets`; every fit pads the same way), and
the ``G`` grid points times ``R`` restarts become the rows
(:mod:`jaxmix.fit.rows`, bucketed too) of the one EM program
(:func:`jaxmix.fit.gmm.fit_rows`) that the fit driver (:func:`jaxmix.fit.driver.iterate`) runs in one
``lax.while_loop``. A boolean mask ``(G * R, k_max)`` marks the real
components (``j < k``):

* masked components have weight exactly ``0``, so their log-weight is
  ``-inf`` and their responsibility exactly ``0``: they add nothing to the
  statistics nor to the log-likelihood, so the first ``k`` components follow
  the same EM path as a ``k``-component fit (up to float rounding);
* MAP-EM (``fit_gmm(prior=...)``, padded the same way) counts only the
  real components in the prior (the masked ones are copies of component 0
  whose terms are left out);
* after every M-step the masked weights are forced back to ``0`` (the M-step
  gives them ``10 eps``) and the rest renormalised; masked means and
  precision factors are reset to copies of component 0, so they stay finite
  even with ``reg_covar = 0`` and never trigger the GEMM-accuracy fallback;
* initialisation is masked too, by the initialisers of every fit
  (:func:`jaxmix.fit.init.initialize_masked`): each is prefix-stable, so the
  first ``k`` of ``k_max`` starting components are exactly those of a
  ``k``-component start with the same key (k-means++ with sklearn's
  ``2 + int(ln k)`` trials of that ``k``); the unused centroids of the
  ``"kmeans"`` initialiser are copies of centroid 0, which ties go past
  (:func:`jaxmix.kmeans.update.mask_centroids`), so Lloyd never assigns to them;
* the failure / degeneracy flags only look at the real components.

The rows (each one's ``k``, restart and k-means++ trials) are traced
arrays: only the row and component buckets, the sample bucket and the
covariance type are static, so a sweep compiles **once per covariance
type**, and another grid in the same buckets reuses it (a ``fit_gmm`` does
not: the grid's program also scores each row, ``per_k`` is static).

Why padding rather than one compiled call per ``k`` (``strategy="per_k"``,
same code with ``k_max = k``): compiling the EM loop costs seconds per
``k``, and a sweep is usually run once per data set, so compile time is
most of the cost. Padding has two prices: each iteration evaluates
``G * k_max`` instead of ``sum(ks)`` components (100 vs 55 for ``1..10``),
and the loop runs until the slowest of the ``G * R`` restarts stops
(finished ones are frozen but still computed), so small ``k`` pay for the
iterations of large ``k``; also the GEMM/exact E-step choice (``path="auto"``)
is one decision for the whole grid. ``experiments/bench_select.py``
(n=50000, d=8, k=1..10, R=8, full, 2 busy CPU cores) measured: padded
1 trace of the sweep, 9 s compiling, 30 s first call, 17 s warm; per_k 10
traces, 73 s compiling, 86 s first call, 9 s warm; sklearn 151 s. So padding
is the default (about 3x faster for a single sweep), and ``per_k`` is the
better choice when the same shapes are swept repeatedly with the executables
cached (about 2x faster warm on that problem).

A row depends only on its own ``k``: restart ``r`` of ``k`` starts from
``fold_in(fold_in(key, k), r)``, so row ``k`` is ``fit_gmm(fold_in(key, k),
x, k, n_restarts=R)`` up to float rounding, whatever else is in the grid.

>>> import jax, numpy as np
>>> from jaxmix import select_k
>>> rng = np.random.default_rng(0)
>>> x = np.concatenate([rng.normal(-5, 1, (200, 2)), rng.normal(5, 1, (200, 2))])
>>> sel = select_k(jax.random.PRNGKey(0), x, [1, 2, 3, 4], n_restarts=2)
>>> sel.chosen_k("bic"), sel.chosen_k("aic")
(2, 2)
"""

from __future__ import annotations

import functools
from typing import Sequence

import jax
import numpy as np

from jaxmix.criteria import criteria, n_parameters
from jaxmix.data.source import is_source
from jaxmix.fit.buckets import component_bucket, exact_shapes, history_bucket
from jaxmix.fit.driver import AllRestartsFailed
from jaxmix.fit.gmm import DEGENERATE_FIX, em_row_elements, fit_rows
from jaxmix.fit.init import INIT_METHODS
from jaxmix.fit.inputs import placed
from jaxmix.fit.kmeans import kmeans_rows
from jaxmix.fit.rows import TRACE_COUNT  # noqa: F401 (read by tests and experiments)
from jaxmix.fit.rows import plusplus_shape, restart_rows, to_device, to_host, with_draws
from jaxmix.fit.progress import session, token_arg
from jaxmix.fit.selection import InertiaCurve, Selection
from jaxmix.gmm.stats import PATHS
from jaxmix.gmm.update import first_components
from jaxmix.kmeans.assign import row_elements as kmeans_row_elements
from jaxmix.kmeans.init import local_trials
from jaxmix.numerics import float_dtype
from jaxmix.params import COVARIANCE_TYPES
from jaxmix.validation import (as_key, check_choice, check_int, check_max_iter,
                               check_n_components, check_n_restarts, check_nonneg)

STRATEGIES = ("padded", "per_k")





def _check_grid(ks, n: int, name: str = "ks") -> np.ndarray:
    try:
        values = [check_n_components(k, n, name=f"{name} entry") for k in ks]
    except TypeError:
        raise ValueError(f"{name} must be a sequence of integers, got {ks!r}") from None
    if not values:
        raise ValueError(f"{name} is empty; give at least one number of components")
    if len(set(values)) != len(values):
        raise ValueError(f"{name} has repeated values {values}; give each k once")
    return np.array(sorted(values), np.int32)


def _covariance_types(covariance_type) -> tuple:
    if isinstance(covariance_type, str):
        types = (covariance_type,)
    elif isinstance(covariance_type, (list, tuple, np.ndarray)):
        types = tuple(covariance_type)
    else:
        raise ValueError(f"covariance_type must be one of {COVARIANCE_TYPES} or a list of them, "
                         f"got {covariance_type!r}")
    if not types:
        raise ValueError("covariance_type is empty; give a type or a sequence of types")
    for t in types:
        check_choice(t, "covariance_type", COVARIANCE_TYPES)
    if len(set(types)) != len(types):
        raise ValueError(f"covariance_type has repeated entries {types}")
    return types


def _grid_rows(a, g: int, n_restarts: int):
    a = np.asarray(a)[:g * n_restarts]
    return a.reshape((g, n_restarts) + a.shape[1:])


def _finite_rows(params) -> np.ndarray:
    """Per row of host ``params``: every entry finite."""
    leaves = [np.isfinite(a).reshape(a.shape[0], -1).all(axis=1) for a in jax.tree.leaves(params)]
    return np.logical_and.reduce(leaves)


def _best_per_k(out, ks: np.ndarray, n_restarts: int):
    """Host side: per grid point, the restart with the highest objective."""
    fit, score = to_host(out)
    g = len(ks)
    score = np.asarray(score[:g * n_restarts], np.float64).reshape(g, n_restarts)
    failed = _grid_rows(fit.failed, g, n_restarts)
    finite = _grid_rows(_finite_rows(fit.params), g, n_restarts)
    if not finite.any(axis=1).all():
        raise AllRestartsFailed(
            f"every restart of k={ks[~finite.any(axis=1)].tolist()} failed and none has finite "
            f"parameters; {DEGENERATE_FIX}")
    best = np.argmax(np.where(failed, -np.inf, _grid_rows(fit.objective, g, n_restarts)), axis=1)
    # a k whose every restart failed: its first restart with finite parameters
    best = np.where(failed.all(axis=1), np.argmax(finite, axis=1), best)
    rows = np.arange(g)
    params = []
    for i, k in enumerate(ks):
        p = jax.tree.map(lambda a: a[i * n_restarts + best[i]][None], fit.params)
        params.append(to_device(jax.tree.map(lambda a: a[0], first_components(p, int(k)))))
    converged = _grid_rows(fit.converged, g, n_restarts)
    return dict(
        log_likelihood=np.where(failed.all(axis=1), -np.inf, score[rows, best]),
        converged=converged[rows, best], n_converged=converged.sum(axis=1),
        n_iter=_grid_rows(fit.n_iter, g, n_restarts)[rows, best],
        degenerate=_grid_rows(fit.degenerate, g, n_restarts)[rows, best],
        failed=failed.all(axis=1), params=tuple(params))


def _sweep(fn, key, x, ks: np.ndarray, strategy: str, n_restarts: int, n_local_trials,
           row_elements, chunk_size, sample_weight, mesh, init: str):
    """Run a compiled grid function over ``ks``: once padded, or once per ``k``
    with its exact shapes (``init``: its starts' initialiser)."""
    if strategy == "padded":
        return [_run_group(fn, key, x, ks, n_restarts, n_local_trials, row_elements,
                           chunk_size, sample_weight, mesh, init)]
    with exact_shapes():
        return [_run_group(fn, key, x, ks[i:i + 1], n_restarts, n_local_trials, row_elements,
                           chunk_size, sample_weight, mesh, init) for i in range(len(ks))]


def _run_group(fn, key, x, group, n_restarts, n_local_trials, row_elements, chunk_size,
               sample_weight, mesh, init):
    k_max = component_bucket(int(group.max()))
    rows = restart_rows(group, n_restarts, n_local_trials)
    width = lambda d: row_elements(len(rows.k), k_max, d)  # noqa: E731
    trials = max(int(rows.trials.max()), local_trials(k_max))
    with placed(key, x, int(group.max()), row_elements=width, chunk_size=chunk_size,
                sample_weight=sample_weight, mesh=mesh) as inp:
        starts = with_draws(key, rows, per_k=True,
                            plusplus=plusplus_shape(init, None, k_max, trials))
        out = fn(key, starts, inp.data, inp.sample, inp.offset, k_max=k_max, max_trials=trials)
        return group, jax.block_until_ready(out), inp


def _check_sweep(key, x, ks, n_restarts, max_iter, strategy, chunk_size, tol, n_local_trials):
    if is_source(x):
        raise ValueError("the grid sweeps take X in memory (an array, possibly sharded over a "
                         "mesh), not a chunk source; fit a streamed source per k with fit_gmm")
    x_shape = np.shape(x)
    if len(x_shape) != 2:
        raise ValueError(f"X must be 2-D (n_samples, n_features), got shape {x_shape}")
    if 0 in x_shape:
        raise ValueError(f"X is empty (shape {x_shape}); it needs at least one sample and one "
                         "feature")
    grid = _check_grid(ks, x_shape[0])
    check_choice(strategy, "strategy", STRATEGIES)
    if chunk_size is not None:
        check_int(chunk_size, "chunk_size")
    if n_local_trials is not None:
        n_local_trials = check_int(n_local_trials, "n_local_trials")
    return (as_key(key), grid, check_n_restarts(n_restarts),
            check_max_iter(max_iter), check_nonneg(tol, "tol"), n_local_trials)


def select_k(key, x, ks: Sequence[int], *, covariance_type="full", n_restarts: int = 8,
             init: str = "kmeans", tol: float = 1e-3, reg_covar: float = 1e-6,
             max_iter: int = 100, chunk_size: int | None = None, path: str = "auto",
             strategy: str = "padded", n_local_trials: int | None = None,
             sample_weight=None, mesh=None, callback=None) -> Selection:
    """Fit a Gaussian mixture for every ``k`` in ``ks`` (``R`` restarts each) and
    tabulate log-likelihood, BIC and AIC.

    Args:
      key: ``jax.random`` key or int seed. Restart ``r`` of ``k`` uses
        ``fold_in(fold_in(key, k), r)``, so a row does not depend on the rest
        of the grid nor on ``strategy`` (up to float rounding): it is
        ``fit_gmm(fold_in(key, k), x, k, n_restarts=R, ...)``.
      x: ``(n, d)`` data (an array, possibly sharded).
      ks: the grid of component counts (distinct, ``1 <= k <= n``).
      covariance_type: a type or a sequence of types (one compile each).
      n_restarts: ``R`` restarts per ``k``; the best by final objective is kept.
      init, tol, reg_covar, max_iter, chunk_size, path, sample_weight, mesh:
        as :func:`jaxmix.fit_gmm`.
      strategy: ``"padded"`` (whole grid in one compiled call, see the module
        docstring) or ``"per_k"`` (one compiled call per ``k``).
      n_local_trials: k-means++ candidates per centre for every ``k`` (``None``:
        sklearn's ``2 + int(ln k)`` for each ``k``).
      callback: optional ``callback(Progress)`` after every iteration
        (:mod:`jaxmix.fit.progress`); its restarts are the grid's rows, row
        ``g * R + r`` restart ``r`` of the ``g``-th ``k`` (``strategy="per_k"``:
        the rows ``0 .. R - 1`` of each ``k`` in turn).

    Returns:
      :class:`~jaxmix.fit.selection.Selection`; ``chosen_k("bic")`` /
      ``chosen_k("aic")`` give the choices, ``to_markdown()`` the table.
    """
    key, grid, n_restarts, max_iter, tol, trials = _check_sweep(
        key, x, ks, n_restarts, max_iter, strategy, chunk_size, tol, n_local_trials)
    types = _covariance_types(covariance_type)
    check_choice(init, "init", INIT_METHODS)
    check_choice(path, "path", PATHS)
    reg_covar = check_nonneg(reg_covar, "reg_covar", dtype=float_dtype(
        getattr(x, "dtype", np.float32)) if not is_source(x) else np.float32)
    columns = {name: [] for name in ("log_likelihood", "converged", "n_converged", "n_iter",
                                     "degenerate", "failed", "params")}
    for ct in types:
        with session(callback, len(grid) * n_restarts) as token:
            fn = functools.partial(fit_rows, init_params=None, tol=tol, reg_covar=reg_covar,
                                   max_iter=max_iter, prior=None, covariance_type=ct, init=init,
                                   history=history_bucket(max_iter), path=path, per_k=True,
                                   progress=token_arg(token))
            runs = _sweep(fn, key, x, grid, strategy, n_restarts, trials, em_row_elements,
                          chunk_size, sample_weight, mesh, init)
        parts = [_best_per_k(out, group, n_restarts) for group, out, inp in runs]
        for name in columns:
            values = [p[name] for p in parts]
            columns[name].append(sum(values, ()) if name == "params" else np.concatenate(values))
    n, d = runs[0][2].n_samples, runs[0][2].n_features
    p = np.array([[n_parameters(int(k), d, ct) for k in grid] for ct in types])
    loglik = np.array(columns["log_likelihood"])
    b, a = criteria(loglik, n, p)
    failed = np.array(columns["failed"])
    return Selection(
        ks=grid, covariance_types=types, n_samples=n, n_parameters=p, log_likelihood=loglik,
        bic=np.where(failed, np.inf, b), aic=np.where(failed, np.inf, a),
        converged=np.array(columns["converged"]), n_converged=np.array(columns["n_converged"]),
        n_iter=np.array(columns["n_iter"]), degenerate=np.array(columns["degenerate"]),
        failed=failed, params=tuple(columns["params"]))


def inertia_curve(key, x, ks: Sequence[int], *, n_restarts: int = 10, tol: float = 1e-4,
                  max_iter: int = 300, chunk_size: int | None = None,
                  strategy: str = "padded", n_local_trials: int | None = None,
                  sample_weight=None, mesh=None) -> InertiaCurve:
    """K-Means (k-means++ then Lloyd, sklearn's tol and defaults) for every
    ``k`` in ``ks`` with ``n_restarts`` each, padded like :func:`select_k`
    (unused centroids are copies of centroid 0 that never take a sample). ``key``,
    ``strategy``, ``n_local_trials``, ``sample_weight`` and ``mesh`` as in
    :func:`select_k`."""
    key, grid, n_restarts, max_iter, tol, trials = _check_sweep(
        key, x, ks, n_restarts, max_iter, strategy, chunk_size, tol, n_local_trials)
    fn = functools.partial(kmeans_rows, centroids0=None, tol=tol, max_iter=max_iter,
                           init="k-means++", history=history_bucket(max_iter), per_k=True)
    inertia, centroids, converged = [], [], []
    for group, out, inp in _sweep(fn, key, x, grid, strategy, n_restarts, trials,
                                  kmeans_row_elements, chunk_size, sample_weight, mesh,
                                  "k-means++"):
        result = to_host(out)
        inert = -_grid_rows(result.objective, len(group), n_restarts)
        failed = _grid_rows(result.failed, len(group), n_restarts) | ~np.isfinite(inert)
        best = np.argmin(np.where(failed, np.inf, inert), axis=1)
        cents = np.asarray(result.params.centroids)
        conv = np.asarray(result.converged)
        for i, k in enumerate(group):
            flat = i * n_restarts + best[i]
            inertia.append(inert[i, best[i]])
            centroids.append(cents[flat, :k])
            converged.append(conv[flat])
    return InertiaCurve(grid, np.array(inertia), tuple(centroids), np.array(converged))
