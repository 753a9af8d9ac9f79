"""DBSCAN: density-based clustering that never forms an ``n x n`` matrix.

:func:`fit_dbscan` clusters samples (scikit-learn's labels and core samples,
border samples included) and returns a :class:`DBSCANResult`; :func:`predict`
labels new points by their nearest core sample. Both run on the k-d tree tiles
of :mod:`jaxmix.dbscan.tiling`. The estimator is :class:`jaxmix.sklearn.DBSCAN`.
"""

from jaxmix.dbscan.clusters import DBSCANResult, fit_dbscan
from jaxmix.dbscan.prediction import predict
from jaxmix.dbscan.tiling import DEFAULT_BLOCK

__all__ = ["DEFAULT_BLOCK", "DBSCANResult", "fit_dbscan", "predict"]
