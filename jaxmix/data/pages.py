"""The pages of a read-only memory map, released from the process after a
chunk is copied out (:class:`MappedPages`, used by
:class:`jaxmix.data.source.ArraySource`): a pass over a memory-mapped file
then holds about one chunk in resident memory, not the file.
"""

from __future__ import annotations

import mmap

import numpy as np


class MappedPages:
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
