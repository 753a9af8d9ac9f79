"""Chunk sources for out-of-core fits: data read one fixed-size chunk at a time.

A source is one of

* a 2-D numpy array or :class:`numpy.memmap` ``(n, d)`` (optionally with a
  ``sample_weight`` array ``(n,)``, which may be memory-mapped too);
* a path to a ``.npy`` file, opened with ``np.load(path, mmap_mode="r")``;
* a callable returning a fresh iterable of chunks on every call (one call
  per pass), each chunk ``x (m, d)`` or a pair ``(x, sample_weight)``;
* a list or tuple of such chunks.

Chunks are cut (or re-cut) into pieces of at most ``chunk_size`` rows and
padded with zero-weight rows to exactly ``chunk_size``, so one compiled shape
serves every chunk. A first pass (:func:`survey`) validates every chunk (errors
name the chunk and row) and counts the samples. Rows copied out of a
read-only memory map are released from the process right away
(``madvise(MADV_DONTNEED)``; they stay in the page cache), so the resident
memory of a pass is about one chunk, not the file.

>>> import numpy as np
>>> src = open_source(np.arange(10.0).reshape(5, 2))
>>> s = survey(src, 2)
>>> s.n_samples, s.n_chunks, s.layout.chunk_size
(5, 3, 2)
>>> x, w = read_chunk(src, s.layout, 2)
>>> x.tolist(), w.tolist()
([[8.0, 9.0], [0.0, 0.0]], [1.0, 0.0])
"""

from __future__ import annotations

import mmap
import os
from typing import Callable, Iterator, NamedTuple

import numpy as np

from jaxmix.numerics import float_dtype


class Layout(NamedTuple):
    """Shape of every chunk a pass yields (static: it fixes the compiled shapes)."""
    chunk_size: int
    n_features: int
    dtype: str          # compute dtype: float64 with jax_enable_x64 and float64 data


class Survey(NamedTuple):
    """What the first pass learns."""
    layout: Layout
    n_samples: int      # rows
    n_chunks: int       # chunks per pass
    total_weight: float
    n_positive: int     # rows with positive weight


class ArraySource:
    """An in-memory or memory-mapped ``(n, d)`` array: random access by chunk."""

    sequential = False

    def __init__(self, x, sample_weight=None, name: str = "source"):
        self.x, self.name = x, name
        if x.ndim != 2 or x.shape[0] == 0 or x.shape[1] == 0:
            raise ValueError(f"{name} must be a non-empty 2-D array (n_samples, n_features), "
                             f"got shape {x.shape}")
        _check_dtype(x.dtype, name)
        self.w = None
        if sample_weight is not None:
            w = sample_weight if isinstance(sample_weight, np.ndarray) else np.asarray(
                sample_weight)
            if w.shape != (x.shape[0],):
                raise ValueError(f"sample_weight must have shape ({x.shape[0]},), got {w.shape}")
            self.w = w
        self.x_pages, self.w_pages = _MappedPages.of(x), _MappedPages.of(self.w)

    @property
    def n_features(self) -> int:
        return self.x.shape[1]

    def pieces(self, size: int) -> Iterator[tuple]:
        for start in range(0, self.x.shape[0], size):
            yield self.rows(slice(start, start + size))

    def rows(self, index) -> tuple:
        """``(x[index], w[index] or None)`` copied out of the array; pages of
        a read-only memory map are released after the copy."""
        out = []
        for a, pages in ((self.x, self.x_pages), (self.w, self.w_pages)):
            out.append(None if a is None else np.array(a[index]))
            if pages is not None:
                pages.release(a, index)
        return tuple(out)


class CallableSource:
    """Chunks from ``make()``, a fresh iterable per pass: sequential access."""

    sequential = True

    def __init__(self, make: Callable, name: str = "source"):
        self.make, self.name = make, name
        self.n_features = None
        self.cursor = None   # the pieces of the pass being read (read_chunk)

    def pieces(self, size: int | None) -> Iterator[tuple]:
        """The chunks of one pass, longer ones cut to ``size`` rows (``None``:
        the first chunk's length)."""
        try:
            items = iter(self.make())
        except TypeError:
            raise ValueError(f"{self.name}() must return an iterable of chunks") from None
        for item in items:
            x, w = item if isinstance(item, tuple) else (item, None)
            x = np.asarray(x)
            w = None if w is None else np.asarray(w)
            size = size or max(1, x.shape[0] if x.ndim else 1)
            if x.ndim == 2 and x.shape[0] > size:  # re-cut long chunks
                for start in range(0, x.shape[0], size):
                    yield x[start:start + size], None if w is None else w[start:start + size]
            else:
                yield x, w


def open_source(source, sample_weight=None, *, single_pass: bool = False):
    """A source object for ``source`` (see the module docstring).

    ``single_pass`` also accepts a one-shot iterator (online fits).
    """
    if isinstance(source, (ArraySource, CallableSource)):
        if sample_weight is not None:
            raise ValueError("sample_weight: give it to open_source together with the array")
        return source
    if isinstance(source, (str, os.PathLike)):
        return ArraySource(_load_npy(source), sample_weight)
    if isinstance(source, np.ndarray):
        return ArraySource(source, sample_weight)
    if sample_weight is not None:
        raise ValueError("sample_weight is only for array or .npy sources; give chunks of an "
                         "iterable source as (x, sample_weight) pairs")
    if callable(source):
        return CallableSource(source)
    if isinstance(source, (list, tuple)):
        return CallableSource(lambda: source)
    if single_pass and hasattr(source, "__iter__"):
        it = iter(source)
        return CallableSource(_once(it))
    raise ValueError(
        "source must be a 2-D array or np.memmap, a path to a .npy file, a list of chunks, or "
        f"a callable returning a fresh iterable of chunks per pass; got {type(source).__name__}"
        + (" (an iterator can be read only once: wrap it in a function that recreates it)"
           if hasattr(source, "__iter__") else ""))


def is_source(x) -> bool:
    """Whether a fit streams ``x`` instead of holding it in memory: a path to a
    ``.npy`` file, an ``np.memmap``, a callable returning chunks, or a source
    made by :func:`open_source` (which also streams an in-memory array)."""
    return (isinstance(x, (str, os.PathLike, np.memmap, ArraySource, CallableSource))
            or callable(x))


def _once(it):
    used = []

    def make():
        if used:
            raise ValueError("source is a one-shot iterator and was already read")
        used.append(True)
        return it
    return make


def _load_npy(path):
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise ValueError(f"source: no such file {path!r}")
    try:
        x = np.load(path, mmap_mode="r", allow_pickle=False)
    except (ValueError, OSError) as err:
        raise ValueError(f"source {path!r} could not be opened as a .npy file: {err}") from None
    if not isinstance(x, np.ndarray):
        raise ValueError(f"source {path!r} is not a .npy file (np.load returned "
                         f"{type(x).__name__}); save one array with np.save")
    return x


def _check_dtype(dtype, name):
    if np.dtype(dtype).kind not in "biuf":
        raise ValueError(f"{name} must hold numbers (float or int), got dtype {dtype}")


# ---------------------------------------------------------------------------
# First pass, reading, sampling


def survey(src, chunk_size: int | None) -> Survey:
    """Validate every chunk of ``src`` (one pass) and fix the chunk layout.

    ``chunk_size=None`` keeps a callable source's chunks as they come (the
    largest sets the size); array sources need a size.
    """
    size = chunk_size or 2 ** 62
    n = n_pos = n_chunks = longest = 0
    total = 0.0
    d, dtype = src.n_features, None
    for i, (x, w) in enumerate(src.pieces(size)):
        d = check_chunk(x, w, i, d, n, src.name)
        dtype = x.dtype if dtype is None else np.result_type(dtype, x.dtype)
        n += x.shape[0]
        n_chunks += 1
        longest = max(longest, x.shape[0])
        total += float(x.shape[0] if w is None else np.sum(w, dtype=np.float64))
        n_pos += x.shape[0] if w is None else int(np.count_nonzero(w))
    if n == 0:
        raise ValueError(f"{src.name} yielded no samples")
    if total <= 0:
        raise ValueError("sample weights are all zero; give some samples a positive weight")
    layout = Layout(int(chunk_size or longest), int(d), float_dtype(dtype).name)
    return Survey(layout, n, n_chunks, total, n_pos)


def check_chunk(x, w, i: int, d, first_row: int, name: str) -> int:
    """Validate chunk ``i`` (rows from ``first_row``); returns ``d``."""
    where = f"{name}: chunk {i} (rows {first_row}..{first_row + len(x) - 1})"
    if x.ndim != 2 or x.shape[0] == 0:
        raise ValueError(f"{where} must be a non-empty 2-D array, got shape {x.shape}")
    if d is not None and x.shape[1] != d:
        raise ValueError(f"{where} has {x.shape[1]} features, the data {d}")
    _check_dtype(x.dtype, where)
    bad = ~np.all(np.isfinite(x), axis=1)
    if bad.any():
        raise ValueError(f"{where} contains NaN or infinity in row {first_row + int(np.argmax(bad))}"
                         "; drop or impute such rows first")
    if w is not None and (w.shape != (x.shape[0],) or not np.all(np.isfinite(w))
                          or np.any(w < 0)):
        raise ValueError(f"{where}: sample_weight must be finite, non-negative, of shape "
                         f"({x.shape[0]},), got shape {w.shape}")
    return x.shape[1]


def pad(x, w, layout: Layout) -> tuple:
    """One chunk as ``(x (chunk_size, d), w (chunk_size,))`` in the compute
    dtype, zero rows of zero weight at the end."""
    size, m = layout.chunk_size, x.shape[0]
    xp = np.zeros((size, layout.n_features), layout.dtype)
    wp = np.zeros((size,), layout.dtype)
    xp[:m] = x
    wp[:m] = 1 if w is None else w
    return xp, wp


def read_chunk(src, layout: Layout, i: int) -> tuple:
    """Chunk ``i`` padded (array sources: random access; callables: in order)."""
    if not src.sequential:
        size = layout.chunk_size
        return pad(*src.rows(slice(i * size, (i + 1) * size)), layout)
    if i == 0:
        src.cursor = src.pieces(layout.chunk_size)
    try:
        return pad(*next(src.cursor), layout)
    except StopIteration:
        raise ValueError(f"{src.name} yielded fewer chunks than on its first pass "
                         f"(ended before chunk {i}); it must yield the same data on every "
                         "pass") from None


def sample_rows(src, rows, chunk_size: int) -> tuple:
    """``(x, w)`` of the rows with global indices ``rows`` (sorted); ``w`` is
    ``None`` when the source has no weights.

    In-memory arrays are indexed directly; other sources are read in chunks
    (memory maps too: gathering scattered rows at once would map most of the
    file, as the kernel maps pages around each fault).
    """
    if not src.sequential and src.x_pages is None and src.w_pages is None:
        return src.rows(rows)
    xs, ws, start = [], [], 0
    for x, w in src.pieces(chunk_size):
        take = rows[(rows >= start) & (rows < start + len(x))] - start
        xs.append(x[take])
        ws.append(None if w is None else w[take])
        start += len(x)
    if all(w is None for w in ws):
        return np.concatenate(xs), None
    return np.concatenate(xs), np.concatenate(
        [np.ones(len(x)) if w is None else w for x, w in zip(xs, ws)])


# ---------------------------------------------------------------------------
# Memory maps


class _MappedPages:
    """The read-only ``mmap`` behind a ``np.memmap``; :meth:`release` drops the
    pages of some of its rows from this process (they stay in the page cache,
    so the next pass reads them without touching the disk)."""

    def __init__(self, mm):
        self.mm = mm
        self.address = np.frombuffer(mm, np.uint8).ctypes.data

    @classmethod
    def of(cls, a):
        """Pages of ``a`` if it is a read-only (mode ``"r"``) ``np.memmap``,
        else ``None``: writable or copy-on-write maps are left alone."""
        if not isinstance(a, np.memmap) or a.mode not in ("r", "readonly"):
            return None
        base = a
        while base is not None and not isinstance(base, mmap.mmap):
            base = getattr(base, "base", None)
        if base is None or not hasattr(base, "madvise"):
            return None
        return cls(base)

    def release(self, a, index):
        """Release the rows ``a[index]`` (a slice), or all of ``a``."""
        first, last = 0, len(self.mm)
        if isinstance(index, slice) and a.flags.c_contiguous:
            start, stop, _ = index.indices(a.shape[0])
            first = a.ctypes.data - self.address + start * a.strides[0]
            last = first + max(0, stop - start) * a.strides[0]
        first -= first % mmap.PAGESIZE
        try:
            self.mm.madvise(mmap.MADV_DONTNEED, first, max(0, min(last, len(self.mm)) - first))
        except (OSError, ValueError):  # nothing to release
            pass
