"""The streamed placement: chunks read from the host during a compiled pass.

A :class:`Stream` names a registered chunk source (:mod:`jaxmix.data.source`:
an array or ``np.memmap``, a ``.npy`` path, or a callable returning a fresh
iterable of chunks). Its :meth:`Stream.reduce` runs inside the compiled fit:
a ``lax.fori_loop`` asks the host for chunk ``c`` (an ordered
``jax.experimental.io_callback``), subtracts the centring offset on the
device and hands the chunk to the same per-chunk statistics as the in-memory
placement, so with the same chunk size a streamed fit gives the in-memory
answer up to floating-point rounding while one chunk is on the device at a
time.

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
from jaxmix.data.source import Layout, read_chunk

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


def _read(token, i, layout: Layout):
    token, i = int(token), int(i)
    if token not in _ERRORS:
        src, info = _SOURCES[token]
        try:
            return read_chunk(src, info, i)
        except Exception as err:  # noqa: BLE001 -- re-raised by registered()
            _note(err, f"raised while reading chunk {i} of {src.name} in a streamed pass")
            _ERRORS[token] = err
    return (np.zeros((layout.chunk_size, layout.n_features), layout.dtype),
            np.zeros((layout.chunk_size,), layout.dtype))


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

    def reduce(self, fn, combine=add, identity=zeros):
        """See :func:`jaxmix.data.reduce.reduce`: one pass, chunks in order."""
        def apply(i):
            return fn(*self.read(i), i)

        init = identity(jax.eval_shape(apply, jnp.int32(0)))
        return jax.lax.fori_loop(0, self.n_chunks, lambda i, acc: combine(acc, apply(i)), init)
