"""Save and load fitted models and raw parameters (never pickle).

File format (``FORMAT_VERSION = 1``)
------------------------------------
An ``.npz`` archive (``numpy.savez``) read with ``allow_pickle=False``, so
loading never executes code. It holds

* ``__metadata__``: a 0-d unicode array with one JSON object::

      {"format": "jaxmix", "format_version": 1, "jaxmix_version": "0.1.0",
       "kind": "GMMParams" | "KMeansParams" | "GaussianMixture" | "KMeans"
               | "MiniBatchKMeans",
       "covariance_type": "full" | "tied" | "diag" | "spherical" | null,
       "arrays": {name: {"shape": [...], "dtype": "float32"}, ...},
       "params": {...},      # estimators: JSON-able constructor parameters
       "attributes": {...}}  # estimators: scalar fitted attributes

* one entry per array named in ``"arrays"``: for ``GMMParams`` ``weights``,
  ``means``, ``precisions_cholesky`` (sklearn's layout per covariance type,
  optionally with leading restart axes); for ``KMeansParams`` ``centroids``;
  for estimators their fitted array attributes (``means_``, ``labels_``, ...)
  and array-valued constructor parameters as ``param:<name>``.

Loading checks the format marker and version, the kind and covariance type the
caller expects, and every array's shape and dtype against the metadata; any
mismatch, truncation or corruption raises ``ValueError`` naming the file and
the problem.

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

import json
import numbers
import os
import zipfile
import zlib
from typing import NamedTuple

import numpy as np

from jaxmix.atomic import atomic_write
from jaxmix._version import __version__
from jaxmix.validation import check_gmm_params

from jaxmix.params import COVARIANCE_TYPES, GMMParams, KMeansParams

FORMAT = "jaxmix"
FORMAT_VERSION = 1
METADATA_KEY = "__metadata__"

PARAM_PREFIX = "param:"  # array-valued constructor parameters
_NON_FINITE = ("-inf", "inf", "nan")  # scalar attributes stored as their repr


def _version() -> str:
    return __version__


# --------------------------------------------------------------------------
# Low level: write / read an archive
# --------------------------------------------------------------------------

def _write(path, kind: str, arrays: dict, covariance_type=None, **extra):
    arrays = {name: np.asarray(a) for name, a in arrays.items()}
    for name, a in arrays.items():
        if a.dtype.kind not in "biuf":
            raise ValueError(f"cannot save {name!r}: dtype {a.dtype} is not numeric")
    meta = dict(format=FORMAT, format_version=FORMAT_VERSION, jaxmix_version=_version(),
                kind=kind, covariance_type=covariance_type,
                arrays={name: dict(shape=list(a.shape), dtype=a.dtype.str)
                        for name, a in arrays.items()}, **extra)
    payload = {METADATA_KEY: np.array(json.dumps(meta))}
    payload.update(arrays)
    with atomic_write(path) as f:  # a failed save leaves the previous file intact
        np.savez(f, **payload)


def _read(path, expect_kind=None, covariance_type=None):
    """``(metadata, arrays)`` of a jaxmix file, checked; ``ValueError`` otherwise."""
    where = os.fspath(path)
    try:
        with np.load(where, allow_pickle=False) as z:
            names = list(z.files)
            if METADATA_KEY not in names:
                raise ValueError("it has no jaxmix metadata entry")
            meta = json.loads(str(z[METADATA_KEY][()]))
            arrays = {name: z[name] for name in names if name != METADATA_KEY}
    except FileNotFoundError:
        raise
    except (OSError, EOFError, zipfile.BadZipFile, ValueError, KeyError,
            json.JSONDecodeError, UnicodeDecodeError, zlib.error) as err:
        raise ValueError(f"{where} is not a readable jaxmix model file (truncated, corrupt or "
                         f"another format): {err}") from None
    if not isinstance(meta, dict) or meta.get("format") != FORMAT:
        raise ValueError(f"{where} is not a jaxmix model file (format marker missing)")
    version = meta.get("format_version")
    if not isinstance(version, int) or version > FORMAT_VERSION or version < 1:
        raise ValueError(f"{where} has format_version {version!r}; this jaxmix "
                         f"({_version()}) reads versions 1..{FORMAT_VERSION}; upgrade jaxmix")
    kind = meta.get("kind")
    if expect_kind is not None:
        expected = (expect_kind,) if isinstance(expect_kind, str) else tuple(expect_kind)
        if kind not in expected:
            raise ValueError(f"{where} holds a {kind!r}, expected "
                             f"{' or '.join(map(repr, expected))}")
    if covariance_type is not None and meta.get("covariance_type") != covariance_type:
        raise ValueError(f"{where} holds a model with covariance_type="
                         f"{meta.get('covariance_type')!r}, expected {covariance_type!r}")
    declared = meta.get("arrays")
    if not isinstance(declared, dict) or set(declared) != set(arrays):
        raise ValueError(f"{where} is corrupt: its arrays {sorted(arrays)} do not match its "
                         f"metadata {sorted(declared) if isinstance(declared, dict) else None}")
    for name, spec in declared.items():
        a = arrays[name]
        if list(a.shape) != list(spec.get("shape", [])) or a.dtype.str != spec.get("dtype"):
            raise ValueError(f"{where} is corrupt: array {name!r} has shape {a.shape} dtype "
                             f"{a.dtype}, metadata says {spec}")
    return meta, arrays


# --------------------------------------------------------------------------
# Raw parameters
# --------------------------------------------------------------------------

def save_params(path, params) -> None:
    """Write :class:`GMMParams` or :class:`KMeansParams` (single or restart-batched)."""
    if isinstance(params, GMMParams):
        _write(path, "GMMParams", dict(weights=params.weights, means=params.means,
                                       precisions_cholesky=params.precisions_cholesky),
               params.covariance_type)
    elif isinstance(params, KMeansParams):
        _write(path, "KMeansParams", dict(centroids=params.centroids))
    else:
        raise ValueError(f"params must be GMMParams or KMeansParams, got "
                         f"{type(params).__name__}")


def load_params(path, kind: str | None = None, covariance_type: str | None = None):
    """Read parameters written by :func:`save_params` (numpy leaves).

    Args:
      kind: ``"GMMParams"`` or ``"KMeansParams"`` to insist on one.
      covariance_type: insist on a GMM of this covariance type.
    """
    if covariance_type is not None and kind is None:
        kind = "GMMParams"
    meta, arrays = _read(path, kind or ("GMMParams", "KMeansParams"), covariance_type)
    if meta["kind"] == "KMeansParams":
        require_arrays(path, arrays, ("centroids",))
        return KMeansParams(arrays["centroids"])
    ct = meta.get("covariance_type")
    if ct not in COVARIANCE_TYPES:
        raise ValueError(f"{os.fspath(path)} has an unknown covariance_type {ct!r}")
    require_arrays(path, arrays, ("weights", "means", "precisions_cholesky"))
    params = GMMParams(arrays["weights"], arrays["means"], arrays["precisions_cholesky"], ct)
    check_loaded_gmm(path, params)
    return params


def require_arrays(path, arrays, names):
    """``ValueError`` naming the file unless every one of ``names`` is in ``arrays``."""
    missing = [n for n in names if n not in arrays]
    if missing:
        raise ValueError(f"{os.fspath(path)} is corrupt: missing arrays {missing}")


def check_loaded_gmm(path, p: GMMParams):
    """``ValueError`` naming the file unless ``p`` is a valid mixture (the one
    params checker, :func:`jaxmix.validation.check_gmm_params`: shapes that fit
    one another, finite values, positive weights and factor diagonals)."""
    check_gmm_params(p, f"{os.fspath(path)}: params", batched=True)


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
        elif isinstance(value, (np.ndarray, list, tuple)) or hasattr(value, "__array__"):
            arrays[PARAM_PREFIX + name] = np.asarray(value)
        else:  # RandomState instances, callables: not representable without pickle
            params[name] = None
            skipped.append(name)
    return params, arrays, skipped


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
    _write(path, kind, arrays, getattr(est, "covariance_type", None), params=params,
           attributes=_scalar_attributes(est, getattr(cls, "_saved_scalars", ())),
           params_not_saved=skipped)


def read_estimator(path, kinds=None, covariance_type: str | None = None) -> StoredEstimator:
    """Read a file written by :func:`save_estimator`, checked like every file
    (format, version, kind, covariance type, array shapes and dtypes).

    Args:
      kinds: the class name, or names, accepted (``None``: any).
      covariance_type: insist on a model of this covariance type.
    Returns:
      :class:`StoredEstimator`; making the estimator from it is the caller's
      part (:func:`jaxmix.sklearn.load_estimator`).
    """
    meta, arrays = _read(path, kinds, covariance_type)
    params, attributes = meta.get("params") or {}, meta.get("attributes") or {}
    if not isinstance(params, dict) or not isinstance(attributes, dict):
        raise ValueError(f"{os.fspath(path)} is corrupt: its parameters or attributes are "
                         "not JSON objects")
    params = dict(params)
    for name in [n for n in arrays if n.startswith(PARAM_PREFIX)]:
        params[name[len(PARAM_PREFIX):]] = arrays.pop(name)
    attributes = {name: float(v) if v in _NON_FINITE else v for name, v in attributes.items()}
    return StoredEstimator(meta["kind"], params, arrays, attributes)
