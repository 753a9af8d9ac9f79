"""Names of the first release kept for one more release; each warns once used.

``jaxmix.<old name>`` resolves through :func:`resolve`, which imports the
new home lazily (so the top-level package imports no wing it does not need).
"""

from __future__ import annotations

import importlib
import warnings

# Functions and types that moved, unrenamed, into a family namespace.
_MOVED = {
    "jaxmix.gmm": ("component_log_prob", "weighted_log_prob", "log_prob", "mean_log_likelihood",
                   "responsibilities", "predict", "sample", "e_step", "em_step", "m_step",
                   "family", "default_prior", "log_prior", "mean_log_posterior",
                   "Unconstrained", "constrain", "unconstrain"),
    "jaxmix.kmeans": ("assign", "sq_distances", "kmeans_plusplus", "lloyd_step", "KMeansStats",
                      "init_centroids", "minibatch_update", "MiniBatchConfig", "MiniBatchState",
                      "minibatch_init", "minibatch_step"),
    "jaxmix.fit.init": ("initialize",),
    "jaxmix.fit.driver": ("iterate",),
    "jaxmix.sklearn": ("load_estimator",),
}
# Renamed ones: old name -> (module, new name, what to write instead).
_RENAMED = {
    "score_samples": ("jaxmix.gmm", "log_prob", "jaxmix.gmm.log_prob"),
    "predict_proba": ("jaxmix.gmm", "responsibilities", "jaxmix.gmm.responsibilities"),
    "kmeans_inertia": ("jaxmix.kmeans", "inertia", "jaxmix.kmeans.inertia"),
    "kmeans_predict": ("jaxmix.kmeans", "predict", "jaxmix.kmeans.predict"),
    "kmeans_score": ("jaxmix.kmeans", "score", "jaxmix.kmeans.score"),
    "kmeans_transform": ("jaxmix.kmeans", "transform", "jaxmix.kmeans.transform"),
    "dbscan_predict": ("jaxmix.dbscan", "predict", "jaxmix.dbscan.predict"),
    "save_estimator": ("jaxmix.io", "save_estimator", "estimator.save(path)"),
    "fit_gmm_stream": ("jaxmix.fit.streams", "fit_gmm_stream",
                       "jaxmix.fit_gmm(key, jaxmix.open_source(x), ...)"),
    "fit_kmeans_stream": ("jaxmix.fit.streams", "fit_kmeans_stream",
                          "jaxmix.fit_kmeans(key, jaxmix.open_source(x), ...)"),
    "minibatch_kmeans_stream": ("jaxmix.fit.streams", "minibatch_kmeans_stream",
                                "jaxmix.fit_minibatch_kmeans(key, batches, ...)"),
}
ALIASES = dict(_RENAMED, **{name: (module, name, f"{module}.{name}")
                            for module, names in _MOVED.items() for name in names})


def resolve(name: str):
    """The object behind a deprecated name, with a ``DeprecationWarning``."""
    module, new, hint = ALIASES[name]
    warnings.warn(f"jaxmix.{name} is deprecated and will be removed in the next release; "
                  f"use {hint}", DeprecationWarning, stacklevel=3)
    return getattr(importlib.import_module(module), new)
