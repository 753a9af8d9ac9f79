"""Loading and checking the data files the ``jaxmix`` command reads.

``.npy`` (one 2-D or 1-D numeric array), ``.npz`` (one array, or the one
named by ``--key``) and ``.csv``: UTF-8 text (a UTF-8, UTF-16 or UTF-32
byte-order mark is honoured), one record a line, ``--delimiter``-separated,
quotes as in the :mod:`csv` module. Blank lines and lines starting with ``#``
are skipped. A field is a plain decimal number (``-1``, ``2.5``, ``.5e-3``,
spaces around it allowed), ``inf``/``infinity`` with a sign or none, or missing
(empty, ``nan``, ``NA``, ``n/a``, ``null``, ``none``); anything else, such as
``1_000``, ``0x1p3``, ``1,5`` or non-ASCII digits, is not a number. The first
record is a header when none of its fields is a number or a missing value (a
row of ``NA`` is data), or always with ``header=True`` (``--header``), never
with ``header=False`` (``--no-header``); a header is named in the notes.
A row that is not numbers, or has a different number of fields than the first
record, is never skipped: all of them are counted in one error.
Every problem raises :class:`UsageError` with the file, the place and the fix.
"""

from __future__ import annotations

import codecs
import csv
import functools
import io
import os
import re
from typing import NamedTuple

import numpy as np

from jaxmix.cli.columns import ColumnError, resolve
from jaxmix.io.untrusted import npy_array, npz_arrays

SUFFIXES = (".npy", ".npz", ".csv")
MAX_ARRAYS = 4096  # members of a data .npz
MISSING = {"", "nan", "na", "n/a", "null", "none"}
NUMBER = re.compile(r"[+-]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:[eE][+-]?[0-9]+)?")
INFINITE = re.compile(r"([+-]?)inf(?:inity)?", re.IGNORECASE)
BLANKS = " \t\r\n\f\v"  # ASCII spaces only: a no-break space is not a blank
BOMS = ((codecs.BOM_UTF32_LE, "utf-32-le"), (codecs.BOM_UTF32_BE, "utf-32-be"),
        (codecs.BOM_UTF8, "utf-8"), (codecs.BOM_UTF16_LE, "utf-16-le"),
        (codecs.BOM_UTF16_BE, "utf-16-be"))  # UTF-32 LE first: it starts like UTF-16 LE
SHOWN = 5  # rows listed in a message


class UsageError(ValueError):
    """Bad arguments or bad input: the command exits with status 2."""


class Data(NamedTuple):
    """A loaded data set."""
    x: np.ndarray        # (n, d) float64, finite: the kept columns
    notes: list          # things the user should know (header, dropped rows, reshapes)
    names: list | None = None    # the file's header (every column), if it has one
    columns: list | None = None  # the file's columns in x, in order


def load(path, *, key: str | None = None, delimiter: str = ",", header: bool | None = None,
         drop_nan: bool = False, columns=None, drop=None) -> Data:
    """Read ``path`` into a finite ``(n, d)`` float64 array (see the module docstring).

    ``header`` (``.csv`` only): True, the first record is a header; False, it is
    data; None (default), a header when none of its fields is a number or missing.
    ``columns`` / ``drop``: lists of header names or 0-based indices
    (:mod:`jaxmix.cli.columns`); columns not kept are never parsed.
    """
    path = os.fspath(path)
    suffix = os.path.splitext(path)[1].lower()
    if suffix not in SUFFIXES:
        raise UsageError(f"DATA {path!r}: unsupported file type {suffix or '(none)'!r}; "
                         f"give a {', '.join(SUFFIXES)} file")
    if not os.path.exists(path):
        raise UsageError(f"DATA {path!r}: no such file; check the path")
    if os.path.isdir(path):
        raise UsageError(f"DATA {path!r} is a directory; give a data file")
    pick = functools.partial(_selection, columns=columns, drop=drop, path=path)
    if suffix == ".csv":
        x, lines, notes, names, keep = _read_csv(path, delimiter, header, pick)
    elif header is not None:
        raise UsageError("--header/--no-header apply to .csv files only; drop it")
    else:
        x, notes = _as_matrix(path, _read_array(path, suffix, key))
        names, keep, lines = None, pick(None, x.shape[1]), None
        x = x[:, keep]
    x, dropped = _finite_rows(path, x, lines, drop_nan)
    return Data(x, notes + dropped, names, keep)


def _selection(names, width: int, *, columns, drop, path):
    try:
        return resolve(columns, drop, names, width, path)
    except ColumnError as err:
        raise UsageError(str(err)) from None


def _read_array(path: str, suffix: str, key: str | None) -> np.ndarray:
    """The one array of a ``.npy`` or ``.npz`` file, read as untrusted input
    (:mod:`jaxmix.io.untrusted`: no pickle, nothing allocated from a size the
    file declares)."""
    if suffix == ".npy" and key is not None:
        raise UsageError(f"--key {key!r} applies to .npz files only; drop it")
    what = f"{suffix} file of numbers"
    try:
        if suffix == ".npy":
            return npy_array(path, what)
        arrays = npz_arrays(path, MAX_ARRAYS, what, pick=lambda names: [_pick(path, names, key)])
    except UsageError:
        raise
    except ValueError as err:
        raise UsageError(f"DATA {err}") from None
    return next(iter(arrays.values()))


def _pick(path: str, names, key: str | None) -> str:
    if key is not None:
        if key not in names:
            raise UsageError(f"--key {key!r}: {path!r} has no array of that name; "
                             f"it holds {names}")
        return key
    if len(names) != 1:
        raise UsageError(f"DATA {path!r} holds {len(names)} arrays {names}; choose one "
                         "with --key NAME")
    return names[0]


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


def _encoding(raw: bytes):
    """``(codec, bytes after the byte-order mark)``: UTF-8 unless a BOM says otherwise."""
    for bom, codec in BOMS:
        if raw.startswith(bom):
            return codec, raw[len(bom):]
    return "utf-8", raw


def _text(path: str) -> str:
    """The file decoded (UTF-8, or the UTF-8/16/32 its byte-order mark names)."""
    with open(path, "rb") as f:
        codec, body = _encoding(f.read())
    try:
        text = body.decode(codec)
    except UnicodeDecodeError as err:
        line = body[:err.start].decode(codec, "replace").count("\n") + 1
        raise UsageError(f"DATA {path!r}, line {line}: not {codec} text ({err.reason}); save "
                         "the file as UTF-8, or the array with numpy.save as .npy") from None
    if "\0" in text:
        line = text.count("\n", 0, text.index("\0")) + 1
        raise UsageError(f"DATA {path!r}, line {line}: NUL characters, so not a UTF-8 text "
                         "file (UTF-16 without a byte-order mark, or binary); save it as "
                         "UTF-8")
    return text


def _lines(text: str):
    """The physical lines, a ``#`` comment line blanked (so that a quote in it opens nothing)."""
    for line in io.StringIO(text, newline=""):
        yield "\n" if line.lstrip().startswith("#") else line


def _check_delimiter(delimiter: str) -> None:
    if len(delimiter) != 1 or delimiter in "\"\r\n#":
        raise UsageError(f"--delimiter {delimiter!r}: give one character other than a quote, "
                         "'#' or a line break (a tab: --delimiter $'\\t')")


def _records(path: str, delimiter: str):
    """``(line number, fields)`` of each CSV record; blank and comment lines left out."""
    _check_delimiter(delimiter)
    reader = csv.reader(_lines(_text(path)), delimiter=delimiter)
    start = 1
    try:
        for fields in reader:
            if fields and not (len(fields) == 1 and not fields[0].strip(BLANKS)):
                yield start, fields
            start = reader.line_num + 1
    except csv.Error as err:
        raise UsageError(f"DATA {path!r}, line {start}: could not be parsed as CSV ({err}); "
                         "check the quotes") from None


def _number(text: str):
    """A CSV field as a float (NaN when missing, +-inf spelled out), or None if it is none."""
    text = text.strip(BLANKS)
    if NUMBER.fullmatch(text):
        return float(text)
    if text.lower() in MISSING:
        return np.nan
    infinite = INFINITE.fullmatch(text)
    return None if infinite is None else float(infinite.group(1) + "inf")


def _shown(text: str) -> str:
    text = text.strip(BLANKS)
    return repr(text if len(text) <= 40 else text[:37] + "...")


def _some(labels, total: int) -> str:
    """The first few of ``total`` labels, comma-separated."""
    return ", ".join(labels[:SHOWN]) + (", ..." if total > SHOWN else "")


class _Sheet:
    """The records of one CSV file as they are read: numbers kept, every other row counted.

    ``header``: True (the first record is the header), False (it is data) or None
    (a header when none of its fields is a number or a missing value).
    """

    def __init__(self, path: str, header: bool | None, pick):
        self.path, self.header, self.pick = path, header, pick
        self.rows, self.lines, self.notes = [], [], []
        self.width = self.first = None       # fields per record, as on line ``first``
        self.names = self.keep = None        # the header, and the columns kept
        self.rejected, self.reasons = 0, []  # count, and the first few reasons

    def add(self, line_no: int, fields) -> None:
        if self.first is None:
            self.width, self.first = len(fields), line_no
            if self.header or (self.header is None and all(_number(f) is None for f in fields)):
                self.notes.append(self._header_note(fields))
                self.names = [f.strip(BLANKS) for f in fields]
                self.keep = self.pick(self.names, self.width)
                return
            self.keep = self.pick(None, self.width)
        kept = [fields[c] for c in self.keep] if len(fields) == self.width else fields
        values = [_number(f) for f in kept]
        reason = self._problem(line_no, fields, values)
        if reason is None:
            self.rows.append(values)
            self.lines.append(line_no)
            return
        self.rejected += 1
        if len(self.reasons) < SHOWN:
            self.reasons.append((line_no, reason))

    def _header_note(self, fields) -> str:
        names = [f.strip(BLANKS) for f in fields]
        flag = ", --header" if self.header else ""
        return f"{self.path}: header (line {self.first}{flag}): {_some(names, len(names))}"

    def _problem(self, line_no: int, fields, values) -> str | None:
        if len(fields) != self.width:
            return (f"line {line_no}: {len(fields)} fields, expected {self.width} "
                    f"(as on line {self.first})")
        for column, value in zip(self.keep, values):
            text, column = fields[column], column + 1
            if value is None:
                quote = " (a quote left open runs over line ends)" if "\n" in text else ""
                return f"line {line_no}, column {column}: {_shown(text)} is not a number{quote}"
        return None

    def result(self, delimiter: str):
        """``(x, line numbers, notes)``; every rejected row counted in one :class:`UsageError`."""
        if self.rejected:
            raise UsageError(self._rejection(delimiter))
        if not self.rows:
            header = f" after the header on line {self.first}" if self.notes else ""
            raise UsageError(f"DATA {self.path!r} has no data rows{header}; it needs at least "
                             f"one line of numbers separated by {delimiter!r}")
        return np.array(self.rows, np.float64), self.lines, self.notes, self.names, self.keep

    def _rejection(self, delimiter: str) -> str:
        total = self.rejected + len(self.rows)
        lines = _some([str(n) for n, _ in self.reasons], self.rejected)
        hint = ""
        if self.reasons[0][0] == self.first:
            hint = ("; with --no-header the first line is data" if self.header is False else
                    f"; line {self.first} is data because some of its fields are numbers or "
                    "missing values: pass --header if it is a header")
        return (f"DATA {self.path!r}: {self.rejected} of {total} row(s) rejected, at line(s) "
                f"{lines}: " + "; ".join(r for _, r in self.reasons[:3]) +
                f"; fix or delete those rows, check --delimiter (now {delimiter!r}), or leave "
                "a column of labels or text out with --drop NAME_OR_INDEX" + hint)


def _read_csv(path: str, delimiter: str, header: bool | None, pick):
    sheet = _Sheet(path, header, pick)
    for line_no, fields in _records(path, delimiter):
        sheet.add(line_no, fields)
    return sheet.result(delimiter)


def _finite_rows(path: str, x: np.ndarray, lines, drop_nan: bool):
    """``(x without non-finite rows, notes)``; ``lines``: CSV line numbers, or None."""
    ok = np.all(np.isfinite(x), axis=1)
    if ok.all():
        return x, []
    bad = np.flatnonzero(~ok)
    listed = _some([f"line {lines[i]}" if lines else f"row {i}" for i in bad[:SHOWN]],
                   bad.size)
    if not drop_nan:
        raise UsageError(f"DATA {path!r} has {bad.size} row(s) with missing, NaN or infinite "
                         f"values ({listed}); drop them with --drop-nan, or fix the file")
    if not ok.any():
        raise UsageError(f"DATA {path!r}: every row has missing or non-finite values; "
                         "nothing is left after --drop-nan")
    return x[ok], [f"{path}: dropped {bad.size} row(s) with missing or non-finite values "
                   f"({listed})"]
