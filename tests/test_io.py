"""Save / load: npz + JSON, no pickle; round trips and clear errors."""

from __future__ import annotations

import gzip
import io
import json
import re
import struct
import tracemalloc
import warnings
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
    names = []
    for path in pathlib.Path(jaxmix.io.__file__).parent.glob("*.py"):
        tree = ast.parse(path.read_text())
        names += [alias.name for node in ast.walk(tree) if isinstance(node, ast.Import)
                  for alias in node.names]
        names += [node.module or "" for node in ast.walk(tree)
                  if isinstance(node, ast.ImportFrom)]
    assert names and not [n for n in names if "sklearn" in n], names


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


# ---------------------------------------------------------------------------
# A model file is untrusted input: crafted files, every loader. Each class is
# one rule; its cases are members of that rule, not only the example.
# ---------------------------------------------------------------------------

ESTIMATOR_LOADERS = {"read_estimator": read_estimator, "load_estimator": load_estimator,
                     "GaussianMixture.load": GaussianMixture.load}
LOADERS = {"load_params": load_params, "KMeans.load": KMeans.load, **ESTIMATOR_LOADERS}


@pytest.fixture(scope="module")
def saved(tmp_path_factory, data):
    """One file of each kind written by the library (``data`` has d = 2, so
    the 2-component GMMs have k == d)."""
    root = tmp_path_factory.mktemp("saved")
    models = dict(diag=GaussianMixture(2, covariance_type="diag", random_state=0),
                  tied=GaussianMixture(2, covariance_type="tied", random_state=0),
                  full=GaussianMixture(2, covariance_type="full", random_state=0),
                  kmeans=KMeans(3, random_state=0),
                  minibatch=MiniBatchKMeans(3, n_init=1, random_state=0))
    paths = {name: root / f"{name}.npz" for name in [*models, "params", "centroids"]}
    for name, est in models.items():
        est.fit(data).save(paths[name])
    save_params(paths["params"], GMMParams(np.full(2, 0.5), np.zeros((2, 2)), np.ones((2, 2)),
                                           "diag"))
    save_params(paths["centroids"], KMeansParams(np.zeros((3, 2))))
    return paths


def contents(path):
    """``(metadata, arrays)`` of a well-formed file, read with numpy."""
    with np.load(path, allow_pickle=False) as z:
        arrays = {name: z[name] for name in z.files}
    return json.loads(str(arrays.pop("__metadata__")[()])), arrays


def rewrite(path, meta, arrays, respec=True):
    """Write ``meta`` (any JSON value) and ``arrays`` as an npz; the metadata's
    array specs are made to match the arrays unless ``respec`` is false."""
    if respec and isinstance(meta, dict):
        meta["arrays"] = {n: dict(shape=list(a.shape), dtype=a.dtype.str)
                          for n, a in arrays.items()}
    np.savez(path, __metadata__=np.array(json.dumps(meta)), **arrays)
    return path


def edited(src, dst, meta_edit=None, **arrays):
    """``src`` with ``meta_edit(meta)`` applied and ``arrays`` replaced
    (``None`` removes one), written to ``dst``."""
    meta, old = contents(src)
    meta = meta_edit(meta) if meta_edit else meta
    merged = {n: a for n, a in {**old, **arrays}.items() if a is not None}
    return rewrite(dst, meta, merged)


def put(*keys, value=KeyError):
    """A metadata edit: set ``meta[k0][k1]... = value`` (delete it by default)."""
    def edit(meta):
        target = meta
        for key in keys[:-1]:
            target = target[key]
        if value is KeyError:
            del target[keys[-1]]
        else:
            target[keys[-1]] = value
        return meta
    return edit


def npy_bytes(array) -> bytes:
    buf = io.BytesIO()
    np.save(buf, array, allow_pickle=False)
    return buf.getvalue()


def npy_header(descr, shape, data=b"", version=b"\x01\x00") -> bytes:
    """A hand-made ``.npy`` member: magic, header text, then ``data``."""
    text = repr(dict(descr=descr, fortran_order=False, shape=shape)).encode("latin1") + b"\n"
    return b"\x93NUMPY" + version + len(text).to_bytes(2, "little") + text + data


def raw_members(path) -> dict:
    with zipfile.ZipFile(path) as zf:
        return {info.filename: zf.read(info) for info in zf.infolist()}


def write_zip(path, members, compression=zipfile.ZIP_STORED):
    with warnings.catch_warnings():  # duplicate names are one of the crafted cases
        warnings.simplefilter("ignore")
        with zipfile.ZipFile(path, "w", compression) as zf:
            for name, data in members:
                zf.writestr(name, data)
    return path


def with_member(src, dst, name, data, spec=None, compression=zipfile.ZIP_STORED):
    """``src`` with member ``name`` replaced by raw ``data`` (its metadata spec by
    ``spec`` where given)."""
    members = raw_members(src)
    meta, _ = contents(src)
    if spec is not None:
        meta["arrays"][name] = spec
    members["__metadata__.npy"] = npy_bytes(np.array(json.dumps(meta)))
    members[f"{name}.npy"] = data
    return write_zip(dst, members.items(), compression)


def patch_sizes(path, member, compressed=None, uncompressed=None):
    """Make the central directory claim other sizes for ``member`` (``None``: keep)."""
    raw = bytearray(path.read_bytes())
    entry = raw.index(b"PK\x01\x02")
    while raw[entry + 46:entry + 46 + len(member)] != member.encode():
        entry = raw.index(b"PK\x01\x02", entry + 4)
    old = struct.unpack("<II", raw[entry + 20:entry + 28])
    raw[entry + 20:entry + 28] = struct.pack("<II", *(o if n is None else n for o, n in
                                                      zip(old, (compressed, uncompressed))))
    path.write_bytes(bytes(raw))
    return path


def refused(loader, path, field=""):
    """``loader(path)`` raises ValueError (not another error) naming the file
    and matching ``field``; returns the message."""
    with pytest.raises(ValueError) as info:
        loader(path)
    message = str(info.value)
    assert str(path) in message, message
    assert re.search(field, message), message
    return message


class TestNotAModelFile:
    """Whatever the bytes, every loader raises ValueError naming the file."""

    MAKERS = {
        "plain .npy": lambda p: p.write_bytes(npy_bytes(np.zeros((2, 2)))),
        "text": lambda p: p.write_text("weights,means\n0.5,1.0\n"),
        "empty": lambda p: p.write_bytes(b""),
        "random bytes": lambda p: p.write_bytes(np.random.default_rng(0).bytes(300)),
        "gzip": lambda p: p.write_bytes(gzip.compress(b"{}")),
        "zip that is not npz": lambda p: write_zip(p, [("readme.txt", b"hello")]),
        "npz without metadata": lambda p: np.savez(p, means=np.zeros((2, 2))),
        "a folder": lambda p: p.mkdir(),
    }

    @pytest.mark.parametrize("loader", LOADERS.values(), ids=LOADERS)
    @pytest.mark.parametrize("make", MAKERS.values(), ids=MAKERS)
    def test_refused(self, tmp_path, make, loader):
        path = tmp_path / "model.npz"
        make(path)
        refused(loader, path)

    def test_missing_file_stays_file_not_found(self, tmp_path):
        with pytest.raises(FileNotFoundError):
            load_params(tmp_path / "none.npz")


class TestMetadataStructure:
    """JSON of the wrong structure is a ValueError naming the file and the field."""

    CASES = {
        "a list": (lambda m: [m], "format marker"),
        "a string": (lambda m: "jaxmix", "format marker"),
        "no format marker": (put("format"), "format marker"),
        "version a string": (put("format_version", value="1"), "format_version"),
        "version a bool": (put("format_version", value=True), "format_version"),
        "version 0": (put("format_version", value=0), "format_version"),
        "kind a number": (put("kind", value=5), "'kind' must be a string"),
        "kind missing": (put("kind"), "'kind' must be a string"),
        "unknown covariance type": (put("covariance_type", value="banana"), "'covariance_type'"),
        "covariance type a list": (put("covariance_type", value=["diag"]), "'covariance_type'"),
        "arrays a list": (put("arrays", value=["means_"]), "'arrays' must be a JSON object"),
        "arrays missing": (put("arrays"), "'arrays' must be a JSON object"),
        "spec without shape": (put("arrays", "means_", "shape"), r"'arrays'\['means_'\]"),
        "spec a list": (put("arrays", "means_", value=[2, 2]), r"'arrays'\['means_'\]"),
        "shape a string": (put("arrays", "means_", "shape", value="2,2"), r"\['means_'\]"),
        "negative dimension": (put("arrays", "means_", "shape", value=[-2, 2]), r"\['means_'\]"),
        "bool dimension": (put("arrays", "means_", "shape", value=[True, 2]), r"\['means_'\]"),
        "float dimension": (put("arrays", "means_", "shape", value=[2.0, 2]), r"\['means_'\]"),
        "dtype a number": (put("arrays", "means_", "dtype", value=8), r"\['means_'\]"),
        "params a string": (put("params", value="n_components=2"), "'params' must be a JSON"),
        "params a list": (put("params", value=[["tol", 1]]), "'params' must be a JSON"),
        "param a list": (put("params", "tol", value=[1e-3]), r"params\['tol'\] must be"),
        "param an object": (put("params", "n_components", value={"n": 2}), r"\['n_components'\]"),
        "attributes a list": (put("attributes", value=[]), "'attributes' must be a JSON"),
        "attribute a list": (put("attributes", "n_iter_", value=[3]), r"attributes\['n_iter_'\]"),
        "attribute a string": (put("attributes", "n_iter_", value="3"), r"\['n_iter_'\]"),
        "attribute null": (put("attributes", "converged_", value=None), r"\['converged_'\]"),
        "attribute an object": (put("attributes", "lower_bound_", value={}), r"\['lower_bound"),
    }

    @pytest.mark.parametrize("loader", ESTIMATOR_LOADERS.values(), ids=ESTIMATOR_LOADERS)
    @pytest.mark.parametrize("edit, field", CASES.values(), ids=CASES)
    def test_refused(self, saved, tmp_path, edit, field, loader):
        meta, arrays = contents(saved["diag"])
        refused(loader, rewrite(tmp_path / "m.npz", edit(meta), arrays, respec=False), field)

    STRUCTURE = {name: case for name, case in CASES.items() if "param" not in name
                 and "attribute" not in name}

    @pytest.mark.parametrize("edit, field", STRUCTURE.values(), ids=STRUCTURE)
    def test_refused_by_load_params(self, saved, tmp_path, edit, field):
        """The structure is checked before the kind: load_params names the field too."""
        meta, arrays = contents(saved["diag"])
        path = rewrite(tmp_path / "m.npz", edit(meta), arrays, respec=False)
        refused(load_params, path, field)


class TestMetadataMember:
    """The metadata entry itself: a 0-d string of bounded size holding JSON."""

    CASES = {
        "not JSON": (np.array("{nope"), "__metadata__"),
        "deeply nested JSON": (np.array("[" * 100_000 + "]" * 100_000), "__metadata__"),
        "a number": (np.array(5.0), "__metadata__ has dtype float64"),
        "bytes": (np.array(b'{"format": "jaxmix"}'), "__metadata__ has dtype"),
        "a 1-D string array": (np.array(["{}", "{}"]), "__metadata__ has shape"),
        "too large": (np.array(" " * 2 ** 19 + "{}"), "__metadata__ is .* bytes"),
    }

    @pytest.mark.parametrize("loader", LOADERS.values(), ids=LOADERS)
    @pytest.mark.parametrize("metadata, field", CASES.values(), ids=CASES)
    def test_refused(self, saved, tmp_path, metadata, field, loader):
        _, arrays = contents(saved["diag"])
        path = tmp_path / "m.npz"
        np.savez(path, __metadata__=metadata, **arrays)
        refused(loader, path, field)


class TestDeclaredSizes:
    """Each member's .npy header is checked before its data is read: a numeric
    dtype, the metadata's shape and dtype, exactly the bytes the member holds;
    the archive: a bounded number of distinct .npy members within the file."""

    F8 = np.dtype("<f8").str
    CASES = {  # member bytes, the metadata's spec for it (None: unchanged), field
        "2**40 elements in no bytes": (npy_header("<f8", (2 ** 40,)),
                                       dict(shape=[2 ** 40], dtype=F8), "declares shape"),
        "fewer bytes than declared": (npy_header("<f8", (2, 2), bytes(16)), None, "holds 16"),
        "more bytes than declared": (npy_header("<f8", (2, 2), bytes(64)), None, "holds 64"),
        "object dtype": (npy_header("|O", (2, 2), bytes(32)), dict(shape=[2, 2], dtype="|O"),
                         "dtype object"),
        "structured dtype": (npy_header([("a", "<f8"), ("b", "<f8")], (2,), bytes(32)),
                             dict(shape=[2], dtype="|V16"), "must be numeric"),
        "unicode dtype": (npy_header("<U2", (2, 2), bytes(32)),
                          dict(shape=[2, 2], dtype="<U2"), "must be numeric"),
        "bytes dtype": (npy_header("|S8", (2, 2), bytes(32)),
                        dict(shape=[2, 2], dtype="|S8"), "must be numeric"),
        "complex dtype": (npy_header("<c16", (2,), bytes(32)),
                          dict(shape=[2], dtype="<c16"), "must be numeric"),
        "datetime dtype": (npy_header("<M8[s]", (2, 2), bytes(32)),
                           dict(shape=[2, 2], dtype="<M8[s]"), "must be numeric"),
        "shape other than the metadata's": (npy_bytes(np.zeros((5, 5))), None, "metadata says"),
        "dtype other than the metadata's": (npy_bytes(np.zeros((2, 2), np.float32)), None,
                                            "metadata says"),
        ".npy format version 3": (npy_header("<f8", (2, 2), bytes(32), b"\x03\x00"), None,
                                  "version"),
        "not an .npy header": (b"garbage", None, "not a readable"),
        "invalid dtype descriptor": (npy_header("zz", (2, 2), bytes(32)), None, "not a readable"),
        "truncated header": (npy_bytes(np.zeros((2, 2)))[:20], None, "not a readable"),
    }

    @pytest.mark.parametrize("loader", ESTIMATOR_LOADERS.values(), ids=ESTIMATOR_LOADERS)
    @pytest.mark.parametrize("member, spec, field", CASES.values(), ids=CASES)
    def test_member_refused(self, saved, tmp_path, member, spec, field, loader):
        path = with_member(saved["diag"], tmp_path / "m.npz", "means_", member, spec)
        assert "array 'means_'" in refused(loader, path, field)

    def test_small_file_claiming_a_huge_array_allocates_nothing(self, tmp_path):
        """The issue's example: a few hundred bytes whose header claims 2**40
        float64 elements (8 TiB) is refused before anything is allocated."""
        meta = dict(format="jaxmix", format_version=FORMAT_VERSION, kind="KMeansParams",
                    covariance_type=None, arrays={"centroids": dict(shape=[2 ** 20, 2 ** 20],
                                                                    dtype=self.F8)})
        path = write_zip(tmp_path / "bomb.npz", [
            ("__metadata__.npy", npy_bytes(np.array(json.dumps(meta)))),
            ("centroids.npy", npy_header("<f8", (2 ** 20, 2 ** 20)))], zipfile.ZIP_DEFLATED)
        assert path.stat().st_size < 1000
        tracemalloc.start()
        try:
            refused(load_params, path, "'centroids' declares shape")
            peak = tracemalloc.get_traced_memory()[1]
        finally:
            tracemalloc.stop()
        assert peak < 2 ** 20

    def test_central_directory_lying_about_sizes(self, saved, tmp_path):
        """A deflated member whose zip entry claims as many bytes as its header
        (256 MiB) but holds none is refused when the bytes are not there,
        without allocating them; a stored one claiming more than the file is
        refused up front."""
        header = npy_header("|u1", (2 ** 28,))
        spec = dict(shape=[2 ** 28], dtype="|u1")
        deflated = with_member(saved["diag"], tmp_path / "d.npz", "means_", header, spec,
                               zipfile.ZIP_DEFLATED)
        patch_sizes(deflated, "means_.npy", uncompressed=len(header) + 2 ** 28)
        tracemalloc.start()
        try:
            refused(load_estimator, deflated, "means_")
            peak = tracemalloc.get_traced_memory()[1]
        finally:
            tracemalloc.stop()
        assert peak < 2 ** 24
        stored = with_member(saved["diag"], tmp_path / "s.npz", "means_", header, spec)
        patch_sizes(stored, "means_.npy", 2 ** 31, 2 ** 31)
        refused(load_estimator, stored, "member 'means_.npy' declares")

    ARCHIVES = {  # edit of the [(name, bytes)] members, field
        "too many members": (lambda m: m + [(f"x{i}.npy", npy_bytes(np.zeros(1)))
                                            for i in range(64)], "at most 64 arrays"),
        "duplicate member": (lambda m: m + [m[-1]], "appears twice"),
        "member that is not .npy": (lambda m: m + [("notes.txt", b"hi")],
                                    "'notes.txt' is not an .npy"),
        "member not in the metadata": (lambda m: m + [("extra.npy", npy_bytes(np.zeros(2)))],
                                       "corrupt: its arrays"),
        "declared member missing": (lambda m: [x for x in m if x[0] != "means_.npy"],
                                    "corrupt: its arrays"),
    }

    @pytest.mark.parametrize("loader", ESTIMATOR_LOADERS.values(), ids=ESTIMATOR_LOADERS)
    @pytest.mark.parametrize("edit, field", ARCHIVES.values(), ids=ARCHIVES)
    def test_archive_refused(self, saved, tmp_path, edit, field, loader):
        members = list(raw_members(saved["diag"]).items())
        refused(loader, write_zip(tmp_path / "m.npz", edit(members)), field)

    def test_compression_numpy_never_writes_is_refused(self, saved, tmp_path):
        path = write_zip(tmp_path / "b.npz", raw_members(saved["diag"]).items(),
                         zipfile.ZIP_BZIP2)
        refused(load_estimator, path, "compressed in a way numpy never writes")

    def test_deflated_and_fortran_ordered_files_load(self, saved, tmp_path):
        """np.savez_compressed archives and Fortran-ordered arrays are valid files."""
        meta, arrays = contents(saved["full"])
        path = tmp_path / "c.npz"
        np.savez_compressed(path, __metadata__=np.array(json.dumps(meta)),
                            **{**arrays, "means_": np.asfortranarray(arrays["means_"])})
        np.testing.assert_array_equal(GaussianMixture.load(path).means_, arrays["means_"])


def _nan_at(a, index=0):
    a = np.array(a, dtype=float)
    a.flat[index] = np.nan
    return a


class TestValues:
    """Arrays of the right structure but wrong values: the one params checker
    for GMMs (under the file's covariance type), finite centres and valid
    labels for K-Means; the field is named."""

    GMM = {  # saved model, arrays replaced (given the loaded originals), field
        "NaN means": ("diag", lambda a: dict(means_=_nan_at(a["means_"])), "means contains NaN"),
        "infinite weight": ("diag", lambda a: dict(weights_=np.array([np.inf, 0.5])),
                            "weights contains NaN or inf"),
        "NaN weight": ("full", lambda a: dict(weights_=np.array([np.nan, 0.5])), "weights"),
        "negative weight": ("diag", lambda a: dict(weights_=np.array([1.5, -0.5])),
                            "weights must be positive"),
        "zero weight": ("tied", lambda a: dict(weights_=np.array([1.0, 0.0])), "positive"),
        "weights not summing to one": ("diag", lambda a: dict(weights_=np.array([0.9, 0.9])),
                                       "weights_ must sum to 1"),
        "negative factor": ("diag", lambda a: dict(precisions_cholesky_=-a[
            "precisions_cholesky_"]), "positive diagonal"),
        "NaN factor": ("full", lambda a: dict(precisions_cholesky_=_nan_at(a[
            "precisions_cholesky_"])), "precisions_cholesky contains NaN"),
        "lower-triangular factor": ("full", lambda a: dict(precisions_cholesky_=np.swapaxes(
            a["precisions_cholesky_"], 1, 2)), "upper triangular"),
        "integer means": ("diag", lambda a: dict(means_=np.zeros((2, 2), np.int64)), "float"),
        "boolean weights": ("diag", lambda a: dict(weights_=np.ones(2, bool)), "must be float"),
        "features other than n_features_in_": ("diag", lambda a: dict(
            means_=np.zeros((2, 3)), precisions_cholesky_=np.ones((2, 3))), r"means must have"),
        "components other than n_components": ("diag", lambda a: dict(
            weights_=np.full(3, 1 / 3), means_=np.zeros((3, 2)),
            precisions_cholesky_=np.ones((3, 2))), r"weights must have shape \(2,\)"),
        "2-D lower_bounds_": ("diag", lambda a: dict(lower_bounds_=np.zeros((2, 2))),
                              "lower_bounds_ must be 1-D"),
    }

    @pytest.mark.parametrize("loader", [load_estimator, GaussianMixture.load],
                             ids=["load_estimator", "GaussianMixture.load"])
    @pytest.mark.parametrize("model, change, field", GMM.values(), ids=GMM)
    def test_gmm_refused(self, saved, tmp_path, model, change, field, loader):
        arrays = contents(saved[model])[1]
        refused(loader, edited(saved[model], tmp_path / "m.npz", **change(arrays)), field)

    KMEANS = {
        "NaN centres": (lambda a: dict(cluster_centers_=_nan_at(a["cluster_centers_"])),
                        "cluster_centers_ contains NaN"),
        "infinite centre": (lambda a: dict(cluster_centers_=np.full((3, 2), -np.inf)),
                            "cluster_centers_ contains NaN or inf"),
        "centres other than n_clusters": (lambda a: dict(cluster_centers_=np.zeros((4, 2))),
                                          r"cluster_centers_ must have shape \(3, 2\)"),
        "1-D centres": (lambda a: dict(cluster_centers_=np.zeros(6)), "cluster_centers_ must"),
        "label out of range": (lambda a: dict(labels_=np.full(5, 3)), r"labels_.*\[0, 3\)"),
        "negative label": (lambda a: dict(labels_=np.full(5, -1)), "labels_"),
        "float labels": (lambda a: dict(labels_=np.zeros(5)), "labels_.*integer"),
        "2-D labels": (lambda a: dict(labels_=np.zeros((5, 1), np.int64)), "labels_.*1-D"),
    }

    @pytest.mark.parametrize("model", ["kmeans", "minibatch"])
    @pytest.mark.parametrize("change, field", KMEANS.values(), ids=KMEANS)
    def test_kmeans_refused(self, saved, tmp_path, model, change, field):
        arrays = contents(saved[model])[1]
        path = edited(saved[model], tmp_path / "m.npz", **change(arrays))
        refused(load_estimator, path, field)

    PARAMS = {  # raw parameter files
        "NaN centroids": ("centroids", None, dict(centroids=np.full((3, 2), np.nan)),
                          "centroids contains NaN"),
        "1-D centroids": ("centroids", None, dict(centroids=np.zeros(3)), "centroids must"),
        "centroids with a covariance type": ("centroids", put("covariance_type", value="full"),
                                             {}, "'covariance_type'"),
        "GMM without a covariance type": ("params", put("covariance_type", value=None), {},
                                          "'covariance_type'"),
        "NaN means": ("params", None, dict(means=_nan_at(np.zeros((2, 2)))), "means contains"),
        "extra array": ("params", None, dict(predict=np.zeros(2)), r"unknown arrays \['predict"),
        "missing array": ("params", None, dict(weights=None), r"missing arrays \['weights'\]"),
    }

    @pytest.mark.parametrize("model, edit, change, field", PARAMS.values(), ids=PARAMS)
    def test_params_refused(self, saved, tmp_path, model, edit, change, field):
        refused(load_params, edited(saved[model], tmp_path / "m.npz", edit, **change), field)

    def test_derived_arrays_come_from_the_factors(self, saved, tmp_path):
        """covariances_ and precisions_ are recomputed from the checked factors:
        the file's copies are not a second source."""
        original = GaussianMixture.load(saved["full"])
        path = edited(saved["full"], tmp_path / "m.npz", covariances_=np.full((2, 2, 2), np.nan),
                      precisions_=np.zeros((2, 2, 2)))
        back = GaussianMixture.load(path)
        np.testing.assert_array_equal(back.covariances_, original.covariances_)
        np.testing.assert_array_equal(back.precisions_, original.precisions_)


class TestScalarAttributes:
    """Each fitted scalar of the class's type (ints >= 0); n_features_in_ required."""

    CASES = {  # saved model, attribute, stored value (KeyError: removed), field
        "negative n_iter_": ("diag", "n_iter_", -1, "'n_iter_' must be an integer >= 0"),
        "fractional n_iter_": ("diag", "n_iter_", 2.5, "'n_iter_' must be an integer"),
        "bool n_iter_": ("full", "n_iter_", True, "'n_iter_' must be an integer"),
        "NaN n_iter_": ("kmeans", "n_iter_", "nan", "'n_iter_' must be an integer"),
        "integer converged_": ("diag", "converged_", 1, "'converged_' must be a bool"),
        "bool lower_bound_": ("diag", "lower_bound_", False, "'lower_bound_' must be a number"),
        "float n_features_in_": ("diag", "n_features_in_", 2.0, "'n_features_in_' must be"),
        "missing n_features_in_": ("kmeans", "n_features_in_", KeyError,
                                   "'n_features_in_' is missing"),
        "n_features_in_ other than the centres'": ("kmeans", "n_features_in_", 3,
                                                   r"cluster_centers_ must have shape \(3, 3\)"),
        "bool inertia_": ("kmeans", "inertia_", True, "'inertia_' must be a number"),
        "negative n_steps_": ("minibatch", "n_steps_", -1, "'n_steps_' must be an integer"),
        "_n_features_out other than n_clusters": ("kmeans", "_n_features_out", 5,
                                                  "_n_features_out must be n_clusters=3"),
    }

    @pytest.mark.parametrize("model, name, value, field", CASES.values(), ids=CASES)
    def test_refused(self, saved, tmp_path, model, name, value, field):
        path = edited(saved[model], tmp_path / "m.npz", put("attributes", name, value=value))
        refused(load_estimator, path, field)

    def test_non_finite_float_and_int_to_float(self, saved, tmp_path):
        edit = put("attributes", "lower_bound_", value="-inf")
        back = load_estimator(edited(saved["diag"], tmp_path / "a.npz", edit))
        assert back.lower_bound_ == -np.inf
        back = load_estimator(edited(saved["kmeans"], tmp_path / "b.npz",
                                     put("attributes", "inertia_", value=7)))
        assert isinstance(back.inertia_, float) and back.inertia_ == 7.0


def test_optional_attributes_may_be_missing(tmp_path, data):
    """A MiniBatchKMeans fitted by partial_fit without labels has no labels_ or
    inertia_: its file loads, and the loaded model predicts the same."""
    mb = MiniBatchKMeans(3, compute_labels=False, random_state=0).partial_fit(data)
    mb.save(tmp_path / "mb.npz")
    back = MiniBatchKMeans.load(tmp_path / "mb.npz")
    assert not hasattr(back, "labels_") and not hasattr(back, "inertia_")
    np.testing.assert_array_equal(back.predict(data), mb.predict(data))


class TestOnlyKnownNames:
    """A loader sets only the names the class declares (get_params,
    _saved_arrays / _saved_optional_arrays, _saved_scalars): any other name is
    refused, so a file cannot replace a method or set __class__; parameter
    values pass the class's own constraints."""

    ATTRIBUTES = ["predict", "__class__", "_check_loaded", "score_samples", "fit", "foo_"]

    @pytest.mark.parametrize("name", ATTRIBUTES)
    def test_unknown_attribute(self, saved, tmp_path, name):
        path = edited(saved["diag"], tmp_path / "m.npz", put("attributes", name, value=1))
        refused(load_estimator, path, rf"unknown attributes \['{name}'\]")
        assert GaussianMixture.predict is not None and callable(GaussianMixture().predict)

    @pytest.mark.parametrize("name", ["predict", "__dict__", "_params", "means"])
    def test_unknown_array(self, saved, tmp_path, name):
        path = edited(saved["diag"], tmp_path / "m.npz", **{name: np.zeros(2)})
        refused(load_estimator, path, rf"unknown arrays \['{name}'\]")

    PARAMS = {  # metadata edit, arrays added, field
        "unknown parameter": (put("params", "foo", value=1), {}, r"unknown parameters \['foo'\]"),
        "__class__ parameter": (put("params", "__class__", value="KMeans"), {},
                                r"unknown parameters \['__class__'\]"),
        "numeric name": (put("params", "5", value=1), {}, r"unknown parameters \['5'\]"),
        "nested name": (put("params", "estimator__tol", value=1), {}, "unknown parameters"),
        "unknown array parameter": (None, {"param:predict": np.zeros(2)},
                                    r"unknown parameters \['predict'\]"),
        "parameter stored twice": (None, {"param:tol": np.zeros(2)}, r"params \['tol'\].*both"),
        "n_components 0": (put("params", "n_components", value=0), {}, "params:.*n_components"),
        "unknown init_params": (put("params", "init_params", value="nope"), {},
                                "params:.*init_params"),
        "tol a string": (put("params", "tol", value="small"), {}, "params:.*tol"),
    }

    @pytest.mark.parametrize("edit, arrays, field", PARAMS.values(), ids=PARAMS)
    def test_bad_parameter(self, saved, tmp_path, edit, arrays, field):
        refused(load_estimator, edited(saved["diag"], tmp_path / "m.npz", edit, **arrays), field)

    @pytest.mark.parametrize("name", GaussianMixture._saved_arrays)
    def test_missing_required_array(self, saved, tmp_path, name):
        path = edited(saved["diag"], tmp_path / "m.npz", **{name: None})
        refused(GaussianMixture.load, path, rf"missing arrays \['{name}'\]")

    def test_kmeans_with_a_covariance_type(self, saved, tmp_path):
        """A covariance type in a K-Means file: refused as an unknown parameter
        when the metadata agrees, as a second source when it does not."""
        both = put("params", "covariance_type", value="full")
        path = edited(saved["kmeans"], tmp_path / "a.npz",
                      lambda m: put("covariance_type", value="full")(both(m)))
        refused(KMeans.load, path, r"unknown parameters \['covariance_type'\]")
        refused(KMeans.load, edited(saved["kmeans"], tmp_path / "b.npz", both),
                r"params\['covariance_type'\]")


class TestOneCovarianceType:
    """The covariance type comes from one source: the metadata's, which the
    constructor parameter must repeat, and the arrays are checked under it
    (so a relabelled file is refused even where k == d makes shapes agree)."""

    RELABELS = {  # saved model, new type, where it is written, field
        "diag as tied (k == d)": ("diag", "tied", "both", "tied model's.*upper triangular"),
        "tied as diag (k == d)": ("tied", "diag", "both", "diag model's.*positive diagonal"),
        "full as tied": ("full", "tied", "both", "precisions_cholesky must have shape"),
        "diag as spherical": ("diag", "spherical", "both", "spherical model's.*must have shape"),
        "full as diag": ("full", "diag", "both", "must have shape"),
        "diag as tied in the metadata only": ("diag", "tied", "metadata",
                                              r"params\['covariance_type'\] is 'diag'"),
        "diag as tied in the params only": ("diag", "tied", "params",
                                            r"params\['covariance_type'\] is 'tied'"),
        "params without a covariance type": ("diag", None, "params",
                                             r"params\['covariance_type'\] is None"),
    }

    @staticmethod
    def relabel(ct, where):
        edits = dict(metadata=[put("covariance_type", value=ct)],
                     params=[put("params", "covariance_type", value=ct)])
        edits["both"] = edits["metadata"] + edits["params"]
        if ct is None:
            edits["params"] = [put("params", "covariance_type")]

        def edit(meta):
            for e in edits[where]:
                meta = e(meta)
            return meta
        return edit

    @pytest.mark.parametrize("loader", [load_estimator, GaussianMixture.load],
                             ids=["load_estimator", "GaussianMixture.load"])
    @pytest.mark.parametrize("model, ct, where, field", RELABELS.values(), ids=RELABELS)
    def test_relabelled_estimator_refused(self, saved, tmp_path, model, ct, where, field,
                                          loader):
        refused(loader, edited(saved[model], tmp_path / "m.npz", self.relabel(ct, where)), field)

    @pytest.mark.parametrize("where", ["metadata", "params", "both"])
    def test_load_asking_for_the_new_type_refused(self, saved, tmp_path, where):
        """load(covariance_type=...) and the model built agree: asking for the
        type a diag file was relabelled to (in either place) does not build it."""
        path = edited(saved["diag"], tmp_path / "m.npz", self.relabel("tied", where))
        refused(lambda p: GaussianMixture.load(p, covariance_type="tied"), path)

    @pytest.mark.parametrize("model, ct, field", [("diag", "tied", "upper triangular"),
                                                  ("tied", "diag", "positive")])
    def test_relabelled_params_refused(self, tmp_path, model, ct, field):
        rng = np.random.default_rng(0)
        pc = np.triu(rng.uniform(0.5, 1, (2, 2))) if model == "tied" else np.ones((2, 2))
        save_params(tmp_path / "p.npz", GMMParams(np.full(2, 0.5), np.zeros((2, 2)), pc, model))
        path = edited(tmp_path / "p.npz", tmp_path / "m.npz", put("covariance_type", value=ct))
        refused(load_params, path, field)
        refused(lambda p: load_params(p, covariance_type=model), path, f"expected '{model}'")

    @pytest.mark.parametrize("model", ["diag", "tied", "full"])
    def test_each_type_loads_under_its_own_name(self, saved, data, model):
        back = GaussianMixture.load(saved[model], covariance_type=model)
        assert back.covariance_type == model
        np.testing.assert_array_equal(back.predict(data),
                                      load_estimator(saved[model]).predict(data))
