"""The rows the Gaussian mixtures' ``"kmeans"`` initialiser clusters.

scikit-learn's GMM initialiser runs K-Means on every sample to convergence;
jaxmix's did too, and on large data that cost more than the EM fit it
started (correlated blobs, n=1e5, d=16, k=16, 16 restarts, 2-core CPU: 0.75 s
of k-means++ and Lloyd against about 0.13 s per EM iteration of all 16
restarts). The initialiser's start is only as good as its labels, and labels
need far fewer rows than the data has: where the initialiser's sample has more
than :data:`SUBSAMPLE_FROM` rows (padded), each restart seeds and runs Lloyd
on :data:`LLOYD_ROWS` rows drawn uniformly with replacement (their weights
kept), and the M-step on the labels still passes over the whole sample
(:func:`jaxmix.fit.init.initialize_masked`). On those blobs the init then
took 0.12 s and the fits ended at the same best log-likelihood; where
the data have at most that many rows, nothing changes (scikit-learn's
results on small data are still matched from the same seeds).

Restart ``b`` draws its rows from its own key: row ``i`` is ``u_i mod n``
for ``u = bits(fold_in(key, SAMPLE_TAG), (LLOYD_ROWS,))`` and ``n`` one
past the last row of positive weight, so the draw does not depend on the
other restarts, on ``k`` or its bucket, or on the chunking (only the padded
size of the sample decides whether it is drawn at all). Unlike a start's
other draws these words are hashed in the program even where the key is
concrete (:mod:`jaxmix.host_random`): on those blobs that compiled no
slower, and the host took 0.24 s to hash them for 208 restarts.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from jaxmix.data.chunked import Chunked, chunk, chunk_rows

# Rows each restart's k-means initialisation sees on large data.
LLOYD_ROWS = 2 ** 14
# Samples of more padded rows than this are subsampled: 2^15 rows plus part of
# the gap to the next sample bucket (36,864), so the default chunk rule's few
# padding rows never move a sample of 2^15 rows or fewer across it.
SUBSAMPLE_FROM = 2 ** 15 + 2 ** 10
# fold_in tag of the subsample's key (k-means++ folds in 0 .. k - 1).
SAMPLE_TAG = 0x4C4C4F59


def lloyd_rows(sample: Chunked) -> int | None:
    """Rows drawn for the initialiser's K-Means on ``sample`` (static), or
    ``None``: it clusters the whole sample."""
    return LLOYD_ROWS if sample.x.shape[0] * sample.x.shape[1] > SUBSAMPLE_FROM else None


def subsample_bits(key, m: int):
    """The ``(m,)`` uint32 words a restart's subsample is drawn from."""
    return jax.random.bits(jax.random.fold_in(key, SAMPLE_TAG), (m,), jnp.uint32)


def subsample(bits, sample: Chunked, row_elements: int) -> Chunked:
    """The rows ``bits mod n`` of ``sample`` with their weights (``n``: one
    past its last row of positive weight), in chunks sized for
    ``row_elements`` elements per row."""
    x, w = sample.flat()
    n = jnp.max(jnp.where(w > 0, jnp.arange(w.shape[0]), -1)) + 1
    idx = bits % jnp.maximum(n, 1).astype(jnp.uint32)
    m = bits.shape[0]
    return chunk(x[idx], chunk_rows(m, row_elements), w[idx])
