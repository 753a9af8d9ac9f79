"""A command's output folder holds a whole run's files or none of them.

Files are written into a hidden folder beside ``--out`` and moved into it
(each by an atomic rename) only when the run succeeded; a failed or
interrupted run removes its files and any folder it created, so it leaves
neither an empty folder nor a half-written set behind. Files already in
``--out`` stay unless the run replaces them.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from pathlib import Path

from jaxmix.cli.data import UsageError


def _missing_ancestors(folder: Path) -> list:
    """``folder`` and its ancestors that do not exist yet, outermost first."""
    missing = []
    while not folder.exists() and folder != folder.parent:
        missing.append(folder)
        folder = folder.parent
    return missing[::-1]


@contextlib.contextmanager
def staged(out: Path):
    """Yields the folder to write into; its files land in ``out`` on success."""
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise UsageError(f"--out {out}: is a file; give a folder")
    parent = out.absolute().parent
    created = _missing_ancestors(parent)
    try:
        parent.mkdir(parents=True, exist_ok=True)
        stage = Path(tempfile.mkdtemp(prefix=f".{out.name}.", suffix=".partial", dir=parent))
    except OSError as err:
        _remove_empty(created)
        raise UsageError(f"--out {out}: cannot write there ({err}); choose another "
                         "folder") from None
    try:
        yield stage
        out.mkdir(exist_ok=True)
        for f in sorted(stage.iterdir()):
            os.replace(f, out / f.name)
    finally:
        shutil.rmtree(stage, ignore_errors=True)
        if not out.exists():
            _remove_empty(created)


def _remove_empty(folders) -> None:
    for folder in reversed(folders):
        with contextlib.suppress(OSError):
            folder.rmdir()
