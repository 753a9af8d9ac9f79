"""The store of compiled programs by call signature (:mod:`jaxmix.executables`):
a new process reads a fit back without tracing it and gets the same result;
corrupt files, untrusted static arguments, programs JAX read from its own
cache and the file limit are handled; the key sees what changes a program."""

from __future__ import annotations

import json
import os
import pathlib
import subprocess
import sys

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from session_cache import jax_cache_defaults

from jaxmix import compiling, executables
from jaxmix.compile_cache import enable_compilation_cache

REPO = pathlib.Path(__file__).resolve().parents[1]

CHILD = """
import json, sys
import numpy as np
import jaxmix
from jaxmix import executables
from jaxmix.fit.rows import TRACE_COUNT
folder, mode = sys.argv[1], sys.argv[2]
jaxmix.enable_compilation_cache(folder)
if mode == "jax-only":
    executables.enable(False)
x = np.random.default_rng(0).normal(size=(60, 2)).astype(np.float32)
r = jaxmix.fit_gmm(3, x, 2, n_restarts=3, max_iter=8)
print(json.dumps({"stats": executables.stats(), "traces": TRACE_COUNT["gmm"],
                  "means": np.asarray(r.params.means).tolist(),
                  "objective": np.asarray(r.objective).tolist()}))
"""


def run_child(folder, mode="store") -> dict:
    env = dict(os.environ, PYTHONPATH=str(REPO))
    env.pop("JAXMIX_COMPILATION_CACHE", None)
    done = subprocess.run([sys.executable, "-c", CHILD, str(folder), mode], capture_output=True,
                          text=True, timeout=300, env=env)
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout.splitlines()[-1])


def stored(folder) -> list:
    return sorted((pathlib.Path(folder) / executables.FOLDER_NAME).glob("*.exe"))


def test_new_process_reads_the_fit_back_without_tracing_it(tmp_path):
    """Also the case that broke a first version: the fit already in JAX's own
    cache (an executable JAX read back cannot be serialised again on CPU), so
    the store must compile it afresh rather than copy JAX's."""
    jax_only = run_child(tmp_path, "jax-only")  # JAX's cache holds the programs, the store none
    assert jax_only["stats"]["misses"] == 0 and not stored(tmp_path)
    first = run_child(tmp_path)
    assert first["stats"]["misses"] >= 1 and first["stats"]["hits"] == 0
    assert first["traces"] == 1 and stored(tmp_path)
    second = run_child(tmp_path)
    assert second["stats"]["hits"] >= 1 and second["stats"]["misses"] == 0
    assert second["traces"] == 0  # not traced: read back by its signature
    for run in (first, second):  # the same numbers as JAX's own path
        assert run["means"] == jax_only["means"]
        assert run["objective"] == jax_only["objective"]
    for path in stored(tmp_path):  # corrupt files: deleted, compiled again
        path.write_bytes(path.read_bytes()[:-10] + b"0123456789")
    third = run_child(tmp_path)
    assert third["stats"]["hits"] == 0 and third["stats"]["misses"] >= 1
    assert third["means"] == jax_only["means"]


# ---------------------------------------------------------------------------
# in this process


@pytest.fixture
def store(tmp_path):
    """The store on in ``tmp_path``; JAX's cache settings and the store's state restored after."""
    with jax_cache_defaults():
        enable_compilation_cache(tmp_path)
        executables.clear()
        yield tmp_path / executables.FOLDER_NAME


def _scaled(x, factor, *, power):
    return x * factor ** int(power)


_scaled.__module__ = "jaxmix._tests"  # stands in for a program of jaxmix's (only those are stored)


class UserPower:
    """A static argument of a class outside jaxmix: its code is not in the key."""

    def __init__(self, p):
        self.p = p

    def __hash__(self):
        return hash(self.p)

    def __eq__(self, other):
        return isinstance(other, UserPower) and other.p == self.p

    def __int__(self):
        return self.p


scaled = compiling.jit(_scaled, static_argnames="power")


def test_off_unless_enabled():
    assert executables.folder() is None
    before = executables.stats()
    assert float(scaled(jnp.float32(2.0), 3.0, power=2)) == 18.0
    assert executables.stats() == before


def test_calls_are_stored_held_and_keyed_by_what_changes_the_program(store):
    before = executables.stats()
    x = np.arange(3, dtype=np.float32)
    np.testing.assert_array_equal(scaled(x, 2.0, power=3), x * 8)
    np.testing.assert_array_equal(scaled(x, factor=2.0, power=3), x * 8)  # same normal form
    np.testing.assert_array_equal(scaled(x, 3.0, power=3), x * 27)  # traced factor: same program
    after = executables.stats()
    assert after["misses"] - before["misses"] == 1 and after["memory"] - before["memory"] == 2
    assert len(stored(store.parent)) == 1
    scaled(x, 2.0, power=2)  # another static value
    scaled(x.astype(np.float64), 2.0, power=3)  # another dtype
    scaled(x[:2], 2.0, power=3)  # another shape
    assert executables.stats()["misses"] - before["misses"] == 4
    executables.clear()  # read back from the file
    np.testing.assert_array_equal(scaled(x, 2.0, power=3), x * 8)
    assert executables.stats()["hits"] - before["hits"] == 1


def test_untrusted_static_arguments_and_transformations_use_plain_jit(store):
    before = executables.stats()
    x = np.arange(3, dtype=np.float32)
    np.testing.assert_array_equal(scaled(x, 2.0, power=UserPower(2)), x * 4)
    assert executables.stats()["declined"] - before["declined"] == 1
    assert executables.call_key("f", {"power": UserPower(2)}, ((x,), {})) is None
    vmapped = jax.vmap(lambda v: scaled(v, 2.0, power=2))(x[:, None])  # nested: jax.jit
    np.testing.assert_array_equal(vmapped[:, 0], x * 4)
    after = executables.stats()
    assert after["misses"] == before["misses"] and not stored(store.parent)


def test_keys_see_weak_types_and_devices(store):
    k = executables.call_key
    base = k("f", {"power": 2}, ((np.float32(1.0),), {}))
    assert base == k("f", {"power": 2}, ((np.float32(2.0),), {}))  # values are not keyed
    assert base != k("f", {"power": 2}, ((1.0,), {}))  # a Python float is weakly typed
    assert base != k("g", {"power": 2}, ((np.float32(1.0),), {}))
    assert base != k("f", {"power": 2.0}, ((np.float32(1.0),), {}))  # 2 and 2.0 differ
    assert k("f", {}, ((np.ones(2, np.float32),), {})) != k("f", {}, ((np.ones((2, 1),
                                                                           np.float32),), {}))


def test_at_most_max_files_are_kept(store, monkeypatch):
    monkeypatch.setattr(executables, "MAX_FILES", 2)
    x = np.arange(3, dtype=np.float32)
    for power in range(4):
        scaled(x, 2.0, power=power)
    assert len(stored(store.parent)) == 2
