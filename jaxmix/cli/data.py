"""Loading and checking the data files the ``jaxmix`` command reads.

``.npy`` (one 2-D or 1-D numeric array), ``.npz`` (one array, or the one
named by ``--key``) and ``.csv`` (comma-separated numbers, an optional header
line, ``#`` comments; an empty field or ``nan``/``NA``/``null`` is missing).
Every problem raises :class:`UsageError` with the file, the place and the fix.
"""

from __future__ import annotations

import csv
import os
import zipfile
from typing import NamedTuple

import numpy as np

SUFFIXES = (".npy", ".npz", ".csv")
MISSING = {"", "nan", "na", "n/a", "null", "none"}


class UsageError(ValueError):
    """Bad arguments or bad input: the command exits with status 2."""


class Data(NamedTuple):
    """A loaded data set."""
    x: np.ndarray        # (n, d) float64, finite
    notes: list          # things the user should know (dropped rows, reshapes)


def load(path, *, key: str | None = None, delimiter: str = ",",
         drop_nan: bool = False) -> Data:
    """Read ``path`` into a finite ``(n, d)`` float64 array (see the module docstring)."""
    path = os.fspath(path)
    suffix = os.path.splitext(path)[1].lower()
    if suffix not in SUFFIXES:
        raise UsageError(f"DATA {path!r}: unsupported file type {suffix or '(none)'!r}; "
                         f"give a {', '.join(SUFFIXES)} file")
    if not os.path.exists(path):
        raise UsageError(f"DATA {path!r}: no such file; check the path")
    if os.path.isdir(path):
        raise UsageError(f"DATA {path!r} is a directory; give a data file")
    if suffix == ".csv":
        (x, lines), notes = _read_csv(path, delimiter), []
    else:
        x, notes = _as_matrix(path, _read_array(path, suffix, key))
        lines = None
    x, dropped = _finite_rows(path, x, lines, drop_nan)
    return Data(x, notes + dropped)


def _read_array(path: str, suffix: str, key: str | None) -> np.ndarray:
    try:
        if suffix == ".npy":
            if key is not None:
                raise UsageError(f"--key {key!r} applies to .npz files only; drop it")
            return np.load(path, allow_pickle=False)
        with np.load(path, allow_pickle=False) as archive:
            return _pick(path, archive, key)
    except UsageError:
        raise
    except (OSError, EOFError, ValueError, zipfile.BadZipFile) as err:
        raise UsageError(f"DATA {path!r} is not a readable {suffix} file (truncated, corrupt, "
                         f"or holding Python objects): {err}") from None


def _pick(path: str, archive, key: str | None) -> np.ndarray:
    names = list(archive.files)
    if key is not None:
        if key not in names:
            raise UsageError(f"--key {key!r}: {path!r} has no array of that name; "
                             f"it holds {names}")
        return archive[key]
    if len(names) != 1:
        raise UsageError(f"DATA {path!r} holds {len(names)} arrays {names}; choose one "
                         "with --key NAME")
    return archive[names[0]]


def _as_matrix(path: str, a: np.ndarray):
    if a.dtype.kind not in "biuf":
        raise UsageError(f"DATA {path!r}: the array has dtype {a.dtype}, not numbers; "
                         "save a numeric array")
    notes = []
    if a.ndim == 1:
        a = a.reshape(-1, 1)
        notes.append(f"{path}: 1-D array read as {a.shape[0]} samples of one feature")
    if a.ndim != 2 or a.shape[0] == 0 or a.shape[1] == 0:
        raise UsageError(f"DATA {path!r}: expected a 2-D array (n_samples, n_features) with "
                         f"at least one sample, got shape {a.shape}")
    return np.asarray(a, np.float64), notes


def _cell(text: str) -> float:
    """A CSV field as a float (NaN when missing); ``ValueError`` if it is not a number."""
    text = text.strip()
    if text.lower() in MISSING:
        return np.nan
    return float(text)


def _numeric_row(fields) -> list | None:
    try:
        return [_cell(f) for f in fields]
    except ValueError:
        return None


def _read_csv(path: str, delimiter: str):
    rows, lines, width = [], [], None
    try:
        with open(path, newline="", encoding="utf-8") as f:
            for line_no, fields in enumerate(csv.reader(f, delimiter=delimiter), start=1):
                if not fields or (len(fields) == 1 and not fields[0].strip()) or \
                        fields[0].lstrip().startswith("#"):
                    continue
                values = _numeric_row(fields)
                if values is None and not rows and width is None:
                    width = len(fields)  # a header line: names, no numbers
                    continue
                if values is None:
                    raise UsageError(_bad_cell(path, line_no, fields))
                if width is not None and len(values) != width:
                    raise UsageError(f"DATA {path!r}, line {line_no}: {len(values)} fields, "
                                     f"expected {width} (as on the first line); fix the row")
                width = len(values)
                rows.append(values)
                lines.append(line_no)
    except UnicodeDecodeError as err:
        raise UsageError(f"DATA {path!r} is not a UTF-8 text file ({err}); give a CSV "
                         "file, or save the array with numpy.save as .npy") from None
    except csv.Error as err:
        raise UsageError(f"DATA {path!r} could not be parsed as CSV: {err}") from None
    if not rows:
        raise UsageError(f"DATA {path!r} has no data rows; it needs at least one line of "
                         f"numbers separated by {delimiter!r}")
    return np.array(rows, np.float64), lines


def _bad_cell(path: str, line_no: int, fields) -> str:
    for column, text in enumerate(fields, start=1):
        try:
            _cell(text)
        except ValueError:
            return (f"DATA {path!r}, line {line_no}, column {column}: {text.strip()!r} is not "
                    "a number; fix the value (only the first line may be a header), or check "
                    "--delimiter")
    return f"DATA {path!r}, line {line_no} could not be parsed"


def _finite_rows(path: str, x: np.ndarray, lines, drop_nan: bool):
    """``(x without non-finite rows, notes)``; ``lines``: CSV line numbers, or None."""
    ok = np.all(np.isfinite(x), axis=1)
    if ok.all():
        return x, []
    bad = np.flatnonzero(~ok)
    shown = [f"line {lines[i]}" if lines else f"row {i}" for i in bad[:5]]
    listed = ", ".join(shown) + (", ..." if bad.size > 5 else "")
    if not drop_nan:
        raise UsageError(f"DATA {path!r} has {bad.size} row(s) with missing, NaN or infinite "
                         f"values ({listed}); drop them with --drop-nan, or fix the file")
    if not ok.any():
        raise UsageError(f"DATA {path!r}: every row has missing or non-finite values; "
                         "nothing is left after --drop-nan")
    return x[ok], [f"{path}: dropped {bad.size} row(s) with missing or non-finite values "
                   f"({listed})"]
