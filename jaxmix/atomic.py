"""Atomic file writes: a destination holds either its old content or the
complete new content, never a truncated mix.

Every file jaxmix writes (models, reports, tables, figures) goes through
:func:`atomic_write`: the content goes to a temporary file in the same
folder, is flushed to disk (``fsync``), and then renamed over the
destination (``os.replace``, atomic on POSIX and Windows). If writing fails
part way (an exception, a full disk, an interrupt) the temporary file is
removed and the previous file is untouched. A new file gets the permissions
an ordinary ``open`` would give it; a replaced file keeps its own.

>>> import os, tempfile
>>> folder = tempfile.mkdtemp()
>>> write_text(os.path.join(folder, "a.txt"), "hello")
>>> open(os.path.join(folder, "a.txt")).read(), os.listdir(folder)
('hello', ['a.txt'])
"""

from __future__ import annotations

import contextlib
import os
import stat
import tempfile


def _mode_for(path: str) -> int:
    """The permission bits ``path`` keeps (if it exists) or would get from ``open``."""
    try:
        return stat.S_IMODE(os.stat(path).st_mode)
    except FileNotFoundError:
        umask = os.umask(0)
        os.umask(umask)
        return 0o666 & ~umask


def _sync_folder(folder: str) -> None:
    """Make the rename durable (POSIX; a no-op where folders cannot be opened)."""
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


@contextlib.contextmanager
def atomic_write(path, mode: str = "wb"):
    """A file object to write ``path``'s new content into (``mode`` ``"wb"``
    or ``"w"``); the destination is replaced only when the block completes."""
    if mode not in ("wb", "w"):
        raise ValueError(f"mode must be 'wb' or 'w', got {mode!r}")
    path = os.fspath(path)
    folder = os.path.dirname(os.path.abspath(path))
    permissions = _mode_for(path)
    fd, tmp = tempfile.mkstemp(prefix=f".{os.path.basename(path)}.", suffix=".tmp",
                               dir=folder)
    try:
        with os.fdopen(fd, mode) as f:
            yield f
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, permissions)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise
    _sync_folder(folder)


def write_text(path, text: str) -> None:
    """``path`` atomically replaced by ``text`` (UTF-8)."""
    with atomic_write(path, "wb") as f:
        f.write(text.encode("utf-8"))
