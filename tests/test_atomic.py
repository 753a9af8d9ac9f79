"""Atomic writes (jaxmix.atomic): a failed write leaves the previous file
intact and no temporary file behind, for every writer of the library and
the command line."""

import os
import stat

import numpy as np
import pytest

from jaxmix import atomic
from jaxmix.io import load_params, save_params
from jaxmix.params import GMMParams


def _params(scale=1.0):
    return GMMParams(np.array([0.4, 0.6], np.float32), scale * np.ones((2, 3), np.float32),
                     np.ones((2, 3), np.float32), "diag")


def test_success_replaces_and_leaves_only_the_file(tmp_path):
    path = tmp_path / "a.bin"
    path.write_bytes(b"old")
    with atomic.atomic_write(path) as f:
        f.write(b"new content")
    assert path.read_bytes() == b"new content"
    assert os.listdir(tmp_path) == ["a.bin"]


@pytest.mark.parametrize("error", [OSError("disk full"), KeyboardInterrupt()])
def test_failure_part_way_keeps_the_old_file(tmp_path, error):
    path = tmp_path / "a.bin"
    path.write_bytes(b"old")
    with pytest.raises(type(error)):
        with atomic.atomic_write(path) as f:
            f.write(b"half of the new")
            raise error
    assert path.read_bytes() == b"old"
    assert os.listdir(tmp_path) == ["a.bin"]


def test_permissions_kept_or_as_open_gives_them(tmp_path):
    old = tmp_path / "kept.txt"
    old.write_text("x")
    os.chmod(old, 0o640)
    atomic.write_text(old, "y")
    assert stat.S_IMODE(os.stat(old).st_mode) == 0o640 and old.read_text() == "y"
    fresh, reference = tmp_path / "fresh.txt", tmp_path / "reference.txt"
    atomic.write_text(fresh, "z")
    reference.write_text("z")
    assert stat.S_IMODE(os.stat(fresh).st_mode) == stat.S_IMODE(os.stat(reference).st_mode)


def test_mode_is_checked(tmp_path):
    with pytest.raises(ValueError, match="mode"):
        with atomic.atomic_write(tmp_path / "a", "a"):
            pass


def test_failed_model_save_keeps_the_previous_model(tmp_path, monkeypatch):
    """np.savez failing after writing part of the archive (a full disk) must
    not destroy the model saved before: it still loads, unchanged."""
    path = tmp_path / "model.npz"
    save_params(path, _params(1.0))

    def broken(f, **arrays):
        f.write(b"PK\x03\x04 truncated")
        raise OSError("No space left on device")

    monkeypatch.setattr(np, "savez", broken)
    with pytest.raises(OSError, match="No space"):
        save_params(path, _params(2.0))
    monkeypatch.undo()
    np.testing.assert_array_equal(np.asarray(load_params(path).means), 1.0)
    assert sorted(os.listdir(tmp_path)) == ["model.npz"]


def test_failed_estimator_save_keeps_the_previous_file(tmp_path, monkeypatch):
    from jaxmix.sklearn import KMeans

    x = np.random.default_rng(0).normal(size=(40, 2)).astype(np.float32)
    path = tmp_path / "km.npz"
    KMeans(2, n_init=1, random_state=0).fit(x).save(path)
    before = path.read_bytes()
    monkeypatch.setattr(np, "savez", lambda f, **a: (f.write(b"junk"), 1 / 0))
    with pytest.raises(ZeroDivisionError):
        KMeans(3, n_init=1, random_state=0).fit(x).save(path)
    assert path.read_bytes() == before and os.listdir(tmp_path) == ["km.npz"]


def test_command_line_writes_are_atomic(tmp_path, monkeypatch):
    """The command line's report, table and model writers all go through
    atomic_write: a failing write leaves the earlier output intact."""
    from jaxmix.cli import demo, main as cli_main

    assert cli_main.write_text is atomic.write_text and demo.write_text is atomic.write_text
    report = tmp_path / "report.md"
    report.write_text("earlier report")
    monkeypatch.setattr(os, "replace", lambda *a: (_ for _ in ()).throw(OSError("rename")))
    with pytest.raises(OSError, match="rename"):
        atomic.write_text(report, "new report")
    assert report.read_text() == "earlier report" and os.listdir(tmp_path) == ["report.md"]
