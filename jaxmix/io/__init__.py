"""Save and load fitted models and raw parameters (never pickle).

File format (``FORMAT_VERSION = 2``)
------------------------------------
An ``.npz`` archive (``numpy.savez``). It holds

* ``__metadata__``: a 0-d unicode array with one JSON object::

      {"format": "jaxmix", "format_version": 2, "jaxmix_version": "0.1.0",
       "kind": "GMMParams" | "KMeansParams" | "GaussianMixture" | "KMeans"
               | "MiniBatchKMeans",
       "covariance_type": "full" | "tied" | "diag" | "spherical" | null,
       "arrays": {name: {"shape": [...], "dtype": "float32"}, ...},
       "params": {...},      # estimators: JSON-able constructor parameters
       "attributes": {...},  # estimators: scalar fitted attributes
       "about": {...}}       # optional (version 2): feature names, preprocessing,
                             # the fit's settings and scores (jaxmix.io.about)

* one entry per array named in ``"arrays"``: for ``GMMParams`` ``weights``,
  ``means``, ``precisions_cholesky`` (sklearn's layout per covariance type,
  optionally with leading restart axes); for ``KMeansParams`` ``centroids``;
  for estimators their fitted array attributes (``means_``, ``labels_``, ...)
  and array-valued constructor parameters as ``param:<name>``.

Reading: a file is untrusted input
----------------------------------
Any problem is a ``ValueError`` naming the file and the field, and nothing is
allocated from a size the file declares. Structure: a zip of at most
``MAX_MEMBERS`` distinct ``.npy`` members (stored or deflated) and the
metadata (a 0-d string of at most ``MAX_METADATA_BYTES``, JSON as above).
Sizes: each member's ``.npy`` header is read first; its dtype must be numeric
(no object, string or structured arrays), its shape and dtype the metadata's,
its size exactly the bytes the member holds. Values: GMM parameters go through
the one params checker (:func:`jaxmix.validation.check_gmm_params`) under the
file's covariance type; centroids must be finite. Estimators: constructor
parameters are JSON scalars or numeric arrays, ``covariance_type`` is the
metadata's, attributes are numbers or bools; the names a class accepts are
:func:`jaxmix.sklearn.persist.load_as`'s part.

One format for every loader: :func:`load_params` reads the parameters of an
estimator's file too, :func:`load_model` reads any model file with what it
says about the model, and the estimators' ``load`` reads a parameters file
(:func:`jaxmix.sklearn.persist.load_as`). Version-1 files still load.

Estimators are written by :func:`save_estimator`, which imports no estimator
class: each class names the attributes it saves (``_saved_arrays``, ...).
:func:`read_estimator` hands back what a file holds; the estimators are made
from it by :func:`jaxmix.sklearn.load_estimator`.

>>> import numpy as np, tempfile, os
>>> from jaxmix import GMMParams
>>> from jaxmix.io import save_params, load_params
>>> p = GMMParams(np.ones(2) / 2, np.zeros((2, 3)), np.ones((2, 3)), "diag")
>>> path = os.path.join(tempfile.mkdtemp(), "gmm.npz")
>>> save_params(path, p)
>>> load_params(path, covariance_type="diag").means.shape
(2, 3)
"""


from __future__ import annotations

import numbers
import os
from typing import NamedTuple

import numpy as np

from jaxmix.io.about import About, read_about
from jaxmix.io.model_file import (FORMAT, FORMAT_VERSION, MAX_MEMBERS, MAX_METADATA_BYTES,
                                  METADATA_KEY, check_names, peek_metadata, read, write)
from jaxmix.io.untrusted import problem, shown
from jaxmix.params import GMMParams, KMeansParams
from jaxmix.validation import check_gmm_params

__all__ = ["FORMAT", "FORMAT_VERSION", "MAX_MEMBERS", "MAX_METADATA_BYTES", "METADATA_KEY",
           "About", "Model", "StoredEstimator", "check_loaded_centroids", "check_loaded_gmm",
           "check_names", "load_model", "load_params", "peek_metadata", "read_estimator",
           "save_estimator", "save_params"]

PARAM_PREFIX = "param:"  # array-valued constructor parameters
_NON_FINITE = ("-inf", "inf", "nan")  # scalar attributes stored as their repr


# --------------------------------------------------------------------------
# Raw parameters
# --------------------------------------------------------------------------

_PARAM_ARRAYS = {"GMMParams": ("weights", "means", "precisions_cholesky"),
                 "KMeansParams": ("centroids",)}
# Estimator files read as parameters: kind -> (parameters kind, its arrays' names there).
_ESTIMATOR_PARAMS = {
    "GaussianMixture": ("GMMParams", ("weights_", "means_", "precisions_cholesky_")),
    "KMeans": ("KMeansParams", ("cluster_centers_",)),
    "MiniBatchKMeans": ("KMeansParams", ("cluster_centers_",))}


class Model(NamedTuple):
    """What :func:`load_model` read: ``params`` (:class:`GMMParams` or
    :class:`KMeansParams`), ``about`` (:class:`~jaxmix.io.about.About`) and
    the file's ``kind``."""

    params: object
    about: About
    kind: str


def save_params(path, params, about: About | None = None) -> None:
    """Write :class:`GMMParams` or :class:`KMeansParams` (single or
    restart-batched), with what ``about`` says about the model."""
    if isinstance(params, GMMParams):
        write(path, "GMMParams", dict(weights=params.weights, means=params.means,
                                       precisions_cholesky=params.precisions_cholesky),
               params.covariance_type, about)
    elif isinstance(params, KMeansParams):
        write(path, "KMeansParams", dict(centroids=params.centroids), about=about)
    else:
        raise ValueError(f"params must be GMMParams or KMeansParams, got "
                         f"{type(params).__name__}")


def load_params(path, kind: str | None = None, covariance_type: str | None = None):
    """Read parameters (numpy leaves) from a file of :func:`save_params` or of
    an estimator's ``save`` (a ``GaussianMixture``'s are ``GMMParams``, a
    ``KMeans``'s or ``MiniBatchKMeans``'s ``KMeansParams``); values checked
    under the file's covariance type.

    Args:
      kind: ``"GMMParams"`` or ``"KMeansParams"`` to insist on one.
      covariance_type: insist on a GMM of this covariance type.
    """
    return load_model(path, kind, covariance_type).params


def load_model(path, kind: str | None = None, covariance_type: str | None = None) -> Model:
    """:func:`load_params`, with what the file says about the model
    (:class:`~jaxmix.io.about.About`: feature names, preprocessing, the fit's
    settings and scores; empty for a version-1 file)."""
    if kind not in (None, *_PARAM_ARRAYS):
        raise ValueError(f"kind must be one of {tuple(_PARAM_ARRAYS)} or None, got {kind!r}")
    if covariance_type is not None and kind is None:
        kind = "GMMParams"
    kinds = tuple(k for k in (*_PARAM_ARRAYS, *_ESTIMATOR_PARAMS)
                  if kind is None or kind in (k, _ESTIMATOR_PARAMS.get(k, ("",))[0]))
    meta, arrays = read(path, kinds, covariance_type)
    stored = meta["kind"]
    params = _params_of(path, stored, meta["covariance_type"], arrays)
    d = params.means.shape[-1] if isinstance(params, GMMParams) else params.centroids.shape[-1]
    return Model(params, read_about(os.fspath(path), meta, d), stored)


def _params_of(path, kind: str, ct, arrays):
    """The parameters in a file of ``kind`` (a parameters or an estimator kind)."""
    if kind in _ESTIMATOR_PARAMS:
        kind, names = _ESTIMATOR_PARAMS[kind]
        missing = [n for n in names if n not in arrays]
        if missing:
            raise ValueError(f"{os.fspath(path)} is corrupt: missing arrays {missing}")
        arrays = dict(zip(_PARAM_ARRAYS[kind], (arrays[n] for n in names)))
    else:
        check_names(path, "arrays", arrays, _PARAM_ARRAYS[kind], required=_PARAM_ARRAYS[kind])
    if (ct is None) != (kind == "KMeansParams"):
        raise problem(os.fspath(path), "metadata 'covariance_type'", f"{ct!r} does not fit a {kind}")
    if kind == "KMeansParams":
        check_loaded_centroids(path, arrays["centroids"], batched=True)
        return KMeansParams(arrays["centroids"])
    params = GMMParams(arrays["weights"], arrays["means"], arrays["precisions_cholesky"], ct)
    check_loaded_gmm(path, params, batched=True)
    return params


def check_loaded_gmm(path, p: GMMParams, *, k=None, d=None, batched: bool = False):
    """``ValueError`` naming the file unless ``p`` is a valid mixture under its
    own covariance type (the one params checker,
    :func:`jaxmix.validation.check_gmm_params`: that type's shapes, fitting one
    another and ``k`` / ``d`` where given; finite values, positive weights,
    valid factors)."""
    check_gmm_params(p, f"{os.fspath(path)}: the {p.covariance_type} model's params", k=k, d=d,
                     batched=batched)


def check_loaded_centroids(path, centroids, field: str = "centroids", *, shape=None,
                           batched: bool = False):
    """``ValueError`` naming the file and ``field`` unless ``centroids`` are finite
    and of shape ``(k, d)`` (``shape`` where given; after restart axes when
    ``batched``)."""
    c = np.asarray(centroids)
    if not (c.ndim == 2 or (batched and c.ndim > 2)) or shape not in (None, c.shape[-2:]):
        raise problem(os.fspath(path), field, f"must have shape {shape or '(k, d)'}"
                   f"{' after any restart axes' if batched else ''}, got {c.shape}")
    if not np.all(np.isfinite(c)):
        raise problem(os.fspath(path), field, "contains NaN or infinity")


# --------------------------------------------------------------------------
# Estimators: each class names what it saves; this module imports none of them
# --------------------------------------------------------------------------

class StoredEstimator(NamedTuple):
    """What :func:`read_estimator` found in a file.

    Attributes:
      kind: the estimator's class name.
      params: its constructor parameters (array-valued ones included).
      arrays: its fitted array attributes, by name.
      attributes: its fitted scalar attributes, by name.
    """

    kind: str
    params: dict
    arrays: dict
    attributes: dict
    about: About = About()


def _jsonable(value):
    if value is None or isinstance(value, (bool, str)):
        return True, value
    if isinstance(value, numbers.Integral):
        return True, int(value)
    if isinstance(value, numbers.Real):
        return True, float(value)
    return False, None


def _constructor_params(est):
    """``(params, arrays, skipped)``: JSON-able constructor parameters, the
    array-valued ones (as ``param:<name>``) and the names of the others."""
    arrays, params, skipped = {}, {}, []
    for name, value in est.get_params(deep=False).items():
        ok, v = _jsonable(value)
        if ok:
            params[name] = v
        elif (a := _numeric_array(value)) is not None:
            arrays[PARAM_PREFIX + name] = a
        else:  # RandomState instances, callables, optimizers, priors: not without pickle
            params[name] = None
            skipped.append(name)
    return params, arrays, skipped


def _numeric_array(value):
    """``value`` as a numeric array if it is an array-like of numbers (not a
    named tuple such as an optax optimizer or a prior), else ``None``."""
    plain = isinstance(value, (np.ndarray, list)) or hasattr(value, "__array__") or (
        isinstance(value, tuple) and not hasattr(value, "_fields"))
    if not plain:
        return None
    try:
        a = np.asarray(value)
    except (TypeError, ValueError):
        return None
    return a if a.dtype.kind in "biuf" else None


def _scalar_attributes(est, names):
    attributes = {}
    for name in names:
        if hasattr(est, name):
            ok, v = _jsonable(getattr(est, name))
            if ok and not (isinstance(v, float) and not np.isfinite(v)):
                attributes[name] = v
            elif ok:
                attributes[name] = repr(v)  # "-inf" / "nan"
    return attributes


def save_estimator(path, est) -> None:
    """Write a fitted estimator: its constructor parameters (``get_params``) and
    the fitted attributes its class names in ``_saved_arrays`` (required),
    ``_saved_optional_arrays`` and ``_saved_scalars``. The kind stored is the
    class name."""
    kind, cls = type(est).__name__, type(est)
    if not hasattr(cls, "_saved_arrays") or not hasattr(est, "get_params"):
        raise ValueError(f"cannot save a {kind}: it is not a jaxmix estimator (its class "
                         "names no _saved_arrays)")
    if not all(hasattr(est, name) for name in cls._saved_arrays):
        raise ValueError(f"this {kind} is not fitted yet; call fit before save")
    params, arrays, skipped = _constructor_params(est)
    for name in cls._saved_arrays + getattr(cls, "_saved_optional_arrays", ()):
        if hasattr(est, name):
            arrays[name] = np.asarray(getattr(est, name))
    names = getattr(est, "feature_names_in_", None)
    about = About(feature_names=[str(n) for n in names]) if names is not None else None
    write(path, kind, arrays, getattr(est, "covariance_type", None), about,
           params=params, attributes=_scalar_attributes(est, getattr(cls, "_saved_scalars", ())),
           params_not_saved=skipped)


def _json_object(where, meta, key: str, accept, what: str) -> dict:
    """``meta[key]`` (``{}`` when absent): a JSON object whose values all ``accept``."""
    value = meta.get(key, {})
    if not isinstance(value, dict):
        raise problem(where, f"metadata {key!r}", f"must be a JSON object, got {shown(value)}")
    for name, v in value.items():
        if not accept(v):
            raise problem(where, f"{key}[{shown(name)}]", f"must be {what}, got {shown(v)}")
    return dict(value)


def read_estimator(path, kinds=None, covariance_type: str | None = None) -> StoredEstimator:
    """Read a file written by :func:`save_estimator`, checked like every file
    (structure, declared sizes, format, version, kind, covariance type, array
    shapes and dtypes): constructor parameters are JSON scalars or numeric
    arrays, each name once, ``covariance_type`` the metadata's; scalar
    attributes are numbers or bools.

    Args:
      kinds: the class name, or names, accepted (``None``: any).
      covariance_type: insist on a model of this covariance type.
    Returns:
      :class:`StoredEstimator`; making the estimator from it, from the names
      its class declares only, is the caller's part
      (:func:`jaxmix.sklearn.load_estimator`).
    """
    meta, arrays = read(path, kinds, covariance_type)
    where = os.fspath(path)
    params = _json_object(where, meta, "params", lambda v: v is None or isinstance(
        v, (bool, int, float, str)), "null, a bool, a number or a string")
    if params.get("covariance_type") != meta["covariance_type"]:
        raise problem(where, "params['covariance_type']", f"is {shown(params.get('covariance_type'))}"
                   f" but the metadata's covariance_type is {meta['covariance_type']!r}; a "
                   "model has one covariance type")
    array_params = {name[len(PARAM_PREFIX):]: arrays.pop(name) for name in list(arrays)
                    if name.startswith(PARAM_PREFIX)}
    if set(array_params) & set(params):
        raise problem(where, f"params {sorted(set(array_params) & set(params))}",
                   "are stored both in the metadata and as arrays")
    attributes = _json_object(where, meta, "attributes", lambda v: isinstance(
        v, (bool, int, float)) or v in _NON_FINITE, f"a number, a bool or one of {_NON_FINITE}")
    attributes = {name: float(v) if v in _NON_FINITE else v for name, v in attributes.items()}
    d = attributes.get("n_features_in_")
    about = read_about(where, meta, d if isinstance(d, int) else None)
    return StoredEstimator(meta["kind"], {**params, **array_params}, arrays, attributes, about)
