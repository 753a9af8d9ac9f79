"""The rows the Gaussian mixtures' ``"kmeans"`` initialiser clusters.

scikit-learn's GMM initialiser runs K-Means on every sample to convergence;
jaxmix's did too, and on large data that cost more than the EM fit it
started (correlated blobs, n=1e5, d=16, k=16, 16 restarts, 2-core CPU: 0.75 s
of k-means++ and Lloyd against about 0.13 s per EM iteration of all 16
restarts). The initialiser's start is only as good as its labels, and labels
need far fewer rows than the data has: where the initialiser's sample has more
than :data:`SUBSAMPLE_FROM` rows (padded), the restarts seed and run Lloyd
on :data:`LLOYD_ROWS` of its rows drawn uniformly with replacement (their
weights kept), and the M-step on the labels still passes over the whole
sample (:func:`jaxmix.fit.init.initialize_masked`). On those blobs the init
then took about 3 EM iterations instead of 10, and the fits ended at the
same best log-likelihood; where the data have at most that many rows,
nothing changes (scikit-learn's results on small data are still matched
from the same seeds).

The subsample is a function of the data alone, shared by every restart as
the data are in scikit-learn: row ``i`` is ``u_i mod n`` for the threefry
words ``u`` of one fixed key (:func:`subsample_words`, hashed on the host
once) and ``n`` one past the last row of positive weight. So the rows drawn
do not depend on the key, the restarts, ``k`` or its bucket, or the
chunking. Whether they are drawn at all depends on the padded size of the
sample (a ``chunk_size`` that pads a sample of at most 2^15 rows beyond
:data:`SUBSAMPLE_FROM` subsamples it where the default chunking does not)
and on the padded ``k`` (at most 512 centroids, :data:`MIN_ROWS_PER_CENTROID`
rows each). The restarts' k-means++ and Lloyd run batched on one array:
drawn per restart from each one's key, the seeding's distances became ``R``
small batched products instead of one GEMM (seeding 16 restarts took 72 ms
instead of 15 ms), and Lloyd ran one restart at a time (vmapped, its
re-seeding ``lax.cond`` ran both branches every iteration).
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np

from jaxmix import host_random
from jaxmix.data.chunked import Chunked, chunk, chunk_rows

# Rows the k-means initialisation clusters on large data.
LLOYD_ROWS = 2 ** 14
# Samples of more padded rows than this are subsampled: 2^15 rows plus part of
# the gap to the next sample bucket (36,864), so the default chunk rule's few
# padding rows never move a sample of 2^15 rows or fewer across it.
SUBSAMPLE_FROM = 2 ** 15 + 2 ** 10
# Fewer drawn rows per centroid than this and the whole sample is clustered
# (faiss warns below 39): k-means of k up to 512 is subsampled.
MIN_ROWS_PER_CENTROID = 32
# The second word of the subsample's fixed raw key.
SAMPLE_TAG = 0x4C4C4F59


def lloyd_rows(sample: Chunked, k: int) -> int | None:
    """Rows drawn for the initialiser's K-Means of ``k`` (padded) centroids
    on ``sample`` (static), or ``None``: it clusters the whole sample (also
    where fewer than :data:`MIN_ROWS_PER_CENTROID` drawn rows would fall to
    each centroid)."""
    big = sample.x.shape[0] * sample.x.shape[1] > SUBSAMPLE_FROM
    return LLOYD_ROWS if big and k * MIN_ROWS_PER_CENTROID <= LLOYD_ROWS else None


@functools.lru_cache(maxsize=None)
def subsample_words(m: int) -> np.ndarray:
    """The ``(m,)`` uint32 words of the subsample: ``jax.random.bits(key,
    (m,), uint32)`` of the raw key ``(0, SAMPLE_TAG)``, hashed on the host."""
    return host_random.random_bits(np.array([0, SAMPLE_TAG], np.uint32), m)


def subsample(sample: Chunked, m: int, row_elements: int) -> Chunked:
    """The ``m`` rows ``subsample_words(m) mod n`` of ``sample`` with their
    weights (``n``: one past its last row of positive weight), in chunks
    sized for ``row_elements`` elements per row."""
    bits = jnp.asarray(subsample_words(m))
    x, w = sample.flat()
    n = jnp.max(jnp.where(w > 0, jnp.arange(w.shape[0]), -1)) + 1
    idx = bits % jnp.maximum(n, 1).astype(jnp.uint32)
    return chunk(x[idx], chunk_rows(m, row_elements), w[idx])
