"""A user's workflow with the command line: fit a CSV with a label column and
mixed scales, inspect the model file, apply it to new data; one model format
for every loader; nothing written when a run fails; live progress."""

from __future__ import annotations

import io
import json

import numpy as np
import pytest
from scipy.special import logsumexp
from scipy.stats import multivariate_normal

from conftest import rewrite_metadata
from test_cli import run

from jaxmix import GMMParams, fit_gmm, load_params, save_params
from jaxmix.cli.main import main
from jaxmix.cli.report import LiveProgress
from jaxmix.io import load_model
from jaxmix.sklearn import GaussianMixture, load_estimator


def labelled(n_per=80, seed=0):
    """Two clusters, the second feature on a scale 1000 times the first, and
    a text label column."""
    rng = np.random.default_rng(seed)
    x = np.concatenate([rng.normal(0, 1, (n_per, 2)), rng.normal(5, 1, (n_per, 2))])
    return x * [1.0, 1000.0], ["left"] * n_per + ["right"] * n_per


def write_labelled(path, x, labels, order=("a", "label", "b")):
    columns = {"a": [repr(float(v)) for v in x[:, 0]], "b": [repr(float(v)) for v in x[:, 1]],
               "label": labels}
    lines = [",".join(order)] + [",".join(columns[c][i] for c in order) for i in range(len(x))]
    path.write_text("\n".join(lines) + "\n")
    return path


def mixture_log_density(p: GMMParams, x):
    """Independent of jaxmix: scipy's normal densities of the dense covariances."""
    pc = np.asarray(p.precisions_cholesky, np.float64)
    covs = np.linalg.inv(pc @ np.swapaxes(pc, -1, -2))
    logs = [np.log(w) + multivariate_normal(m, c).logpdf(x)
            for w, m, c in zip(np.asarray(p.weights, np.float64), np.asarray(p.means), covs)]
    return logsumexp(np.stack(logs, axis=1), axis=1), np.stack(logs, axis=1)


@pytest.fixture(scope="module")
def fitted(tmp_path_factory):
    """``jaxmix fit`` of the labelled CSV, dropping the label and scaling."""
    folder = tmp_path_factory.mktemp("workflow")
    x, labels = labelled()
    data = write_labelled(folder / "train.csv", x, labels)
    code = main(["fit", str(data), "--drop", "label", "--scale", "--k", "1-3",
                 "--restarts", "2", "--out", str(folder / "out"), "--quiet"])
    assert code == 0
    return folder, x, labels


def test_fit_records_columns_scaling_and_the_fit(fitted):
    folder, x, _ = fitted
    model = load_model(folder / "out" / "model.npz")
    about = model.about
    assert about.feature_names == ["a", "b"] and about.columns == [0, 2]
    np.testing.assert_allclose(about.center, x.mean(axis=0), rtol=1e-12)
    np.testing.assert_allclose(about.scale, x.std(axis=0), rtol=1e-12)
    assert about.fit["k"] == model.params.means.shape[0] == 2  # scaled: two clusters found
    assert about.fit["method"] == "em" and about.fit["n_samples"] == len(x)
    z = (x - x.mean(axis=0)) / x.std(axis=0)
    density, _ = mixture_log_density(model.params, z)
    np.testing.assert_allclose(about.fit["anomaly_threshold"], np.percentile(density, 4),
                               rtol=1e-5)


def test_predict_applies_the_recorded_preprocessing(fitted, tmp_path, capsys):
    """Labels, probabilities, log-densities and anomaly flags against scipy on
    the standardised columns; a file with its columns in another order (by
    header name) and one without a header (by index) give the same rows."""
    folder, x, labels = fitted
    model = folder / "out" / "model.npz"
    code, out, _ = run(["predict", model, folder / "train.csv"], capsys)
    assert code == 0
    lines = out.strip().splitlines()
    assert lines[0] == "label,probability_0,probability_1,log_density,anomaly"
    table = np.array([[float(v) for v in line.split(",")] for line in lines[1:]])
    p = load_model(model)
    z = (x - x.mean(axis=0)) / x.std(axis=0)
    density, per = mixture_log_density(p.params, z)
    np.testing.assert_allclose(table[:, 3], density, rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(table[:, 1:3], np.exp(per - density[:, None]), atol=1e-4)
    np.testing.assert_array_equal(table[:, 0], np.argmax(per, axis=1))
    np.testing.assert_array_equal(table[:, 4], density < p.about.fit["anomaly_threshold"])
    assert abs(table[:, 4].mean() - 0.04) <= 1.0 / len(x)
    shuffled = write_labelled(tmp_path / "other.csv", x, labels, order=("label", "b", "a"))
    assert run(["predict", model, shuffled], capsys)[1] == out
    bare = tmp_path / "bare.npy"
    np.save(bare, np.column_stack([x[:, 0], np.zeros(len(x)), x[:, 1]]))
    assert run(["predict", model, bare, "--out", tmp_path / "p.npy"], capsys)[0] == 0
    np.testing.assert_allclose(np.load(tmp_path / "p.npy"), table, rtol=1e-6, atol=1e-6)


def test_info_shows_what_the_file_holds(fitted, capsys):
    folder, _, _ = fitted
    code, out, _ = run(["info", folder / "out" / "model.npz"], capsys)
    assert code == 0
    assert "GMMParams (format version 2" in out and "['a', 'b']" in out
    assert "columns read: [0, 2]" in out and "standardised: yes" in out
    record = json.loads(out.split("fit: ", 1)[1])
    assert record["k"] == 2 and "bic" in record


def test_every_loader_reads_every_model_file(fitted, tmp_path):
    """The command line's file as an estimator (predictions equal, names
    kept), an estimator's file as parameters, and a version-1 file."""
    folder, x, _ = fitted
    path = folder / "out" / "model.npz"
    est = GaussianMixture.load(path)
    assert list(est.feature_names_in_) == ["a", "b"] and est.converged_ is True
    z = (x - x.mean(axis=0)) / x.std(axis=0)
    with pytest.warns(UserWarning, match="feature names"):  # scikit-learn's own warning
        labels = est.predict(z)
    _, per = mixture_log_density(load_params(path), z)
    np.testing.assert_array_equal(labels, np.argmax(per, axis=1))
    est.save(tmp_path / "est.npz")
    back = load_params(tmp_path / "est.npz")
    np.testing.assert_allclose(back.means, est.means_)
    assert list(load_estimator(tmp_path / "est.npz").feature_names_in_) == ["a", "b"]
    assert main(["info", str(tmp_path / "est.npz")]) == 0  # the command line reads it too
    old = tmp_path / "v1.npz"
    save_params(old, fit_gmm(0, z, 2).best_params)
    _as_version_1(old)
    assert load_model(old).about.feature_names is None
    assert GaussianMixture.load(old).n_components == 2
    assert not hasattr(GaussianMixture.load(old), "converged_")  # no record, no claim


def _as_version_1(path) -> None:
    """Rewrite a file's metadata as the first format (no 'about')."""
    rewrite_metadata(path, format_version=1, about=None)


def test_a_failed_run_leaves_no_output(tmp_path, monkeypatch, capsys):
    x, labels = labelled(10)
    data = write_labelled(tmp_path / "small.csv", x, labels)
    out = tmp_path / "new" / "out"
    code, _, err = run(["fit", data, "--drop", "label", "--k", "50", "--out", out], capsys)
    assert code == 2 and "more than the 20 samples" in err
    assert not (tmp_path / "new").exists()
    import jaxmix.io as jio

    def broken(*args, **kwargs):
        raise OSError("disk full")
    monkeypatch.setattr(jio, "save_params", broken)
    code, _, err = run(["fit", data, "--drop", "label", "--k", "1", "--restarts", "1",
                        "--out", out], capsys)
    assert code == 1 and "disk full" in err
    assert not (tmp_path / "new").exists()
    assert [p.name for p in tmp_path.iterdir()] == ["small.csv"]


@pytest.mark.parametrize("argv, message", [
    (["--columns", "a,zz"], "no such column"),
    (["--drop", "7"], "has 3 columns"),
    ([], "--drop NAME_OR_INDEX"),
])
def test_column_selection_errors_name_the_fix(tmp_path, capsys, argv, message):
    x, labels = labelled(5)
    data = write_labelled(tmp_path / "d.csv", x, labels)
    code, _, err = run(["fit", data, "--k", "1", "--out", tmp_path / "o", *argv], capsys)
    assert code == 2 and message in err, err


class _Terminal(io.StringIO):
    def isatty(self):
        return True


def test_live_progress_ticks_on_a_terminal_only():
    tty = _Terminal()
    live = LiveProgress(tty, interval=0.01)
    live("fitting k=3 ...")
    import time
    time.sleep(0.05)
    live("done")
    live.close()
    text = tty.getvalue()
    assert "\rfitting k=3 ... 0 s" in text and text.endswith("\ndone\n")
    plain = io.StringIO()
    quiet = LiveProgress(plain)
    quiet("fitting k=3 ...")
    quiet.close()
    assert plain.getvalue() == "fitting k=3 ...\n"
    assert quiet.fit_callback() is None, "off a terminal the fits compile without a callback"


def test_live_progress_shows_the_fits_iterations():
    import numpy as np
    from jaxmix.fit.progress import Progress
    tty = _Terminal()
    live = LiveProgress(tty, interval=0.01)
    live("fitting k=3 ...")
    live.fit_callback()(Progress(np.array([4, 7]), np.array([-2.5, -2.25]),
                                 np.array([True, True]), 0.1))
    import time
    time.sleep(0.05)
    live.close()
    assert ", iteration 7, best objective -2.2500" in tty.getvalue()


@pytest.mark.parametrize("about, field", [
    ([1], "metadata 'about'"), ({"colour": 1}, "unknown keys"),
    ({"feature_names": ["a"]}, "feature_names"), ({"feature_names": ["a", 2]}, "feature_names"),
    ({"columns": [0, 0]}, "repeat"), ({"columns": [0, -1]}, "columns"),
    ({"center": [0.0, 1.0]}, "without the other"),
    ({"center": [0.0, 1.0], "scale": [1.0, 0.0]}, "scale"),
    ({"center": [0.0, "nan"], "scale": [1.0, 1.0]}, "center"),
    ({"fit": {"k": [1, 2]}}, "about['fit']"), ({"fit": 3}, "about['fit']"),
])
def test_what_a_file_says_about_its_model_is_checked(about, field):
    """The "about" object is untrusted input: every malformed entry is a
    ValueError naming the file and the field."""
    from jaxmix.io.about import read_about
    with pytest.raises(ValueError, match="model.npz") as err:
        read_about("model.npz", {"about": about}, 2)
    assert field in str(err.value)
