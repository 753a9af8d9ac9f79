"""Model selection: choosing ``k`` (and the covariance type) over a grid.

Criteria (``n_parameters``, ``bic``, ``aic``; scikit-learn's definitions)
live in :mod:`jaxmix.criteria`; this module fits the grid and tabulates them.

How the grid is vectorised (``strategy="padded"``, the default)
---------------------------------------------------------------
Every ``k`` in the grid is padded to ``k_max = max(ks)`` components, and the
``G`` grid points times ``R`` restarts become one restart axis of ``G * R``
models that the fit driver (:func:`jaxmix.fit.driver.iterate`) runs in one
``lax.while_loop``. A boolean mask ``(G * R, k_max)`` marks the real
components (``j < k``):

* masked components have weight exactly ``0``, so their log-weight is
  ``-inf`` and their responsibility exactly ``0``: they add nothing to the
  statistics nor to the log-likelihood, so the first ``k`` components follow
  the same EM path as a ``k``-component fit (up to float rounding);
* after every M-step the masked weights are forced back to ``0`` (the M-step
  gives them ``10 eps``) and the rest renormalised; masked means and
  precision factors are reset to copies of component 0, so they stay finite
  even with ``reg_covar = 0`` and never trigger the GEMM-accuracy fallback;
* initialisation is masked too: one k-means++ seeding of ``k_max`` centres
  per restart, of which the first ``k`` are used (greedy k-means++ is a
  prefix sequence when the number of local trials is fixed, so these are
  exactly the seeds of a ``k``-centre run); the unused centroids of the
  ``"kmeans"`` initialiser are parked at a sentinel point farther from every
  sample than any sample is from any real centroid, so Lloyd never assigns
  to them;
* the failure / degeneracy flags only look at the real components.

``k`` values are a traced array: only ``len(ks)``, ``k_max``, ``R``, the data
shape and the covariance type are static, so a sweep compiles **once per
covariance type** and a different grid of the same length and maximum reuses
the executable.

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
import math
from typing import NamedTuple, Sequence

import jax
import jax.numpy as jnp
import numpy as np

from jaxmix.gmm.covariance import family
from jaxmix.gmm.em import PATHS, batched_em_step, params_from_resp
from jaxmix.fit.driver import FitResult, iterate
from jaxmix.criteria import balanced_chunk, criteria, n_parameters, score_chunks
from jaxmix.fit.gmm import default_chunk_size
from jaxmix.gmm.init import (INIT_METHODS, KMEANS_INIT_MAX_ITER, KMEANS_INIT_TOL, onehot_at,
                         onehot_nearest, random_indices)
from jaxmix.kmeans.core import assign, kmeans_plusplus, lloyd
from jaxmix.params import COVARIANCE_TYPES, GMMParams, KMeansParams
from jaxmix.data.chunked import Chunked, chunk, scan_sum
from jaxmix.validation import (as_key, check_choice, check_data, check_int, check_n_components,
                               check_nonneg)

STRATEGIES = ("padded", "per_k")
CRITERIA = ("bic", "aic")

# Number of times the compiled sweeps were traced (a trace precedes every
# compile); tests and experiments/bench_select.py read it.
TRACE_COUNT = {"gmm": 0, "kmeans": 0}


# --------------------------------------------------------------------------
# Masked (padded) mixtures
# --------------------------------------------------------------------------

def _grid_mask(ks, k_max: int, n_restarts: int):
    """``(G * R, k_max)``: component ``j`` of restart ``(g, r)`` is real iff ``j < ks[g]``."""
    per_k = jnp.arange(k_max)[None, :] < ks[:, None]
    return jnp.repeat(per_k, n_restarts, axis=0)


def _grid_keys(key, ks, n_restarts: int):
    """Restart ``r`` of ``k`` uses ``split(fold_in(key, k), R)[r]``, whatever the grid."""
    keys = jax.vmap(lambda k: jax.random.split(jax.random.fold_in(key, k), n_restarts))(ks)
    return keys.reshape((-1,) + keys.shape[2:])


def _per_component(fam) -> bool:
    """Whether the precision factor has a component axis (not tied)."""
    return fam.pc_shape(2, 5)[0] == 2 and fam.pc_shape(3, 5)[0] == 3


def _enforce_mask(params: GMMParams, mask) -> GMMParams:
    """Masked weights to exactly 0 (rest renormalised); masked means and
    precision factors to copies of component 0. ``params`` batched ``(B, k, ...)``."""
    w = jnp.where(mask, params.weights, 0.0)
    w = w / jnp.sum(w, axis=-1, keepdims=True)
    means = jnp.where(mask[..., None], params.means, params.means[:, :1])
    pc = params.precisions_cholesky
    if _per_component(family(params.covariance_type)):
        m = mask.reshape(mask.shape + (1,) * (pc.ndim - 2))
        pc = jnp.where(m, pc, pc[:, :1])
    return params.replace(weights=w, means=means, precisions_cholesky=pc)


def masked_step(step, mask):
    """Wrap a batched EM step so the masked components stay empty."""
    def wrapped(params):
        new, objective = step(params)
        return _enforce_mask(new, mask), objective
    return wrapped


def _masked_degenerate(params: GMMParams, mask, n, reg_covar):
    """``fit_gmm``'s degeneracy flag restricted to the real components: one
    holds < 1 sample's weight, or its smallest variance is at the floor."""
    lam = family(params.covariance_type).max_precision(params.precisions_cholesky)
    if lam.ndim == mask.ndim:  # one value per component (not tied)
        lam = jnp.where(mask, lam, 0.0)
    tiny = jnp.max(lam.reshape(lam.shape[0], -1), axis=1) * 2 * reg_covar >= 1
    return jnp.any(mask & (params.weights * n < 1.0), axis=1) | tiny


def _park(centres, mask, x):
    """Masked centroids at a sentinel ``(T, ..., T)``, ``T = 4 max|x| + 1``:
    every sample is farther from it than from any centroid inside the data's
    hull, so Lloyd never assigns to it and it never moves."""
    far = 4.0 * jnp.max(jnp.abs(x)) + 1.0
    return jnp.where(mask[..., None], centres, far.astype(centres.dtype))


def _seed_indices(keys, data: Chunked, k_max: int, trials: int):
    x, w = data.flat()
    return jax.vmap(lambda key: kmeans_plusplus(key, x, w, k_max, trials)[1])(keys)


def _masked_kmeans(keys, data: Chunked, mask, k_max: int, trials: int, tol, max_iter: int):
    """k-means++ then Lloyd on ``B`` padded restarts; masked centroids parked."""
    x, _ = data.flat()
    centres = _park(x[_seed_indices(keys, data, k_max, trials)], mask, x)
    return lloyd(data, centres, tol, max_iter)


def _masked_uniform_resp(key, mask):
    def resp(x, i):
        r = jax.random.uniform(jax.random.fold_in(key, i), (x.shape[0], mask.shape[0]), x.dtype)
        r = jnp.where(mask, r, 0.0)
        return r / jnp.sum(r, axis=1, keepdims=True)
    return resp


def _masked_initialize(keys, data: Chunked, mask, k_max: int, covariance_type: str,
                       method: str, reg_covar, trials: int) -> GMMParams:
    """``jaxmix.gmm.init.initialize`` on padded restarts: only real components get data."""
    if method == "kmeans":
        centres = _masked_kmeans(keys, data, mask, k_max, trials, KMEANS_INIT_TOL,
                                 KMEANS_INIT_MAX_ITER).params.centroids
        per_restart, make_resp = centres, onehot_nearest
    elif method in ("k-means++", "random_from_data"):
        idx = (_seed_indices(keys, data, k_max, trials) if method == "k-means++"
               else random_indices(keys, data, k_max))
        per_restart, make_resp = jnp.where(mask, idx, -1), lambda ind: onehot_at(ind, k_max)
    else:  # "random"
        per_restart, make_resp = (keys, mask), lambda a: _masked_uniform_resp(*a)
    params = jax.vmap(
        lambda a: params_from_resp(make_resp(a), data, reg_covar, covariance_type)
    )(per_restart)
    return _enforce_mask(params, mask)


def _centre(data: Chunked):
    """Data minus its weighted mean (padding rows stay zero), and the mean."""
    x, w = data.flat()
    offset = jnp.matmul(w, x, precision=jax.lax.Precision.HIGHEST) / jnp.sum(w)
    xc = (data.x - offset) * (data.w > 0)[..., None].astype(data.x.dtype)
    return Chunked(xc, data.w), offset


def local_trials(k_max: int) -> int:
    """k-means++ local trials used for every ``k`` of a grid: sklearn's
    ``2 + int(ln k)`` at the grid's largest ``k`` (fixed, so seeds nest)."""
    return 2 + int(math.log(k_max))


def _trials(n_local_trials, grid) -> int:
    if n_local_trials is None:
        return local_trials(int(grid.max()))
    return check_int(n_local_trials, "n_local_trials")


class _GridFit(NamedTuple):
    fit: FitResult          # leaves with leading (G * R)
    score: jax.Array        # (G * R,) mean log-likelihood of the final params


@functools.partial(jax.jit, static_argnames=(
    "k_max", "n_restarts", "covariance_type", "init", "max_iter", "path", "trials"))
def _fit_grid(key, data: Chunked, ks, tol, reg_covar, *, k_max, n_restarts, covariance_type,
              init, max_iter, path, trials) -> _GridFit:
    TRACE_COUNT["gmm"] += 1
    dtype = data.x.dtype
    tol, reg_covar = jnp.asarray(tol, dtype), jnp.asarray(reg_covar, dtype)
    data, offset = _centre(data)
    mask = _grid_mask(ks, k_max, n_restarts)
    keys = _grid_keys(key, ks, n_restarts)
    params0 = _masked_initialize(keys, data, mask, k_max, covariance_type, init, reg_covar,
                                 trials)
    step = masked_step(batched_em_step(data, reg_covar, path), mask)
    result = iterate(step, params0, tol, max_iter)
    n = jnp.sum(data.w)
    score = jax.vmap(lambda p: jnp.sum(data.w * score_chunks(p, data)))(result.params) / n
    params = result.params
    result = result._replace(params=params.replace(means=params.means + offset),
                             degenerate=_masked_degenerate(params, mask, n, reg_covar))
    return _GridFit(result, score)


@functools.partial(jax.jit, static_argnames=("k_max", "n_restarts", "max_iter", "trials"))
def _kmeans_grid(key, data: Chunked, ks, tol, *, k_max, n_restarts, max_iter, trials):
    TRACE_COUNT["kmeans"] += 1
    data, offset = _centre(data)
    mask = _grid_mask(ks, k_max, n_restarts)
    keys = _grid_keys(key, ks, n_restarts)
    result = _masked_kmeans(keys, data, mask, k_max, trials, tol, max_iter)
    centroids = result.params.centroids

    def inertia(c):  # final inertia of the final centroids, as sklearn's inertia_
        return scan_sum(lambda x, w, _: jnp.sum(w * assign(x, c)[1]), data)

    return result._replace(params=KMeansParams(centroids + offset)), jax.vmap(inertia)(centroids)


# --------------------------------------------------------------------------
# select_k
# --------------------------------------------------------------------------

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
    types = (covariance_type,) if isinstance(covariance_type, str) else tuple(covariance_type)
    if not types:
        raise ValueError("covariance_type is empty; give a type or a sequence of types")
    for t in types:
        check_choice(t, "covariance_type", COVARIANCE_TYPES)
    if len(set(types)) != len(types):
        raise ValueError(f"covariance_type has repeated entries {types}")
    return types


def _best_per_k(result: _GridFit, ks: np.ndarray, n_restarts: int):
    """Host side: per grid point, the restart with the highest objective."""
    fit = jax.device_get(result.fit)
    score = np.asarray(jax.device_get(result.score), np.float64).reshape(len(ks), n_restarts)

    def grid(a):
        return np.asarray(a).reshape((len(ks), n_restarts) + np.shape(a)[1:])

    failed = grid(fit.failed)
    objective = np.where(failed, -np.inf, grid(fit.objective))
    best = np.argmax(objective, axis=1)
    g = np.arange(len(ks))
    params = fit.params
    out_params = []
    for i, k in enumerate(ks):
        flat = i * n_restarts + best[i]
        p = jax.tree.map(lambda a: a[flat], params)
        pc = p.precisions_cholesky
        if _per_component(family(p.covariance_type)):
            pc = pc[:k]
        out_params.append(GMMParams(p.weights[:k], p.means[:k], pc, p.covariance_type))
    return dict(
        log_likelihood=np.where(failed.all(axis=1), -np.inf, score[g, best]),
        converged=grid(fit.converged)[g, best], n_converged=grid(fit.converged).sum(axis=1),
        n_iter=grid(fit.n_iter)[g, best], degenerate=grid(fit.degenerate)[g, best],
        failed=failed.all(axis=1), params=tuple(out_params))


def _run_strategy(fn, ks: np.ndarray, strategy: str, chunk_size, x, n_restarts: int, **static):
    """Run a compiled grid function over ``ks``: once padded, or once per k."""
    n, d = x.shape
    groups = [ks] if strategy == "padded" else [ks[i:i + 1] for i in range(len(ks))]
    outs = []
    for group in groups:
        k_max = int(group.max())
        size = (default_chunk_size(n, d, k_max, n_restarts * len(group)) if chunk_size is None
                else chunk_size)
        outs.append((group, fn(chunk(x, balanced_chunk(n, size)), jnp.asarray(group), k_max=k_max,
                               n_restarts=n_restarts, **static)))
    return outs


def select_k(key, x, ks: Sequence[int], *, covariance_type="full", n_restarts: int = 8,
             init: str = "kmeans", tol: float = 1e-3, reg_covar: float = 1e-6,
             max_iter: int = 100, chunk_size: int | None = None, path: str = "auto",
             strategy: str = "padded", n_local_trials: int | None = None) -> Selection:
    """Fit a Gaussian mixture for every ``k`` in ``ks`` (``R`` restarts each) and
    tabulate log-likelihood, BIC and AIC.

    Args:
      key: ``jax.random`` key or int seed. Restart ``r`` of ``k`` uses
        ``split(fold_in(key, k), R)[r]``, so for a given ``n_local_trials`` a
        row does not depend on the rest of the grid nor on ``strategy`` (up to
        float rounding).
      x: ``(n, d)`` data.
      ks: the grid of component counts (distinct, ``1 <= k <= n``).
      covariance_type: a type or a sequence of types (one compile each).
      n_restarts: ``R`` restarts per ``k``; the best by final objective is kept.
      init, tol, reg_covar, max_iter, chunk_size, path: as :func:`jaxmix.fit_gmm`.
      strategy: ``"padded"`` (whole grid in one compiled call, see the module
        docstring) or ``"per_k"`` (one compiled call per ``k``).
      n_local_trials: k-means++ candidates per centre, the same for every
        ``k`` so that seeds nest (``None``: ``local_trials(max(ks))``, sklearn's
        count at the largest ``k``).

    Returns:
      :class:`Selection`; ``chosen_k("bic")`` / ``chosen_k("aic")`` give the
      choices, ``to_markdown()`` the table.
    """
    x = check_data(x)
    n, d = x.shape
    grid = _check_grid(ks, n)
    types = _covariance_types(covariance_type)
    n_restarts = check_int(n_restarts, "n_restarts")
    max_iter = check_int(max_iter, "max_iter", low=0)
    check_choice(init, "init", INIT_METHODS)
    check_choice(path, "path", PATHS)
    check_choice(strategy, "strategy", STRATEGIES)
    if chunk_size is not None:
        chunk_size = check_int(chunk_size, "chunk_size")
    tol = check_nonneg(tol, "tol")
    reg_covar = check_nonneg(reg_covar, "reg_covar")
    key = as_key(key)
    trials = _trials(n_local_trials, grid)

    columns = {name: [] for name in ("log_likelihood", "converged", "n_converged", "n_iter",
                                     "degenerate", "failed", "params")}
    for ct in types:
        fn = functools.partial(_fit_grid, key, tol=tol, reg_covar=reg_covar,
                               covariance_type=ct, init=init, max_iter=max_iter, path=path,
                               trials=trials)
        parts = [_best_per_k(out, group, n_restarts) for group, out in
                 _run_strategy(fn, grid, strategy, chunk_size, x, n_restarts)]
        for name in columns:
            if name == "params":
                columns[name].append(sum((p[name] for p in parts), ()))
            else:
                columns[name].append(np.concatenate([p[name] for p in parts]))
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


# --------------------------------------------------------------------------
# K-Means inertia curve (elbow)
# --------------------------------------------------------------------------

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


def inertia_curve(key, x, ks: Sequence[int], *, n_restarts: int = 10, tol: float = 1e-4,
                  max_iter: int = 300, chunk_size: int | None = None,
                  strategy: str = "padded", n_local_trials: int | None = None) -> InertiaCurve:
    """K-Means (k-means++ then Lloyd, sklearn's tol and defaults) for every
    ``k`` in ``ks`` with ``n_restarts`` each, padded like :func:`select_k`.

    A thin sweep over :func:`jaxmix.kmeans.core.lloyd`; unused centroids are parked
    at a sentinel point no sample is ever assigned to. ``key``, ``strategy``
    and ``n_local_trials`` as in :func:`select_k`.
    """
    x = check_data(x)
    n, d = x.shape
    grid = _check_grid(ks, n)
    n_restarts = check_int(n_restarts, "n_restarts")
    max_iter = check_int(max_iter, "max_iter", low=0)
    check_choice(strategy, "strategy", STRATEGIES)
    if chunk_size is not None:
        chunk_size = check_int(chunk_size, "chunk_size")
    fn = functools.partial(_kmeans_grid, as_key(key), tol=check_nonneg(tol, "tol"),
                           max_iter=max_iter, trials=_trials(n_local_trials, grid))
    inertia, centroids, converged = [], [], []
    for group, (result, inert) in _run_strategy(fn, grid, strategy, chunk_size,
                                                      x, n_restarts):
        inert = np.asarray(inert).reshape(len(group), n_restarts)
        best = np.argmin(inert, axis=1)
        cents = np.asarray(result.params.centroids)
        conv = np.asarray(result.converged)
        for i, k in enumerate(group):
            flat = i * n_restarts + best[i]
            inertia.append(inert[i, best[i]])
            centroids.append(cents[flat, :k])
            converged.append(conv[flat])
    return InertiaCurve(grid, np.array(inertia), tuple(centroids), np.array(converged))
