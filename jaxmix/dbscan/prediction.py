"""DBSCAN prediction: new points join the cluster of their nearest core sample.

A new point gets the cluster of its nearest core sample of a fit
(:func:`jaxmix.dbscan.clusters.fit_dbscan`) if that lies within
``max_distance`` (the seed's rule with ``max_distance = eps``), else ``-1``;
the tiled search of :mod:`jaxmix.dbscan.tiling` finds it (memory
``O(block^2 + (m + c) d)``). ``max_distance`` is traced (changing it does not
recompile).

>>> import numpy as np
>>> from jaxmix.dbscan import fit_dbscan, predict
>>> x = np.array([[0.], [0.1], [0.2], [5.], [5.1], [5.2], [9.]])
>>> res = fit_dbscan(x, eps=0.15, min_samples=2)
>>> core = np.asarray(res.core)
>>> predict(np.array([[0.05], [5.3], [7.]]), x[core], res.labels[core], 0.15).tolist()
[0, 1, -1]
"""

from __future__ import annotations


import jax
import jax.numpy as jnp
import numpy as np

from jaxmix.compiling import jit
from jaxmix.dbscan.tiling import (DEFAULT_BLOCK, data_frame, make_tiles, pad_rows, padded_size,
                                  pair_reduce, resolve_method)
from jaxmix.validation import check_data, check_int, check_nonneg


def _pairs_work(x_new, m, components, *_, **__):
    """Elements of one pass over all (new row, component) pairs."""
    return x_new.shape[0] * components.shape[0] * x_new.shape[1]


@jit(static_argnames=("block", "tile", "method"), work=_pairs_work)
def _predict(x_new, m, components, c, component_labels, max_distance, block: int,
             tile: int, method: str):
    """:func:`predict` on the first ``m`` rows of ``x_new`` and the first ``c``
    of ``components`` (both padded); padded output."""
    frame = data_frame(components, c)
    cols, rows = make_tiles(components, c, tile, frame), make_tiles(x_new, m, block, frame)
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
    _, nearest = pair_reduce(rows, cols, cols.index, r2, tile_fn, init, combine, method)
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
      block: points per tile (static); ``method`` as in
        :func:`jaxmix.dbscan.clusters.fit_dbscan`.
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
    block = check_int(block, "block", low=1)
    size, c_size = padded_size(m, block), padded_size(c, block)
    out = _predict(pad_rows(x_new, size), m, pad_rows(comps, c_size), c,
                   pad_rows(jnp.asarray(labels, jnp.int32), c_size), max_distance, block, block,
                   resolve_method(method, d))
    return out[:m]
