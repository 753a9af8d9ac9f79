"""Chunk sources for out-of-core fits: data read one fixed-size chunk at a time.

A source is one of

* a 2-D numpy array or :class:`numpy.memmap` ``(n, d)`` (optionally with a
  ``sample_weight`` array ``(n,)``, which may be memory-mapped too);
* a SciPy sparse matrix or array (CSR, CSC, ...), kept sparse (CSR) and
  made dense one chunk of rows at a time, so memory is the sparse matrix
  plus one dense chunk;
* a path to a ``.npy`` file, opened with ``np.load(path, mmap_mode="r")``;
* a callable returning a fresh iterable of chunks on every call (one call
  per pass), each chunk ``x (m, d)`` or a pair ``(x, sample_weight)``;
* a list or tuple of such chunks.

Chunks are cut (or re-cut) into pieces of at most ``chunk_size`` rows and
padded with zero-weight rows to exactly ``chunk_size``, so one compiled shape
serves every chunk. A first pass (:func:`survey`) validates every chunk (errors
name the chunk and row, values are checked in the dtype the fit computes in)
and counts the samples; every later pass (:func:`read_chunk`) is checked
against it: the same rows per chunk, the same number of chunks, finite
values, and an unchanged file behind a memory map. Rows copied out of a
read-only memory map are released from the process right away
(``madvise(MADV_DONTNEED)``; they stay in the page cache), so the resident
memory of a pass is about one chunk, not the file.

>>> import numpy as np
>>> src = open_source(np.arange(10.0).reshape(5, 2))
>>> s = survey(src, 2)
>>> s.n_samples, s.n_chunks, s.layout.chunk_size
(5, 3, 2)
>>> x, w = read_chunk(src, s, 2)
>>> x.tolist(), w.tolist()
([[8.0, 9.0], [0.0, 0.0]], [1.0, 0.0])
"""

from __future__ import annotations

import os
from typing import Callable, Iterator, NamedTuple

import numpy as np
from scipy import sparse

from jaxmix.data.pages import MappedPages
from jaxmix.numerics import float_dtype


class Layout(NamedTuple):
    """Shape of every chunk a pass yields (static: it fixes the compiled shapes)."""
    chunk_size: int
    n_features: int
    dtype: str          # compute dtype: float64 with jax_enable_x64 and float64 data


class Survey(NamedTuple):
    """What the first pass learns (later passes are checked against it)."""
    layout: Layout
    n_samples: int      # rows
    n_chunks: int       # chunks per pass
    total_weight: float
    n_positive: int     # rows with positive weight
    lo: np.ndarray      # (d,) per-feature minimum
    hi: np.ndarray      # (d,) per-feature maximum
    starts: tuple       # first row of every chunk, and n at the end


class ArraySource:
    """An in-memory, memory-mapped or sparse ``(n, d)`` array: random access
    by chunk (a sparse one's rows come out dense)."""

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
        self.x_pages, self.w_pages = MappedPages.of(x), MappedPages.of(self.w)
        self.files = [(f, _stamp(f)) for f in {_file_of(x), _file_of(self.w)} - {None}]

    @property
    def n_features(self) -> int:
        return self.x.shape[1]

    def pieces(self, size: int) -> Iterator[tuple]:
        for start in range(0, self.x.shape[0], size):
            yield self.rows(slice(start, start + size))

    def rows(self, index, release: bool = True) -> tuple:
        """``(x[index], w[index] or None)`` copied out of the array (a sparse
        one's rows made dense); pages of a read-only memory map are released
        after the copy (unless not ``release``: rows drawn at random on every
        step touch pages all over the file, and releasing would drop them
        all each time). A memory-mapped file is first checked to be as it
        was when the source was opened (a file truncated under its map would
        kill the process on access)."""
        self.check_unchanged()
        out = []
        for a, pages in ((self.x, self.x_pages), (self.w, self.w_pages)):
            part = None if a is None else a[index]
            out.append(part.toarray() if sparse.issparse(part) else
                       None if part is None else np.array(part))
            if pages is not None and release:
                pages.release(a, index)
        return tuple(out)


    def check_unchanged(self):
        """``ValueError`` if a file behind the arrays changed size or
        modification time since the source was opened."""
        for path, stamp in self.files:
            now = _stamp(path)
            if now != stamp:
                raise ValueError(
                    f"{self.name}: the file {path!r} changed while the fit was reading it "
                    f"(size, modification time {stamp} -> {now}); a memory-mapped file must "
                    "stay unchanged until the fit returns")


def _file_of(a):
    """The file behind a ``np.memmap`` (``None`` for other arrays)."""
    return getattr(a, "filename", None) if isinstance(a, np.memmap) else None


def _stamp(path):
    """``(size, modification time in ns)`` of ``path``; ``None`` if it is gone."""
    try:
        st = os.stat(path)
    except OSError:
        return None
    return st.st_size, st.st_mtime_ns


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
    if sparse.issparse(source):
        return ArraySource(sparse.csr_matrix(source), sample_weight)
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
    ``.npy`` file, an ``np.memmap``, a SciPy sparse matrix (dense one chunk
    at a time), a callable returning chunks, or a source
    made by :func:`open_source` (which also streams an in-memory array)."""
    return (isinstance(x, (str, os.PathLike, np.memmap, ArraySource, CallableSource))
            or sparse.issparse(x) or callable(x))


def random_access(x) -> bool:
    """Whether source ``x`` can be read by rows in any order (arrays, memory
    maps, ``.npy`` paths, sparse matrices; not callables or iterators)."""
    return (isinstance(x, (str, os.PathLike, np.memmap, ArraySource)) or sparse.issparse(x))


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
    n = n_pos = longest = 0
    total, starts, lo, hi = 0.0, [], None, None
    d, dtype = src.n_features, None
    for i, (x, w) in enumerate(src.pieces(size)):
        d = check_chunk(x, w, i, d, n, src.name)
        dtype = x.dtype if dtype is None else np.result_type(dtype, x.dtype)
        starts.append(n)
        n += x.shape[0]
        longest = max(longest, x.shape[0])
        total += float(x.shape[0] if w is None else np.sum(w, dtype=np.float64))
        n_pos += x.shape[0] if w is None else int(np.count_nonzero(w))
        lo = _fold(np.minimum, lo, x.min(axis=0))
        hi = _fold(np.maximum, hi, x.max(axis=0))
    if n == 0:
        raise ValueError(f"{src.name} yielded no samples")
    if total <= 0:
        raise ValueError(f"sample_weight of {src.name}: every weight is zero; give some samples "
                         "a positive weight")
    layout = Layout(int(chunk_size or longest), int(d), float_dtype(dtype).name)
    return Survey(layout, n, len(starts), total, n_pos, lo, hi, tuple(starts) + (n,))


def _fold(op, acc, value):
    value = np.asarray(value, np.float64)
    return value if acc is None else op(acc, value)


def check_chunk(x, w, i: int, d, first_row: int, name: str, dtype=None) -> int:
    """Validate chunk ``i`` (rows from ``first_row``) in the compute ``dtype``
    (default: the one its own dtype computes in); returns ``d``."""
    where = f"{name}: chunk {i} (rows {first_row}..{first_row + len(x) - 1})"
    if x.ndim != 2 or x.shape[0] == 0:
        raise ValueError(f"{where} must be a non-empty 2-D array, got shape {x.shape}")
    if d is not None and x.shape[1] != d:
        raise ValueError(f"{where} has {x.shape[1]} features, the data {d}")
    _check_dtype(x.dtype, where)
    dtype = float_dtype(x.dtype) if dtype is None else dtype
    with np.errstate(over="ignore", invalid="ignore"):
        bad = ~np.all(np.isfinite(x.astype(dtype)), axis=1)
    if bad.any():
        raise ValueError(f"{where} contains NaN or infinity (in {np.dtype(dtype).name}) in row "
                         f"{first_row + int(np.argmax(bad))}; drop or impute such rows first")
    if w is not None:
        _check_chunk_weights(w, x.shape[0], where, dtype)
    return x.shape[1]


def _check_chunk_weights(w, m: int, where: str, dtype):
    if w.shape != (m,) or w.dtype.kind not in "biuf":
        raise ValueError(f"{where}: sample_weight must be numbers of shape ({m},), got shape "
                         f"{w.shape} dtype {w.dtype}")
    with np.errstate(over="ignore", invalid="ignore"):
        cast = w.astype(dtype)
        finite = bool(np.all(np.isfinite(cast))) and bool(np.isfinite(np.sum(cast)))
    if not finite or np.any(w < 0):
        raise ValueError(f"{where}: sample_weight must be finite, non-negative (finite in "
                         f"{np.dtype(dtype).name}, and so must its sum); rescale the weights "
                         "if they are finite but large")


def pad(x, w, layout: Layout) -> tuple:
    """One chunk as ``(x (chunk_size, d), w (chunk_size,))`` in the compute
    dtype, zero rows of zero weight at the end."""
    size, m = layout.chunk_size, x.shape[0]
    xp = np.zeros((size, layout.n_features), layout.dtype)
    wp = np.zeros((size,), layout.dtype)
    xp[:m] = x
    wp[:m] = 1 if w is None else w
    return xp, wp


def read_chunk(src, info: Survey, i: int) -> tuple:
    """Chunk ``i`` of a later pass, checked against the first pass (its rows,
    values and features; for memory maps, the file) and padded. Array sources
    are read by random access, callables in order."""
    layout = info.layout
    start, stop = info.starts[i], info.starts[i + 1]
    if src.sequential:
        x, w = _next_piece(src, info, i)
    else:
        x, w = src.rows(slice(start, stop))
    if x.shape[0] != stop - start:
        raise ValueError(f"{src.name}: chunk {i} has {x.shape[0]} rows on this pass, "
                         f"{stop - start} on the first; it must yield the same data on every "
                         "pass")
    check_chunk(x, w, i, layout.n_features, start, src.name, layout.dtype)
    return pad(x, w, layout)


def _next_piece(src, info: Survey, i: int) -> tuple:
    if i == 0:
        src.cursor = src.pieces(info.layout.chunk_size)
    try:
        piece = next(src.cursor)
    except StopIteration:
        raise ValueError(f"{src.name} yielded fewer chunks than on its first pass "
                         f"(ended before chunk {i}); it must yield the same data on every "
                         "pass") from None
    if i == info.n_chunks - 1 and next(src.cursor, None) is not None:
        raise ValueError(f"{src.name} yielded more than the {info.n_chunks} chunks of its "
                         "first pass; it must yield the same data on every pass")
    return piece


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
