"""The one reduction: statistics of every chunk of a data placement, combined.

Every fit is "pass over the data, accumulate statistics". A *placement* is
where the samples live; all of them implement :func:`reduce`::

    reduce(fn, data, combine=add) = combine(... combine(fn(chunk 0), fn(chunk 1)) ..., fn(chunk C-1))

with ``fn(x_c (m, d), w_c (m,), c) -> pytree`` applied to chunk ``c`` (zero
weight on padding rows) and ``combine`` associative (the default adds the
pytrees, for additive sufficient statistics; a top-``m`` merge is another).

* :class:`~jaxmix.data.chunked.Chunked` in memory: a ``lax.scan`` over the
  chunks, one chunk's intermediates alive at a time.
* ``Chunked`` whose chunk axis is split over the ``"data"`` axis of a mesh
  (:mod:`jaxmix.data.sharding`): the chunks are read as ``D`` contiguous
  blocks, one per device; each scan step applies ``fn`` to the ``t``-th chunk
  of every block (``vmap`` over blocks, partitioned by GSPMD), each device
  combines its own block, and the ``D`` partial results are combined once per
  pass (an all-reduce for sums).
* :class:`~jaxmix.data.stream.Stream`: chunks read from the host one at a time
  inside the compiled pass (see :mod:`jaxmix.data.stream`).

``fn`` always sees a chunk's global index ``c``, so anything derived from
sample indices is the same for every placement.

>>> import jax.numpy as jnp
>>> from jaxmix.data.chunked import chunk
>>> data = chunk(jnp.arange(10.0).reshape(5, 2), 2)
>>> float(reduce(lambda x, w, c: jnp.sum(w[:, None] * x), data))
45.0
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

# Name of the mesh axis that samples are split over (jaxmix.data.sharding).
DATA_AXIS = "data"


def add(a, b):
    """The default ``combine``: leafwise sum."""
    return jax.tree.map(jnp.add, a, b)


def zeros(shapes):
    """The default ``identity``: zeros shaped like ``fn``'s output (for ``add``)."""
    return jax.tree.map(lambda s: jnp.zeros(s.shape, s.dtype), shapes)


def reduce(fn, data, combine=add, identity=zeros):
    """``combine`` of ``fn(x_c, w_c, c)`` over every chunk of ``data`` (any
    placement), folded from ``identity(shapes of fn's output)``, the neutral
    element of ``combine`` (so one loop body serves every chunk)."""
    return data.reduce(fn, combine, identity)


def data_shards(x) -> int:
    """Devices the leading axis of ``x`` is split over: the size of the
    ``"data"`` axis of the mesh in ``x``'s sharding type (1 without one)."""
    mesh = jax.typeof(x).sharding.mesh
    return 1 if mesh.empty else dict(mesh.shape).get(DATA_AXIS, 1)
