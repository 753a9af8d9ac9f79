"""The jaxmix model file: an ``.npz`` archive with one JSON metadata entry
(the format is described in :mod:`jaxmix.io`), written atomically and read as
untrusted input (:mod:`jaxmix.io.untrusted`)."""

from __future__ import annotations

import contextlib
import json
import os
import zipfile

import numpy as np

from jaxmix._version import __version__
from jaxmix.atomic import atomic_write
from jaxmix.io.untrusted import (NUMERIC, archive_members, is_int, member_array, problem,
                                 reading, shown)
from jaxmix.params import COVARIANCE_TYPES

FORMAT = "jaxmix"
FORMAT_VERSION = 2  # 2: the optional "about" object (jaxmix.io.about)
METADATA_KEY = "__metadata__"
MAX_MEMBERS = 64  # arrays in one file (an estimator saves about a dozen)
MAX_METADATA_BYTES = 2 ** 20  # a model's metadata is a few kB


def write(path, kind: str, arrays: dict, covariance_type=None, about=None, **extra):
    """Write a model file atomically; ``about``: a :class:`jaxmix.io.about.About`."""
    arrays = {name: np.asarray(a) for name, a in arrays.items()}
    if about is not None and about.to_json():
        extra["about"] = about.to_json()
    for name, a in arrays.items():
        if a.dtype.kind not in NUMERIC:
            raise ValueError(f"cannot save {name!r}: dtype {a.dtype} is not numeric")
    meta = dict(format=FORMAT, format_version=FORMAT_VERSION, jaxmix_version=__version__,
                kind=kind, covariance_type=covariance_type,
                arrays={name: dict(shape=list(a.shape), dtype=a.dtype.str)
                        for name, a in arrays.items()}, **extra)
    payload = {METADATA_KEY: np.array(json.dumps(meta))}
    payload.update(arrays)
    with atomic_write(path) as f:  # a failed save leaves the previous file intact
        np.savez(f, **payload)


def metadata(where, zf, info) -> dict:
    """The metadata's JSON object, its structure checked (:func:`_check_metadata`)."""
    if info is None:
        raise ValueError(f"{where} has no jaxmix metadata entry ({METADATA_KEY!r}); it is "
                         "not a jaxmix model file")
    if info.file_size > MAX_METADATA_BYTES:
        raise problem(where, METADATA_KEY, f"is {info.file_size} bytes; a jaxmix model's "
                   f"metadata is at most {MAX_METADATA_BYTES}")
    text = member_array(where, zf, info, METADATA_KEY, "U", shape=[])
    with reading(where, METADATA_KEY):
        meta = json.loads(str(text[()]))
    _checkmetadata(where, meta)
    return meta


def _checkmetadata(where, meta) -> None:
    """Format marker, a version this jaxmix reads, a string kind, a known
    covariance type or null, ``{"shape": [ints >= 0], "dtype": str}`` specs."""
    if not isinstance(meta, dict) or meta.get("format") != FORMAT:
        raise ValueError(f"{where} is not a jaxmix model file (format marker missing)")
    version = meta.get("format_version")
    if not is_int(version) or version > FORMAT_VERSION or version < 1:
        raise ValueError(f"{where} has format_version {shown(version)}; this jaxmix "
                         f"({__version__}) reads versions 1..{FORMAT_VERSION}; upgrade jaxmix")
    if not isinstance(meta.get("kind"), str):
        raise problem(where, "metadata 'kind'", f"must be a string, got {shown(meta.get('kind'))}")
    ct = meta.get("covariance_type")
    if ct is not None and ct not in COVARIANCE_TYPES:
        raise problem(where, "metadata 'covariance_type'", f"must be one of {COVARIANCE_TYPES} or "
                   f"null, got {shown(ct)}")
    arrays = meta.get("arrays")
    if not isinstance(arrays, dict):
        raise problem(where, "metadata 'arrays'", "must be a JSON object {name: {shape, dtype}}, "
                   f"got {shown(arrays)}")
    for name, spec in arrays.items():
        shape = spec.get("shape") if isinstance(spec, dict) else None
        if not (isinstance(shape, list) and all(is_int(n) and n >= 0 for n in shape)
                and isinstance(spec.get("dtype"), str)):
            raise problem(where, f"metadata 'arrays'[{shown(name)}]", 'must be {"shape": [ints '
                       f'>= 0], "dtype": str}}, got {shown(spec)}')


def check_expected(where, meta, expect_kind, covariance_type) -> None:
    """The kind (one of ``expect_kind``) and covariance type the caller asked for."""
    if expect_kind is not None:
        expected = (expect_kind,) if isinstance(expect_kind, str) else tuple(expect_kind)
        if meta["kind"] not in expected:
            raise ValueError(f"{where} holds a {shown(meta['kind'])}, expected "
                             f"{' or '.join(map(repr, expected))}")
    if covariance_type is not None and meta["covariance_type"] != covariance_type:
        raise ValueError(f"{where} holds a model with covariance_type="
                         f"{meta['covariance_type']!r}, expected {covariance_type!r}")


@contextlib.contextmanager
def _opened(path):
    """``(where, zip file, its members by name)``, the archive's structure checked."""
    where = os.fspath(path)
    with reading(where, "the archive"):
        size = os.path.getsize(where)
        zf = zipfile.ZipFile(where)
    with zf:
        yield where, zf, archive_members(where, zf, size, MAX_MEMBERS + 1,
                                         limit=f"at most {MAX_MEMBERS} arrays and its metadata")


def read(path, expect_kind=None, covariance_type=None):
    """``(metadata, arrays)`` of a jaxmix file, read as untrusted input (see
    :mod:`jaxmix.io`); ``ValueError`` naming the file and the field otherwise."""
    with _opened(path) as (where, zf, members):
        meta = metadata(where, zf, members.pop(METADATA_KEY, None))
        check_expected(where, meta, expect_kind, covariance_type)
        declared = meta["arrays"]
        if set(declared) != set(members):
            raise ValueError(f"{where} is corrupt: its arrays {shown(sorted(members))} do not "
                             f"match its metadata {shown(sorted(declared))}")
        return meta, {name: member_array(where, zf, members[name], f"array {shown(name)}",
                                    NUMERIC, spec["shape"], spec["dtype"])
                      for name, spec in declared.items()}


def peek_metadata(path) -> dict:
    """A jaxmix file's metadata, checked (its arrays not read)."""
    with _opened(path) as (where, zf, members):
        return metadata(where, zf, members.get(METADATA_KEY))


def check_names(path, what: str, names, allowed, required=()) -> None:
    """``ValueError`` naming the file unless each of ``names`` (the file's
    ``what``) is one of ``allowed`` and each of ``required`` is there."""
    unknown = sorted(set(names) - set(allowed))
    if unknown:
        raise ValueError(f"{os.fspath(path)}: unknown {what} {shown(unknown)}; only "
                         f"{sorted(allowed)} are read")
    missing = [n for n in required if n not in names]
    if missing:
        raise ValueError(f"{os.fspath(path)} is corrupt: missing {what} {missing}")
