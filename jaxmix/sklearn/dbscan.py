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
* Only the Euclidean metric (``metric="euclidean"``, or ``"minkowski"`` with
  ``p`` 2 or None); ``algorithm``, ``leaf_size`` and ``n_jobs`` are accepted
  and ignored. Sparse input is not supported.
* Distances are computed in float32 unless JAX's x64 mode is on (scikit-learn
  uses float64): a pair within float32 rounding of ``eps`` may then decide
  differently.
"""

from __future__ import annotations

from numbers import Integral

import numpy as np
from sklearn.base import BaseEstimator, ClusterMixin
from sklearn.cluster import DBSCAN as _SkDBSCAN
from sklearn.utils._param_validation import Interval
from sklearn.utils.validation import _check_sample_weight, check_is_fitted, validate_data

from jaxmix.dbscan import DEFAULT_BLOCK, fit_dbscan, predict as dbscan_predict
from jaxmix.dbscan.clusters import MAX_BLOCK


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

    def _check_metric(self):
        euclidean = self.metric == "euclidean" or (
            self.metric == "minkowski" and self.p in (None, 2))
        if not euclidean or self.metric_params:
            raise ValueError(
                f"jaxmix DBSCAN supports only the Euclidean metric, got metric={self.metric!r}"
                f", p={self.p!r}, metric_params={self.metric_params!r}; use "
                "sklearn.cluster.DBSCAN for other metrics")

    def fit(self, X, y=None, sample_weight=None):
        """Cluster ``X``; sets ``labels_``, ``core_sample_indices_``, ``components_``."""
        self._validate_params()
        self._check_metric()
        X = validate_data(self, X, dtype=[np.float64, np.float32])
        sw = None if sample_weight is None else _check_sample_weight(sample_weight, X)
        result = fit_dbscan(X, self.eps, self.min_samples, sw, block=self.block_size)
        self.labels_ = np.asarray(result.labels).astype(np.intp)
        self.core_sample_indices_ = np.flatnonzero(np.asarray(result.core))
        self.components_ = X[self.core_sample_indices_].copy()
        return self

    def fit_predict(self, X, y=None, sample_weight=None):
        """``fit(X)`` and return ``labels_``."""
        return self.fit(X, sample_weight=sample_weight).labels_

    def predict(self, X, max_distance=None):
        """Cluster of the nearest core sample within ``max_distance`` (default
        ``eps``) of each row of ``X``, else ``-1`` (an anomaly)."""
        check_is_fitted(self, "core_sample_indices_")
        X = validate_data(self, X, reset=False, dtype=[np.float64, np.float32])
        radius = self.eps if max_distance is None else max_distance
        core_labels = self.labels_[self.core_sample_indices_]
        out = dbscan_predict(X, self.components_, core_labels, radius, block=self.block_size)
        return np.asarray(out).astype(np.intp)
