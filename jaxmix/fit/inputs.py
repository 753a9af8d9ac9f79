"""The one input pipeline of every fit: validate, choose the chunk size,
centre, place; and move results back to the data's frame.

Every entry point (``fit_gmm``, ``fit_kmeans``, ``fit_gradient``,
``select_k``, ...) hands its data to :func:`placed`, which yields a
:class:`Placement`:

* in memory (an array, possibly sharded over a mesh): validated once,
  centred on its median (:func:`centre`), cut into chunks by the one chunk rule
  (:func:`jaxmix.data.chunked.chunk_rows`) and placed on the mesh;
* streamed (a ``.npy`` path, an ``np.memmap``, a SciPy sparse matrix, a
  callable yielding chunks, or :func:`jaxmix.data.source.open_source` of
  anything): every chunk validated
  by a first pass, the initialiser's sample drawn (all rows up to
  ``init_size``, default :data:`INIT_SIZE` rows of at most
  :data:`INIT_ELEMENTS` values, else a uniform sample), the data
  centred on that sample's median on the device as chunks are read.

A sparse matrix whose dense form is at most one chunk's budget
(:func:`small_sparse`) is made dense and placed in memory: its memory is
then that of the one dense chunk a stream would hold, and it runs the
programs of dense data of its shape (compiled once for both, and the
same result as the dense data).

Fits run on ``placement.data`` (any placement, :mod:`jaxmix.data.reduce`) and
initialise on ``placement.sample`` (in memory), then :func:`uncentre`.
"""

from __future__ import annotations

import contextlib
import warnings
from typing import Callable, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from scipy import sparse

from jaxmix.host_random import fold_in_key
from jaxmix.data.chunked import CHUNK_ELEMENTS, Chunked, chunk, chunk_rows
from jaxmix.data.sharding import check_mesh, placed_chunks
from jaxmix.data.source import is_source, open_source, sample_rows, survey
from jaxmix.data.stream import Stream, registered
from jaxmix.fit.buckets import sample_bucket
from jaxmix.fit.programs import guard
from jaxmix.validation import (check_data, check_int, check_n_components,
                               check_range, check_sample_weight, check_spread,
                               is_traced)

# Rows the initialiser of a streamed fit sees: all of them up to this many
# (and up to INIT_ELEMENTS values: a wide source, a sparse TF-IDF matrix
# say, is sampled in fewer rows), else a uniform sample without replacement.
INIT_SIZE = 2 ** 17
INIT_ELEMENTS = 2 ** 24


class Placement(NamedTuple):
    """A fit's data after the input pipeline.

    Attributes:
      data: centred samples, :class:`~jaxmix.data.chunked.Chunked` (in memory,
        possibly sharded) or :class:`~jaxmix.data.stream.Stream`.
      sample: centred in-memory rows the initialisers see (``data`` itself
        when it is in memory).
      offset: ``(d,)`` the centring offset (:func:`centre`).
      n_samples: rows of the data.
      extent: ``(lo (d,), hi (d,), total weight)`` of the data (per-feature
        minimum and maximum, in the data's frame), or ``None`` under a trace.
    """

    data: object
    sample: Chunked
    offset: jax.Array
    n_samples: int
    extent: tuple | None = None

    @property
    def n_features(self) -> int:
        return self.sample.n_features


# Rows the centre is taken from: an evenly strided subsample of at most this many.
CENTRE_ROWS = 2 ** 14


def centre(x, w):
    """The centring offset ``(d,)``: the coordinate-wise median of the rows
    with positive weight, over an evenly strided subsample of at most
    :data:`CENTRE_ROWS` rows.

    Any offset gives the same fit up to rounding (results are moved back by
    it); the median, unlike the mean, stays in the bulk of the data when a
    few rows lie far away, so in float32 the bulk keeps its resolution (one
    row at 1e12 among unit-scale rows moves the mean to 5e9, where float32's
    spacing is 512). NumPy data on the host, JAX arrays on their device; the
    result has ``x``'s dtype.
    """
    xp = np if isinstance(x, np.ndarray) and not isinstance(w, jax.Array) else jnp
    step = -(-x.shape[0] // CENTRE_ROWS)
    rows = x[::step]
    if w is not None:
        rows = xp.where((w[::step] > 0)[:, None], rows, xp.nan)
        if not bool(xp.any(w[::step] > 0)):  # every sampled row weightless: use them all
            rows = xp.where((w > 0)[:, None], x, xp.nan)
    with np.errstate(invalid="ignore"):
        return xp.asarray(xp.nanmedian(rows, axis=0), x.dtype)


@contextlib.contextmanager
def placed(key, x, k: int, *, row_elements: Callable[[int], int], chunk_size=None,
           sample_weight=None, mesh=None, init_size=None, k_name: str = "n_components",
           centring: bool = True):
    """Validate and place ``x`` for a fit of ``k`` components; yields a
    :class:`Placement` (a streamed source stays readable inside the block).
    ``centring=False`` keeps the data's own frame (offset zero): families
    whose support is not translation invariant (counts, binary features).

    ``row_elements(d)`` is the fit's largest per-chunk intermediate per row
    (the chunk rule's input); ``chunk_size`` overrides the rule. Every fit
    starts here, so here the process's compiled programs are kept in check
    (:func:`jaxmix.fit.programs.guard`).
    """
    guard()
    if small_sparse(x, chunk_size, init_size):
        x = x.toarray()
    if is_source(x):
        if mesh is not None:
            raise ValueError("mesh cannot be combined with a streamed source; pass an array "
                             "(or a sharded array) to fit on a mesh")
        with _streamed(key, x, k, row_elements, chunk_size, sample_weight, init_size,
                       k_name, centring) as placement:
            yield placement
        return
    yield _in_memory(x, k, row_elements, chunk_size, sample_weight, mesh, k_name, centring)


def small_sparse(x, chunk_size=None, init_size=None) -> bool:
    """Whether ``x`` is a SciPy sparse matrix of at most
    :data:`~jaxmix.data.chunked.CHUNK_ELEMENTS` dense values (one chunk's
    budget) that neither ``chunk_size`` nor ``init_size`` (if given) asks to
    read in parts: such a matrix is fitted dense, in memory (module docstring)."""
    if not sparse.issparse(x) or x.ndim != 2:
        return False
    n, d = x.shape
    whole = all(v is None or (isinstance(v, (int, np.integer)) and v >= n)
                for v in (chunk_size, init_size))
    return n * d <= CHUNK_ELEMENTS and whole


def _centre_or_zero(x, w, centring: bool):
    return centre(x, w) if centring else (np if isinstance(x, np.ndarray) else jnp).zeros(
        x.shape[1], x.dtype)


def _in_memory(x, k, row_elements, chunk_size, sample_weight, mesh, k_name,
               centring=True) -> Placement:
    if mesh is not None:
        mesh = check_mesh(mesh)
    x = check_data(x)
    n, d = x.shape
    check_n_components(k, n, k_name)
    w = check_sample_weight(sample_weight, n, x.dtype, k)
    extent = None if is_traced(x, w) else check_spread(x, w)
    size = None if chunk_size is None else check_int(chunk_size, "chunk_size")
    offset = _centre_or_zero(x, w, centring)
    data = placed_chunks(x, w, offset, mesh, row_elements(d), size, sample_bucket(n))
    return Placement(data, data, offset, n, extent)


@contextlib.contextmanager
def _streamed(key, x, k, row_elements, chunk_size, sample_weight, init_size, k_name,
              centring=True):
    src = open_source(x, sample_weight)
    if chunk_size is not None:
        size = check_int(chunk_size, "chunk_size")
    else:  # array sources: the in-memory rule; callables keep their chunks
        size = None if src.sequential else chunk_rows(src.x.shape[0],
                                                      row_elements(src.x.shape[1]))
    info = survey(src, size)
    if info.n_positive < k:
        raise ValueError(f"{k_name}={k} is larger than the number of samples with positive "
                         f"weight ({info.n_positive}); use fewer or provide more data")
    rows = _sample_rows(key, info.n_samples, init_size, k, info.layout.n_features)
    sx, sw = sample_rows(src, rows, info.layout.chunk_size)
    sx = check_data(sx)
    sw = check_sample_weight(sw, sx.shape[0], sx.dtype)
    offset = _centre_or_zero(sx, sw, centring)
    # padded to the sample bucket like in-memory data: one compiled shape per
    # bucket, and initialisers that draw k_max rows always have them
    sample = chunk(sx - offset, info.layout.chunk_size, sw, sample_bucket(sx.shape[0]))
    check_range(info.lo, info.hi, info.total_weight, info.layout.dtype,
                weighted=info.total_weight != info.n_samples)
    with registered(src, info) as token:
        data = Stream(token, np.int32(info.n_chunks), offset,
                      np.asarray(info.total_weight, info.layout.dtype), layout=info.layout)
        yield Placement(data, sample, offset, info.n_samples,
                        (info.lo, info.hi, info.total_weight))


def _sample_rows(key, n: int, init_size, k: int, d: int):
    """All rows in order when ``n <= init_size``, else that many drawn
    uniformly without replacement (seeded by ``key``); ``init_size`` defaults
    to ``INIT_SIZE`` rows of at most ``INIT_ELEMENTS`` values (at least ``k``)."""
    size = (max(k, min(INIT_SIZE, INIT_ELEMENTS // d)) if init_size is None else
            check_int(init_size, "init_size", low=k))
    if size >= n:
        return np.arange(n)
    if init_size is None and size < INIT_SIZE:
        warnings.warn(f"the initialiser sees {size} of the {n} rows: with {d} features a "
                      f"larger dense sample would exceed {INIT_ELEMENTS} values; pass "
                      "init_size to choose", RuntimeWarning, stacklevel=5)
    seed = fold_in_key(key, 1)  # on the host where it can be: no eager program
    if jnp.issubdtype(seed.dtype, jax.dtypes.prng_key):
        seed = jax.random.key_data(seed)
    rng = np.random.default_rng(np.asarray(seed).ravel().tolist())
    return np.sort(rng.choice(n, size, replace=False))


def with_missing(inp: Placement, x_nan: np.ndarray) -> Placement:
    """``inp`` (in memory, from the data with its missing entries filled)
    whose ``data`` carry NaN at the missing entries again, for the E-step of
    :mod:`jaxmix.gmm.missing`; its ``sample`` stays filled (the initialiser's)."""
    n_chunks, size, d = inp.data.x.shape
    mask = np.zeros((n_chunks * size, d), bool)
    mask[:x_nan.shape[0]] = np.isnan(x_nan)
    x = jnp.where(jnp.asarray(mask.reshape(n_chunks, size, d)), jnp.nan, inp.data.x)
    return inp._replace(data=Chunked(x, inp.data.w))


def uncentre(result, offset):
    """A fit result moved back to the data's frame (its params ``shifted`` by ``offset``)."""
    return result._replace(params=result.params.shifted(offset))
