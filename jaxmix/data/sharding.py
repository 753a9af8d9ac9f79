"""Sharded fits: samples split over the devices of a mesh, statistics reduced
across them, parameters replicated.

Only JAX's own machinery is used (:mod:`jax.sharding`, GSPMD under ``jit``;
:func:`jax.distributed.initialize` for several hosts, see
``docs/guides/scaling.md``). The layout is that of :class:`~jaxmix.data.chunked.Chunked`
with its chunk axis split over the mesh axis ``"data"``::

    data.x  (n_chunks, chunk, d)   device j holds chunks [j m, (j + 1) m),
    data.w  (n_chunks, chunk)      m = n_chunks / D: a contiguous block of samples

Zero-weight chunks pad ``n_chunks`` to a multiple of ``D``. Every fit
accumulates its statistics with :func:`jaxmix.data.reduce.reduce`, which sees the
mesh in the data's sharding type and sums each device's block locally, then
adds the ``D`` partial sums with one all-reduce per pass; the parameters (a few
``(k, d, d)`` arrays) are replicated. The initialisers and the centring offset
are computed on the same logical array as on one device, so a sharded fit
gives the single-device result up to the order of floating-point additions.

Fits take ``mesh=`` or data already placed on a mesh:

>>> import jax, numpy as np
>>> from jaxmix import fit_gmm
>>> from jaxmix.data.sharding import data_mesh, shard
>>> mesh = data_mesh()                         # all devices along "data"
>>> x = np.random.default_rng(0).normal(size=(1000, 2)).astype(np.float32)
>>> a = fit_gmm(0, x, 2, mesh=mesh)            # a mesh argument ...
>>> b = fit_gmm(0, shard(x, mesh), 2)          # ... or sharded data
>>> bool(np.allclose(a.best_params.means, b.best_params.means, atol=1e-5))
True
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
from jax.sharding import AxisType, Mesh, NamedSharding, PartitionSpec

from jaxmix.data.chunked import Chunked, chunk, chunk_rows
from jaxmix.data.reduce import DATA_AXIS

__all__ = ["DATA_AXIS", "data_mesh", "check_mesh", "resolve_mesh", "n_shards", "shard", "place"]


def data_mesh(devices=None) -> Mesh:
    """A 1-D mesh over ``devices`` (default: all, across hosts) named ``"data"``.

    >>> data_mesh().axis_names
    ('data',)
    """
    devices = jax.devices() if devices is None else list(devices)
    return Mesh(np.asarray(devices), (DATA_AXIS,), axis_types=(AxisType.Auto,))


def check_mesh(mesh) -> Mesh:
    """``mesh`` validated (a :class:`jax.sharding.Mesh` with a ``"data"``
    axis) and with every axis in ``Auto`` mode: jaxmix's computations are
    partitioned by GSPMD, not by sharding-in-types (``jax.make_mesh``'s
    default ``Explicit`` axes)."""
    if not isinstance(mesh, Mesh):
        raise ValueError(f"mesh must be a jax.sharding.Mesh (e.g. jaxmix.data.sharding.data_mesh()) "
                         f"or None, got {type(mesh).__name__}")
    if DATA_AXIS not in mesh.axis_names:
        raise ValueError(f"mesh must have an axis named {DATA_AXIS!r} to split the samples "
                         f"over, got axes {mesh.axis_names}")
    if all(t == AxisType.Auto for t in mesh.axis_types):
        return mesh
    return Mesh(mesh.devices, mesh.axis_names, axis_types=(AxisType.Auto,) * mesh.devices.ndim)


def resolve_mesh(mesh, x=None) -> Mesh | None:
    """The mesh a fit runs on: ``mesh`` if given, else the mesh of ``x`` when
    ``x`` is a :class:`jax.Array` placed with a :class:`NamedSharding` whose
    mesh has a ``"data"`` axis of more than one device, else ``None``."""
    if mesh is not None:
        return check_mesh(mesh)
    if isinstance(x, jax.core.Tracer):  # a traced fit runs where the trace puts it
        return None
    sharding = getattr(x, "sharding", None) if isinstance(x, jax.Array) else None
    if isinstance(sharding, NamedSharding) and dict(sharding.mesh.shape).get(DATA_AXIS, 1) > 1:
        return check_mesh(sharding.mesh)
    return None


def n_shards(mesh: Mesh | None) -> int:
    """Devices along ``"data"`` (1 for ``None``)."""
    return 1 if mesh is None else int(dict(mesh.shape)[DATA_AXIS])


def shard(x, mesh: Mesh):
    """Place ``x`` ``(n, ...)`` on ``mesh`` with its rows split over ``"data"``
    (``n`` must be a multiple of the devices along ``"data"``; fits given
    ``mesh=`` pad instead). Fits given such an array run on its mesh.

    >>> import numpy as np
    >>> shard(np.zeros((8, 2)), data_mesh()).shape
    (8, 2)
    """
    mesh = check_mesh(mesh)
    n, shards = np.shape(x)[0], n_shards(mesh)
    if n % shards:
        raise ValueError(f"x has {n} rows, not a multiple of the {shards} devices along "
                         f"{DATA_AXIS!r}; pass mesh= to the fit instead (it pads with "
                         "zero-weight rows)")
    return jax.device_put(x, NamedSharding(mesh, PartitionSpec(DATA_AXIS)))


def place(data: Chunked, mesh: Mesh | None) -> Chunked:
    """``data`` with zero-weight chunks appended up to a multiple of the
    devices along ``"data"``, its chunk axis split over them (see the module
    docstring); unchanged for ``mesh=None``."""
    if mesh is None:
        return data
    shards = n_shards(mesh)
    pad = -data.x.shape[0] % shards
    if pad:
        data = Chunked(jnp.concatenate([data.x, jnp.zeros((pad,) + data.x.shape[1:],
                                                          data.x.dtype)]),
                       jnp.concatenate([data.w, jnp.zeros((pad,) + data.w.shape[1:],
                                                          data.w.dtype)]))
    return jax.device_put(data, NamedSharding(mesh, PartitionSpec(DATA_AXIS)))


def placed_chunks(x, w, offset, mesh, row_elements: int, chunk_size=None,
                  n_rows: int = 0) -> Chunked:
    """``x - offset`` (validated ``(n, d)``, weights ``w`` or ``None``) cut into
    chunks of at least ``n_rows`` rows in all (zero-weight padding) and placed:
    on ``mesh`` (or ``x``'s own mesh, see :func:`resolve_mesh`) with a multiple
    of its ``"data"`` devices as the number of chunks, else on one device.
    ``chunk_size=None`` applies :func:`jaxmix.data.chunked.chunk_rows` to
    ``row_elements``."""
    mesh = resolve_mesh(mesh, x)
    rows = max(x.shape[0], n_rows)
    size = chunk_rows(rows, row_elements, n_shards(mesh)) if chunk_size is None else chunk_size
    return place(chunk(x - offset, size, w, rows), mesh)
