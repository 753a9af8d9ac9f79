"""The ``jaxmix`` command end to end: ``main(argv)`` in-process (the jit cache
is shared between tests, so calls with equal shapes compile once) and one
subprocess run of the installed console script."""

from __future__ import annotations

import os
import pathlib
import shutil
import subprocess
import sys

import numpy as np
import pytest

from jaxmix import load_params
from jaxmix.cli import demo as cli_demo
from jaxmix.cli.main import main
from jaxmix.cli.data import UsageError, load
from jaxmix.cli.fit import parse_ks

REPO = pathlib.Path(__file__).resolve().parents[2]
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def three_blobs(n_per=100, seed=0):
    rng = np.random.default_rng(seed)
    centres = np.array([[0.0, 0.0], [8.0, 0.0], [0.0, 8.0]])
    return np.concatenate([c + rng.normal(0, 1, (n_per, 2)) for c in centres])


def write_csv(path, x, header="a,b"):
    lines = [header] + [",".join(repr(float(v)) for v in row) for row in x]
    path.write_text("\n".join(lines) + "\n")
    return path


def run(argv, capsys):
    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


def assert_png(path):
    assert path.read_bytes()[:8] == PNG_MAGIC, path


# ---------------------------------------------------------------------------
# fit


def test_fit_csv_table_model_and_figures(tmp_path, capsys):
    pytest.importorskip("matplotlib")
    data = write_csv(tmp_path / "blobs.csv", three_blobs())
    code, out, err = run(["fit", data, "--k", "1-4", "--restarts", "3", "--plot",
                          "--out", tmp_path / "out"], capsys)
    assert code == 0, err
    assert "| covariance | k | mean log-lik | BIC | AIC | converged | n_iter | time (s) |" in out
    assert "best by BIC: full, k=3" in out
    assert "| full | 3 * |" in out
    assert "[1/1] em full k=1..4" in err  # progress on stderr
    params = load_params(tmp_path / "out" / "model.npz", covariance_type="full")
    assert params.means.shape == (3, 2)
    assert np.allclose(np.sort(np.asarray(params.weights)), 1 / 3, atol=0.02)
    assert (tmp_path / "out" / "table.md").read_text().startswith("| covariance |")
    assert_png(tmp_path / "out" / "fit.png")
    assert_png(tmp_path / "out" / "criterion.png")


def test_fit_drop_nan(tmp_path, capsys):
    x = three_blobs()
    with_nan = np.insert(x, [5, 50], [[np.nan, 1.0], [2.0, np.inf]], axis=0)
    data = write_csv(tmp_path / "holes.csv", with_nan)
    code, _, err = run(["fit", data, "--k", "1-4", "--restarts", "3", "--out", tmp_path], capsys)
    assert code == 2
    assert "2 row(s) with missing, NaN or infinite values (line 7, line 53)" in err
    assert "--drop-nan" in err
    code, out, err = run(["fit", data, "--k", "1-4", "--restarts", "3", "--drop-nan",
                          "--out", tmp_path], capsys)
    assert code == 0, err
    assert "note: " in err and "dropped 2 row(s)" in err
    assert "best by BIC: full, k=3" in out


def test_fit_npz_key_with_an_optax_optimizer(tmp_path, capsys):
    x = three_blobs(n_per=40)
    np.savez(tmp_path / "two.npz", noise=np.zeros((3, 2)), x=x)
    code, out, err = run(["fit", tmp_path / "two.npz", "--key", "x", "--k", "3",
                          "--covariance", "diag", "--method", "adam", "--learning-rate", "0.05",
                          "--max-iter", "300", "--restarts", "2", "--quiet",
                          "--out", tmp_path / "out"], capsys)
    assert code == 0, err
    assert err == ""  # --quiet
    assert "| diag | 3 * |" in out
    params = load_params(tmp_path / "out" / "model.npz", covariance_type="diag")
    means = np.asarray(params.means)[np.argsort(np.asarray(params.means)[:, 0] +
                                                 2 * np.asarray(params.means)[:, 1])]
    np.testing.assert_allclose(means, [[0, 0], [8, 0], [0, 8]], atol=0.6)


def test_one_dimensional_npy_is_one_feature(tmp_path):
    np.save(tmp_path / "one.npy", np.arange(5.0))
    data = load(tmp_path / "one.npy")
    assert data.x.shape == (5, 1) and "1-D array" in data.notes[0]


@pytest.mark.parametrize("text, expected", [
    ("3", [3]), ("1-4", [1, 2, 3, 4]), ("2,4,8", [2, 4, 8]), ("1-3,6, 2", [1, 2, 3, 6])])
def test_parse_ks(text, expected):
    assert parse_ks(text) == expected


def test_csv_comments_blank_lines_missing_tokens(tmp_path):
    (tmp_path / "c.csv").write_text("# made by hand\nx;y\n\n1;2\n3;NA\n5;6\n")
    data = load(tmp_path / "c.csv", delimiter=";", drop_nan=True)
    np.testing.assert_array_equal(data.x, [[1, 2], [5, 6]])
    with pytest.raises(UsageError, match="line 5"):
        load(tmp_path / "c.csv", delimiter=";")


# ---------------------------------------------------------------------------
# errors: exit status 2, one line on stderr naming the argument and the fix


def _files(tmp):
    (tmp / "bad.csv").write_text("a,b\n1,2\n3,oops\n")
    (tmp / "ragged.csv").write_text("1,2\n3,4,5\n")
    (tmp / "empty.csv").write_text("a,b\n")
    (tmp / "data.txt").write_text("1,2\n")
    (tmp / "corrupt.npy").write_bytes(b"not an array")
    np.save(tmp / "words.npy", np.array(["a", "b"]))
    np.save(tmp / "small.npy", np.ones((4, 2)))
    np.save(tmp / "cube.npy", np.ones((2, 2, 2)))
    np.savez(tmp / "two.npz", a=np.ones((3, 2)), b=np.ones((3, 2)))


ERRORS = [
    (["fit", "missing.csv"], "DATA 'missing.csv': no such file"),
    (["fit", "bad.csv"], "line 3, column 2: 'oops' is not a number"),
    (["fit", "ragged.csv"], "line 2: 3 fields, expected 2"),
    (["fit", "empty.csv"], "has no data rows"),
    (["fit", "data.txt"], "unsupported file type '.txt'"),
    (["fit", "corrupt.npy"], "not a readable .npy file"),
    (["fit", "words.npy"], "not numbers"),
    (["fit", "cube.npy"], "expected a 2-D array"),
    (["fit", "two.npz"], "choose one with --key NAME"),
    (["fit", "two.npz", "--key", "c"], "--key 'c'"),
    (["fit", "small.npy", "--k", "5"], "--k: k=5 is more than the 4 samples"),
    (["fit", "small.npy", "--k", "two"], "--k 'two': expected an integer"),
    (["fit", "small.npy", "--k", "3-1"], "ranges ascending"),
    (["fit", "small.npy", "--method", "adamm"], "'adamm' is none of these"),
    (["fit", "small.npy", "--method", "em", "--learning-rate", "0.1"],
     "--learning-rate applies to optax optimizers"),
    (["fit", "small.npy", "--method", "map-em", "--prior", "none"], "contradict"),
    (["fit", "small.npy", "--covariance", "fll"], "argument --covariance: invalid choice"),
    (["fit", "small.npy", "--restarts", "0"], "argument --restarts"),
    (["fit", "small.npy", "--tol", "-1"], "argument --tol"),
    (["fit"], "the following arguments are required: DATA"),
    (["frobnicate"], "invalid choice: 'frobnicate'"),
    (["bench", "--iters", "5", "5"], "N2 must be larger than N1"),
]


@pytest.mark.parametrize("argv, message", ERRORS, ids=[" ".join(a) for a, _ in ERRORS])
def test_errors_exit_2(tmp_path, monkeypatch, capsys, argv, message):
    _files(tmp_path)
    monkeypatch.chdir(tmp_path)
    code, out, err = run(argv, capsys)
    assert code == 2
    assert message in err
    assert out == ""


def test_plot_without_matplotlib_exits_2(tmp_path, monkeypatch, capsys):
    from jaxmix.cli import report as cli_report

    monkeypatch.setattr(cli_report, "have_matplotlib", lambda: False)
    code, _, err = run(["fit", tmp_path / "never-read.csv", "--plot"], capsys)
    assert code == 2 and "--plot needs matplotlib" in err


def test_other_failures_exit_1(tmp_path, monkeypatch, capsys):
    np.save(tmp_path / "small.npy", three_blobs(n_per=5))
    (tmp_path / "taken").write_text("a file where the output folder should go")
    code, _, err = run(["fit", tmp_path / "small.npy", "--k", "1", "--restarts", "1",
                        "--quiet", "--out", tmp_path / "taken"], capsys)
    assert code == 2 and "is a file; give a folder" in err  # checked before fitting
    import jaxmix.cli.fit as cli_fit

    def broken(*args, **kwargs):
        raise FileExistsError("something unexpected")
    monkeypatch.setattr(cli_fit, "sweep", broken)
    code, _, err = run(["fit", tmp_path / "small.npy", "--k", "1", "--quiet", "--out",
                        tmp_path / "o"], capsys)
    assert code == 1
    assert err.startswith("jaxmix fit: failed: FileExistsError")
    assert not (tmp_path / "o").exists()


def test_help_exits_0(capsys):
    code, out, _ = run(["fit", "--help"], capsys)
    assert code == 0 and "--drop-nan" in out


def test_no_command_runs_the_demo(monkeypatch, tmp_path, capsys):
    seen = {}

    def fake_run(out, settings, figures):
        seen.update(out=out, settings=settings)
        return [out / "report.md"]

    monkeypatch.setattr(cli_demo, "run", fake_run)
    monkeypatch.chdir(tmp_path)
    code, out, _ = run([], capsys)
    assert code == 0 and seen["settings"] == cli_demo.Settings()
    # the demo writes into a staging folder beside ./jaxmix-demo, moved in at the end
    assert seen["out"].parent == tmp_path and seen["out"].name.startswith(".jaxmix-demo.")
    assert not seen["out"].exists() and (tmp_path / "jaxmix-demo").is_dir()
    assert "report: jaxmix-demo/report.md" in out


# ---------------------------------------------------------------------------
# demo and bench


def test_demo_tiny(tmp_path, capsys):
    pytest.importorskip("matplotlib")
    out_dir = tmp_path / "demo"
    code, out, err = run(["demo", "--k-max", "3", "--covariance", "full", "--restarts", "2",
                          "--max-iter", "30", "--out", out_dir], capsys)
    assert code == 0, err
    assert f"report: {out_dir / 'report.md'}" in out
    report = (out_dir / "report.md").read_text()
    assert "BIC chooses **full, k=3**" in report
    for method in ("| em | mean log-likelihood |", "| map-em | mean log-posterior |",
                   "| adam | mean log-posterior |"):
        assert method in report
    for name in ("criterion.png", "fit.png", "methods.png"):
        assert f"![{name}]({name})" in report
        assert_png(out_dir / name)
    assert load_params(out_dir / "model.npz").means.shape == (3, 2)
    assert "[3/3] adam at k=3 (full)" in err


def test_bench_without_threadpoolctl_exits_2(monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "threadpoolctl", None)  # import fails
    code, out, err = run(["bench", "--n", "400"], capsys)
    assert code == 2 and out == ""
    assert 'pip install "jaxmix[bench]"' in err


@pytest.mark.slow
def test_bench_tiny(capsys):
    code, out, err = run(["bench", "--n", "400", "--d", "2", "--k", "2", "--restarts", "2",
                          "--cov", "diag", "--repeats", "1", "--iters", "1", "3",
                          "--sklearn-restarts", "1"], capsys)
    assert code == 0, err
    assert "| covariance | sklearn ms/restart-iter |" in out
    row = [line for line in out.splitlines() if line.startswith("| diag |")]
    assert len(row) == 1 and row[0].count("|") == 8  # 7 columns: both sklearn timings
    assert out.splitlines()[-1].startswith("load average after:")


# ---------------------------------------------------------------------------
# the installed console script


def test_console_script(tmp_path):
    script = shutil.which("jaxmix")
    if script is None:
        pytest.skip("the jaxmix console script is not on PATH; install with pip install -e .")
    write_csv(tmp_path / "blobs.csv", three_blobs(n_per=30))
    env = dict(os.environ, PYTHONPATH=str(REPO))  # run this checkout's code
    done = subprocess.run([script, "fit", "blobs.csv", "--k", "3", "--covariance", "spherical",
                           "--restarts", "2", "--out", "out"], cwd=tmp_path, env=env,
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert "best by BIC: spherical, k=3" in done.stdout
    assert load_params(tmp_path / "out" / "model.npz").covariance_type == "spherical"


def _crafted_npy(shape=(2 ** 20, 2 ** 20)):
    import io
    buf = io.BytesIO()
    np.lib.format.write_array_header_1_0(buf, {"descr": "<f8", "fortran_order": False,
                                               "shape": shape})
    return buf.getvalue() + b"\0" * 64


@pytest.mark.parametrize("suffix", [".npy", ".npz"])
def test_crafted_data_files_are_refused_without_allocating(tmp_path, suffix):
    """A data file whose .npy header claims 8 TiB is a usage error naming the
    file, read without allocating what it claims (the library's untrusted
    reader, jaxmix.io.untrusted); an object array is refused, never unpickled."""
    import tracemalloc
    import zipfile
    path = tmp_path / f"crafted{suffix}"
    if suffix == ".npy":
        path.write_bytes(_crafted_npy())
    else:
        with zipfile.ZipFile(path, "w") as z:
            z.writestr("x.npy", _crafted_npy())
    tracemalloc.start()
    try:
        with pytest.raises(UsageError, match="declares shape .* but holds 64 bytes"):
            load(path)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 2 ** 24
    np.save(tmp_path / "objects.npy", np.array([{"a": 1}], dtype=object), allow_pickle=True)
    with pytest.raises(UsageError, match="dtype object, not numbers"):
        load(tmp_path / "objects.npy")
