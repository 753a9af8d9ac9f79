"""Reading ``.npy`` and ``.npz`` files as untrusted input.

Nothing is allocated from a size a file declares and nothing it holds is
executed (no pickle): an archive is read member by member through
:mod:`zipfile`; every ``.npy`` header is read first, and its dtype must be of
the kinds asked for (numeric: no object, string or structured arrays), its
shape and dtype what the caller expects, and its data exactly the bytes the
member (or file) holds. Every problem is a ``ValueError`` naming the file and
the field. Used by the model files (:mod:`jaxmix.io.model_file`) and by the
command line's data files (:mod:`jaxmix.cli.data`).
"""

from __future__ import annotations

import contextlib
import math
import os
import zipfile
import zlib

import numpy as np
from numpy.lib.format import read_array_header_1_0, read_array_header_2_0, read_magic

NUMERIC = "biuf"  # the dtype kinds of arrays of numbers
NPY = ".npy"
HEADER_READERS = {(1, 0): read_array_header_1_0, (2, 0): read_array_header_2_0}
READ_ERRORS = (OSError, EOFError, zipfile.BadZipFile, zlib.error, ValueError, TypeError,
               IndexError, KeyError, OverflowError, RecursionError)


def shown(value, limit: int = 80) -> str:
    """``repr(value)`` cut to ``limit`` characters (it comes from an untrusted file)."""
    text = repr(value)
    return text if len(text) <= limit else text[:limit] + "..."


def is_int(value) -> bool:
    """An ``int`` that is not a ``bool``."""
    return isinstance(value, int) and not isinstance(value, bool)


def problem(where: str, field: str, text: str) -> ValueError:
    """``ValueError("<where>: <field> <text>")``."""
    return ValueError(f"{where}: {field} {text}")


@contextlib.contextmanager
def reading(where: str, field: str, what: str = "jaxmix model file"):
    """What the readers raise on the bytes of ``field``, as a ``ValueError``
    naming the file (a missing file stays ``FileNotFoundError``); ``what``:
    the kind of file expected, for the message."""
    try:
        yield
    except FileNotFoundError:
        raise
    except READ_ERRORS as err:
        raise ValueError(f"{where} is not a readable {what} (truncated, corrupt or "
                         f"another format): {field}: {err}") from None


def archive_members(where: str, zf: zipfile.ZipFile, size: int, max_members: int,
                    what: str = "jaxmix model file", limit: str | None = None) -> dict:
    """``{name: ZipInfo}``: at most ``max_members`` members (``limit`` says
    so in words), each a distinct ``.npy`` member, unencrypted, stored or
    deflated, within the file of ``size`` bytes."""
    infos = zf.infolist()
    if len(infos) > max_members:
        raise problem(where, "the archive", f"holds {len(infos)} members; a {what} holds "
                      f"{limit or f'at most {max_members}'}")
    members = {}
    for info in infos:
        field, name = f"member {shown(info.filename)}", info.filename[:-len(NPY)]
        if not info.filename.endswith(NPY):
            raise problem(where, field, "is not an .npy array (the file is not a numpy .npz)")
        if name in members:
            raise problem(where, field, "appears twice")
        if info.flag_bits & 0x1 or info.compress_type not in (zipfile.ZIP_STORED,
                                                               zipfile.ZIP_DEFLATED):
            raise problem(where, field, "is encrypted or compressed in a way numpy never writes")
        stored = info.compress_type == zipfile.ZIP_STORED
        if info.compress_size > size or (stored and info.file_size != info.compress_size):
            raise problem(where, field, f"declares {info.file_size} bytes ({info.compress_size} "
                          f"compressed), which the {size}-byte file does not hold")
        members[name] = info
    return members


def data_size(where, field, shape, dtype, kinds, available) -> int:
    """The bytes a ``.npy`` header declares: refused unless its dtype is of
    ``kinds`` and exactly ``available`` bytes (the rest of the member) hold them."""
    if dtype.kind not in kinds:
        if kinds == "U":
            raise problem(where, field, f"has dtype {dtype}; it must be a string")
        raise problem(where, field, f"has dtype {dtype}, not numbers; it must be numeric (no "
                      "object, string or structured dtypes)")
    nbytes = math.prod(shape) * dtype.itemsize
    if nbytes != available:
        raise problem(where, field, f"declares shape {shown(shape)} of {dtype} ({nbytes} bytes) "
                      f"but holds {available} bytes of data: the file is corrupt or crafted")
    return nbytes


def npy_from(f, where, field, kinds, available, shape=None, dtype=None,
             what: str = "jaxmix model file", backed: bool = True) -> np.ndarray:
    """The ``.npy`` array read from the open binary file ``f`` holding
    ``available`` bytes from its position. The header is checked first
    (against ``shape`` / ``dtype`` where given, and :func:`data_size`), so no
    size it declares is allocated before its bytes are read: the array is
    allocated whole only when ``backed`` (``available`` is bytes on disk: a
    plain file, a stored archive member), else grown as the bytes come (a
    deflated member, whose declared size is only a claim)."""
    with reading(where, field, what):
        version = read_magic(f)
        if version not in HEADER_READERS:
            raise ValueError(f".npy format version {version} is not read")
        got_shape, fortran, got_dtype = HEADER_READERS[version](f)
        offset = f.tell()
    if (shape is not None and list(got_shape) != shape) or (
            dtype is not None and got_dtype.str != dtype):
        raise problem(where, field, f"has shape {shown(got_shape)} dtype {got_dtype}, its "
                      f"metadata says {shown(shape)} {shown(dtype)}: the file is corrupt")
    nbytes = data_size(where, field, got_shape, got_dtype, kinds, available - offset)
    order = "F" if fortran else "C"
    with reading(where, field, what):
        if backed:
            out = np.empty(got_shape, got_dtype, order=order)
            got = f.readinto(memoryview(out.reshape(-1, order="A")).cast("B")) if nbytes else 0
        else:
            data = _read_growing(f, nbytes)
            got = len(data)
        if got != nbytes:
            raise EOFError(f"{got} of {nbytes} bytes of data")
    return out if backed else np.frombuffer(data, got_dtype).reshape(got_shape, order=order)


def _read_growing(f, nbytes: int, piece: int = 2 ** 20) -> bytearray:
    """Up to ``nbytes`` from ``f``, the buffer grown only by bytes actually read."""
    data = bytearray()
    while len(data) < nbytes:
        got = f.read(min(piece, nbytes - len(data)))
        if not got:
            break
        data += got
    return data


def member_array(where, zf, info, field, kinds, shape=None, dtype=None,
                 what: str = "jaxmix model file") -> np.ndarray:
    """The array in archive member ``info`` (see :func:`npy_from`)."""
    with reading(where, field, what):
        f = zf.open(info)
    with f:
        return npy_from(f, where, field, kinds, info.file_size, shape, dtype, what,
                        backed=info.compress_type == zipfile.ZIP_STORED)


def npy_array(path, what: str = ".npy file", kinds: str = NUMERIC) -> np.ndarray:
    """The array of a plain ``.npy`` file, read as untrusted input."""
    where = os.fspath(path)
    with reading(where, "the file", what):
        size = os.path.getsize(where)
        f = open(where, "rb")
    with f:
        return npy_from(f, where, "the array", kinds, size, what=what)


def npz_arrays(path, max_members: int, what: str = ".npz file", kinds: str = NUMERIC,
               pick=None) -> dict:
    """``{name: array}`` of a ``.npz`` archive, read as untrusted input;
    ``pick(names)``, when given, chooses the names to read (the others are
    never decompressed)."""
    where = os.fspath(path)
    with reading(where, "the archive", what):
        size = os.path.getsize(where)
        zf = zipfile.ZipFile(where)
    with zf:
        members = archive_members(where, zf, size, max_members, what)
        names = list(members) if pick is None else pick(list(members))
        return {name: member_array(where, zf, members[name], f"array {shown(name)}", kinds,
                                   what=what) for name in names}
