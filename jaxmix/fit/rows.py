"""The padded rows of a compiled fit: restarts (or model-selection grid
points times restarts) bucketed to a few shapes, and the result cut back.

Every fit of a mixture runs ``B`` *rows* of ``k_max`` components, both
bucketed (:mod:`jaxmix.fit.buckets`). :class:`Rows` says, per row, how many
components are real (``k``), which restart it is (``restart``), its k-means++
candidates (``trials``) and whether it is real at all (``active``). Rows are
traced arrays: only ``B`` and ``k_max`` are compiled in.

Keys: row ``b`` starts from ``fold_in(base, restart[b])`` where ``base`` is
the fit's key, or ``fold_in(key, k[b])`` for a grid (``select_k``). So
restart ``r`` of a fit does not depend on how many restarts run with it, nor
on the bucket: a fit with ``R = 4`` is the first four restarts of ``R = 8``.
Where the key is concrete, :func:`with_draws` hashes these keys (and the
k-means++ draws) on the host, bit for bit, and the program takes them as
data instead of hashing them itself (:mod:`jaxmix.host_random`).

>>> rows = restart_rows([2, 3], 2, n_rows=6)
>>> rows.k.tolist(), rows.restart.tolist(), rows.active.tolist()
([2, 2, 3, 3, 2, 2], [0, 1, 0, 1, 0, 0], [True, True, True, True, False, False])
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from jaxmix import host_random
from jaxmix.data.chunked import Chunked, pass_elements
from jaxmix.fit.buckets import restart_bucket
from jaxmix.gmm.covariance import family
from jaxmix.kmeans.init import Draws, host_plusplus_bits, local_trials


# Number of times the compiled fits were traced (a trace precedes every
# compile): tests and experiments read it.
TRACE_COUNT = {"gmm": 0, "kmeans": 0, "gradient": 0}


class Rows(NamedTuple):
    k: np.ndarray          # (B,) int32 real components of each row
    restart: np.ndarray    # (B,) int32 restart index within its k
    trials: np.ndarray     # (B,) int32 k-means++ candidates per centre
    active: np.ndarray     # (B,) bool the row is real (else padding)
    draws: Draws | None = None  # (B,) start draws hashed on the host (with_draws)


def restart_rows(ks, n_restarts: int, n_local_trials=None, n_rows: int | None = None) -> Rows:
    """``len(ks) * n_restarts`` real rows (grid point major), then inactive
    copies of the first up to ``n_rows`` (default: the restart bucket)."""
    ks = np.asarray(ks, np.int32).reshape(-1)
    real = ks.size * n_restarts
    n_rows = restart_bucket(real) if n_rows is None else n_rows
    k = np.repeat(ks, n_restarts)
    restart = np.tile(np.arange(n_restarts, dtype=np.int32), ks.size)
    trials = np.array([local_trials(int(v)) if n_local_trials is None else n_local_trials
                       for v in k], np.int32)
    pad = n_rows - real
    return Rows(np.concatenate([k, np.repeat(k[:1], pad)]),
                np.concatenate([restart, np.zeros(pad, np.int32)]),
                np.concatenate([trials, np.repeat(trials[:1], pad)]),
                np.arange(n_rows) < real)


def row_mask(rows: Rows, k_max: int):
    """``(B, k_max)``: component ``j`` of row ``b`` is real."""
    return jnp.arange(k_max)[None, :] < rows.k[:, None]


def row_keys(key, rows: Rows, per_k: bool):
    """The start key of every row (module docstring), or the row's
    :class:`~jaxmix.kmeans.init.Draws` where :func:`with_draws` hashed them."""
    if rows.draws is not None:
        return rows.draws

    def one(k, r):
        base = jax.random.fold_in(key, k) if per_k else key
        return jax.random.fold_in(base, r)
    return jax.vmap(one)(rows.k, rows.restart)


# The initialisers that seed by k-means++ (GMM "kmeans" and "k-means++", K-Means "k-means++").
PLUSPLUS = ("kmeans", "k-means++")


def plusplus_shape(init: str, given, k_max: int, max_trials: int):
    """``(k_max, max_trials)``: the shape of the k-means++ draws a start by
    ``init`` takes (:func:`with_draws`); ``None`` if it takes none (``given``
    starting parameters or centroids, or another initialiser)."""
    return (k_max, max_trials) if given is None and init in PLUSPLUS else None


def with_draws(key, rows: Rows, *, per_k: bool = False, plusplus=None) -> Rows:
    """``rows`` with their start keys (and, given ``plusplus = (k_max,
    max_trials)`` of a k-means++ seeding, its draws) hashed on the host
    (:mod:`jaxmix.host_random`), as :func:`row_keys` and the seeding would
    hash them in the program; unchanged where the host cannot hash ``key``
    (traced, another PRNG)."""
    raw = host_random.host_key(key)
    if raw is None:
        return rows
    base = host_random.fold_in(raw, rows.k) if per_k else raw
    keys = host_random.fold_in(base, rows.restart)
    bits = None if plusplus is None else host_plusplus_bits(keys, *plusplus)
    return rows._replace(draws=Draws(keys, bits))


def fit_work(data, n_rows: int, k: int, covariance_type: str | None = None,
             dense: bool = False) -> int | None:
    """Elements of one pass of ``n_rows`` rows of ``k`` components over
    in-memory ``data`` (``n d n_rows k``, times ``d`` where ``dense`` or the
    Gaussian ``covariance_type`` has a dense factor), a fit program's
    ``work`` for :func:`jaxmix.compiling.jit`; None for a stream."""
    if covariance_type is not None:
        dense = family(covariance_type).dense_factor
    d = data.x.shape[-1] if dense and isinstance(data, Chunked) else 1
    return pass_elements(data, n_rows * k * d)


def to_host(tree):
    """Concrete, fully addressable leaves as NumPy (cut on the host without
    compiling anything); others unchanged."""
    def one(a):
        if isinstance(a, jax.Array) and not isinstance(a, jax.core.Tracer) \
                and a.is_fully_addressable:
            return np.asarray(a)
        return a
    return jax.tree.map(one, tree)


def to_device(tree):
    """NumPy leaves back as JAX arrays (``device_put``: a transfer, where
    ``jnp.asarray`` would compile a copy program per shape)."""
    return jax.tree.map(lambda a: jax.device_put(a) if isinstance(a, np.ndarray) else a, tree)


def cut_rows(result, n_rows: int, max_iter: int, cut_params=None):
    """A padded fit's result cut to its first ``n_rows`` rows, ``history`` to
    ``max_iter`` columns and the params by ``cut_params`` (e.g. to the real
    components); concrete results are cut on the host."""
    host = to_host(result)
    rows = jax.tree.map(lambda a: a[:n_rows], host._replace(best=None, history=None))
    params = rows.params if cut_params is None else cut_params(rows.params)
    return to_device(rows._replace(params=params, best=host.best,
                                   history=host.history[:n_rows, :max_iter]))


def pad_rows(a, n_rows: int):
    """``a (R, ...)`` with copies of its first row appended up to ``n_rows``."""
    return jnp.concatenate([a, jnp.repeat(a[:1], n_rows - a.shape[0], axis=0)])
