"""Save / load: npz + JSON, no pickle; round trips and clear errors."""

from __future__ import annotations

import json
import zipfile

import numpy as np
import pytest
from sklearn.datasets import make_blobs

from jaxmix import GMMParams, KMeansParams
from jaxmix.io import FORMAT_VERSION, load_params, read_estimator, save_estimator, save_params
from jaxmix.sklearn import DBSCAN, GaussianMixture, KMeans, MiniBatchKMeans, load_estimator


@pytest.fixture(scope="module")
def data():
    return make_blobs(n_samples=300, centers=3, random_state=0)[0]


@pytest.mark.parametrize("covariance_type", ["full", "spherical"])
def test_gmm_round_trip_identical(tmp_path, data, covariance_type):
    gm = GaussianMixture(3, covariance_type=covariance_type, random_state=0).fit(data)
    path = tmp_path / "gmm.npz"
    gm.save(path)
    back = GaussianMixture.load(path)
    assert back.get_params() == gm.get_params()
    for name in ("weights_", "means_", "covariances_", "precisions_", "precisions_cholesky_"):
        np.testing.assert_array_equal(getattr(back, name), getattr(gm, name))
    assert (back.converged_, back.n_iter_, back.lower_bound_, back.lower_bounds_) == (
        gm.converged_, gm.n_iter_, gm.lower_bound_, gm.lower_bounds_)
    np.testing.assert_array_equal(back.predict(data), gm.predict(data))
    np.testing.assert_array_equal(back.predict_proba(data), gm.predict_proba(data))
    np.testing.assert_array_equal(back.score_samples(data), gm.score_samples(data))
    # the file is a plain npz that loads without pickle
    with np.load(path, allow_pickle=False) as z:
        meta = json.loads(str(z["__metadata__"][()]))
    assert meta["format_version"] == FORMAT_VERSION and meta["kind"] == "GaussianMixture"
    assert meta["covariance_type"] == covariance_type


@pytest.mark.parametrize("Est", [KMeans, MiniBatchKMeans])
def test_kmeans_round_trip_identical(tmp_path, data, Est):
    km = Est(3, random_state=0).fit(data)
    km.save(tmp_path / "km.npz")
    back = Est.load(tmp_path / "km.npz")
    np.testing.assert_array_equal(back.cluster_centers_, km.cluster_centers_)
    np.testing.assert_array_equal(back.predict(data), km.predict(data))
    np.testing.assert_array_equal(back.transform(data), km.transform(data))
    assert back.inertia_ == km.inertia_ and back.n_iter_ == km.n_iter_


def test_array_params_and_raw_params(tmp_path, data):
    init = data[:3]
    km = KMeans(3, init=init, n_init=1).fit(data)
    km.save(tmp_path / "a.npz")
    np.testing.assert_array_equal(KMeans.load(tmp_path / "a.npz").init, init)
    p = GMMParams(np.ones((2, 3)) / 3, np.zeros((2, 3, 4)), np.ones((2, 3, 4)), "diag")
    save_params(tmp_path / "p.npz", p)
    q = load_params(tmp_path / "p.npz", covariance_type="diag")
    assert q.covariance_type == "diag" and q.means.shape == (2, 3, 4)
    save_params(tmp_path / "k.npz", KMeansParams(np.zeros((3, 2))))
    assert load_params(tmp_path / "k.npz").centroids.shape == (3, 2)
    with pytest.raises(ValueError, match="KMeansParams.*expected 'GMMParams'"):
        load_params(tmp_path / "k.npz", kind="GMMParams")


def test_truncated_and_corrupt_files(tmp_path, data):
    gm = GaussianMixture(2, random_state=0).fit(data)
    path = tmp_path / "gmm.npz"
    gm.save(path)
    raw = path.read_bytes()
    for cut in (len(raw) // 2, len(raw) - 10, 5):
        (tmp_path / "t.npz").write_bytes(raw[:cut])
        with pytest.raises(ValueError, match="not a readable jaxmix model file"):
            GaussianMixture.load(tmp_path / "t.npz")
    flipped = bytearray(raw)
    flipped[len(raw) // 3] ^= 0xFF
    (tmp_path / "f.npz").write_bytes(bytes(flipped))
    with pytest.raises(ValueError):
        GaussianMixture.load(tmp_path / "f.npz")
    np.savez(tmp_path / "plain.npz", means=np.zeros((2, 2)))
    with pytest.raises(ValueError, match="no jaxmix metadata"):
        load_params(tmp_path / "plain.npz")


def test_mismatched_kind_type_and_version(tmp_path, data):
    gm = GaussianMixture(2, covariance_type="diag", random_state=0).fit(data)
    gm.save(tmp_path / "diag.npz")
    with pytest.raises(ValueError, match="covariance_type='diag', expected 'full'"):
        GaussianMixture.load(tmp_path / "diag.npz", covariance_type="full")
    with pytest.raises(ValueError, match="holds a 'GaussianMixture', expected 'KMeans'"):
        KMeans.load(tmp_path / "diag.npz")
    # a file from a future format version, and one whose arrays disagree with its metadata
    with np.load(tmp_path / "diag.npz", allow_pickle=False) as z:
        arrays = {k: z[k] for k in z.files}
    meta = json.loads(str(arrays["__metadata__"][()]))
    meta["format_version"] = FORMAT_VERSION + 1
    np.savez(tmp_path / "future.npz", **{**arrays, "__metadata__": np.array(json.dumps(meta))})
    with pytest.raises(ValueError, match="format_version"):
        load_estimator(tmp_path / "future.npz")
    np.savez(tmp_path / "bad.npz", **{**arrays, "means_": np.zeros((5, 5))})
    with pytest.raises(ValueError, match="corrupt"):
        load_estimator(tmp_path / "bad.npz")
    with pytest.raises(ValueError, match="not fitted"):
        GaussianMixture().save(tmp_path / "x.npz")


def test_io_imports_no_estimator():
    """jaxmix.io reads estimators generically; the classes live in jaxmix.sklearn."""
    import ast
    import pathlib

    import jaxmix.io
    tree = ast.parse(pathlib.Path(jaxmix.io.__file__).read_text())
    names = [alias.name for node in ast.walk(tree) if isinstance(node, ast.Import)
             for alias in node.names]
    names += [node.module or "" for node in ast.walk(tree) if isinstance(node, ast.ImportFrom)]
    assert not [n for n in names if "sklearn" in n], names


def test_read_estimator_and_unsaveable(tmp_path, data):
    km = KMeans(3, init=data[:3], n_init=1).fit(data)
    km.save(tmp_path / "km.npz")
    stored = read_estimator(tmp_path / "km.npz", "KMeans")
    assert stored.kind == "KMeans" and stored.params["n_clusters"] == 3
    np.testing.assert_array_equal(stored.params["init"], data[:3])
    assert set(stored.arrays) == {"cluster_centers_", "labels_"}
    assert stored.attributes["inertia_"] == km.inertia_
    assert isinstance(load_estimator(tmp_path / "km.npz"), KMeans)
    with pytest.raises(ValueError, match="cannot save a DBSCAN"):
        save_estimator(tmp_path / "db.npz", DBSCAN().fit(data))


def test_load_params_checks_values_not_only_shapes(tmp_path):
    """A file is untrusted input: params whose arrays have the right shapes but
    NaN values, non-positive weights or a non-positive factor diagonal are
    refused on load, naming the file (the one params checker)."""
    p = GMMParams(np.full(2, 0.5), np.zeros((2, 3)), np.ones((2, 3)), "diag")
    save_params(tmp_path / "ok.npz", p)
    with np.load(tmp_path / "ok.npz", allow_pickle=False) as z:
        arrays = {k: z[k] for k in z.files}
    for field, value, match in [("weights", np.array([0.5, np.nan]), "NaN"),
                                ("weights", np.array([1.0, 0.0]), "positive"),
                                ("precisions_cholesky", -np.ones((2, 3)), "positive diagonal")]:
        path = tmp_path / f"bad_{field}.npz"
        np.savez(path, **{**arrays, field: value})
        with pytest.raises(ValueError, match=f"bad_{field}.npz.*{match}"):
            load_params(path)
