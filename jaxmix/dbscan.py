"""DBSCAN: density-based clusters of eps-neighbourhoods, and prediction for new points.

Definitions follow scikit-learn's ``DBSCAN``:

* the eps-neighbourhood of a sample is every sample (itself included) at
  Euclidean distance ``<= eps``; its weight is the summed ``sample_weight``
  of those samples (their number when unweighted);
* a *core* sample has neighbourhood weight ``>= min_samples``;
* clusters are the connected components of the core samples under the
  relation "within eps", numbered ``0..c-1`` by their smallest sample index;
* a non-core sample within eps of a core sample is a *border* sample: it
  joins the lowest-numbered cluster among its core neighbours (scikit-learn's
  breadth-first search reaches it first from that cluster, so the rule gives
  its labels exactly); every other sample is noise, ``-1``.

How it is computed (memory ``O(block^2 d + n d)``, never ``n x n``):

* the points are sorted along their first principal axis. Two points within
  eps differ by at most eps along that axis, so the neighbours of a block of
  ``block`` consecutive sorted points lie in a contiguous *band* of column
  tiles; every pass over the data loops over row blocks (``lax.map``) and,
  for each, over just the tiles of its band (a ``fori_loop`` with dynamic
  bounds). On moons-like data this skips over 90% of the pairs;
* a tile's squared distances come either from differences (``"exact"``,
  the default for few features) or from the GEMM
  ``||x||^2 - 2 x.y + ||y||^2`` on centred data at ``precision=HIGHEST``
  (``"gemm"``). The GEMM form can round a pair across the eps boundary, so
  a tile holding any pair within the GEMM's error bound of eps is recomputed
  from differences: the decision ``d^2 <= eps^2`` is the exact one either way;
* connected components: FastSV-style min-label propagation (Zhang, Azad and
  Hu, 2020). Each sweep takes, for every core sample, the smallest grandparent
  label ``f[f[j]]`` among its core neighbours (recomputed blockwise, no
  adjacency stored) and hooks both the sample and its parent to it, then
  shortcuts ``f <- min(f, f[f])``; a ``lax.while_loop`` repeats this until no
  label changes, at which point every component is a star on one root. The
  number of sweeps grows like the logarithm of the component diameter rather
  than the diameter.

Prediction (:func:`predict`) gives a new point the cluster of its nearest core
sample if that lies within ``max_distance`` (the seed's rule with
``max_distance = eps``), else ``-1``; the same banded search finds it.

>>> import numpy as np
>>> from jaxmix.dbscan import dbscan, predict
>>> x = np.array([[0.], [0.1], [0.2], [5.], [5.1], [5.2], [9.]])
>>> res = dbscan(x, eps=0.15, min_samples=2)
>>> res.labels.tolist(), res.core.tolist()
([0, 0, 0, 1, 1, 1, -1], [True, True, True, True, True, True, False])
>>> core = np.asarray(res.core)
>>> predict(np.array([[0.05], [5.3], [7.]]), x[core], res.labels[core], 0.15).tolist()
[0, 1, -1]
"""

from __future__ import annotations

from functools import partial
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from jaxmix.covariance import HIGHEST
from jaxmix.validation import check_data, check_int, check_nonneg, float_dtype

METHODS = ("auto", "exact", "gemm")
DEFAULT_BLOCK = 512
EXACT_MAX_FEATURES = 4  # "auto" uses differences up to this many features


class DBSCANResult(NamedTuple):
    """Output of :func:`dbscan`.

    Attributes:
      labels: ``(n,)`` int32 cluster of each sample, ``0..c-1``; ``-1`` is noise.
      core: ``(n,)`` bool, core samples.
      n_clusters: ``()`` int32, ``c``.
      n_neighbors: ``(n,)`` weighted size of each eps-neighbourhood (self included).
      n_sweeps: ``()`` int32, label-propagation sweeps until the fixed point.
    """

    labels: jax.Array
    core: jax.Array
    n_clusters: jax.Array
    n_neighbors: jax.Array
    n_sweeps: jax.Array


class _Points(NamedTuple):
    """Points sorted by ``key`` and padded to whole blocks (see :func:`_sorted_points`)."""

    x: jax.Array      # (n_pad, d) coordinates (centred on the "gemm" path)
    sq: jax.Array     # (n_pad,) squared norms of x
    key: jax.Array    # (n_pad,) projection on the sort axis, +inf on padding
    valid: jax.Array  # (n_pad,) False on padding
    index: jax.Array  # (n_pad,) int32 original row (n, n+1, ... on padding)


# --------------------------------------------------------------------------
# Geometry: sort axis, sorted padded points, tile distances
# --------------------------------------------------------------------------

def resolve_method(method: str, n_features: int) -> str:
    """``"exact"`` or ``"gemm"`` for ``method`` (``"auto"``: by ``n_features``)."""
    if method not in METHODS:
        raise ValueError(f"method must be one of {METHODS}, got {method!r}")
    if method == "auto":
        return "exact" if n_features <= EXACT_MAX_FEATURES else "gemm"
    return method


def _frame(x):
    """Centre (mean) and unit first principal axis of ``x`` ``(n, d)``."""
    centre = jnp.mean(x, axis=0)
    xc = x - centre
    _, vecs = jnp.linalg.eigh(jnp.matmul(xc.T, xc, precision=HIGHEST))
    return centre, vecs[:, -1]


def _sorted_points(x, centre, axis, size: int, centred: bool) -> _Points:
    """``x`` sorted by its projection on ``axis``, padded to a multiple of ``size``."""
    n, d = x.shape
    n_pad = max(1, -(-n // size)) * size
    xc = x - centre
    key = jnp.matmul(xc, axis, precision=HIGHEST)
    order = jnp.argsort(key, stable=True).astype(jnp.int32)
    pts = (xc if centred else x)[order]
    pad = n_pad - n
    return _Points(
        x=jnp.concatenate([pts, jnp.zeros((pad, d), x.dtype)]),
        sq=jnp.concatenate([jnp.sum(pts * pts, axis=1), jnp.zeros((pad,), x.dtype)]),
        key=jnp.concatenate([key[order], jnp.full((pad,), jnp.inf, x.dtype)]),
        valid=jnp.arange(n_pad) < n,
        index=jnp.concatenate([order, jnp.arange(n, n_pad, dtype=jnp.int32)]))


def _exact_d2(xi, xj):
    diff = xi[:, None, :] - xj[None, :, :]
    return jnp.sum(diff * diff, axis=-1)


def _tile_d2(xi, sqi, xj, sqj, r2, method: str):
    """Squared distances ``(B, T)``; on the "gemm" path, recomputed from
    differences when some pair is within the GEMM's rounding bound of ``r2``."""
    if method == "exact":
        return _exact_d2(xi, xj)
    norms = sqi[:, None] + sqj[None, :]
    g = norms - 2.0 * jnp.matmul(xi, xj.T, precision=HIGHEST)
    tol = 4.0 * (xi.shape[1] + 2) * jnp.finfo(xi.dtype).eps * norms
    near = jnp.any(jnp.abs(g - r2) <= tol)
    return jax.lax.cond(near, _exact_d2, lambda a, b: g, xi, xj)


def _band_reduce(rows: _Points, cols: _Points, values, r2, half_width, tile_fn, init,
                 combine, block: int, tile: int, method: str):
    """Per-row reductions over the column points within ``sqrt(r2)``.

    For each block of ``block`` sorted rows, only the column tiles whose keys
    can lie within ``half_width`` of the block's keys are visited.
    ``values`` is a pytree of per-column arrays ``(n_cols_pad, ...)``;
    ``tile_fn(within (B, T) bool, d2 (B, T), values_tile)`` gives the tile's
    per-row partials, a pytree shaped like ``init(B)``; ``combine`` merges two
    of them. Returns the per-row results, rows in sorted order.
    """
    n_blocks = rows.x.shape[0] // block

    def row_block(args):
        xi, sqi, ki, vi = args
        lo = jnp.searchsorted(cols.key, ki[0] - half_width, side="left") // tile
        hi_key = jnp.max(jnp.where(vi, ki, -jnp.inf)) + half_width
        hi = (jnp.searchsorted(cols.key, hi_key, side="right") + tile - 1) // tile

        def visit(t, acc):
            cut = partial(jax.lax.dynamic_slice_in_dim, start_index=t * tile, slice_size=tile)
            d2 = _tile_d2(xi, sqi, cut(cols.x), cut(cols.sq), r2, method)
            within = (d2 <= r2) & cut(cols.valid)[None, :]
            return combine(acc, tile_fn(within, d2, jax.tree.map(cut, values)))

        return jax.lax.fori_loop(lo.astype(jnp.int32), hi.astype(jnp.int32), visit,
                                 init(block))

    def split(a):
        return a.reshape((n_blocks, block) + a.shape[1:])

    out = jax.lax.map(row_block, (split(rows.x), split(rows.sq), split(rows.key),
                                  split(rows.valid)))
    return jax.tree.map(lambda a: a.reshape((-1,) + a.shape[2:]), out)


def _band_sum(pts, weights, r2, h, block, method):
    """``sum_j weights_j [d(i, j)^2 <= r2]`` for every (sorted) point ``i``."""
    return _band_reduce(
        pts, pts, weights, r2, h,
        lambda within, d2, w: jnp.sum(jnp.where(within, w[None, :], 0), axis=1),
        lambda b: jnp.zeros((b,), weights.dtype), jnp.add, block, block, method)


def _band_min(pts, values, mask, r2, h, block, method):
    """``min_j values_j`` over the masked points within ``sqrt(r2)`` of every
    (sorted) point; ``big`` (the padded size) where there are none."""
    big = pts.x.shape[0]

    def tile_fn(within, d2, vm):
        v, m = vm
        return jnp.min(jnp.where(within & m[None, :], v[None, :], big), axis=1)

    return _band_reduce(pts, pts, (values, mask), r2, h, tile_fn,
                        lambda b: jnp.full((b,), big, jnp.int32), jnp.minimum,
                        block, block, method)


def _components(pts, core, r2, h, block, method):
    """Root ``f (n_pad,)`` of each core sample's component (sorted positions;
    non-core samples keep ``f[i] = i``) and the number of sweeps."""
    big = pts.x.shape[0]
    ids = jnp.arange(big, dtype=jnp.int32)

    def sweep(state):
        f, _, count = state
        gf = f[f]
        m = _band_min(pts, gf, core, r2, h, block, method)
        m = jnp.where(core, jnp.minimum(m, gf), big)
        new = f.at[f].min(m)                  # hook the parent
        new = jnp.minimum(new, m)             # hook the sample itself
        new = jnp.minimum(new, new[new])      # shortcut
        return new, jnp.any(new != f), count + 1

    f, _, count = jax.lax.while_loop(lambda s: s[1], sweep, (ids, jnp.array(True), jnp.int32(0)))
    return f, count


def _half_width(pts, r2):
    """Key half-width of a band: the radius plus a margin for rounding."""
    eps = jnp.finfo(pts.x.dtype).eps
    scale = jnp.sqrt(jnp.max(jnp.where(pts.valid, pts.sq, 0)))
    return jnp.sqrt(r2) * (1 + 1e-3) + 8 * (pts.x.shape[1] + 2) * eps * scale


@partial(jax.jit, static_argnames=("block", "method"))
def _dbscan(x, weights, eps, min_samples, block: int, method: str):
    n = x.shape[0]
    centre, axis = _frame(x)
    pts = _sorted_points(x, centre, axis, block, centred=method == "gemm")
    r2 = jnp.asarray(eps, x.dtype) ** 2
    h = _half_width(pts, r2)
    w = jnp.concatenate([weights[pts.index[:n]], jnp.zeros((pts.x.shape[0] - n,), x.dtype)])
    counts = _band_sum(pts, w, r2, h, block, method)
    core = pts.valid & (counts >= min_samples)
    f, sweeps = _components(pts, core, r2, h, block, method)
    big = pts.x.shape[0]
    rep_of_root = jnp.full((big,), big, jnp.int32).at[f].min(jnp.where(core, pts.index, big))
    rep = jnp.where(core, rep_of_root[f], big)
    border = _band_min(pts, rep, core, r2, h, block, method)
    rep = jnp.where(core, rep, jnp.where(pts.valid, border, big))
    return _number(rep, core, counts, pts.index, n, sweeps)


def _number(rep, core, counts, index, n, sweeps):
    """Back to the original order; clusters numbered by their smallest core index."""
    big = rep.shape[0]
    unsort = lambda a, fill: jnp.full_like(a, fill).at[index].set(a)[:n]  # noqa: E731
    rep, core, counts = unsort(rep, big), unsort(core, False), unsort(counts, 0)
    is_rep = jnp.zeros((n + 1,), bool).at[jnp.where(core, rep, n)].set(True)[:n]
    number = jnp.cumsum(is_rep, dtype=jnp.int32) - 1
    labels = jnp.where(rep < big, number[jnp.minimum(rep, n - 1)], -1).astype(jnp.int32)
    return DBSCANResult(labels, core, jnp.sum(is_rep, dtype=jnp.int32), counts, sweeps)


# --------------------------------------------------------------------------
# Public entry points (validation at the edge)
# --------------------------------------------------------------------------

def _check_weights(sample_weight, n: int, dtype):
    """Finite per-sample weights (negative allowed, as in scikit-learn's DBSCAN)."""
    if sample_weight is None:
        return jnp.ones((n,), dtype)
    w = np.asarray(sample_weight)
    if w.dtype.kind not in "biuf":
        raise ValueError(f"sample_weight must be numeric, got dtype {w.dtype}")
    if w.shape != (n,):
        raise ValueError(f"sample_weight must have shape ({n},), got {w.shape}")
    if not np.all(np.isfinite(w)):
        raise ValueError("sample_weight must be finite (it contains NaN or infinity)")
    return jnp.asarray(w, dtype)


def _check_block(block) -> int:
    return check_int(block, "block", low=1)


def dbscan(x, eps: float = 0.5, min_samples: int = 5, sample_weight=None, *,
           block: int = DEFAULT_BLOCK, method: str = "auto") -> DBSCANResult:
    """DBSCAN clustering of ``x`` ``(n, d)`` (see the module docstring).

    Args:
      x: ``(n, d)`` samples.
      eps: neighbourhood radius (``> 0``); neighbours have distance ``<= eps``.
      min_samples: neighbourhood weight (self included) that makes a core sample.
      sample_weight: optional ``(n,)`` weights (may be negative, as in sklearn).
      block: rows per block and columns per tile (static); memory grows
        like ``block^2`` (times ``d`` on the exact path).
      method: ``"exact"`` (distances from differences), ``"gemm"`` (GEMM with
        exact re-check near eps) or ``"auto"`` (exact for at most
        ``EXACT_MAX_FEATURES`` features).
    Returns:
      :class:`DBSCANResult`. Same input, same output.

    >>> import numpy as np
    >>> x = np.array([[0., 0.], [0., 1.], [0., 2.], [3., 0.]])
    >>> dbscan(x, eps=1.0, min_samples=3).labels.tolist()
    [0, 0, 0, -1]
    """
    x = check_data(x, "x")
    eps = check_nonneg(eps, "eps", strict=True)
    min_samples = check_int(min_samples, "min_samples", low=1)
    weights = _check_weights(sample_weight, x.shape[0], x.dtype)
    method = resolve_method(method, x.shape[1])
    return _dbscan(x, weights, eps, min_samples, _check_block(block), method)


@partial(jax.jit, static_argnames=("block", "tile", "method"))
def _predict(x_new, components, component_labels, max_distance, block: int, tile: int,
             method: str):
    m = x_new.shape[0]
    centre, axis = _frame(components)
    cols = _sorted_points(components, centre, axis, tile, centred=method == "gemm")
    rows = _sorted_points(x_new, centre, axis, block, centred=method == "gemm")
    r2 = jnp.asarray(max_distance, x_new.dtype) ** 2
    h = _half_width(cols, r2) + _half_width(rows, 0.0)
    big = cols.x.shape[0]

    def tile_fn(within, d2, idx):
        cand = jnp.where(within, d2, jnp.inf)
        best = jnp.min(cand, axis=1)
        return best, jnp.min(jnp.where(cand == best[:, None], idx[None, :], big), axis=1)

    def combine(a, b):
        take = (b[0] < a[0]) | ((b[0] == a[0]) & (b[1] < a[1]))
        return jnp.where(take, b[0], a[0]), jnp.where(take, b[1], a[1])

    init = lambda b: (jnp.full((b,), jnp.inf, x_new.dtype),  # noqa: E731
                      jnp.full((b,), big, jnp.int32))
    _, nearest = _band_reduce(rows, cols, cols.index, r2, h, tile_fn, init, combine,
                              block, tile, method)
    c = components.shape[0]
    labels = jnp.where(nearest < big, component_labels[jnp.minimum(nearest, c - 1)], -1)
    return jnp.full((rows.x.shape[0],), -1, jnp.int32).at[rows.index].set(
        labels.astype(jnp.int32))[:m]


def predict(x_new, components, component_labels, max_distance: float, *,
            block: int = DEFAULT_BLOCK, method: str = "auto") -> jax.Array:
    """Cluster of each new point: that of its nearest core sample when it lies
    within ``max_distance`` (distance ``<= max_distance``), else ``-1``.

    Args:
      x_new: ``(m, d)`` points to label.
      components: ``(c, d)`` core samples of a fit (``x[result.core]``).
      component_labels: ``(c,)`` their clusters (``result.labels[result.core]``).
      max_distance: largest distance to a core sample (``> 0``), typically eps.
      block: points per block (static); ``method`` as in :func:`dbscan`.
    Returns:
      ``(m,)`` int32 labels. Among core samples at the same distance the
      lowest-index one wins.

    >>> import numpy as np
    >>> cores = np.array([[0., 0.], [1., 0.]])
    >>> predict(np.array([[0.2, 0.], [0.9, 0.], [3., 0.]]), cores, np.array([0, 1]), 0.5).tolist()
    [0, 1, -1]
    """
    x_new = check_data(x_new, "x_new")
    max_distance = check_nonneg(max_distance, "max_distance", strict=True)
    d = x_new.shape[1]
    comps = np.asarray(components)
    if comps.ndim != 2 or comps.shape[1] != d:
        raise ValueError(f"components must be 2-D with {d} features like x_new, "
                         f"got shape {comps.shape}")
    labels = np.asarray(component_labels)
    if labels.shape != (comps.shape[0],) or labels.dtype.kind not in "iu":
        raise ValueError(f"component_labels must be {comps.shape[0]} integers (one per "
                         f"component), got shape {labels.shape} and dtype {labels.dtype}")
    m = x_new.shape[0]
    if comps.shape[0] == 0:
        return jnp.full((m,), -1, jnp.int32)
    comps = check_data(comps, "components").astype(x_new.dtype)
    block = _check_block(block)
    rows = min(block, max(16, 1 << (m - 1).bit_length()))
    return _predict(x_new, comps, jnp.asarray(labels, jnp.int32), max_distance, rows, block,
                    resolve_method(method, d))
