"""DBSCAN from an eps-neighbourhood graph: any metric, sparse input,
precomputed distances (the path of :class:`jaxmix.sklearn.DBSCAN` beyond the
Euclidean distance of dense data, which :func:`jaxmix.dbscan.fit_dbscan` tiles
on the device).

The graph is a SciPy CSR matrix whose row ``i`` stores the eps-neighbours of
sample ``i`` (itself included). It is found by scikit-learn's radius search
(:func:`radius_graph`: the tree or brute-force algorithm it picks, for every
metric it knows, callables and sparse input included), or read from a
precomputed distance matrix
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
from sklearn.neighbors import radius_neighbors_graph

from jaxmix.dbscan.clusters import DBSCANResult


def radius_graph(x, eps: float, metric, metric_kwargs=None):
    """The eps-neighbourhood graph of the rows of ``x`` (dense or sparse),
    each sample its own neighbour, under ``metric`` (any metric of
    :func:`sklearn.metrics.pairwise_distances`, a callable; ``metric_kwargs``
    its parameters, ``p`` for Minkowski): scikit-learn's radius search, with
    the tree or brute-force algorithm it picks for the metric."""
    kwargs = dict(metric_kwargs or {})
    p = kwargs.pop("p", 2)
    return radius_neighbors_graph(x, eps, mode="connectivity", metric=metric, p=p,
                                  metric_params=kwargs or None, include_self=True).tocsr()


def precomputed_graph(d, eps: float):
    """The eps-neighbourhood graph of a precomputed ``(n, n)`` distance
    matrix: entries ``<= eps`` of a dense one; of a sparse one only the stored
    entries (an entry not stored is not a neighbour), its diagonal read as 0
    where it is not stored, as scikit-learn reads it."""
    n = d.shape[0]
    if d.ndim != 2 or d.shape[1] != n:
        raise ValueError(f"a precomputed distance matrix must be square, got shape {d.shape}; "
                         "pass distances between every pair of samples")
    if (d.data if sparse.issparse(d) else np.asarray(d)).min(initial=0) < 0:
        raise ValueError("X: negative values in a precomputed distance matrix "
                         "(metric='precomputed'); distances must be >= 0")
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


def _reach(graph, start: int, core, labels, cluster: int):
    """Label ``cluster`` every unlabelled sample reachable from ``start``
    through unlabelled core samples (``start`` included), by levels; the
    labels themselves mark what was visited."""
    labels[start] = cluster
    frontier = np.array([start])
    while frontier.size:
        expand = frontier[core[frontier]]
        if not expand.size:
            break
        nxt = np.unique(graph[expand].indices)
        frontier = nxt[labels[nxt] < 0]
        labels[frontier] = cluster


def nearest_stored(d):
    """For each row of distances ``d`` (dense, or sparse with only stored
    entries as distances): ``(column of the smallest, that distance)``, the
    distance ``inf`` where a sparse row stores none."""
    if not sparse.issparse(d):
        d = np.asarray(d)
        col = np.argmin(d, axis=1)
        return col, d[np.arange(d.shape[0]), col]
    d = sparse.csr_matrix(d)
    col, gap = np.zeros(d.shape[0], np.intp), np.full(d.shape[0], np.inf)
    for i in np.flatnonzero(np.diff(d.indptr)):
        row = slice(d.indptr[i], d.indptr[i + 1])
        j = np.argmin(d.data[row])
        col[i], gap[i] = d.indices[row][j], d.data[row][j]
    return col, gap


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
            _reach(graph, i, core, labels, cluster)
            cluster += 1
    return DBSCANResult(labels, core, np.int32(cluster), counts, np.int32(0))
