"""A ``GaussianMixture`` from a parameters file (``jaxmix fit``'s model, or
:func:`jaxmix.io.save_params`), so every loader reads every model file.

The estimator predicts, scores and samples as one fitted on the model's
inputs (after the file's preprocessing, which ``jaxmix predict`` applies).
``converged_``, ``n_iter_`` and ``lower_bound_`` come from the file's fit
record when it has one; a file without one leaves them unset (nothing
claims a convergence the file does not record).
"""

from __future__ import annotations

import os

import numpy as np

from jaxmix.io import Model, check_loaded_gmm
from jaxmix.sklearn.persist import set_feature_names

# fit-record keys -> (attribute, type)
_RECORDED = {"converged": ("converged_", bool), "n_iter": ("n_iter_", int),
             "lower_bound": ("lower_bound_", float)}


def gaussian_mixture_from_model(cls, path, model: Model):
    """A fitted ``cls`` (``GaussianMixture``) holding ``model.params``."""
    p, where = model.params, os.fspath(path)
    if np.ndim(p.weights) != 1:
        raise ValueError(f"{where} holds {np.shape(p.weights)[:-1]} restarts' parameters; an "
                         "estimator holds one model: load them with jaxmix.load_params and "
                         "save the one you want")
    k, d = p.means.shape
    est = cls(n_components=k, covariance_type=p.covariance_type)
    check_loaded_gmm(path, p, k=k, d=d)
    est._set_params_attrs(p)
    est.n_features_in_ = d
    for key, (name, kind) in _RECORDED.items():
        value = model.about.fit.get(key)
        if value is not None:
            if isinstance(value, str) or (kind is not bool and isinstance(value, bool)):
                raise ValueError(f"{where}: about['fit'][{key!r}] must be a {kind.__name__}, "
                                 f"got {value!r}")
            setattr(est, name, kind(value))
    set_feature_names(est, model.about)
    return est
