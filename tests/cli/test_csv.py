"""CSV reading for the ``jaxmix`` command never loses a row silently: byte-order
marks, the header rule (auto, ``--header``, ``--no-header``), strict numbers,
and one error that counts every rejected row (issue 16, class 6)."""

from __future__ import annotations

import codecs

import numpy as np
import pytest

from jaxmix.cli.data import UsageError, _number, load
from jaxmix.cli.main import main

ROWS = "".join(f"{i},{2 * i}.5\n" for i in range(200))
X = np.array([[i, 2 * i + 0.5] for i in range(200)])


def csv_file(tmp_path, content, name="d.csv"):
    path = tmp_path / name
    path.write_bytes(content if isinstance(content, bytes) else content.encode())
    return path


def rejected(tmp_path, content, **kw) -> str:
    with pytest.raises(UsageError) as info:
        load(csv_file(tmp_path, content), **kw)
    return str(info.value)


# ---------------------------------------------------------------------------
# encodings: a byte-order mark is honoured, never read as part of a field


@pytest.mark.parametrize("bom", [b"", codecs.BOM_UTF8])
def test_bom_before_header_and_before_numbers(tmp_path, bom):
    data = load(csv_file(tmp_path, bom + ("a,b\n" + ROWS).encode()))
    np.testing.assert_array_equal(data.x, X)
    assert data.notes == [f"{tmp_path / 'd.csv'}: header (line 1): a, b"]
    data = load(csv_file(tmp_path, bom + ROWS.encode()))
    np.testing.assert_array_equal(data.x, X)  # all 200 rows: the first is no header
    assert data.notes == []


@pytest.mark.parametrize("codec", ["utf-16", "utf-16-be", "utf-32", "utf-32-be"])
def test_utf16_and_utf32_with_bom_are_decoded(tmp_path, codec):
    text = "a,b\n" + ROWS
    raw = text.encode(codec)
    if codec.endswith("-be"):
        raw = codecs.BOM_UTF16_BE + raw if "16" in codec else codecs.BOM_UTF32_BE + raw
    data = load(csv_file(tmp_path, raw))
    np.testing.assert_array_equal(data.x, X)
    assert data.notes[0].endswith("header (line 1): a, b")


def test_utf16_without_bom_is_refused_not_misread(tmp_path):
    message = rejected(tmp_path, ROWS.encode("utf-16-le"))
    assert "d.csv', line 1: NUL characters" in message and "save it as UTF-8" in message


def test_other_encodings_are_refused_with_the_line(tmp_path):
    message = rejected(tmp_path, b"a,b\n1,2\n3,\xe94\n")  # Latin-1
    assert "line 3: not utf-8 text" in message and "save the file as UTF-8" in message


# ---------------------------------------------------------------------------
# the header: auto only when no field of the first row is a number or missing


@pytest.mark.parametrize("first, column, text", [
    ("1.0,abc", 2, "'abc'"), ("1.0,2.O", 2, "'2.O'"), ("x,3", 1, "'x'"),
    (",a", 2, "'a'"),  # an empty field is a missing value, so this is no header
    ("NA,b", 2, "'b'")])
def test_a_partly_numeric_first_row_is_an_error_not_a_header(tmp_path, first, column, text):
    message = rejected(tmp_path, first + "\n" + ROWS)
    assert f"1 of 201 row(s) rejected, at line(s) 1: line 1, column {column}: {text} is " \
           "not a number" in message
    assert "pass --header if it is a header" in message
    data = load(tmp_path / "d.csv", header=True)  # the explicit flag takes it as a header
    np.testing.assert_array_equal(data.x, X)
    assert data.notes == [f"{tmp_path / 'd.csv'}: header (line 1, --header): "
                          f"{', '.join(f.strip() for f in first.split(','))}"]


def test_a_row_of_missing_values_is_data_not_a_header(tmp_path):
    message = rejected(tmp_path, "NA,nan\n" + ROWS)
    assert "1 row(s) with missing, NaN or infinite values (line 1)" in message
    data = load(tmp_path / "d.csv", drop_nan=True)
    np.testing.assert_array_equal(data.x, X)
    assert "dropped 1 row(s)" in data.notes[0] and "header" not in data.notes[0]


def test_header_is_the_first_record_after_comments_and_blank_lines(tmp_path):
    data = load(csv_file(tmp_path, '# made by hand, "quoted\n\n"first, x",y\n1,2\n\n3,4\n'))
    np.testing.assert_array_equal(data.x, [[1, 2], [3, 4]])
    assert data.notes[0].endswith("header (line 3): first, x, y")


def test_no_header_flag(tmp_path):
    message = rejected(tmp_path, "a,b\n" + ROWS, header=False)
    assert "line 1, column 1: 'a' is not a number" in message
    assert "with --no-header the first line is data" in message
    np.testing.assert_array_equal(load(csv_file(tmp_path, ROWS), header=False).x, X)


def test_header_flag_skips_a_numeric_first_row_and_says_so(tmp_path):
    data = load(csv_file(tmp_path, "1,2\n" + ROWS), header=True)
    np.testing.assert_array_equal(data.x, X)
    assert data.notes == [f"{tmp_path / 'd.csv'}: header (line 1, --header): 1, 2"]
    message = rejected(tmp_path, "1,2\n", header=True)
    assert "has no data rows after the header on line 1" in message


def test_header_field_count_binds_the_rows(tmp_path):
    message = rejected(tmp_path, "a,b,c\n1,2\n")
    assert "line 2: 2 fields, expected 3 (as on line 1)" in message


def test_header_flag_is_for_csv_only(tmp_path):
    np.save(tmp_path / "x.npy", np.ones((3, 2)))
    with pytest.raises(UsageError, match="apply to .csv files only"):
        load(tmp_path / "x.npy", header=True)


# ---------------------------------------------------------------------------
# numbers: what a CSV of numbers holds, nothing Python-only


@pytest.mark.parametrize("text, value", [
    ("3", 3.0), ("-3", -3.0), ("+2.5", 2.5), (".5", 0.5), ("5.", 5.0), ("007", 7.0),
    ("1e3", 1e3), ("1E-03", 1e-3), ("-2.5e+2", -250.0), ("  7\t", 7.0), ("-0", 0.0)])
def test_numbers_accepted(tmp_path, text, value):
    assert load(csv_file(tmp_path, f"a,b\n{text},1\n")).x[0, 0] == value


@pytest.mark.parametrize("text, value", [
    ("inf", np.inf), ("-Inf", -np.inf), ("+infinity", np.inf), ("-INFINITY", -np.inf)])
def test_infinity_spelled_out_is_a_non_finite_value(tmp_path, text, value):
    assert _number(text) == value
    data = load(csv_file(tmp_path, f"a,b\n{text},1\n5,6\n"), drop_nan=True)
    np.testing.assert_array_equal(data.x, [[5, 6]])
    assert "dropped 1 row(s) with missing or non-finite values (line 2)" in data.notes[-1]


def test_infinite_values_are_rows_with_non_finite_values(tmp_path):
    message = rejected(tmp_path, "a,b\n1,2\n-Infinity,4\n")
    assert "1 row(s) with missing, NaN or infinite values (line 3)" in message


@pytest.mark.parametrize("text", ["", "nan", "NaN", "NA", "n/a", "null", "None", "  "])
def test_missing_tokens(tmp_path, text):
    data = load(csv_file(tmp_path, f"a,b\n{text},1\n5,6\n"), drop_nan=True)
    np.testing.assert_array_equal(data.x, [[5, 6]])


@pytest.mark.parametrize("text", [
    "1_000", "0x10", "0x1p3", "\uff11", "\u0663", "1.5d3", "1e", ".", "+", "1 2", "--1",
    "nan1", "infin", "1\u00a0", "\ufeff1", "１.５"])
def test_python_only_and_other_non_numbers_refused(tmp_path, text):
    message = rejected(tmp_path, f"a,b\n1,2\n{text},3\n")
    assert f"line 3, column 1: {text.strip(' ')!r} is not a number" in message


def test_decimal_comma_is_refused_not_split(tmp_path):
    message = rejected(tmp_path, "a;b\n1,5;2\n", delimiter=";")
    assert "line 2, column 1: '1,5' is not a number" in message and "(now ';')" in message


# ---------------------------------------------------------------------------
# every rejected row is counted and the first are listed, in one error


def test_every_rejected_row_is_reported(tmp_path):
    lines = ["a,b"] + [f"{i},{i}" for i in range(10)]
    lines[3], lines[5], lines[6] = "2,oops", "4,5,6", "5"
    lines += ["1_000,1", "x,y", "9,9,9"]
    message = rejected(tmp_path, "\n".join(lines) + "\n")
    assert "6 of 13 row(s) rejected, at line(s) 4, 6, 7, 12, 13, ...: " in message
    assert ("line 4, column 2: 'oops' is not a number; line 6: 3 fields, expected 2 (as on "
            "line 1); line 7: 1 fields, expected 2 (as on line 1); fix or delete those rows"
            in message)


def test_line_numbers_count_comments_blank_lines_and_quoted_line_breaks(tmp_path):
    message = rejected(tmp_path, '"a\nb",c\n# note\n\n1,2\n3,bad\n')
    assert "at line(s) 6: line 6, column 2: 'bad'" in message


def test_an_open_quote_is_named(tmp_path):
    message = rejected(tmp_path, 'a,b\n1,"2\n3,4\n')
    assert "line 2, column 2: '2\\n3,4' is not a number (a quote left open" in message


def test_a_quote_in_a_comment_swallows_no_rows(tmp_path):
    data = load(csv_file(tmp_path, '# a,"b\n1,2\n3,4\n# c"\n5,6\n'))
    np.testing.assert_array_equal(data.x, [[1, 2], [3, 4], [5, 6]])


def test_quoted_fields_and_delimiter(tmp_path):
    data = load(csv_file(tmp_path, '"a";"b"\n"1.5";2\n3;" 4 "\n'), delimiter=";")
    np.testing.assert_array_equal(data.x, [[1.5, 2], [3, 4]])
    assert data.notes[0].endswith("header (line 1): a, b")


@pytest.mark.parametrize("delimiter", ["\\t", "", '"', "ab"])
def test_bad_delimiter(tmp_path, delimiter):
    assert "give one character" in rejected(tmp_path, "1,2\n", delimiter=delimiter)


# ---------------------------------------------------------------------------
# the command: the flags reach the reader, the header is shown


def test_command_header_flags(tmp_path, capsys):
    csv_file(tmp_path, "a,b\n" + ROWS)
    assert main(["fit", str(tmp_path / "d.csv"), "--no-header", "--out", str(tmp_path)]) == 2
    assert "with --no-header the first line is data" in capsys.readouterr().err
    np.save(tmp_path / "x.npy", np.ones((3, 2)))
    assert main(["fit", str(tmp_path / "x.npy"), "--header"]) == 2
    assert "apply to .csv files only" in capsys.readouterr().err


def test_command_prints_the_header_note(tmp_path, capsys):
    path = csv_file(tmp_path, codecs.BOM_UTF8 + ("a,b\n" + ROWS).encode())
    code = main(["fit", str(path), "--k", "1", "--restarts", "1", "--covariance", "spherical",
                 "--quiet", "--no-compilation-cache", "--out", str(tmp_path / "out")])
    err = capsys.readouterr().err
    assert code == 0, err
    assert f"note: {path}: header (line 1): a, b" in err
