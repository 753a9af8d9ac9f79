"""jaxmix: mixture models as pure JAX functions.

The functional API, grouped by concept. Parameters are pytrees; every fit
runs many restarts as one compiled computation, returns a
:class:`FitResult`, and composes with ``jax.jit`` and ``jax.vmap``.

* Parameters: :class:`GMMParams`, :class:`KMeansParams`, :class:`GMMPrior`.
* Fits: :func:`fit_gmm` (EM, MAP-EM; arrays, sharded arrays or chunk
  sources), :func:`fit_gradient` (any optax optimizer, same objective;
  :func:`named_optimizer` names one so that equal ones share a program),
  :func:`fit_gmm_online` (stepwise EM, one pass), :func:`fit_kmeans`,
  :func:`fit_minibatch_kmeans`, :func:`fit_dbscan`; :func:`timed` measures
  a fit's run time per iteration outside its compiled loop.
* Model selection: :func:`select_k`, :func:`inertia_curve`,
  :func:`n_parameters`, :func:`bic`, :func:`aic`; metrics
  :func:`silhouette_score`; density anomalies :func:`density_threshold`,
  :func:`flag_anomalies`.
* Data: :func:`chunk`, :func:`open_source`, :func:`data_mesh`, :func:`shard`.
* Files: :func:`save_params`, :func:`load_params`.
* Per family, in their namespaces: :mod:`jaxmix.gmm` (``log_prob``,
  ``predict``, ``sample``, ``em_step``, ...), :mod:`jaxmix.kmeans`
  (``assign``, ``predict``, ``lloyd_step``, ...), :mod:`jaxmix.dbscan`
  (``predict``); estimators in :mod:`jaxmix.sklearn`.
"""

from jaxmix import dbscan, gmm, kmeans
from jaxmix.anomaly import density_threshold, flag_anomalies
from jaxmix.compile_cache import enable_compilation_cache
from jaxmix.criteria import aic, bic, n_parameters, score_samples_chunked
from jaxmix.data import Chunked, chunk, data_mesh, open_source, shard
from jaxmix.dbscan import DBSCANResult, fit_dbscan
from jaxmix.fit.driver import FitResult
from jaxmix.fit.gmm import fit_gmm
from jaxmix.fit.gradient import fit_gradient
from jaxmix.fit.kmeans import fit_kmeans
from jaxmix.fit.minibatch import fit_minibatch_kmeans
from jaxmix.fit.online import fit_gmm_online
from jaxmix.fit.select import inertia_curve, select_k
from jaxmix.fit.timing import Timing, timed
from jaxmix.fit.selection import InertiaCurve, Selection
from jaxmix.gmm.frozen import Frozen
from jaxmix.gmm.priors import GMMPrior
from jaxmix.io import load_params, save_params
from jaxmix.metrics import silhouette_samples, silhouette_score
from jaxmix.optimizers import named_optimizer
from jaxmix.params import COVARIANCE_TYPES, GMMParams, KMeansParams

from jaxmix._version import __version__  # noqa: E402

__all__ = [
    # parameters
    "COVARIANCE_TYPES", "Frozen", "GMMParams", "GMMPrior", "KMeansParams",
    # fits and their result
    "DBSCANResult", "FitResult", "fit_dbscan", "fit_gmm", "fit_gmm_online", "fit_gradient",
    "fit_kmeans", "fit_minibatch_kmeans", "named_optimizer", "Timing", "timed",
    # model selection, criteria, metrics, anomalies
    "InertiaCurve", "Selection", "aic", "bic", "density_threshold", "flag_anomalies",
    "inertia_curve", "n_parameters", "score_samples_chunked", "select_k",
    "silhouette_samples", "silhouette_score",
    # data placements
    "Chunked", "chunk", "data_mesh", "open_source", "shard",
    # files
    "load_params", "save_params",
    # compiled programs kept across processes
    "enable_compilation_cache",
    # family namespaces
    "dbscan", "gmm", "kmeans",
]


def __getattr__(name):
    import importlib

    _deprecated = importlib.import_module("jaxmix._deprecated")
    if name in _deprecated.ALIASES:
        return _deprecated.resolve(name)
    raise AttributeError(f"module 'jaxmix' has no attribute {name!r}")
