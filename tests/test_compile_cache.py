"""The persistent compilation cache: where :func:`enable_compilation_cache`
writes (argument, environment variable, JAX's folder, the per-user default),
a real hit in a second process, and the ``jaxmix`` command's flags.

Every test that enables the cache in this process starts from JAX's
defaults and restores the run's settings afterwards (``jax_cache``): the
rest of the run keeps its own temporary cache (tests/session_cache.py), and
conftest keeps the ``jaxmix`` command's default cache off for every other test."""

from __future__ import annotations

import json
import os
import pathlib
import subprocess
import sys

import jax
import numpy as np
import pytest

from session_cache import OPTIONS, jax_cache_defaults

from jaxmix.cli import demo as cli_demo
from jaxmix.cli.main import main
from jaxmix.compile_cache import ENV_VAR, default_cache_dir, enable_compilation_cache

REPO = pathlib.Path(__file__).resolve().parents[1]
linux_only = pytest.mark.skipif(sys.platform in ("darwin", "win32"),
                                reason="the XDG folder rule is the Linux default")


@pytest.fixture
def jax_cache(monkeypatch, tmp_path):
    """A clean environment (XDG_CACHE_HOME in tmp_path); JAX's cache settings
    at their defaults (not the test run's cache), restored after."""
    for name in (ENV_VAR, "JAX_COMPILATION_CACHE_DIR"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    with jax_cache_defaults():
        yield tmp_path


def entries(folder: pathlib.Path) -> list:
    return sorted(p.name for p in folder.iterdir()) if folder.is_dir() else []


# ---------------------------------------------------------------------------
# where it writes


@linux_only
def test_default_dir_follows_xdg(monkeypatch, tmp_path):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert default_cache_dir() == tmp_path / "xdg" / "jaxmix" / "xla"
    monkeypatch.setenv("HOME", str(tmp_path))
    for unusable in ("", "relative/path"):  # the XDG rule: only absolute paths count
        monkeypatch.setenv("XDG_CACHE_HOME", unusable)
        assert default_cache_dir() == tmp_path / ".cache" / "jaxmix" / "xla"


@linux_only
def test_default_folder_created_and_settings(jax_cache):
    folder = enable_compilation_cache()
    assert folder == jax_cache / "xdg" / "jaxmix" / "xla" and folder.is_dir()
    assert jax.config.jax_compilation_cache_dir == str(folder)
    assert jax.config.jax_persistent_cache_min_compile_time_secs == 0.0
    assert jax.config.jax_persistent_cache_min_entry_size_bytes == -1
    assert enable_compilation_cache() == folder  # twice: harmless, same folder


@pytest.mark.parametrize("value", ["0", "off", "OFF", " False ", "none", "None"])
def test_env_off_values_change_nothing(jax_cache, monkeypatch, value):
    monkeypatch.setenv(ENV_VAR, value)
    before = {name: getattr(jax.config, name) for name in OPTIONS}
    assert enable_compilation_cache() is None
    assert {name: getattr(jax.config, name) for name in OPTIONS} == before
    assert not (jax_cache / "xdg").exists()


def test_env_path_argument_and_jax_folder(jax_cache, monkeypatch):
    monkeypatch.setenv(ENV_VAR, str(jax_cache / "from-env"))
    assert enable_compilation_cache() == jax_cache / "from-env"
    moved = enable_compilation_cache(jax_cache / "argument", min_compile_time_secs=0.5)
    assert moved == jax_cache / "argument" and moved.is_dir()  # the argument wins
    assert jax.config.jax_compilation_cache_dir == str(moved)
    assert jax.config.jax_persistent_cache_min_compile_time_secs == 0.5
    monkeypatch.delenv(ENV_VAR)
    assert enable_compilation_cache() == moved  # a folder already set for JAX is kept
    monkeypatch.setenv(ENV_VAR, "off")
    assert enable_compilation_cache(jax_cache / "argument") == moved  # off: only the default
    assert not (jax_cache / "xdg").exists()


@pytest.mark.parametrize("bad", [-1.0, float("nan"), float("inf")])
def test_min_compile_time_checked(jax_cache, bad):
    with pytest.raises(ValueError, match="min_compile_time_secs"):
        enable_compilation_cache(jax_cache, min_compile_time_secs=bad)


# ---------------------------------------------------------------------------
# a hit in a second process

CHILD = """
import json, sys, time
import jax, numpy as np
events = []
jax.monitoring.register_event_listener(lambda name, **kw: events.append(name))
import jaxmix
folder = jaxmix.enable_compilation_cache(sys.argv[1])
x = np.random.default_rng(0).normal(size=(40, 2)).astype(np.float32)
start = time.perf_counter()
jax.block_until_ready(jaxmix.fit_gmm(0, x, 2, max_iter=5))
print(json.dumps({"folder": str(folder), "seconds": time.perf_counter() - start,
                  "hits": events.count("/jax/compilation_cache/cache_hits"),
                  "stored_hits": jaxmix.executables.stats()["hits"]}))
"""


def run_child(folder) -> dict:
    done = subprocess.run([sys.executable, "-c", CHILD, str(folder)], capture_output=True,
                          text=True, timeout=300, env=dict(os.environ, PYTHONPATH=str(REPO)))
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout.splitlines()[-1])


def test_second_process_reads_the_compiled_fit(tmp_path):
    folder = tmp_path / "cache"
    first = run_child(folder)
    assert first["folder"] == str(folder) and first["hits"] == 0
    written = entries(folder)
    assert written  # the fit's program (file names follow the jitted function's name)
    second = run_child(folder)
    # the fit's program came from the folder: read back by its signature
    # (jaxmix.executables, tests/test_executables.py), JAX's cache for the rest
    assert second["stored_hits"] >= 1, (second, written)


# ---------------------------------------------------------------------------
# the jaxmix command


def fake_demo(monkeypatch, seen: list):
    monkeypatch.setattr(cli_demo, "run", lambda out, settings, figures: seen.append(
        jax.config.jax_compilation_cache_dir) or [out / "report.md"])


@linux_only
@pytest.mark.parametrize("argv, where", [
    (["demo"], "xdg/jaxmix/xla"),
    ([], "xdg/jaxmix/xla"),  # no command: the demo, cache on
    (["--compilation-cache", "moved", "demo"], "moved"),
    (["demo", "--compilation-cache", "moved"], "moved"),
    (["--no-compilation-cache"], None),
    (["demo", "--no-compilation-cache"], None)])
def test_cli_flags(jax_cache, monkeypatch, capsys, argv, where):
    seen = []
    fake_demo(monkeypatch, seen)
    monkeypatch.chdir(jax_cache)
    assert main(argv) == 0, capsys.readouterr().err
    assert seen == [str(jax_cache / where) if where else None]


@linux_only
def test_cli_env_off_and_bad_folders(jax_cache, monkeypatch, capsys):
    seen = []
    fake_demo(monkeypatch, seen)
    monkeypatch.chdir(jax_cache)
    monkeypatch.setenv(ENV_VAR, "off")
    assert main(["demo"]) == 0 and seen == [None]
    (jax_cache / "a-file").write_text("")
    for argv, message in ((["--compilation-cache", "a-file", "demo"], "cannot use this folder"),
                          (["--no-compilation-cache", "--compilation-cache", "x"], "contradict")):
        assert main(argv) == 2
        assert message in capsys.readouterr().err
    assert seen == [None] and not (jax_cache / "xdg").exists()
    monkeypatch.delenv(ENV_VAR)
    monkeypatch.setenv("XDG_CACHE_HOME", str(jax_cache / "a-file"))  # default unusable: a note
    assert main(["demo"]) == 0 and seen == [None, None]
    assert "note: compiling without a cache" in capsys.readouterr().err


@linux_only
def test_cli_writes_the_default_folder_unless_turned_off(tmp_path):
    np.save(tmp_path / "x.npy", np.random.default_rng(0).normal(size=(30, 2)))
    env = {k: v for k, v in os.environ.items() if k not in (ENV_VAR, "JAX_COMPILATION_CACHE_DIR")}
    env.update(PYTHONPATH=str(REPO), HOME=str(tmp_path), XDG_CACHE_HOME=str(tmp_path / "xdg"))
    fit = ["fit", "x.npy", "--k", "2", "--restarts", "1", "--max-iter", "5", "--quiet"]
    folder = tmp_path / "xdg" / "jaxmix" / "xla"
    for flags, written in ((["--no-compilation-cache"], False), ([], True)):
        done = subprocess.run([sys.executable, "-m", "jaxmix", *flags, *fit], cwd=tmp_path,
                              env=env, capture_output=True, text=True, timeout=300)
        assert done.returncode == 0, done.stderr[-3000:]
        assert bool(entries(folder)) is written, (flags, entries(folder))
