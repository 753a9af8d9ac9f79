"""DBSCAN: density-based clusters of eps-neighbourhoods (:func:`fit_dbscan`).

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
one compiled function; ``eps`` and ``min_samples`` are traced values
(changing them does not recompile). New points are labelled by
:func:`jaxmix.dbscan.predict.predict`.

>>> import numpy as np
>>> from jaxmix.dbscan import fit_dbscan
>>> x = np.array([[0.], [0.1], [0.2], [5.], [5.1], [5.2], [9.]])
>>> res = fit_dbscan(x, eps=0.15, min_samples=2)
>>> res.labels.tolist(), res.core.tolist()
([0, 0, 0, 1, 1, 1, -1], [True, True, True, True, True, True, False])
"""

from __future__ import annotations

from functools import partial
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from jaxmix.compiling import jit
from jaxmix.dbscan.tiling import (DEFAULT_BLOCK, Tiles, block_reduce, core_tiles, data_frame,
                                  make_tiles, pad_rows, padded_size, pair_reduce,
                                  resolve_method, row_blocks, subset)
from jaxmix.validation import check_data, check_int, check_nonneg


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
    return pair_reduce(pts, pts, weights, r2, _sum_fn,
                        lambda b: jnp.zeros((b,), weights.dtype), jnp.add, method)


def _pair_min(rows, cols, values, r2, method, big):
    """``min_j values_j`` over the columns within ``sqrt(r2)`` of every row
    (``values`` int32; ``big`` where there is none)."""
    return pair_reduce(rows, cols, values, r2, _min_fn(big),
                        lambda b: jnp.full((b,), big, jnp.int32), jnp.minimum, method)


def _sweep_block(f, block, cores: Tiles, r2, method: str):
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

    m = block_reduce(block_rows, cores, values_of, r2, _min_fn(n_pad),
                      lambda b: jnp.full((b,), n_pad, jnp.int32), jnp.minimum, method, skip,
                      2 * cores.slack)
    hook = jnp.where(inside, jnp.minimum(m, mine), n_pad)  # n_pad: no-op
    f = f.at[f[idx]].min(hook)                             # hook the parent
    f = f.at[idx].min(hook)                                # hook the sample
    return f.at[idx].min(f[f[idx]]), None                  # shortcut


def _components(cores: Tiles, r2, method):
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
    blocks = row_blocks(cores) + (pos.reshape(cores.lo.shape[0], -1),)
    step = partial(_sweep_block, cores=cores, r2=r2, method=method)

    def sweep(state):
        f, _, count = state
        new = jax.lax.scan(step, f, blocks)[0]
        new = jnp.minimum(new, new[new])
        return new, jnp.any(new != f), count + 1

    f, _, sweeps = jax.lax.while_loop(lambda s: s[1], sweep,
                                      (pos, jnp.array(True), jnp.int32(0)))
    return f, sweeps


def _representatives(pts: Tiles, core, r2, method):
    """Each sample's cluster representative, the smallest index among its
    component's core samples (core samples: their own component's; border
    samples: the smallest over their core neighbours' components, i.e. the
    lowest-numbered cluster; noise: ``n_pad``), in tree order of ``pts``,
    and the number of sweeps."""
    big = pts.x.shape[0]
    cores = core_tiles(pts, core)
    root, sweeps = _components(cores, r2, method)
    first = jnp.full((big,), big, jnp.int32).at[root].min(
        jnp.where(cores.valid, cores.index, big))
    rep_core = jnp.where(cores.valid, first[root], big)             # cores' order
    others = subset(pts, pts.valid & ~core)
    rep_other = _pair_min(others, cores, rep_core, r2, method, big)  # others' order
    rep = jnp.full((big,), big, jnp.int32)                          # original order
    rep = rep.at[others.index].min(jnp.where(others.valid, rep_other, big))
    rep = rep.at[cores.index].min(rep_core)
    return rep[pts.index], sweeps


def _pairs_work(x, *_, **__):
    """Elements of one pass over all pairs of ``x``'s rows (``n^2 d``)."""
    return x.shape[0] ** 2 * x.shape[1]


@jit(static_argnames=("block", "method"), work=_pairs_work)
def _dbscan(x, weights, n, eps, min_samples, block: int, method: str):
    """The fit on the first ``n`` rows of ``x`` and ``weights`` (padded to a
    multiple of ``block`` rows); outputs padded likewise (labels -1)."""
    pts = make_tiles(x, n, block, data_frame(x, n))
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
    """Per-sample weights finite in the compute ``dtype``, and so must be any
    neighbourhood's sum (the sum of their magnitudes); negative weights are
    allowed, as in scikit-learn's DBSCAN."""
    if sample_weight is None:
        return jnp.ones((n,), dtype)
    w = np.asarray(sample_weight)
    if w.dtype.kind not in "biuf":
        raise ValueError(f"sample_weight must be numeric, got dtype {w.dtype}")
    if w.shape != (n,):
        raise ValueError(f"sample_weight must have shape ({n},), got {w.shape}")
    with np.errstate(over="ignore", invalid="ignore"):
        cast = w.astype(dtype)
        finite = bool(np.all(np.isfinite(cast))) and bool(np.isfinite(np.sum(np.abs(cast))))
    if not finite:
        raise ValueError(f"sample_weight must be finite in {np.dtype(dtype).name}, and so must "
                         "the sum of its magnitudes; rescale the weights (and min_samples)")
    return jnp.asarray(cast)


# Largest tile: a step holds block^2 distances (2**14: 1 GiB in float32).
MAX_BLOCK = 2 ** 14


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
        ``tiling.UNROLL_MAX_FEATURES`` features).
      method: ``"exact"`` (distances from differences), ``"gemm"`` (GEMM with
        exact re-check near eps) or ``"auto"`` (exact for at most
        ``tiling.EXACT_MAX_FEATURES`` features).
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
    block = check_int(block, "block", low=1, high=MAX_BLOCK)
    size = padded_size(n, block)
    res = _dbscan(pad_rows(x, size), pad_rows(weights, size), n, eps, min_samples, block, method)
    return res._replace(labels=res.labels[:n], core=res.core[:n],
                        n_neighbors=res.n_neighbors[:n])
