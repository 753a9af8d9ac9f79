"""Data placements and the one reduction over them: chunks in memory
(:class:`Chunked`), chunks sharded over devices (:func:`data_mesh`,
:func:`shard`), and chunk sources streamed from the host (:func:`open_source`)."""

from jaxmix.data.chunked import Chunked, chunk, chunk_rows
from jaxmix.data.reduce import reduce
from jaxmix.data.sharding import data_mesh, shard
from jaxmix.data.source import open_source

__all__ = ["Chunked", "chunk", "chunk_rows", "data_mesh", "open_source", "reduce", "shard"]
