"""scikit-learn-compatible ``DBSCAN`` on top of :func:`jaxmix.dbscan.fit_dbscan`.

Change one import::

    from jaxmix.sklearn import DBSCAN   # was: from sklearn.cluster import DBSCAN

Validation, attribute naming and numpy outputs only; the clustering is
:func:`jaxmix.dbscan.fit_dbscan` (blockwise, never an ``n x n`` matrix). Labels
and core samples are those of scikit-learn, border samples included (a border
sample joins the lowest-numbered cluster among its core neighbours, which is
the cluster scikit-learn's search reaches it from first).

Additions and differences, by design:

* ``predict(X, max_distance=None)``: the cluster of the nearest core sample
  if it lies within ``max_distance`` (default ``eps``), else ``-1``
  (:func:`jaxmix.dbscan.predict`). For a training border sample this is the
  cluster of its *nearest* core neighbour, which can differ from ``labels_``
  when it is within eps of two clusters.
* ``block_size``: samples per block of the blockwise computation (memory
  about ``block_size^2`` distances per step).
* Every metric of scikit-learn's: dense data under the Euclidean distance
  (``"euclidean"``, or ``"minkowski"`` with ``p`` 2 or None) are clustered on
  the device; sparse data, other metrics, callables and
  ``metric="precomputed"`` (dense or sparse distances) cluster the
  eps-neighbourhood graph on the host (:mod:`jaxmix.dbscan.graph`, memory one
  entry per neighbour pair, as scikit-learn's). ``algorithm``, ``leaf_size``
  and ``n_jobs`` are accepted and ignored.
* Distances are computed in the input's dtype (float64 input in float64,
  as scikit-learn does; float32 input in float32, where a pair within float32
  rounding of ``eps`` may decide differently from scikit-learn's float64).
"""

from __future__ import annotations

import warnings
from numbers import Integral

import numpy as np
from scipy import sparse
from sklearn.base import BaseEstimator, ClusterMixin
from sklearn.cluster import DBSCAN as _SkDBSCAN
from sklearn.metrics import pairwise_distances_argmin_min
from sklearn.utils._param_validation import Interval
from sklearn.utils.validation import check_is_fitted

from jaxmix.dbscan import DEFAULT_BLOCK, fit_dbscan, predict as dbscan_predict
from jaxmix.dbscan.clusters import MAX_BLOCK
from jaxmix.dbscan.graph import cluster_graph, nearest_stored, precomputed_graph, radius_graph
from jaxmix.sklearn._common import checked_weights, checked_X, native_dtype


class DBSCAN(ClusterMixin, BaseEstimator):
    """DBSCAN with scikit-learn's interface, plus ``predict`` for new points.

    Parameters and fitted attributes (``labels_``, ``core_sample_indices_``,
    ``components_``) are those of :class:`sklearn.cluster.DBSCAN`.

    >>> import numpy as np
    >>> from jaxmix.sklearn import DBSCAN
    >>> X = np.array([[1., 2.], [2., 2.], [2., 3.], [8., 7.], [8., 8.], [25., 80.]])
    >>> db = DBSCAN(eps=3, min_samples=2).fit(X)
    >>> db.labels_.tolist(), db.core_sample_indices_.tolist()
    ([0, 0, 0, 1, 1, -1], [0, 1, 2, 3, 4])
    >>> db.predict(np.array([[0., 0.], [9., 9.], [20., 20.]])).tolist()
    [0, 1, -1]
    """

    _parameter_constraints = {
        **_SkDBSCAN._parameter_constraints,
        "block_size": [Interval(Integral, 1, MAX_BLOCK, closed="both")],
    }

    def __init__(self, eps=0.5, *, min_samples=5, metric="euclidean", metric_params=None,
                 algorithm="auto", leaf_size=30, p=None, n_jobs=None,
                 block_size=DEFAULT_BLOCK):
        self.eps = eps
        self.min_samples = min_samples
        self.metric = metric
        self.metric_params = metric_params
        self.algorithm = algorithm
        self.leaf_size = leaf_size
        self.p = p
        self.n_jobs = n_jobs
        self.block_size = block_size

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.sparse = True
        return tags

    def _metric(self, warn: bool = False):
        """``(metric, keyword arguments of the distance)`` as scikit-learn's
        ``NearestNeighbors`` reads them: a ``p`` in ``metric_params`` wins over
        the constructor's (with its warning when ``warn``); Minkowski with
        ``p`` 2 (or none) and no other parameter is Euclidean, with ``p`` 1
        Manhattan."""
        kwargs = dict(self.metric_params or {})
        if "p" in kwargs and self.p is not None and warn:
            warnings.warn("Parameter p is found in metric_params. The corresponding "
                          "parameter from __init__ is ignored.", SyntaxWarning, stacklevel=4)
        p = kwargs.pop("p", self.p)
        if self.metric != "minkowski":
            return self.metric, kwargs
        if not kwargs and p in (None, 1, 2):
            return "manhattan" if p == 1 else "euclidean", {}
        return "minkowski", {**kwargs, "p": 2 if p is None else p}

    @staticmethod
    def _on_device(metric, kwargs, X) -> bool:
        """Dense data under the plain Euclidean distance: the tiled device path."""
        return metric == "euclidean" and not kwargs and not sparse.issparse(X)

    @native_dtype
    def fit(self, X, y=None, sample_weight=None):
        """Cluster ``X``; sets ``labels_``, ``core_sample_indices_``, ``components_``.

        Dense data under the Euclidean distance run on the device
        (:func:`jaxmix.dbscan.fit_dbscan`); sparse data, other metrics and
        ``metric="precomputed"`` (dense or sparse distances) cluster the
        eps-neighbourhood graph (:mod:`jaxmix.dbscan.graph`)."""
        self._validate_params()
        metric, kwargs = self._metric(warn=True)
        X = checked_X(self, X, accept_sparse="csr")
        sw = checked_weights(sample_weight, X)
        if self._on_device(metric, kwargs, X):
            result = fit_dbscan(X, self.eps, self.min_samples, sw, block=self.block_size)
        else:
            graph = (precomputed_graph(X, self.eps) if metric == "precomputed" else
                     radius_graph(X, self.eps, metric, kwargs))
            result = cluster_graph(graph, self.min_samples, sw)
        self.labels_ = np.asarray(result.labels).astype(np.intp)
        self.core_sample_indices_ = np.flatnonzero(np.asarray(result.core))
        self.components_ = (X[self.core_sample_indices_].copy() if self.core_sample_indices_.size
                            else np.empty((0, X.shape[1])))
        return self

    @native_dtype
    def fit_predict(self, X, y=None, sample_weight=None):
        """``fit(X)`` and return ``labels_``."""
        return self.fit(X, sample_weight=sample_weight).labels_

    @native_dtype
    def predict(self, X, max_distance=None):
        """Cluster of the nearest core sample within ``max_distance`` (default
        ``eps``) of each row of ``X``, else ``-1`` (an anomaly); distances
        under the fit's metric (with ``metric="precomputed"``, ``X`` holds
        the distances of new samples to the training samples)."""
        check_is_fitted(self, "core_sample_indices_")
        metric, kwargs = self._metric()
        X = checked_X(self, X, reset=False, accept_sparse="csr")
        radius = self.eps if max_distance is None else max_distance
        core_labels = self.labels_[self.core_sample_indices_]
        if self._on_device(metric, kwargs, X):
            cores = self.components_  # dense here, also after a fit on sparse data
            cores = cores.toarray() if sparse.issparse(cores) else cores
            out = dbscan_predict(X, cores, core_labels, radius, block=self.block_size)
            return np.asarray(out).astype(np.intp)
        if core_labels.size == 0:
            return np.full(X.shape[0], -1, np.intp)
        if metric == "precomputed":  # a distance not stored (sparse) is no neighbour
            nearest, gap = nearest_stored(X[:, self.core_sample_indices_])
        else:
            nearest, gap = pairwise_distances_argmin_min(X, self.components_, metric=metric,
                                                         metric_kwargs=kwargs)
        return np.where(gap <= radius, core_labels[nearest], -1).astype(np.intp)
