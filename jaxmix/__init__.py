"""jaxmix: mixture models as pure JAX functions.

The functional API: parameter pytrees (:class:`GMMParams`,
:class:`KMeansParams`), densities (:func:`log_prob`, :func:`responsibilities`,
...), steps (:func:`em_step`, :func:`lloyd_step`) and fits (:func:`fit_gmm`)
that run many restarts as one compiled computation.
"""

from jaxmix.gmm.covariance import family
from jaxmix.gmm.em import e_step, em_step, m_step
from jaxmix.fit.driver import FitResult, iterate
from jaxmix.gmm.density import (component_log_prob, log_prob, mean_log_likelihood, predict,
                        predict_proba, responsibilities, sample, score_samples,
                        weighted_log_prob)
from jaxmix.fit.gmm import fit_gmm
from jaxmix.gmm.init import initialize
from jaxmix.kmeans.core import assign, kmeans_plusplus, lloyd_step, sq_distances
from jaxmix.params import COVARIANCE_TYPES, GMMParams, KMeansParams
from jaxmix.data.chunked import Chunked, chunk
from jaxmix.anomaly import density_threshold, flag_anomalies
from jaxmix.metrics import silhouette_samples, silhouette_score
from jaxmix.criteria import aic, bic, n_parameters, score_samples_chunked
from jaxmix.fit.select import InertiaCurve, Selection, inertia_curve, select_k
from jaxmix.kmeans.core import (KMeansStats, inertia as kmeans_inertia, init_centroids,
                           minibatch_update, predict as kmeans_predict,
                           score as kmeans_score, transform as kmeans_transform)
from jaxmix.fit.kmeans import fit_kmeans
from jaxmix.kmeans.minibatch import (MiniBatchConfig, MiniBatchState, fit_minibatch_kmeans,
                              minibatch_init, minibatch_kmeans_stream, minibatch_step)
from jaxmix.gmm.priors import GMMPrior, default_prior, log_prior
from jaxmix.gmm.gradient import Unconstrained, constrain, fit_gradient, mean_log_posterior, unconstrain
from jaxmix.io import load_estimator, load_params, save_estimator, save_params
from jaxmix.dbscan.clusters import DBSCANResult, fit_dbscan, predict as dbscan_predict
from jaxmix.data.sharding import data_mesh, shard
from jaxmix.data.stream import fit_gmm_stream, fit_kmeans_stream
from jaxmix.fit.online import fit_gmm_online

__version__ = "0.1.0"

__all__ = [
    "COVARIANCE_TYPES", "Chunked", "FitResult", "GMMParams", "KMeansParams", "assign", "chunk",
    "component_log_prob", "e_step", "em_step", "family", "fit_gmm", "initialize", "iterate",
    "kmeans_plusplus", "lloyd_step", "log_prob", "m_step", "mean_log_likelihood", "predict",
    "predict_proba", "responsibilities", "sample", "score_samples", "sq_distances",
    "weighted_log_prob",
    # model selection, metrics, anomaly detection (issue 5)
    "InertiaCurve", "Selection", "aic", "bic", "density_threshold", "flag_anomalies",
    "inertia_curve", "n_parameters", "score_samples_chunked", "select_k",
    "silhouette_samples", "silhouette_score",
    # K-Means and mini-batch K-Means (issue 3)
    "KMeansStats", "MiniBatchConfig", "MiniBatchState", "fit_kmeans", "fit_minibatch_kmeans",
    "init_centroids", "kmeans_inertia", "kmeans_predict", "kmeans_score", "kmeans_transform",
    "minibatch_init", "minibatch_kmeans_stream", "minibatch_step", "minibatch_update",
    # priors, MAP-EM and gradient fitting (issue 4)
    "GMMPrior", "Unconstrained", "constrain", "default_prior", "fit_gradient", "log_prior",
    "mean_log_posterior", "unconstrain",
    # save / load (issue 6); estimators live in jaxmix.sklearn
    "load_estimator", "load_params", "save_estimator", "save_params",
    # DBSCAN (issue 9); the estimator lives in jaxmix.sklearn
    "DBSCANResult", "dbscan_predict", "fit_dbscan",
    # sharded and streaming fits (issue 8)
    "data_mesh", "fit_gmm_online", "fit_gmm_stream", "fit_kmeans_stream", "shard",
]
