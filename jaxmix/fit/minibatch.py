"""``fit_minibatch_kmeans``: mini-batch K-Means (scikit-learn's
``MiniBatchKMeans``) on in-memory data, on a random-access source, or on
batches from a Python iterator.

* In memory, or a random-access source (a ``.npy`` path, an ``np.memmap``, a
  SciPy sparse matrix): batches are drawn inside ``jit`` (with replacement,
  uniformly, or with probability proportional to unequal sample weights and
  then unit weights) and the loop over batches is
  :func:`jaxmix.fit.driver.iterate`, the driver every fit uses, batched over
  restarts. A source's batch rows are read on the host each step
  (:meth:`jaxmix.data.stream.Stream.gather`), a sparse matrix's made dense;
  the results are those of the same data in memory.
* An iterator of batches (data that does not fit in memory): each step is one
  compiled call of the same :func:`jaxmix.kmeans.minibatch.minibatch_step`.

>>> import numpy as np
>>> from jaxmix import fit_minibatch_kmeans
>>> x = np.random.default_rng(0).normal(size=(4000, 2)) + np.repeat([[-5.0], [5.0]], 2000, 0)
>>> c = fit_minibatch_kmeans(0, x, 2, batch_size=256).best_params.centroids
>>> sorted(np.asarray(c[:, 0]).round(0).tolist())
[-5.0, 5.0]
"""

from __future__ import annotations


import jax
import jax.numpy as jnp
import numpy as np

from jaxmix.compiling import jit
from jaxmix.data.chunked import one_chunk
from jaxmix.data.source import is_source, random_access
from jaxmix.data.stream import Stream
from jaxmix.fit.driver import FitResult, iterate, raise_if_all_failed
from jaxmix.fit.inputs import placed
from jaxmix.fit.kmeans import (_n_restarts, check_init_centroids, padded_centroids,
                               with_final_inertia)
from jaxmix.fit.buckets import batch_bucket, component_bucket, history_bucket, restart_bucket
from jaxmix.fit.rows import cut_rows, fit_work, to_host
from jaxmix import host_random
from jaxmix.host_random import split_prefix_stable
from jaxmix.kmeans.init import (KMEANS_INITS, host_seed_draws, init_centroids as seed_centroids,
                                local_trials)
from jaxmix.kmeans.minibatch import make_config, minibatch_init, minibatch_step, stopped
from jaxmix.kmeans.update import scaled_tol
from jaxmix.numerics import all_finite, uniform
from jaxmix.params import KMeansParams
from jaxmix.validation import (as_key, check_choice, check_data, check_int, check_max_iter,
                               check_nonneg, check_sample_weight)

# EWA window of a stream when the data set size is unknown: 100 batches.
STREAM_WINDOW_BATCHES = 100


def fit_minibatch_kmeans(key, x, n_clusters: int, *, n_restarts: int | None = None,
                         batch_size: int = 1024, max_iter: int = 100, init: str = "k-means++",
                         init_centroids=None, init_size: int | None = None, tol: float = 0.0,
                         max_no_improvement: int | None = 10,
                         reassignment_ratio: float = 0.01, sample_weight=None,
                         n_samples: int | None = None, max_steps: int | None = None) -> FitResult:
    """Mini-batch K-Means, ``n_restarts`` runs in one compiled call.

    Args:
      key: ``jax.random`` key (or int seed).
      x: ``(n, d)`` data, a random-access source (a ``.npy`` path, an
        ``np.memmap``, a SciPy sparse matrix: each step's batches are read on
        the host, a sparse matrix's rows made dense), or an iterator of batches ``x (b, d)`` /
        ``(x, sample_weight)`` (one run; the first batch fixes ``b`` and ``d``,
        centres, scales ``tol`` and seeds; later batches may be smaller,
        padded with zero weight; the loop ends when a stopping rule fires,
        after ``max_steps`` steps or with the iterator).
      n_clusters: ``k``.
      n_restarts: independent runs (default 1, or the leading axis of a 3-D
        ``init_centroids``); the best has the lowest inertia on all of ``x``.
      batch_size: samples per step.
      max_iter: passes over the data: at most ``max_iter * n // batch_size``
        steps (sklearn's ``n_steps``).
      init: ``"k-means++"`` or ``"random"``, run on ``init_size`` samples
        drawn at random (default ``3 * batch_size``, at least ``3 k``).
      init_centroids: ``(k, d)`` or ``(R, k, d)`` starting centroids.
      tol: stop when one step moves the centroids (total squared shift) by at
        most ``tol`` times the mean feature variance (``0``: off, sklearn's default).
      max_no_improvement: stop after this many steps without improvement of
        the smoothed batch inertia (``None``: off).
      reassignment_ratio: re-seed clusters with count below this fraction of
        the largest count.
      sample_weight: optional ``(n,)`` weights; batches are drawn with
        probability proportional to them.
      n_samples: iterators: size of the data set they cover, for the EWA
        smoothing ``alpha = 2 b / (n_samples + 1)`` as sklearn (``None``:
        about ``100`` batches).
      max_steps: iterators: at most this many steps.

    Returns:
      :class:`~jaxmix.fit.driver.FitResult` with ``params`` :class:`KMeansParams`
      ``(R, k, d)``; ``n_iter`` counts steps, ``history`` the mean batch
      inertia (negated) per step, ``objective`` is ``-inertia`` of the final
      centroids on all of ``x``.
    """
    if is_source(x) and not random_access(x):
        raise ValueError("fit_minibatch_kmeans draws rows at random: it takes an array, a "
                         "random-access source (a .npy path, an np.memmap, a SciPy sparse "
                         f"matrix) or an iterator of batches, not {type(x).__name__}; use "
                         "fit_kmeans, which streams any source, or pass iter(batches)")
    if not hasattr(x, "shape") and hasattr(x, "__iter__") and not isinstance(x, (list, tuple)):
        return _fit_stream(key, x, n_clusters, init=init, init_centroids=init_centroids,
                           tol=tol, max_no_improvement=max_no_improvement,
                           reassignment_ratio=reassignment_ratio, n_samples=n_samples,
                           max_steps=max_steps)
    key = as_key(key)
    n_restarts = _n_restarts(n_restarts, init_centroids)
    batch_size = check_int(batch_size, "batch_size")
    max_iter = check_max_iter(max_iter)
    if max_no_improvement is not None:
        max_no_improvement = check_int(max_no_improvement, "max_no_improvement", low=0)
    with placed(key, x, n_clusters, row_elements=lambda d: 1, sample_weight=sample_weight,
                k_name="n_clusters") as inp:
        n, k = inp.n_samples, n_clusters
        c0 = check_init_centroids(init_centroids, k, inp.n_features, inp.sample.dtype, n_restarts)
        if c0 is None:
            init = check_choice(init, "init", KMEANS_INITS)
        size = 3 * batch_size if init_size is None and 3 * batch_size >= k else (
            3 * k if init_size is None else init_size)
        size = min(check_int(size, "init_size", low=k), n)
        config = make_config(check_nonneg(tol, "tol"), min(1.0, batch_size * 2.0 / (n + 1)),
                             max_no_improvement,
                             check_nonneg(reassignment_ratio, "reassignment_ratio"),
                             inp.sample.dtype)
        n_steps = max_iter * n // batch_size
        stream_rows = n if isinstance(inp.data, Stream) else None
        k_max = component_bucket(k)
        n_rows = restart_bucket(n_restarts) if split_prefix_stable(key) else n_restarts
        result = jax.block_until_ready(_fit(
            key, _seed_draws(key, n_rows, k_max, init if c0 is None else None), inp.data,
            inp.sample, None if c0 is None else c0 - inp.offset, config, n,
            n_steps, k, local_trials(k), n_restarts, np.array([batch_size, size], np.int32),
            k_max=k_max, n_rows=n_rows,
            init=init if c0 is None else None, history=history_bucket(n_steps),
            stream_rows=stream_rows, batch_rows=batch_bucket(batch_size),
            init_rows=batch_bucket(size), weighted=_unequal(sample_weight)))
    # back to the data's frame on the host (concrete results): no eager program
    offset = to_host(inp.offset)
    result = cut_rows(result, n_restarts, n_steps,
                      lambda p: KMeansParams(p.centroids[:, :k]).shifted(offset))
    return raise_if_all_failed(result, "check the data's scale (squared distances overflow)")


def _seed_draws(key, n_rows: int, k_max: int, init):
    """The seeding's draws of :func:`_fit` (its ``init_key``, the first of
    three splits of ``key``, split per restart) hashed on the host; ``None``
    where it does not seed (``init`` None) or the host cannot hash ``key``."""
    raw = host_random.host_key(key) if init is not None else None
    return None if raw is None else host_seed_draws(
        host_random.fold_in(raw, 0), n_rows, k_max, init, local_trials(k_max))


def _minibatch_work(key, draws, data, *_, k_max, n_rows, **__):
    """The final pass over the data bounds a step's batch (``batch_size <= n``)."""
    return fit_work(data, n_rows, k_max)


@jit(static_argnames=("k_max", "n_rows", "init", "history", "stream_rows", "batch_rows",
                      "init_rows", "weighted"), work=_minibatch_work)
def _fit(key, draws, data, sample, centroids0, config, n, n_steps, k, n_trials, n_restarts,
         sizes, *, k_max, n_rows, init, history, stream_rows, batch_rows, init_rows,
         weighted) -> FitResult:
    """The runs, batches drawn inside the loop: gathered from the data in
    memory, or read from a random-access source on the host (``data`` a
    :class:`~jaxmix.data.stream.Stream` of ``stream_rows`` rows: one read of
    all restarts' batches per step, a sparse source's rows made dense);
    ``sample`` scales ``tol``. ``n`` rows (rows are drawn below it) and
    ``n_steps`` are traced: in memory, one program serves every step cap
    within ``history`` and every data size in a sample bucket. So are
    ``sizes = (batch_size, init_size)`` (``init_size`` at most ``n``): their
    rows are drawn in their buckets ``batch_rows`` and ``init_rows``, the
    first ``batch_size`` (``init_size``) of them those an unpadded run draws
    (prefix-stable draws), the others weighted 0. So are ``k`` clusters (of
    ``k_max``, the others masked; k-means++ with ``n_trials`` candidates) and
    ``n_restarts`` runs (of ``n_rows``, the others never stepped): restart
    ``r`` draws from ``split(key, n_rows)[r]``, which does not depend on
    ``n_rows`` (:func:`jaxmix.host_random.split_prefix_stable`). ``draws``:
    the seeding's draws hashed on the host (:func:`_seed_draws`), or ``None``
    (hashed here)."""
    if isinstance(data, Stream):
        w, take = data.weights(stream_rows), data.gather
    else:
        x, w = data.flat()  # padding rows: weight 0, never drawn (rows < n)
        take = lambda rows: (x[rows], w[rows])  # noqa: E731
    real, active = jnp.arange(k_max) < k, jnp.arange(n_rows) < n_restarts
    init_key, subset_key, run_key = jax.random.split(key, 3)
    batch_size, init_size = sizes[0], sizes[1]
    if centroids0 is None:
        rows = jax.random.randint(subset_key, (init_rows,), 0, n)
        xs, ws = take(rows)
        ws = jnp.where(jnp.arange(init_rows) < init_size, ws, 0)
        centroids0 = seed_centroids(init_key if draws is None else draws,
                                    one_chunk(xs, ws), k_max, n_rows, init,
                                    n_trials, local_trials(k_max))
    centroids0 = padded_centroids(centroids0, jnp.broadcast_to(real, (n_rows, k_max)))
    config = config._replace(tol=scaled_tol(sample, config.tol))
    # rows drawn uniformly, or with probability proportional to unequal
    # weights (equal weights and none draw the same batches)
    cdf = jnp.cumsum(w) if weighted else None
    unit = (jnp.arange(batch_rows) < batch_size).astype(w.dtype)

    def draw(state):
        key, sub = jax.random.split(state.key)
        if not weighted:
            return key, jax.random.randint(sub, (batch_rows,), 0, n)
        u = uniform(sub, (batch_rows,), w.dtype) * cdf[-1]
        return key, jnp.minimum(jnp.searchsorted(cdf, u, side="right"), n - 1)

    def step(states):
        keys, rows = jax.vmap(draw)(states)
        xb = take(rows.reshape(-1))[0].reshape(rows.shape + (-1,))
        new, batch_inertia = jax.vmap(
            lambda s, xr: minibatch_step(s, xr, unit, config, real, batch_size))(
            states._replace(key=keys), xb)
        return new, -batch_inertia

    states0 = jax.vmap(minibatch_init)(jax.random.split(run_key, n_rows), centroids0)
    usable = active & all_finite(states0, batch_dims=1)
    result = iterate(step, states0, config.tol, n_steps, stopped, usable=usable,
                     history_len=history)
    return with_final_inertia(result._replace(params=KMeansParams(result.params.centroids)),
                              data, real, usable)


def _unequal(sample_weight) -> bool:
    """Whether batches must be drawn by weight: weights given and not all equal."""
    return sample_weight is not None and bool(np.ptp(np.asarray(sample_weight)) > 0)


_stream_step = jit(minibatch_step)


def _fit_stream(key, batches, n_clusters: int, *, init, init_centroids, tol,
                max_no_improvement, reassignment_ratio, n_samples, max_steps) -> FitResult:
    """:func:`fit_minibatch_kmeans` over batches from a Python iterator: the
    first batch centres the data, scales ``tol`` and seeds the centroids."""
    key = as_key(key)
    it = iter(batches)
    try:
        first = next(it)
    except StopIteration:
        raise ValueError("batches is empty; it must yield at least one batch") from None
    x0, w0 = first if isinstance(first, tuple) else (first, None)
    if max_steps is not None:
        max_steps = check_int(max_steps, "max_steps")
    if max_no_improvement is not None:
        max_no_improvement = check_int(max_no_improvement, "max_no_improvement", low=0)
    with placed(key, x0, n_clusters, row_elements=lambda d: 1, sample_weight=w0,
                k_name="n_clusters") as inp:
        b, d = inp.n_samples, inp.n_features
        c0 = check_init_centroids(init_centroids, n_clusters, d, inp.sample.dtype, 1)
        if c0 is None:
            init = check_choice(init, "init", KMEANS_INITS)
        elif np.ndim(init_centroids) == 3:
            raise ValueError("init_centroids must have shape (k, d) for a stream (one run)")
    n_samples = STREAM_WINDOW_BATCHES * b if n_samples is None else check_int(n_samples,
                                                                              "n_samples")
    init_key, run_key = jax.random.split(key)
    c0 = (seed_centroids(init_key, inp.sample, n_clusters, 1, init)[0] if c0 is None
          else c0[0] - inp.offset)
    config = make_config(scaled_tol(inp.sample, check_nonneg(tol, "tol")),
                         min(1.0, 2.0 * b / (n_samples + 1)), max_no_improvement,
                         check_nonneg(reassignment_ratio, "reassignment_ratio"), inp.sample.dtype)
    xs, ws = inp.sample.flat()
    state, history = _run_stream(minibatch_init(run_key, c0), (xs, ws), it, inp.offset,
                                 config, max_steps, (b, d))
    return FitResult(KMeansParams((state.centroids + inp.offset)[None]),
                     -state.ewa[None] if int(state.step) >= 2 else history[:, -1],
                     jnp.asarray([int(state.step)], jnp.int32),
                     jnp.asarray([bool(state.stop)]), jnp.zeros((1,), bool),
                     jnp.asarray([bool(jnp.any(state.counts <= 0))]), history,
                     jnp.asarray(0, jnp.int32), stalled=jnp.zeros((1,), bool),
                     n_evals=jnp.asarray([int(state.step)], jnp.int32),
                     n_grads=jnp.zeros((1,), jnp.int32))


def _run_stream(state, batch, it, offset, config, max_steps, shape):
    """The host loop: one compiled step per centred batch until a stopping rule fires."""
    history = []
    while True:
        state, batch_inertia = _stream_step(state, *batch, config)
        history.append(-batch_inertia)
        if bool(state.stop) or (max_steps is not None and len(history) >= max_steps):
            break
        try:
            batch = _batch(next(it), shape, batch[0].dtype, offset, len(history))
        except StopIteration:
            break
    return state, jnp.stack(history)[None]


def _batch(item, shape, dtype, offset, i: int):
    """``(x - offset, w)`` of batch ``i`` (from 0) of the stream, checked in
    ``dtype`` and padded to ``shape`` with zero-weight rows."""
    x, w = item if isinstance(item, tuple) else (item, None)
    name = f"batch {i}"
    x = check_data(np.asarray(x) if not isinstance(x, jax.Array) else x, name)
    b, d = shape
    if x.shape[1] != d or x.shape[0] > b:
        raise ValueError(f"{name} must have at most {b} rows and {d} columns (as the first "
                         f"batch), got shape {x.shape}")
    w = None if w is None else check_sample_weight(
        w, x.shape[0], dtype, name=f"sample_weight of {name}", allow_zero=True)
    w = jnp.ones((x.shape[0],), dtype) if w is None else jnp.asarray(w, dtype)
    x = jnp.asarray(x, dtype) - offset
    pad = b - x.shape[0]
    if pad:
        x = jnp.concatenate([x, jnp.zeros((pad, d), dtype)])
        w = jnp.concatenate([w, jnp.zeros((pad,), dtype)])
    return x, w
