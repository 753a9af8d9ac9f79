"""Save and load fitted models and raw parameters (never pickle).

File format (``FORMAT_VERSION = 1``)
------------------------------------
An ``.npz`` archive (``numpy.savez``). It holds

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

import contextlib
import json
import math
import numbers
import os
import zipfile
import zlib
from typing import NamedTuple

import numpy as np
from numpy.lib.format import read_array_header_1_0, read_array_header_2_0, read_magic

from jaxmix.atomic import atomic_write
from jaxmix._version import __version__
from jaxmix.validation import check_gmm_params

from jaxmix.params import COVARIANCE_TYPES, GMMParams, KMeansParams

FORMAT = "jaxmix"
FORMAT_VERSION = 1
METADATA_KEY = "__metadata__"
MAX_MEMBERS = 64  # arrays in one file (an estimator saves about a dozen)
MAX_METADATA_BYTES = 2 ** 20  # a model's metadata is a few kB

PARAM_PREFIX = "param:"  # array-valued constructor parameters
_NON_FINITE = ("-inf", "inf", "nan")  # scalar attributes stored as their repr
_NUMERIC = "biuf"  # the dtype kinds of a file's arrays
_NPY = ".npy"
_HEADER_READERS = {(1, 0): read_array_header_1_0, (2, 0): read_array_header_2_0}
# What the zip, zlib, .npy header and JSON readers raise on bytes they cannot parse.
_READ_ERRORS = (OSError, EOFError, zipfile.BadZipFile, zlib.error, ValueError, TypeError,
                IndexError, KeyError, OverflowError, RecursionError)


def _version() -> str:
    return __version__


def _show(value, limit: int = 80) -> str:
    """``repr(value)`` cut to ``limit`` characters (it comes from an untrusted file)."""
    text = repr(value)
    return text if len(text) <= limit else text[:limit] + "..."


def _is_int(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _bad(where: str, field: str, problem: str) -> ValueError:
    return ValueError(f"{where}: {field} {problem}")


# --------------------------------------------------------------------------
# Low level: write / read an archive
# --------------------------------------------------------------------------

def _write(path, kind: str, arrays: dict, covariance_type=None, **extra):
    arrays = {name: np.asarray(a) for name, a in arrays.items()}
    for name, a in arrays.items():
        if a.dtype.kind not in _NUMERIC:
            raise ValueError(f"cannot save {name!r}: dtype {a.dtype} is not numeric")
    meta = dict(format=FORMAT, format_version=FORMAT_VERSION, jaxmix_version=_version(),
                kind=kind, covariance_type=covariance_type,
                arrays={name: dict(shape=list(a.shape), dtype=a.dtype.str)
                        for name, a in arrays.items()}, **extra)
    payload = {METADATA_KEY: np.array(json.dumps(meta))}
    payload.update(arrays)
    with atomic_write(path) as f:  # a failed save leaves the previous file intact
        np.savez(f, **payload)


@contextlib.contextmanager
def _reading(where: str, field: str):
    """What the readers raise on the bytes of ``field``, as a ``ValueError``
    naming the file (a missing file stays ``FileNotFoundError``)."""
    try:
        yield
    except FileNotFoundError:
        raise
    except _READ_ERRORS as err:
        raise ValueError(f"{where} is not a readable jaxmix model file (truncated, corrupt or "
                         f"another format): {field}: {err}") from None


def _members(where: str, zf: zipfile.ZipFile, size: int) -> dict:
    """``{name: ZipInfo}``: at most ``MAX_MEMBERS`` arrays and the metadata, each a
    distinct ``.npy`` member, unencrypted, stored or deflated, within the file."""
    infos = zf.infolist()
    if len(infos) > MAX_MEMBERS + 1:
        raise _bad(where, "the archive", f"holds {len(infos)} members; a jaxmix model file "
                   f"holds at most {MAX_MEMBERS} arrays and its metadata")
    members = {}
    for info in infos:
        field, name = f"member {_show(info.filename)}", info.filename[:-len(_NPY)]
        if not info.filename.endswith(_NPY):
            raise _bad(where, field, "is not an .npy array (the file is not a numpy .npz)")
        if name in members:
            raise _bad(where, field, "appears twice")
        if info.flag_bits & 0x1 or info.compress_type not in (zipfile.ZIP_STORED,
                                                               zipfile.ZIP_DEFLATED):
            raise _bad(where, field, "is encrypted or compressed in a way numpy never writes")
        stored = info.compress_type == zipfile.ZIP_STORED
        if info.compress_size > size or (stored and info.file_size != info.compress_size):
            raise _bad(where, field, f"declares {info.file_size} bytes ({info.compress_size} "
                       f"compressed), which the {size}-byte file does not hold")
        members[name] = info
    return members


def _data_size(where, field, shape, dtype, kinds, available) -> int:
    """The bytes a ``.npy`` header declares (its shape already the metadata's):
    refused unless its dtype is of ``kinds`` and exactly ``available`` bytes
    (the rest of the member) hold them."""
    if dtype.kind not in kinds:
        want = "a string" if kinds == "U" else "numeric (no object, string or structured dtypes)"
        raise _bad(where, field, f"has dtype {dtype}; it must be {want}")
    nbytes = math.prod(shape) * dtype.itemsize
    if nbytes != available:
        raise _bad(where, field, f"declares shape {_show(shape)} of {dtype} ({nbytes} bytes) but "
                   f"holds {available} bytes of data: the file is corrupt or crafted")
    return nbytes


def _member(where, zf, info, field, kinds, shape=None, dtype=None) -> np.ndarray:
    """The array in member ``info``. Its ``.npy`` header is checked first (against
    ``shape`` / ``dtype`` where given, and :func:`_data_size`), so no size it
    declares is allocated before the bytes are read."""
    with _reading(where, field):
        f = zf.open(info)
    with f:
        with _reading(where, field):
            version = read_magic(f)
            if version not in _HEADER_READERS:
                raise ValueError(f".npy format version {version} is not read")
            got_shape, fortran, got_dtype = _HEADER_READERS[version](f)
            offset = f.tell()
        if (shape is not None and list(got_shape) != shape) or (
                dtype is not None and got_dtype.str != dtype):
            raise _bad(where, field, f"has shape {_show(got_shape)} dtype {got_dtype}, its "
                       f"metadata says {_show(shape)} {_show(dtype)}: the file is corrupt")
        nbytes = _data_size(where, field, got_shape, got_dtype, kinds, info.file_size - offset)
        with _reading(where, field):
            data = f.read(nbytes)  # at most what the member holds
            if len(data) != nbytes:
                raise EOFError(f"{len(data)} of {nbytes} bytes of data")
            flat = np.frombuffer(data, got_dtype)
            return flat.reshape(got_shape, order="F" if fortran else "C").copy(order="K")


def _metadata(where, zf, info) -> dict:
    """The metadata's JSON object, its structure checked (:func:`_check_metadata`)."""
    if info is None:
        raise ValueError(f"{where} has no jaxmix metadata entry ({METADATA_KEY!r}); it is "
                         "not a jaxmix model file")
    if info.file_size > MAX_METADATA_BYTES:
        raise _bad(where, METADATA_KEY, f"is {info.file_size} bytes; a jaxmix model's "
                   f"metadata is at most {MAX_METADATA_BYTES}")
    text = _member(where, zf, info, METADATA_KEY, "U", shape=[])
    with _reading(where, METADATA_KEY):
        meta = json.loads(str(text[()]))
    _check_metadata(where, meta)
    return meta


def _check_metadata(where, meta) -> None:
    """Format marker, a version this jaxmix reads, a string kind, a known
    covariance type or null, ``{"shape": [ints >= 0], "dtype": str}`` specs."""
    if not isinstance(meta, dict) or meta.get("format") != FORMAT:
        raise ValueError(f"{where} is not a jaxmix model file (format marker missing)")
    version = meta.get("format_version")
    if not _is_int(version) or version > FORMAT_VERSION or version < 1:
        raise ValueError(f"{where} has format_version {_show(version)}; this jaxmix "
                         f"({_version()}) reads versions 1..{FORMAT_VERSION}; upgrade jaxmix")
    if not isinstance(meta.get("kind"), str):
        raise _bad(where, "metadata 'kind'", f"must be a string, got {_show(meta.get('kind'))}")
    ct = meta.get("covariance_type")
    if ct is not None and ct not in COVARIANCE_TYPES:
        raise _bad(where, "metadata 'covariance_type'", f"must be one of {COVARIANCE_TYPES} or "
                   f"null, got {_show(ct)}")
    arrays = meta.get("arrays")
    if not isinstance(arrays, dict):
        raise _bad(where, "metadata 'arrays'", "must be a JSON object {name: {shape, dtype}}, "
                   f"got {_show(arrays)}")
    for name, spec in arrays.items():
        shape = spec.get("shape") if isinstance(spec, dict) else None
        if not (isinstance(shape, list) and all(_is_int(n) and n >= 0 for n in shape)
                and isinstance(spec.get("dtype"), str)):
            raise _bad(where, f"metadata 'arrays'[{_show(name)}]", 'must be {"shape": [ints '
                       f'>= 0], "dtype": str}}, got {_show(spec)}')


def _check_expected(where, meta, expect_kind, covariance_type) -> None:
    """The kind (one of ``expect_kind``) and covariance type the caller asked for."""
    if expect_kind is not None:
        expected = (expect_kind,) if isinstance(expect_kind, str) else tuple(expect_kind)
        if meta["kind"] not in expected:
            raise ValueError(f"{where} holds a {_show(meta['kind'])}, expected "
                             f"{' or '.join(map(repr, expected))}")
    if covariance_type is not None and meta["covariance_type"] != covariance_type:
        raise ValueError(f"{where} holds a model with covariance_type="
                         f"{meta['covariance_type']!r}, expected {covariance_type!r}")


def _read(path, expect_kind=None, covariance_type=None):
    """``(metadata, arrays)`` of a jaxmix file, read as untrusted input (see the
    module doc); ``ValueError`` naming the file and the field otherwise."""
    where = os.fspath(path)
    with _reading(where, "the archive"):
        size = os.path.getsize(where)
        zf = zipfile.ZipFile(where)
    with zf:
        members = _members(where, zf, size)
        meta = _metadata(where, zf, members.pop(METADATA_KEY, None))
        _check_expected(where, meta, expect_kind, covariance_type)
        declared = meta["arrays"]
        if set(declared) != set(members):
            raise ValueError(f"{where} is corrupt: its arrays {_show(sorted(members))} do not "
                             f"match its metadata {_show(sorted(declared))}")
        return meta, {name: _member(where, zf, members[name], f"array {_show(name)}",
                                    _NUMERIC, spec["shape"], spec["dtype"])
                      for name, spec in declared.items()}


def check_names(path, what: str, names, allowed, required=()) -> None:
    """``ValueError`` naming the file unless each of ``names`` (the file's
    ``what``) is one of ``allowed`` and each of ``required`` is there."""
    unknown = sorted(set(names) - set(allowed))
    if unknown:
        raise ValueError(f"{os.fspath(path)}: unknown {what} {_show(unknown)}; only "
                         f"{sorted(allowed)} are read")
    missing = [n for n in required if n not in names]
    if missing:
        raise ValueError(f"{os.fspath(path)} is corrupt: missing {what} {missing}")


# --------------------------------------------------------------------------
# Raw parameters
# --------------------------------------------------------------------------

_PARAM_ARRAYS = {"GMMParams": ("weights", "means", "precisions_cholesky"),
                 "KMeansParams": ("centroids",)}


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
    """Read parameters written by :func:`save_params` (numpy leaves): the
    kind's arrays and no others, values checked under the file's covariance type.

    Args:
      kind: ``"GMMParams"`` or ``"KMeansParams"`` to insist on one.
      covariance_type: insist on a GMM of this covariance type.
    """
    if kind not in (None, *_PARAM_ARRAYS):
        raise ValueError(f"kind must be one of {tuple(_PARAM_ARRAYS)} or None, got {kind!r}")
    if covariance_type is not None and kind is None:
        kind = "GMMParams"
    meta, arrays = _read(path, kind or tuple(_PARAM_ARRAYS), covariance_type)
    kind, ct = meta["kind"], meta["covariance_type"]
    check_names(path, "arrays", arrays, _PARAM_ARRAYS[kind], required=_PARAM_ARRAYS[kind])
    if (ct is None) != (kind == "KMeansParams"):
        raise _bad(os.fspath(path), "metadata 'covariance_type'", f"{ct!r} does not fit a {kind}")
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
        raise _bad(os.fspath(path), field, f"must have shape {shape or '(k, d)'}"
                   f"{' after any restart axes' if batched else ''}, got {c.shape}")
    if not np.all(np.isfinite(c)):
        raise _bad(os.fspath(path), field, "contains NaN or infinity")


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


def _json_object(where, meta, key: str, accept, what: str) -> dict:
    """``meta[key]`` (``{}`` when absent): a JSON object whose values all ``accept``."""
    value = meta.get(key, {})
    if not isinstance(value, dict):
        raise _bad(where, f"metadata {key!r}", f"must be a JSON object, got {_show(value)}")
    for name, v in value.items():
        if not accept(v):
            raise _bad(where, f"{key}[{_show(name)}]", f"must be {what}, got {_show(v)}")
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
    meta, arrays = _read(path, kinds, covariance_type)
    where = os.fspath(path)
    params = _json_object(where, meta, "params", lambda v: v is None or isinstance(
        v, (bool, int, float, str)), "null, a bool, a number or a string")
    if params.get("covariance_type") != meta["covariance_type"]:
        raise _bad(where, "params['covariance_type']", f"is {_show(params.get('covariance_type'))}"
                   f" but the metadata's covariance_type is {meta['covariance_type']!r}; a "
                   "model has one covariance type")
    array_params = {name[len(PARAM_PREFIX):]: arrays.pop(name) for name in list(arrays)
                    if name.startswith(PARAM_PREFIX)}
    if set(array_params) & set(params):
        raise _bad(where, f"params {sorted(set(array_params) & set(params))}",
                   "are stored both in the metadata and as arrays")
    attributes = _json_object(where, meta, "attributes", lambda v: isinstance(
        v, (bool, int, float)) or v in _NON_FINITE, f"a number, a bool or one of {_NON_FINITE}")
    attributes = {name: float(v) if v in _NON_FINITE else v for name, v in attributes.items()}
    return StoredEstimator(meta["kind"], {**params, **array_params}, arrays, attributes)
