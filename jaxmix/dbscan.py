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

How it is computed (memory ``O(block^2 + n d)``, never ``n x n``):

* tiles: the points are put in k-d tree order (recursive median splits, in
  the principal axes of the data, along the axis of largest variance; leaves
  of ``block`` points), so each tile of ``block`` consecutive points is
  spatially compact, and padded to whole tiles. Every pass over the data maps
  over row tiles (``lax.map`` / ``lax.scan``) and, for each, loops
  (``fori_loop``) over just the column tiles whose bounding boxes (in the
  principal axes, widened by the rotation's rounding) come within eps of its
  own box;
* distances: a ``(T, B)`` tile of squared distances comes either from
  differences (``"exact"``, the default up to ``EXACT_MAX_FEATURES``
  features) or from the GEMM ``||x||^2 - 2 x.y + ||y||^2`` at
  ``precision=HIGHEST`` on coordinates shifted to a point of the row tile
  (``"gemm"``). Where a pair lies within the GEMM's rounding bound of eps^2
  its row is recomputed from differences, so the decision ``d^2 <= eps^2``
  is the one exact differences give (scikit-learn compares the same squared
  distance with ``eps^2``);
* core samples: one pass of weighted neighbour counts;
* clusters: min-label propagation with hooking and shortcutting (FastSV,
  Zhang, Azad and Hu 2020) over the core samples alone (masked out of the
  tiles, or given their own tree order when under 90% of the samples). A
  sweep visits the row tiles in order carrying the labels, so later tiles
  already see what earlier ones lowered (Gauss-Seidel), and skips tile pairs
  whose samples all carry one label; a ``lax.while_loop`` repeats sweeps until
  one changes nothing (3 on the moons and the blobs of the benchmark, the
  last one only confirming). Labels are renumbered by each component's
  smallest sample index;
* border samples: one pass of the non-core samples against the core ones.

Inputs are padded to ``padded_size(n, block)`` rows (whole tiles, their
number rounded to ``m 2^k``, ``4 <= m <= 8``), so nearby sample counts reuse
one compiled function; ``eps``, ``min_samples`` and ``max_distance`` are
traced values (changing them does not recompile).

Prediction (:func:`predict`) gives a new point the cluster of its nearest core
sample if that lies within ``max_distance`` (the seed's rule with
``max_distance = eps``), else ``-1``; the same tiled search finds it.

>>> import numpy as np
>>> from jaxmix.dbscan import fit_dbscan, predict
>>> x = np.array([[0.], [0.1], [0.2], [5.], [5.1], [5.2], [9.]])
>>> res = fit_dbscan(x, eps=0.15, min_samples=2)
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
from jaxmix.validation import check_data, check_int, check_nonneg

METHODS = ("auto", "exact", "gemm")
DEFAULT_BLOCK = 256
MAX_TILES = 46340  # (tiles)^2 must fit in int32 (tree order arithmetic)
EXACT_MAX_FEATURES = 6  # "auto" uses differences up to this many features (crossover
                        # with the GEMM measured at d = 6 on the 2-core CPU)


class DBSCANResult(NamedTuple):
    """Output of :func:`fit_dbscan`.

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


class _Tiles(NamedTuple):
    """Points in k-d tree order, padded to whole tiles, with each tile's box.

    Distances use ``x``; the tree and the boxes use ``z``, the coordinates in
    the principal axes of the data (tighter boxes for clusters that are not
    axis-aligned). ``slack`` bounds the rounding of ``z``: the box gap between
    two tiles exceeds the true distance of no pair by more than
    ``slack_a + slack_b``.
    """

    x: jax.Array      # (n_pad, d) coordinates
    z: jax.Array      # (n_pad, d) rotated coordinates
    valid: jax.Array  # (n_pad,) False on padding (and on points left out of a subset)
    index: jax.Array  # (n_pad,) int32 original row (n, n+1, ... on padding)
    lo: jax.Array     # (n_tiles, d) smallest valid z of each tile (+inf if none)
    hi: jax.Array     # (n_tiles, d) largest valid z of each tile (-inf if none)
    slack: jax.Array  # () rounding bound of the box gaps


# --------------------------------------------------------------------------
# Geometry: tree order, tiles with boxes, tile distances
# --------------------------------------------------------------------------

def resolve_method(method: str, n_features: int) -> str:
    """``"exact"`` or ``"gemm"`` for ``method`` (``"auto"``: by ``n_features``)."""
    if method not in METHODS:
        raise ValueError(f"method must be one of {METHODS}, got {method!r}")
    if method == "auto":
        return "exact" if n_features <= EXACT_MAX_FEATURES else "gemm"
    return method


def _tree_order(x, n, tile: int):
    """A k-d tree order of the first ``n`` rows of ``x`` ``(n_pad, d)`` (the
    rest, padding, stays at the end) whose leaves are whole tiles.

    Level ``l`` splits each of its ``2^l`` groups (contiguous ranges whose
    bounds are multiples of ``tile``) at a tile boundary near its middle, by
    sorting the group along its coordinate of largest variance; after
    ``ceil(log2(n_pad / tile))`` levels every tile is one leaf, so consecutive
    ``tile`` points are spatially compact and their bounding boxes small.
    The levels run in a ``fori_loop`` (one compiled body).
    """
    n_pad = x.shape[0]
    most = n_pad // tile                        # groups at the last level, at most
    n_tiles = jnp.maximum((n + tile - 1) // tile, 1)
    pos = jnp.arange(n_pad, dtype=jnp.int32)

    def level(lev, order):
        # group j holds tiles [floor(j T / G), floor((j + 1) T / G)) of the T
        # valid ones, G = 2^lev; padding goes to group ``most``, after all
        groups = jnp.left_shift(1, lev)
        gid = jnp.where(pos < n, ((pos // tile + 1) * groups - 1) // n_tiles, most)
        xo = x[order]
        seg = partial(jax.ops.segment_sum, segment_ids=gid, num_segments=most + 1,
                      indices_are_sorted=True)
        mean = seg(xo) / jnp.maximum(seg(jnp.ones_like(xo[:, :1])), 1)
        axis = jnp.argmax(seg((xo - mean[gid]) ** 2), axis=1)[:, None]
        low = jax.ops.segment_min(xo, gid, most + 1, indices_are_sorted=True)
        spread = jax.ops.segment_max(xo, gid, most + 1, indices_are_sorted=True) - low
        offset = jnp.take_along_axis(xo - low[gid], axis[gid], axis=1)[:, 0]
        width = jnp.take_along_axis(spread, axis, axis=1)[:, 0]
        return order[_group_sort(offset, width[gid], gid, most)]

    return jax.lax.fori_loop(0, max(0, (most - 1).bit_length()), level, pos)


def _group_sort(offset, width, gid, groups: int):
    """Positions sorted by group ``gid`` (major, ``<= groups``), then by
    ``offset in [0, width]``.

    One int32 key, the group in the high bits and the offset quantised to the
    low ones: a one-key sort, 40% faster than ``lexsort`` on XLA:CPU. Ties of
    the quantisation only blur the order within a group (a heuristic).
    """
    bits = min(24, 31 - groups.bit_length())
    frac = jnp.where(width > 0, offset / jnp.where(width > 0, width, 1), 0)
    q = jnp.clip((frac * 2 ** bits).astype(jnp.int32), 0, 2 ** bits - 1)
    pos = jnp.arange(gid.shape[0], dtype=jnp.int32)
    return jax.lax.sort(((gid << bits) | q, pos), num_keys=1, is_stable=False)[1]


def _boxed(x, valid, tile: int):
    """Each tile's bounding box ``(lo, hi)`` over its valid points."""
    d = x.shape[1]
    inside = valid[:, None]
    lo = jnp.min(jnp.where(inside, x, jnp.inf).reshape(-1, tile, d), axis=1)
    hi = jnp.max(jnp.where(inside, x, -jnp.inf).reshape(-1, tile, d), axis=1)
    return lo, hi


ROTATE_MAX_FEATURES = 64  # principal axes for the tree up to this d (else the raw axes)


def _frame(x, n):
    """Centre and principal axes ``(d, d)`` (or ``None`` beyond
    ``ROTATE_MAX_FEATURES``) of the first ``n`` rows of ``x``."""
    d = x.shape[1]
    inside = (jnp.arange(x.shape[0]) < n)[:, None]
    centre = jnp.sum(jnp.where(inside, x, 0), axis=0) / jnp.maximum(n, 1)
    if d > ROTATE_MAX_FEATURES:
        return centre, None
    xc = jnp.where(inside, x - centre, 0)
    _, axes = jnp.linalg.eigh(jnp.matmul(xc.T, xc, precision=HIGHEST))
    return centre, axes


def _rotate(x, frame):
    """``(z, slack)``: coordinates in ``frame`` and the bound of their rounding
    on a box gap, ``4 sqrt(d) (d + 2) eps max|x - centre|`` (the shift and the
    product err by ``(d + 2) eps |x - centre|`` per coordinate, with margin)."""
    centre, axes = frame
    if axes is None:
        return x, jnp.zeros((), x.dtype)
    xc = x - centre
    d = x.shape[1]
    bound = 4 * d ** 0.5 * (d + 2) * jnp.finfo(x.dtype).eps
    return jnp.matmul(xc, axes, precision=HIGHEST), bound * jnp.sqrt(
        jnp.max(jnp.sum(xc * xc, axis=1)))


def _tiles(x, n, tile: int, frame) -> _Tiles:
    """The first ``n`` rows of ``x`` ``(n_pad, d)`` (``n_pad`` a multiple of
    ``tile``) in tree order of their coordinates in ``frame`` (see
    :func:`_frame`), the padding rows after them."""
    z, slack = _rotate(x, frame)
    z = jnp.where((jnp.arange(x.shape[0]) < n)[:, None], z, 0)
    order = _tree_order(z, n, tile)
    valid = order < n
    return _Tiles(x[order], z[order], valid, order, *_boxed(z[order], valid, tile), slack)


def padded_size(n: int, tile: int) -> int:
    """Rows a computation on ``n`` samples is padded to: whole tiles, their
    number rounded up to ``m 2^k`` with ``4 <= m <= 8`` (at most 25% more), so
    that nearby sample counts share one compiled function."""
    t = max(1, -(-n // tile))
    k = max(0, t.bit_length() - 3)
    t = -(-t // 2 ** k) * 2 ** k
    if t > MAX_TILES:
        raise ValueError(f"{n} samples make {t} tiles of block={tile}, more than the "
                         f"{MAX_TILES} that int32 tile arithmetic allows; use "
                         f"block >= {-(-n // 2 ** 15)}")
    return t * tile


def _subset(pts: _Tiles, keep) -> _Tiles:
    """The points with ``keep`` moved to the front and re-tiled (the others stay
    behind as invalid points), in their old order."""
    return _permuted(pts, keep, jnp.argsort(~keep, stable=True))


def _permuted(pts: _Tiles, keep, perm) -> _Tiles:
    """``pts`` reordered by ``perm``, valid where ``keep``, boxes recomputed."""
    tile = pts.x.shape[0] // pts.lo.shape[0]
    z, valid = pts.z[perm], keep[perm]
    return _Tiles(pts.x[perm], z, valid, pts.index[perm], *_boxed(z, valid, tile), pts.slack)


def _core_tiles(pts: _Tiles, core) -> _Tiles:
    """Tiles of the core samples only, compact for the sweeps.

    With at least 90% of the samples core, the others are just masked (the
    tiles stay the tree's leaves); with fewer, the core samples are moved to
    the front and given a tree order of their own (fewer tiles; compacting in
    the old order would make tiles straddle leaves, and clusters, measured
    1437 -> 963 tile visits per sweep on 16-d blobs).
    """
    tile = pts.x.shape[0] // pts.lo.shape[0]

    def masked(_):
        return _permuted(pts, core, jnp.arange(core.shape[0]))

    def retree(_):
        perm = jnp.argsort(~core, stable=True)
        return _permuted(pts, core, perm[_tree_order(pts.z[perm], jnp.sum(core), tile)])

    return jax.lax.cond(10 * jnp.sum(core) >= 9 * jnp.sum(pts.valid), masked, retree, None)


UNROLL_MAX_FEATURES = 32  # exact distances: one (T, B) term per feature up to this d
RECHECK_ROWS = 16         # rows of a tile re-checked exactly before the whole tile is


def _exact_d2(xj, xi):
    """``||xj_t - xi_b||^2`` ``(T, B)`` from differences."""
    if xj.shape[1] > UNROLL_MAX_FEATURES:
        diff = xj[:, None, :] - xi[None, :, :]
        return jnp.sum(diff * diff, axis=-1)
    terms = [(xj[:, k, None] - xi[None, :, k]) ** 2 for k in range(xj.shape[1])]
    return sum(terms[1:], terms[0])


def _gemm_d2(xj, vj, xi, sqi, vi, r2):
    """GEMM squared distances ``(T, B)``, exact for every pair near ``r2``.

    ``xi`` and ``xj`` are shifted by a point of the row block, so the norms,
    and the GEMM's rounding bound are local. That bound: the dot product and
    both norms err by at most ``d u`` times ``|xj|^2 + |xi|^2`` (``u`` the unit
    roundoff, any summation order), the two additions by ``4 u`` times it; we
    use ``2 (d + 2) eps`` (``eps = 2 u``), twice the first-order bound.
    ``vj``/``vi`` mask invalid columns/rows. The rows holding a pair within that bound
    of ``r2`` are recomputed from differences, up to ``RECHECK_ROWS`` of
    them, else the whole tile.
    """
    sqj = jnp.sum(xj * xj, axis=1)
    norms = sqj[:, None] + sqi[None, :]
    g = norms - 2.0 * jnp.matmul(xj, xi.T, precision=HIGHEST)
    tol = 2.0 * (xi.shape[1] + 2) * jnp.finfo(xi.dtype).eps * norms
    rows = jnp.any((jnp.abs(g - r2) <= tol) & vj[:, None], axis=0) & vi
    count = jnp.sum(rows, dtype=jnp.int32)

    def few(g):
        (idx,) = jnp.nonzero(rows, size=RECHECK_ROWS, fill_value=0)
        return g.at[:, idx].set(_exact_d2(xj, xi[idx]))  # exact is right on any row

    branch = jnp.minimum(count, 1) + (count > RECHECK_ROWS)
    return jax.lax.switch(branch, [lambda g: g, few, lambda g: _exact_d2(xj, xi)], g)


def _box_gap2(lo, hi, lo_r, hi_r):
    """Squared distance between the boxes ``[lo, hi]`` ``(t, d)`` and
    ``[lo_r, hi_r]`` ``(d,)``: a lower bound on every pair's squared distance."""
    gap = jnp.maximum(0, jnp.maximum(lo - hi_r, lo_r - hi))
    return jnp.sum(gap * gap, axis=1)


def _block_reduce(block_rows, cols: _Tiles, values_of, r2, tile_fn, init, combine,
                  method: str, skip=None, slack=0.0):
    """Reduction over the columns within ``sqrt(r2)`` of one block of rows.

    ``block_rows = (x (B, d), valid (B,), lo (d,), hi (d,))``. Only the column
    tiles whose boxes come within ``sqrt(r2)`` of the block's box are visited
    (a ``fori_loop`` over their list). ``values_of(cut)`` gives the column
    values of a tile, ``cut`` slicing any ``(n_cols_pad, ...)`` array to it;
    ``tile_fn(within (T, B) bool, d2 (T, B), values)`` gives the tile's per-row
    partials, a pytree shaped like ``init(B)``; ``combine`` merges two.
    ``skip(cut)``, if given, says that a tile cannot change the result (it is
    then not computed).

    Distances are taken as ``method`` says (``"exact"``: from differences;
    ``"gemm"``: :func:`_gemm_d2`). Columns lead in ``(T, B)`` so that the
    reductions run over the major axis, which XLA:CPU vectorises over the rows
    (4-10x faster than over the minor axis, measured).
    """
    xi, vi, lo_r, hi_r = block_rows
    n_tiles, tile = cols.lo.shape[0], cols.x.shape[0] // cols.lo.shape[0]
    reach = (jnp.sqrt(r2) + slack) ** 2 * (1 + 1e-3)  # margins for rounding
    near = _box_gap2(cols.lo, cols.hi, lo_r, hi_r) <= reach
    (todo,) = jnp.nonzero(near, size=n_tiles, fill_value=0)
    shift = xi[0] if method == "gemm" else jnp.zeros_like(xi[0])
    xs = xi - shift
    sqs = jnp.sum(xs * xs, axis=1)

    def compute(cut, acc):
        xj, vj = cut(cols.x) - shift, cut(cols.valid)
        d2 = _gemm_d2(xj, vj, xs, sqs, vi, r2) if method == "gemm" else _exact_d2(xj, xs)
        return combine(acc, tile_fn((d2 <= r2) & vj[:, None], d2, values_of(cut)))

    def visit(i, acc):
        cut = partial(jax.lax.dynamic_slice_in_dim, start_index=todo[i] * tile,
                      slice_size=tile)
        if skip is None:
            return compute(cut, acc)
        return jax.lax.cond(skip(cut), lambda acc: acc, partial(compute, cut), acc)

    return jax.lax.fori_loop(0, jnp.sum(near, dtype=jnp.int32), visit, init(xi.shape[0]))


def _row_blocks(rows: _Tiles):
    """``(x, valid, lo, hi)`` with a leading axis over the row tiles."""
    n_blocks = rows.lo.shape[0]
    return (rows.x.reshape(n_blocks, -1, rows.x.shape[1]), rows.valid.reshape(n_blocks, -1),
            rows.lo, rows.hi)


def _pair_reduce(rows: _Tiles, cols: _Tiles, values, r2, tile_fn, init, combine,
                 method: str):
    """:func:`_block_reduce` for every row tile (``values``: a pytree of
    per-column arrays); per-row results in the rows' order."""
    def one(block_rows):
        return _block_reduce(block_rows, cols, lambda cut: jax.tree.map(cut, values), r2,
                             tile_fn, init, combine, method, slack=rows.slack + cols.slack)

    out = jax.lax.map(one, _row_blocks(rows))
    return jax.tree.map(lambda a: a.reshape((-1,) + a.shape[2:]), out)


# --------------------------------------------------------------------------
# The passes of a fit: counts, components, border samples
# --------------------------------------------------------------------------

def _sum_fn(within, d2, w):
    return jnp.sum(jnp.where(within, w[:, None], 0), axis=0)


def _min_fn(big):
    def tile_fn(within, d2, v):
        return jnp.min(jnp.where(within, v[:, None], big), axis=0)
    return tile_fn


def _pair_sum(pts, weights, r2, method):
    """``sum_j weights_j [d(i, j)^2 <= r2]`` for every (tree-ordered) point ``i``."""
    return _pair_reduce(pts, pts, weights, r2, _sum_fn,
                        lambda b: jnp.zeros((b,), weights.dtype), jnp.add, method)


def _pair_min(rows, cols, values, r2, method, big):
    """``min_j values_j`` over the columns within ``sqrt(r2)`` of every row
    (``values`` int32; ``big`` where there is none)."""
    return _pair_reduce(rows, cols, values, r2, _min_fn(big),
                        lambda b: jnp.full((b,), big, jnp.int32), jnp.minimum, method)


def _sweep_block(f, block, cores: _Tiles, r2, method: str):
    """One row tile of a sweep: its core samples take the smallest grandparent
    label ``f[f[j]]`` over their core neighbours, hook themselves and their
    parents to it and shortcut. Column tiles whose samples all carry the row
    tile's single label are skipped (they cannot lower anything)."""
    *block_rows, idx = block
    n_pad = f.shape[0]
    inside, mine = block_rows[1], f[f[idx]]
    low = jnp.min(jnp.where(inside, mine, n_pad))
    same = low == jnp.max(jnp.where(inside, mine, -1))

    def values_of(cut):
        return jnp.where(cut(cores.valid), f[f[cut(jnp.arange(n_pad, dtype=jnp.int32))]],
                         n_pad)

    def skip(cut):
        v = values_of(cut)
        return same & (jnp.min(v) == low) & (jnp.max(jnp.where(v < n_pad, v, low)) == low)

    m = _block_reduce(block_rows, cores, values_of, r2, _min_fn(n_pad),
                      lambda b: jnp.full((b,), n_pad, jnp.int32), jnp.minimum, method, skip,
                      2 * cores.slack)
    hook = jnp.where(inside, jnp.minimum(m, mine), n_pad)  # n_pad: no-op
    f = f.at[f[idx]].min(hook)                             # hook the parent
    f = f.at[idx].min(hook)                                # hook the sample
    return f.at[idx].min(f[f[idx]]), None                  # shortcut


def _components(cores: _Tiles, r2, method):
    """Connected components of the core samples (``cores``), by min-label
    propagation with hooking and shortcutting.

    Labels are positions in ``cores`` (tree order), ``f`` starting as the
    identity. A sweep runs :func:`_sweep_block` over the row tiles in order
    (``lax.scan`` carrying ``f``: later tiles already see the labels earlier
    ones lowered, and the tree order is spatially coherent), then shortcuts
    all labels once. Sweeps repeat until one changes nothing: then, for every
    pair of core neighbours ``i, j``, ``f[i] <= f[f[j]]`` and ``f[i] = f[f[i]]``,
    so every component is a star on its first position. Returns
    ``(root (n_pad,), sweeps)`` in the order of ``cores`` (non-core points
    keep their own position).
    """
    n_pad = cores.x.shape[0]
    pos = jnp.arange(n_pad, dtype=jnp.int32)
    blocks = _row_blocks(cores) + (pos.reshape(cores.lo.shape[0], -1),)
    step = partial(_sweep_block, cores=cores, r2=r2, method=method)

    def sweep(state):
        f, _, count = state
        new = jax.lax.scan(step, f, blocks)[0]
        new = jnp.minimum(new, new[new])
        return new, jnp.any(new != f), count + 1

    f, _, sweeps = jax.lax.while_loop(lambda s: s[1], sweep,
                                      (pos, jnp.array(True), jnp.int32(0)))
    return f, sweeps


def _representatives(pts: _Tiles, core, r2, method):
    """Each sample's cluster representative, the smallest index among its
    component's core samples (core samples: their own component's; border
    samples: the smallest over their core neighbours' components, i.e. the
    lowest-numbered cluster; noise: ``n_pad``), in tree order of ``pts``,
    and the number of sweeps."""
    big = pts.x.shape[0]
    cores = _core_tiles(pts, core)
    root, sweeps = _components(cores, r2, method)
    first = jnp.full((big,), big, jnp.int32).at[root].min(
        jnp.where(cores.valid, cores.index, big))
    rep_core = jnp.where(cores.valid, first[root], big)             # cores' order
    others = _subset(pts, pts.valid & ~core)
    rep_other = _pair_min(others, cores, rep_core, r2, method, big)  # others' order
    rep = jnp.full((big,), big, jnp.int32)                          # original order
    rep = rep.at[others.index].min(jnp.where(others.valid, rep_other, big))
    rep = rep.at[cores.index].min(rep_core)
    return rep[pts.index], sweeps


@partial(jax.jit, static_argnames=("block", "method"))
def _dbscan(x, weights, n, eps, min_samples, block: int, method: str):
    """The fit on the first ``n`` rows of ``x`` and ``weights`` (padded to a
    multiple of ``block`` rows); outputs padded likewise (labels -1)."""
    pts = _tiles(x, n, block, _frame(x, n))
    r2 = jnp.asarray(eps, x.dtype) ** 2
    counts = _pair_sum(pts, jnp.where(pts.valid, weights[pts.index], 0), r2, method)
    core = pts.valid & (counts >= min_samples)
    rep, sweeps = _representatives(pts, core, r2, method)
    back = lambda a: jnp.zeros_like(a).at[pts.index].set(a)  # noqa: E731
    return _number(back(rep), back(core), back(counts), sweeps)


def _number(rep, core, counts, sweeps):
    """Labels from each sample's cluster representative ``rep`` (its smallest
    core index; ``n_pad`` for noise), numbered in the order of representatives."""
    n_pad = rep.shape[0]
    is_rep = jnp.zeros((n_pad + 1,), bool).at[jnp.where(core, rep, n_pad)].set(True)[:n_pad]
    number = jnp.cumsum(is_rep, dtype=jnp.int32) - 1
    labels = jnp.where(rep < n_pad, number[jnp.minimum(rep, n_pad - 1)], -1)
    return DBSCANResult(labels.astype(jnp.int32), core, jnp.sum(is_rep, dtype=jnp.int32),
                        counts, sweeps)


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


def _pad(a, size: int):
    """``a`` with zero rows appended up to ``size`` rows."""
    return jnp.concatenate([a, jnp.zeros((size - a.shape[0],) + a.shape[1:], a.dtype)])


def fit_dbscan(x, eps: float = 0.5, min_samples: int = 5, sample_weight=None, *,
               block: int = DEFAULT_BLOCK, method: str = "auto") -> DBSCANResult:
    """DBSCAN clustering of ``x`` ``(n, d)`` (see the module docstring).

    Args:
      x: ``(n, d)`` samples.
      eps: neighbourhood radius (``> 0``); neighbours have distance ``<= eps``.
      min_samples: neighbourhood weight (self included) that makes a core sample.
      sample_weight: optional ``(n,)`` weights (may be negative, as in sklearn).
      block: samples per tile (static); memory per step grows like
        ``block^2`` (times ``d`` on the exact path beyond
        ``UNROLL_MAX_FEATURES`` features).
      method: ``"exact"`` (distances from differences), ``"gemm"`` (GEMM with
        exact re-check near eps) or ``"auto"`` (exact for at most
        ``EXACT_MAX_FEATURES`` features).
    Returns:
      :class:`DBSCANResult`. Same input, same output. The computation runs
      on ``padded_size(n, block)`` rows, so nearby ``n`` share one compilation.

    >>> import numpy as np
    >>> x = np.array([[0., 0.], [0., 1.], [0., 2.], [3., 0.]])
    >>> fit_dbscan(x, eps=1.0, min_samples=3).labels.tolist()
    [0, 0, 0, -1]
    """
    x = check_data(x, "x")
    eps = check_nonneg(eps, "eps", strict=True)
    min_samples = check_int(min_samples, "min_samples", low=1)
    n = x.shape[0]
    weights = _check_weights(sample_weight, n, x.dtype)
    method = resolve_method(method, x.shape[1])
    block = _check_block(block)
    size = padded_size(n, block)
    res = _dbscan(_pad(x, size), _pad(weights, size), n, eps, min_samples, block, method)
    return res._replace(labels=res.labels[:n], core=res.core[:n],
                        n_neighbors=res.n_neighbors[:n])


@partial(jax.jit, static_argnames=("block", "tile", "method"))
def _predict(x_new, m, components, c, component_labels, max_distance, block: int,
             tile: int, method: str):
    """:func:`predict` on the first ``m`` rows of ``x_new`` and the first ``c``
    of ``components`` (both padded); padded output."""
    frame = _frame(components, c)
    cols, rows = _tiles(components, c, tile, frame), _tiles(x_new, m, block, frame)
    r2 = jnp.asarray(max_distance, x_new.dtype) ** 2
    big = cols.x.shape[0]

    def tile_fn(within, d2, idx):
        cand = jnp.where(within, d2, jnp.inf)
        best = jnp.min(cand, axis=0)
        first = within & (cand == best[None, :])
        return best, jnp.min(jnp.where(first, idx[:, None], big), axis=0)

    def combine(a, b):
        take = (b[0] < a[0]) | ((b[0] == a[0]) & (b[1] < a[1]))
        return jnp.where(take, b[0], a[0]), jnp.where(take, b[1], a[1])

    init = lambda b: (jnp.full((b,), jnp.inf, x_new.dtype),  # noqa: E731
                      jnp.full((b,), big, jnp.int32))
    _, nearest = _pair_reduce(rows, cols, cols.index, r2, tile_fn, init, combine, method)
    labels = jnp.where(nearest < big, component_labels[jnp.minimum(nearest, big - 1)], -1)
    return jnp.zeros_like(labels).at[rows.index].set(labels.astype(jnp.int32))


def predict(x_new, components, component_labels, max_distance: float, *,
            block: int = DEFAULT_BLOCK, method: str = "auto") -> jax.Array:
    """Cluster of each new point: that of its nearest core sample when it lies
    within ``max_distance`` (distance ``<= max_distance``), else ``-1``.

    Args:
      x_new: ``(m, d)`` points to label.
      components: ``(c, d)`` core samples of a fit (``x[result.core]``).
      component_labels: ``(c,)`` their clusters (``result.labels[result.core]``).
      max_distance: largest distance to a core sample (``> 0``), typically eps.
      block: points per tile (static); ``method`` as in :func:`fit_dbscan`.
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
    m, d = x_new.shape
    comps = np.asarray(components)
    if comps.ndim != 2 or comps.shape[1] != d:
        raise ValueError(f"components must be 2-D with {d} features like x_new, "
                         f"got shape {comps.shape}")
    c = comps.shape[0]
    labels = np.asarray(component_labels)
    if labels.shape != (c,) or labels.dtype.kind not in "iu":
        raise ValueError(f"component_labels must be {c} integers (one per component), "
                         f"got shape {labels.shape} and dtype {labels.dtype}")
    if c == 0:
        return jnp.full((m,), -1, jnp.int32)
    comps = check_data(comps, "components").astype(x_new.dtype)
    block = _check_block(block)
    size, c_size = padded_size(m, block), padded_size(c, block)
    out = _predict(_pad(x_new, size), m, _pad(comps, c_size), c,
                   _pad(jnp.asarray(labels, jnp.int32), c_size), max_distance, block, block,
                   resolve_method(method, d))
    return out[:m]
