"""Shape buckets: what a compiled fit is specialised on, and how inputs are
padded so that most calls reuse a program already compiled.

XLA compiles one program per combination of static shapes, and compiling a
fit costs seconds where running it often costs milliseconds. So only what
changes shapes is static, and each such size is rounded up to a *bucket*:

* ``k`` components: :func:`component_bucket` (at least 8, then two buckets
  per octave: 8, 12, 16, 24, ...); the extra components are masked (weight
  exactly 0, no responsibility, see :mod:`jaxmix.fit.select`), so a fit's
  first ``k`` components follow the path of an unpadded ``k``-component fit;
* ``R`` restarts (or grid rows): :func:`restart_bucket` (1, 2, 3, 4, 6, 8,
  12, ...); the extra rows are inactive from the start (never stepped as
  live, never chosen) and dropped from the result;
* ``n`` samples: :func:`sample_bucket` (at least 256, then eight buckets per
  octave, so at most 1/8 of padding); the extra rows have weight 0;
* a mini-batch of ``b`` rows, and its initialiser's sample:
  :func:`batch_bucket` (at least 16, four per octave); the extra rows are
  drawn (prefix-stable draws: the first ``b`` are the unpadded batch) and
  weigh 0;
* ``max_iter`` sizes only the ``history`` array: :func:`history_bucket`
  (powers of two, at least 1024, so the default caps of every fit, 100, 300 and 1000,
  share one); the cap itself is a traced value.

Every EM and K-Means fit pads all four (``fit_gmm``, ``select_k``,
``fit_kmeans``, ``inertia_curve``, streamed or not); ``fit_minibatch_kmeans``
pads all four on arrays and random-access sources (``R`` under JAX's default
threefry keys, whose splits are prefix-stable), not over a Python iterator
of batches (one compiled step per ``k``); ``fit_gradient`` pads all four
(its loss masks the padded components, :class:`jaxmix.gmm.gradient.Objective`)
except with ``frozen`` parameters, whose masks keep the fit's own ``k``.
Padded K-Means centroids are
excluded from the assignment (:func:`jaxmix.kmeans.assign.nearest`), not
only tied with the first centroid: XLA may round two equal rows of one
distance product apart.

``tol``, ``reg_covar``, ``max_iter`` and prior strengths are traced, so a
refit that changes them, or ``R`` and ``k`` within their buckets, compiles
nothing. The price is the padded work: a ``k = 3`` fit evaluates 8
components per sample and ``R = 10`` restarts run as 12. Compilation costs
more than that on every problem up to roughly ``n * k * d^2`` of a few
million per restart (seconds of compile against milliseconds of work); for
larger problems, or to measure an unpadded program, wrap the call in
:func:`exact_shapes`.

>>> [component_bucket(k) for k in (1, 3, 8, 9, 13, 20)]
[8, 8, 8, 12, 16, 24]
>>> [restart_bucket(r) for r in (1, 5, 10, 16)], sample_bucket(1000), history_bucket(100)
([1, 6, 12, 16], 1024, 1024)
"""

from __future__ import annotations

import contextlib
import threading

import jax

MIN_COMPONENTS = 8
MIN_SAMPLES = 256
MIN_HISTORY = 1024
MIN_BATCH = 16

_state = threading.local()


def bucket(n: int, minimum: int = 1, per_octave: int = 1) -> int:
    """The smallest ``m * 2^e >= max(n, minimum)`` with ``per_octave <= m <
    2 * per_octave`` (``per_octave`` a power of two): ``per_octave`` sizes
    per doubling, so the padding is below ``1 / per_octave`` of the size."""
    n = max(int(n), int(minimum), 1)
    step = 1 << max(0, n.bit_length() - per_octave.bit_length())
    return -(-n // step) * step


def padding() -> bool:
    """Whether shapes are bucketed (False inside :func:`exact_shapes`)."""
    return getattr(_state, "padding", True)


@contextlib.contextmanager
def exact_shapes():
    """Compile fits for the exact ``k``, ``R``, ``n`` and ``max_iter`` inside
    the block (no padding: less work per iteration, one program per shape)."""
    before = padding()
    _state.padding = False
    try:
        yield
    finally:
        _state.padding = before


def component_bucket(k: int) -> int:
    """Components a ``k``-component fit is compiled for."""
    return bucket(k, MIN_COMPONENTS, 2) if padding() else int(k)


def restart_bucket(r: int) -> int:
    """Rows a fit of ``r`` restarts (or grid rows) is compiled for."""
    return bucket(r, 1, 2) if padding() else int(r)


def sample_bucket(n: int) -> int:
    """Rows ``n`` samples are padded to (with weight 0)."""
    return bucket(n, MIN_SAMPLES, 8) if padding() else int(n)


def batch_bucket(b: int) -> int:
    """Rows a mini-batch (or an initialiser's sample) of ``b`` rows is drawn
    in: at least :data:`MIN_BATCH`, four sizes per octave (the extra rows,
    weighted 0, are under a quarter of a step's work)."""
    return bucket(b, MIN_BATCH, 4) if padding() else int(b)


def history_bucket(max_iter: int) -> int:
    """Length of the compiled ``history`` array for an iteration cap ``max_iter``."""
    return bucket(max_iter, MIN_HISTORY, 1) if padding() else int(max_iter)


# Restarts stepped at once by the fit driver on a CPU: more restarts run in
# this many slots, each refilled as its restart stops
# (jaxmix.fit.driver.iterate). Measured by experiments/bench_restarts.py: 200
# restarts on digits (PCA 10, k=10) take 3.4 s in one batch and 0.97 s in 16
# slots; 16 restarts at n=5e4, d=16 run 1.45x slower in 8 slots than in 16
# (each pass's per-chunk work is shared by fewer restarts). An EM fit's
# chunks are sized for this many rows (jaxmix.fit.gmm.em_row_elements).
RESTART_SLOTS = 16
# Lloyd shares less per-chunk work between restarts (the data's norms only)
# and its iteration counts spread wider, so narrower batches pay: the
# k-means init of 16 restarts on correlated blobs (n=1e5, d=16, k=16; 3 to 28
# Lloyd iterations) takes 0.30 s of Lloyd in 8 slots against 0.50 s in 16; a
# 16-restart fit_kmeans at n=2e5, d=32, k=64 is within noise either way.
LLOYD_SLOTS = 8
# On accelerators wider batches stay cheap per restart.
ACCELERATOR_SLOTS = 64


# Every row gets its own slot when one pass of all rows has at most this
# many elements n * d * k * rows (jaxmix.data.chunked.pass_elements; in-memory
# data): compiling the slots' refill (0.2-0.4 s per loop, 2-core CPU,
# 2026-12-03) costs more than the stopped restarts would run there (a pass
# of 2^21 elements takes about a millisecond). The seed notebook fit's Lloyd
# init (12 rows, 8 slots) and the demo's k-sweeps (64 rows of k = 8 on 1280
# x 2 samples: 1.3e6) are under it; digits with 200 restarts (4.3e7) is not.
ONE_SLOT_EACH = 2 ** 21


def restart_slots(n_rows: int, algorithm: str = "em", pass_elements: int | None = None) -> int:
    """The driver's batch width for ``n_rows`` restart rows of ``algorithm``
    (``"em"`` or ``"lloyd"``; static). ``pass_elements``: the size of one
    pass of all rows over in-memory data, where a small one gives every row
    its own slot (:data:`ONE_SLOT_EACH`)."""
    if pass_elements is not None and pass_elements <= ONE_SLOT_EACH:
        return n_rows
    if jax.default_backend() != "cpu":
        return min(n_rows, ACCELERATOR_SLOTS)
    return min(n_rows, LLOYD_SLOTS if algorithm == "lloyd" else RESTART_SLOTS)
