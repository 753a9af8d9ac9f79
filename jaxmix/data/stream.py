"""Streaming fits: EM and K-Means over data that does not fit in memory.

Each iteration is one pass over a chunk source (:mod:`jaxmix.data.source`:
an array or ``np.memmap``, a ``.npy`` path, or a callable returning a fresh
iterable of chunks). The pass runs inside the compiled fit: a
``lax.fori_loop`` asks the host for chunk ``c`` (``jax.experimental.io_callback``),
centres it on the device and hands it to the same per-chunk statistics as the
in-memory fits (:func:`jaxmix.gmm.em.e_step`, :func:`jaxmix.kmeans.core.kmeans_stats`),
summed over the chunks (:func:`stream_sum`, the stream counterpart of
:func:`jaxmix.data.chunked.scan_sum`); the M-step, the Lloyd update and the fit
driver (:func:`jaxmix.fit.driver.iterate`: tolerance, restarts, failure, best) are the
in-memory ones. So with the same chunk size and starting point a streaming fit
gives the in-memory answer up to floating-point rounding, while only one chunk
is ever on the device.

Before the iterations: one validating pass (:func:`~jaxmix.data.source.survey`:
counts, NaN and shape checks naming the chunk), then the initialiser runs in
memory on ``init_size`` rows drawn uniformly without replacement (all rows,
in order, when the data has at most ``init_size`` rows: then the whole fit
equals ``fit_gmm`` / ``fit_kmeans``). That sample also gives the centring
offset (its mean) and, for ``prior="default"``, the prior's data moments.

>>> import jax, numpy as np
>>> from jaxmix.data.stream import fit_gmm_stream
>>> rng = np.random.default_rng(0)
>>> x = np.concatenate([rng.normal(-5, 1, (500, 2)), rng.normal(5, 1, (500, 2))])
>>> result = fit_gmm_stream(0, x, 2, chunk_size=128)   # or a path to a .npy file
>>> np.sort(np.asarray(result.best_params.means[:, 0])).round(0).tolist()
[-5.0, 5.0]
"""

from __future__ import annotations

import contextlib
import functools
import itertools
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from jax.experimental import io_callback

from jaxmix.gmm.em import e_step, gemm_is_accurate, m_step
from jaxmix.fit.driver import FitResult, iterate
from jaxmix.fit.gmm import default_chunk_size, degenerate_restarts, prepare_fit, uncentre
from jaxmix.gmm.init import broadcast_params, initialize
from jaxmix.kmeans.core import (LloydState, centroids_from_stats, farthest_samples, inertia,
                           init_centroids, kmeans_stats, lloyd_converged, relocate_empty,
                           scaled_tol)
from jaxmix.fit.kmeans import check_kmeans_inputs
from jaxmix.fit.kmeans import default_chunk_size as kmeans_chunk_size
from jaxmix.params import GMMParams, KMeansParams
from jaxmix.gmm.priors import log_prior
from jaxmix.data.chunked import Chunked, chunk
from jaxmix.data.source import Layout, open_source, read_chunk, sample_rows, survey
from jaxmix.validation import as_key, check_int, check_nonneg

# Rows the initialiser sees: all of them up to this many, else a uniform sample.
INIT_SIZE = 2 ** 17


class Stream(NamedTuple):
    """A registered source as seen inside ``jit`` (all leaves traced).

    Attributes:
      token: ``int32`` id of the source (see :func:`registered`).
      n_chunks: ``int32`` chunks per pass.
      offset: ``(d,)`` subtracted from every chunk (the centring offset).
    """

    token: jax.Array
    n_chunks: jax.Array
    offset: jax.Array


# ---------------------------------------------------------------------------
# Passes


_SOURCES: dict = {}
_TOKENS = itertools.count(1)


@contextlib.contextmanager
def registered(src):
    """Make ``src`` readable by compiled passes; yields its ``int32`` token.
    Block on the fit's result before leaving (dispatch is asynchronous)."""
    token = next(_TOKENS) % (2 ** 31 - 1)
    _SOURCES[token] = src
    try:
        yield np.int32(token)
    finally:
        _SOURCES.pop(token, None)


def _read(token, i, layout: Layout):
    return read_chunk(_SOURCES[int(token)], layout, int(i))


def stream_fold(fn, combine, stream: Stream, layout: Layout, init=None):
    """Fold ``fn(x_c, w_c, c)`` over the chunks of ``stream`` with
    ``combine(acc, out)``; ``init=None`` starts from chunk 0's output.

    Chunk ``c`` is read on the host in order (an ordered ``io_callback``),
    then centred on the device: one chunk is on the device at a time.
    """
    spec = (jax.ShapeDtypeStruct((layout.chunk_size, layout.n_features), layout.dtype),
            jax.ShapeDtypeStruct((layout.chunk_size,), layout.dtype))

    def apply(i):
        x, w = io_callback(functools.partial(_read, layout=layout), spec, stream.token, i,
                           ordered=True)
        return fn(x - stream.offset, w, i)

    first = 0 if init is not None else 1
    acc = apply(jnp.int32(0)) if init is None else init
    return jax.lax.fori_loop(first, stream.n_chunks,
                             lambda i, acc: combine(acc, apply(i)), acc)


def stream_sum(fn, stream: Stream, layout: Layout):
    """``sum_c fn(x_c, w_c, c)`` over the chunks of ``stream`` (one pass): the
    stream counterpart of :func:`jaxmix.data.chunked.scan_sum`."""
    return stream_fold(fn, lambda acc, out: jax.tree.map(jnp.add, acc, out), stream, layout)


def _one(x, w) -> Chunked:
    return Chunked(x[None], w[None])


# ---------------------------------------------------------------------------
# EM


def stream_em_step(stream: Stream, layout: Layout, total, reg_covar, path: str = "auto",
                   prior=None):
    """Batched EM step over a stream for :func:`jaxmix.fit.driver.iterate`: as
    :func:`jaxmix.gmm.em.batched_em_step`, every restart's statistics from one
    read of each chunk; ``total`` is the data's summed weight."""
    def run(params: GMMParams, chosen: str):
        def chunk_stats(x, w, _):
            return jax.vmap(lambda p: e_step(p, _one(x, w), chosen)[0])(params)

        stats = stream_sum(chunk_stats, stream, layout)
        shift = params.means if chosen == "exact" else jnp.zeros_like(params.means)
        new = jax.vmap(lambda s, c: m_step(s, c, reg_covar, params.covariance_type, prior))(
            stats, shift)
        objective = stats.loglik
        if prior is not None:
            objective = objective + jax.vmap(lambda p: log_prior(p, prior))(params)
        return new, objective / total

    if path == "auto":
        return lambda p: jax.lax.cond(gemm_is_accurate(p), functools.partial(run, chosen="gemm"),
                                      functools.partial(run, chosen="exact"), p)
    return lambda p: run(p, path)


@functools.partial(jax.jit, static_argnames=("layout", "max_iter", "path"))
def _em(stream, params0, total, tol, reg_covar, prior, *, layout, max_iter, path) -> FitResult:
    dtype = params0.means.dtype
    tol, reg_covar, total = (jnp.asarray(v, dtype) for v in (tol, reg_covar, total))
    step = stream_em_step(stream, layout, total, reg_covar, path, prior)
    result = iterate(step, params0, tol, max_iter)
    return result._replace(degenerate=degenerate_restarts(result.params, total, reg_covar))


@functools.partial(jax.jit, static_argnames=("k", "covariance_type", "n_restarts", "init"))
def _initial_params(key, data, init_params, reg_covar, *, k, covariance_type, n_restarts, init):
    if init_params is not None:
        return broadcast_params(init_params, n_restarts)
    reg_covar = jnp.asarray(reg_covar, data.x.dtype)
    return initialize(key, data, k, covariance_type, n_restarts, init, reg_covar)


def fit_gmm_stream(key, source, n_components: int, *, covariance_type: str = "full",
                   n_restarts: int = 1, init: str = "kmeans",
                   init_params: GMMParams | None = None, tol: float = 1e-3,
                   reg_covar: float = 1e-6, max_iter: int = 100,
                   chunk_size: int | None = None, path: str = "auto", prior=None,
                   sample_weight=None, init_size: int | None = None) -> FitResult:
    """EM for a Gaussian mixture over a chunk source, one pass per iteration.

    The other arguments are those of :func:`jaxmix.fit_gmm`.

    Args:
      source: a 2-D array or ``np.memmap``, a path to a ``.npy`` file (memory
        mapped), a list of chunks, or a callable returning a fresh iterable of
        chunks (``x`` or ``(x, sample_weight)``) on every call.
      chunk_size: rows per chunk (array sources: ``None`` picks
        :func:`jaxmix.fit.gmm.default_chunk_size`; callables: ``None`` keeps
        their chunks, padded to the longest).
      sample_weight: ``(n,)`` weights of an array source (may be memory mapped).
      init_size: rows the initialiser (and ``prior="default"``) sees, drawn
        uniformly without replacement; default all rows up to ``INIT_SIZE``.

    Returns:
      :class:`~jaxmix.fit.driver.FitResult` as :func:`jaxmix.fit_gmm` (mean
      log-likelihood or log-posterior per sample of the whole data).
    """
    key = as_key(key)
    src = open_source(source, sample_weight)
    k, restarts = check_int(n_components, "n_components"), check_int(n_restarts, "n_restarts")
    info = survey(src, _chunk_size(src, chunk_size, k, restarts, default_chunk_size))
    sample_x, sample_w = _init_sample(key, src, info, init_size, k, "n_components")
    fit_in = prepare_fit(sample_x, k, covariance_type, restarts, max_iter, path, init,
                         init_params, sample_w, prior, tol, reg_covar,
                         chunk_size=info.layout.chunk_size)
    params0 = _initial_params(key, fit_in.data, fit_in.init_params, fit_in.reg_covar, k=k,
                              covariance_type=covariance_type, n_restarts=restarts, init=init)
    with registered(src) as token:
        result = _em(Stream(token, np.int32(info.n_chunks), fit_in.offset), params0,
                     info.total_weight, fit_in.tol, fit_in.reg_covar, fit_in.prior,
                     layout=info.layout, max_iter=fit_in.max_iter, path=path)
        jax.block_until_ready(result)
    return uncentre(result, fit_in.offset)


# ---------------------------------------------------------------------------
# K-Means


def _fingerprint(labels_hash, c):
    """A chunk's assignment fingerprint (sample indices local to the chunk)
    mixed with the chunk index, so that the sum over chunks fingerprints the
    whole assignment (as ``KMeansStats.labels_hash`` does in memory)."""
    h = labels_hash ^ (jnp.asarray(c).astype(jnp.uint32) * jnp.uint32(0x9E3779B1))
    h = h * jnp.uint32(0x85EBCA6B)
    return h ^ (h >> 13)


def _relocate(stats, centroids, stream: Stream, layout: Layout):
    """:func:`jaxmix.kmeans.core.relocate_empty` over a stream: a pass keeps each
    restart's ``k - 1`` samples farthest from their centroids (a running
    top-``k-1`` of :func:`jaxmix.kmeans.core.farthest_samples`), which are all the
    re-seeding can use; the in-memory rule then runs on them."""
    k = centroids.shape[1]

    def merge(best, new):
        def one(c, bx, bw, nx, nw):
            rows = _one(jnp.concatenate([bx, nx]), jnp.concatenate([bw, nw]))
            return jax.tree.map(lambda a: a[0], farthest_samples(c[None], rows, k - 1))
        return jax.vmap(one)(centroids, best.x, best.w, new.x, new.w)

    far = stream_fold(lambda x, w, _: farthest_samples(centroids, _one(x, w), k - 1), merge,
                      stream, layout)
    one = lambda s, c, x, w: jax.tree.map(lambda a: a[0], relocate_empty(
        jax.tree.map(lambda a: a[None], s), c[None], _one(x, w)))
    return jax.vmap(one)(stats, centroids, far.x, far.w)


def stream_lloyd_step(stream: Stream, layout: Layout, relocate: bool = True):
    """Batched Lloyd step over a stream (as :func:`jaxmix.kmeans.core.batched_lloyd_step`)."""
    def step(state: LloydState):
        c = state.centroids

        def chunk_stats(x, w, i):
            s = kmeans_stats(c, _one(x, w))
            return s._replace(labels_hash=_fingerprint(s.labels_hash, i))

        stats = stream_sum(chunk_stats, stream, layout)
        if relocate and c.shape[1] > 1:
            stats = jax.lax.cond(jnp.any(stats.counts <= 0),
                                 lambda s: _relocate(s, c, stream, layout), lambda s: s, stats)
        return LloydState(centroids_from_stats(stats, c), stats.labels_hash), -stats.inertia

    return step


@functools.partial(jax.jit, static_argnames=("layout", "max_iter"))
def _lloyd(stream, centroids0, abs_tol, *, layout, max_iter) -> FitResult:
    state0 = LloydState(centroids0, jnp.zeros(centroids0.shape[:1], jnp.uint32))
    result = iterate(stream_lloyd_step(stream, layout), state0, abs_tol, max_iter,
                     lloyd_converged)
    c = result.params.centroids
    # as kmeans.with_final_inertia: exact inertia of the final centroids, empty clusters
    final_inertia, counts = stream_sum(
        lambda x, w, _: (inertia(c, _one(x, w)), kmeans_stats(c, _one(x, w)).counts),
        stream, layout)
    score = jnp.where(result.failed, -jnp.inf, -final_inertia)
    return result._replace(params=KMeansParams(c), objective=-final_inertia,
                           degenerate=jnp.any(counts <= 0, axis=-1), best=jnp.argmax(score))


_seed_centroids = jax.jit(init_centroids, static_argnames=("k", "n_restarts", "method"))


def fit_kmeans_stream(key, source, n_clusters: int, *, n_restarts: int | None = None,
                      init: str = "k-means++", init_centroids=None, tol: float = 1e-4,
                      max_iter: int = 300, chunk_size: int | None = None, sample_weight=None,
                      init_size: int | None = None) -> FitResult:
    """Lloyd K-Means over a chunk source, one pass per iteration.

    Arguments are those of :func:`jaxmix.fit_kmeans`, with ``source``,
    ``chunk_size``, ``sample_weight`` and ``init_size`` as in
    :func:`fit_gmm_stream`. The seeding and ``tol``'s scale (the mean feature
    variance) come from the ``init_size`` sample; an empty cluster is
    re-seeded from the farthest samples of the whole data (one more pass).
    """
    key = as_key(key)
    src = open_source(source, sample_weight)
    k = check_int(n_clusters, "n_clusters")
    restarts = n_restarts if isinstance(n_restarts, int) and n_restarts > 0 else (
        np.shape(init_centroids)[0] if np.ndim(init_centroids) == 3 else 1)
    info = survey(src, _chunk_size(src, chunk_size, k, restarts, kmeans_chunk_size))
    sample_x, sample_w = _init_sample(key, src, info, init_size, k, "n_clusters")
    inp = check_kmeans_inputs(sample_x, k, n_restarts, init, init_centroids, sample_w)
    max_iter = check_int(max_iter, "max_iter", low=0)
    offset = jnp.mean(inp.x, axis=0)
    data = chunk(inp.x - offset, info.layout.chunk_size, inp.weights)
    if inp.centroids0 is None:
        centroids0 = _seed_centroids(key, data, k=inp.k, n_restarts=inp.n_restarts, method=init)
    else:
        centroids0 = inp.centroids0 - offset
    abs_tol = scaled_tol(data, check_nonneg(tol, "tol"))
    with registered(src) as token:
        result = _lloyd(Stream(token, np.int32(info.n_chunks), offset), centroids0, abs_tol,
                        layout=info.layout, max_iter=max_iter)
        jax.block_until_ready(result)
    return result._replace(params=KMeansParams(result.params.centroids + offset))


# ---------------------------------------------------------------------------
# Shared host-side steps


def _chunk_size(src, chunk_size, k: int, n_restarts: int, default) -> int | None:
    """``chunk_size`` checked, or the in-memory fit's default for array sources."""
    if chunk_size is not None:
        return check_int(chunk_size, "chunk_size")
    if src.sequential:
        return None
    n, d = src.x.shape
    return default(n, d, k, n_restarts)


def _init_sample(key, src, info, init_size, k: int, k_name: str):
    """``(x, w)`` rows for the initialiser: all of them in order when the data
    has at most ``init_size`` (default :data:`INIT_SIZE`) rows, else that
    many drawn uniformly without replacement (seeded by ``key``)."""
    if info.n_positive < k:
        raise ValueError(f"{k_name}={k} is larger than the number of samples with positive "
                         f"weight ({info.n_positive}); use fewer or provide more data")
    size = INIT_SIZE if init_size is None else check_int(init_size, "init_size", low=k)
    n = info.n_samples
    if size >= n:
        rows = np.arange(n)
    else:
        rows = np.sort(np.random.default_rng(_numpy_seed(key)).choice(n, size, replace=False))
    return sample_rows(src, rows, info.layout.chunk_size)


def _numpy_seed(key) -> list:
    key = jax.random.fold_in(key, 1)
    if jnp.issubdtype(key.dtype, jax.dtypes.prng_key):
        key = jax.random.key_data(key)
    return np.asarray(key).ravel().tolist()
