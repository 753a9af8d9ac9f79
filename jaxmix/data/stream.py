"""The streamed placement: chunks read from the host during a compiled pass.

A :class:`Stream` names a registered chunk source (:mod:`jaxmix.data.source`:
an array or ``np.memmap``, a ``.npy`` path, a SciPy sparse matrix, or a
callable returning a fresh iterable of chunks). Its :meth:`Stream.reduce` runs
inside the compiled fit:
a ``lax.fori_loop`` asks the host for chunk ``c`` (an ordered
``jax.experimental.io_callback``), subtracts the centring offset on the
device and hands the chunk to the same per-chunk statistics as the in-memory
placement, so with the same chunk size a streamed fit gives the in-memory
answer up to floating-point rounding while one chunk is on the device at a
time. Random-access sources also serve rows in any order inside a compiled
loop (:meth:`Stream.gather`, :meth:`Stream.weights`: the batches of
mini-batch K-Means).

>>> import jax, jax.numpy as jnp, numpy as np
>>> from jaxmix.data.source import open_source, survey
>>> src = open_source(np.arange(10.0).reshape(5, 2))
>>> info = survey(src, 2)
>>> with registered(src, info) as token:
...     s = Stream(token, np.int32(info.n_chunks), jnp.zeros(2), info.total_weight,
...                layout=info.layout)
...     float(s.reduce(lambda x, w, c: jnp.sum(w[:, None] * x)))
45.0
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import itertools

import jax
import jax.numpy as jnp
import numpy as np
from jax.experimental import io_callback

from jaxmix.data.reduce import add, zeros
from jaxmix.data.source import Layout, check_chunk, read_chunk

_SOURCES: dict = {}
_ERRORS: dict = {}   # token -> the first exception a read of that source raised
_TOKENS = itertools.count(1)


@contextlib.contextmanager
def registered(src, info):
    """Make ``src`` (surveyed as ``info``) readable by compiled passes; yields
    its ``int32`` token. Block on the fit's result before leaving (dispatch is
    asynchronous).

    A read that raises (a check of a later pass, or the user's own iterator)
    does not raise inside the compiled computation, where XLA would replace
    the error by an opaque runtime error and keep it for the next ordered
    callback: the exception is kept, the pass goes on with empty chunks, and
    leaving the block raises the exception itself, type and message intact.
    """
    token = next(_TOKENS) % (2 ** 31 - 1)
    _SOURCES[token] = (src, info)
    try:
        yield np.int32(token)
    finally:
        _SOURCES.pop(token, None)
        error = _ERRORS.pop(token, None)
        if error is not None:
            raise error


def _guarded(token, read, what: str, empty):
    """``read(src, info)`` of the source ``token``; an exception is kept for
    :func:`registered` to raise, and ``empty`` (arrays of the right shapes)
    handed to the computation instead."""
    token = int(token)
    if token not in _ERRORS:
        src, info = _SOURCES[token]
        try:
            return read(src, info)
        except Exception as err:  # noqa: BLE001 -- re-raised by registered()
            _note(err, f"raised while reading {what} of {src.name}")
            _ERRORS[token] = err
    return empty


def _read(token, i, layout: Layout):
    i = int(i)
    return _guarded(token, lambda src, info: read_chunk(src, info, i),
                    f"chunk {i} in a streamed pass",
                    (np.zeros((layout.chunk_size, layout.n_features), layout.dtype),
                     np.zeros((layout.chunk_size,), layout.dtype)))


def _gather(token, rows, layout: Layout):
    rows = np.asarray(rows)

    def read(src, info):
        x, w = src.rows(rows, release=False)
        check_chunk(x, w, 0, layout.n_features, 0, src.name, layout.dtype)
        return (np.asarray(x, layout.dtype),
                np.ones(rows.shape, layout.dtype) if w is None else np.asarray(w, layout.dtype))
    return _guarded(token, read, f"{rows.size} sampled rows",
                    (np.zeros(rows.shape + (layout.n_features,), layout.dtype),
                     np.zeros(rows.shape, layout.dtype)))


def _weights(token, n, layout: Layout):
    def read(src, info):
        return (np.ones(n, layout.dtype) if src.w is None else
                np.asarray(src.w[:n], layout.dtype))
    return _guarded(token, read, "the sample weights", np.zeros(n, layout.dtype))


def _note(err, text: str):
    if hasattr(err, "add_note"):  # Python >= 3.11
        err.add_note(text)


@jax.tree_util.register_dataclass
@dataclasses.dataclass(frozen=True)
class Stream:
    """A registered source as seen inside ``jit``.

    Attributes:
      token: ``int32`` id of the source (see :func:`registered`).
      n_chunks: ``int32`` chunks per pass.
      offset: ``(d,)`` subtracted from every chunk (the centring offset).
      total: summed sample weight of the whole source.
      layout: chunk shape and dtype (static).
    """

    token: jax.Array
    n_chunks: jax.Array
    offset: jax.Array
    total: jax.Array
    layout: Layout = dataclasses.field(metadata=dict(static=True))

    @property
    def n_features(self) -> int:
        return self.layout.n_features

    @property
    def dtype(self):
        return jnp.dtype(self.layout.dtype)

    def total_weight(self):
        return jnp.asarray(self.total, self.dtype)

    def read(self, i):
        """Chunk ``i`` centred, ``(x (chunk, d), w (chunk,))``; read in order."""
        spec = (jax.ShapeDtypeStruct((self.layout.chunk_size, self.layout.n_features),
                                     self.layout.dtype),
                jax.ShapeDtypeStruct((self.layout.chunk_size,), self.layout.dtype))
        x, w = io_callback(functools.partial(_read, layout=self.layout), spec, self.token, i,
                           ordered=True)
        return x - self.offset, w

    def gather(self, rows):
        """Rows ``rows`` (``(m,)`` int, in any order, repeats allowed) of a
        random-access source, centred: ``(x (m, d), w (m,))``; read on the
        host (a sparse source's rows made dense), checked like chunks."""
        spec = (jax.ShapeDtypeStruct(rows.shape + (self.layout.n_features,), self.layout.dtype),
                jax.ShapeDtypeStruct(rows.shape, self.layout.dtype))
        x, w = io_callback(functools.partial(_gather, layout=self.layout), spec, self.token,
                           rows, ordered=True)
        return x - self.offset, w

    def weights(self, n: int):
        """The ``(n,)`` sample weights of a random-access source (ones when it has none)."""
        spec = jax.ShapeDtypeStruct((n,), self.layout.dtype)
        return io_callback(functools.partial(_weights, n=n, layout=self.layout), spec,
                           self.token, ordered=True)

    def reduce(self, fn, combine=add, identity=zeros):
        """See :func:`jaxmix.data.reduce.reduce`: one pass, chunks in order."""
        def apply(i):
            return fn(*self.read(i), i)

        init = identity(jax.eval_shape(apply, jnp.int32(0)))
        return jax.lax.fori_loop(0, self.n_chunks, lambda i, acc: combine(acc, apply(i)), init)
