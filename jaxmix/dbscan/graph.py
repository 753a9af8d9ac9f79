"""DBSCAN from an eps-neighbourhood graph: any metric, sparse input,
precomputed distances (the path of :class:`jaxmix.sklearn.DBSCAN` beyond the
Euclidean distance of dense data, which :func:`jaxmix.dbscan.fit_dbscan` tiles
on the device).

The graph is a SciPy CSR matrix whose row ``i`` stores the eps-neighbours of
sample ``i`` (itself included). It is built in row blocks of bounded memory
(:func:`radius_graph`: scikit-learn's ``pairwise_distances_chunked`` computes
each block's distances, for every metric it knows, callables and sparse
input included), or read from a precomputed distance matrix
(:func:`precomputed_graph`: dense, or sparse with only the stored entries as
candidate neighbours, as scikit-learn reads it). Memory is the graph's, one
entry per neighbour pair, as in scikit-learn.

:func:`cluster_graph` then gives scikit-learn's labels exactly, directed
graphs included: in order of sample index, each core sample not yet labelled
starts a cluster, which takes every unlabelled sample reachable from it
through unlabelled core samples (a level-synchronous breadth-first search).

>>> import numpy as np
>>> x = np.array([[0.], [0.1], [0.2], [5.], [5.1], [9.]])
>>> res = cluster_graph(radius_graph(x, 0.15, "manhattan"), 2)
>>> res.labels.tolist(), res.core.tolist()
([0, 0, 0, 1, 1, -1], [True, True, True, True, True, False])
"""

from __future__ import annotations

import warnings

import numpy as np
from scipy import sparse
from sklearn.metrics import pairwise_distances_chunked

from jaxmix.dbscan.clusters import DBSCANResult


def _csr(rows, n_rows: int, n_cols: int):
    """A boolean CSR matrix from the column indices of each row."""
    counts = np.fromiter((len(r) for r in rows), np.int64, n_rows)
    indptr = np.concatenate([[0], np.cumsum(counts)])
    indices = np.concatenate(rows) if rows else np.zeros(0, np.int64)
    return sparse.csr_matrix((np.ones(indices.size, bool), indices, indptr),
                             shape=(n_rows, n_cols))


def radius_graph(x, eps: float, metric, metric_kwargs=None, working_memory=None):
    """The eps-neighbourhood graph of the rows of ``x`` (dense or sparse)
    under ``metric`` (any metric of :func:`sklearn.metrics.pairwise_distances`,
    or a callable), built one row block at a time (``working_memory`` MiB
    per block, scikit-learn's default when ``None``)."""
    def within(block, start):
        return [np.flatnonzero(row <= eps) for row in block]

    rows = []
    for part in pairwise_distances_chunked(x, reduce_func=within, metric=metric,
                                           working_memory=working_memory,
                                           **(metric_kwargs or {})):
        rows.extend(part)
    return _csr(rows, x.shape[0], x.shape[0])


def precomputed_graph(d, eps: float):
    """The eps-neighbourhood graph of a precomputed ``(n, n)`` distance
    matrix: entries ``<= eps`` of a dense one; of a sparse one only the stored
    entries (an entry not stored is not a neighbour), its diagonal read as 0
    where it is not stored, as scikit-learn reads it."""
    n = d.shape[0]
    if d.ndim != 2 or d.shape[1] != n:
        raise ValueError(f"a precomputed distance matrix must be square, got shape {d.shape}; "
                         "pass distances between every pair of samples")
    if not sparse.issparse(d):
        return sparse.csr_matrix(np.asarray(d) <= eps)
    d = sparse.csr_matrix(d, copy=True)  # the user's matrix is never modified
    d.sum_duplicates()
    with warnings.catch_warnings():  # the diagonal stored: 0 where it was not
        warnings.simplefilter("ignore", sparse.SparseEfficiencyWarning)
        d.setdiag(d.diagonal())
    kept = sparse.csr_matrix((d.data <= eps, d.indices, d.indptr), shape=d.shape)
    kept.eliminate_zeros()
    return kept


def _reach(graph, start: int, core, labels):
    """Every unlabelled sample reachable from ``start`` through unlabelled
    core samples (``start`` included), by levels."""
    found, frontier = [np.array([start])], np.array([start])
    seen = np.zeros(labels.shape, bool)
    seen[start] = True
    while frontier.size:
        expand = frontier[core[frontier]]
        nxt = np.unique(graph[expand].indices) if expand.size else np.zeros(0, np.int64)
        nxt = nxt[~seen[nxt] & (labels[nxt] < 0)]
        seen[nxt] = True
        found.append(nxt)
        frontier = nxt
    return np.concatenate(found)


def cluster_graph(graph, min_samples: float, sample_weight=None) -> DBSCANResult:
    """scikit-learn's DBSCAN labels from an eps-neighbourhood ``graph``
    (row ``i``: the neighbours of sample ``i``): core samples have
    neighbourhood weight ``>= min_samples`` (``sample_weight`` summed, default
    the neighbour count). Returns a :class:`DBSCANResult` of numpy arrays
    (``n_sweeps``: 0, there are none)."""
    graph = sparse.csr_matrix(graph, dtype=bool)
    n = graph.shape[0]
    w = np.ones(n) if sample_weight is None else np.asarray(sample_weight, np.float64)
    counts = graph @ w
    core = counts >= min_samples
    labels = np.full(n, -1, np.intp)
    cluster = 0
    for i in np.flatnonzero(core):
        if labels[i] < 0:
            labels[_reach(graph, i, core, labels)] = cluster
            cluster += 1
    return DBSCANResult(labels, core, np.int32(cluster), counts, np.int32(0))
