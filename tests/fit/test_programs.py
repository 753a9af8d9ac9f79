"""The long-session guard (jaxmix.fit.programs)."""

import numpy as np
import pytest

import jaxmix
from jaxmix.fit import programs

X = np.random.default_rng(0).normal(size=(50, 2)).astype(np.float32)


def test_map_count_and_limit_read_proc():
    used, limit = programs.map_count(), programs.map_limit()
    if used is None:
        pytest.skip("no /proc on this system")
    assert used > 10 and (limit is None or limit > used)


def test_compiled_programs_counts_compilations():
    """A shape no other test uses (d=7) compiles; the same shapes again do not."""
    x = np.random.default_rng(1).normal(size=(40, 7)).astype(np.float32)
    before = programs.compiled_programs()
    jaxmix.fit_kmeans(0, x, 2, max_iter=3)
    after = programs.compiled_programs()
    jaxmix.fit_kmeans(1, x + 1.0, 2, max_iter=5)
    assert after > before and programs.compiled_programs() == after


def test_guard_clears_caches_near_the_map_limit(monkeypatch):
    """With the mappings over MAP_FRACTION of the limit, the next fit empties
    JAX's caches (the same fit then compiles again) and warns once."""
    jaxmix.fit_kmeans(0, X, 2, max_iter=3)
    monkeypatch.setattr(programs, "map_count", lambda: 900)
    monkeypatch.setattr(programs, "map_limit", lambda: 1000)
    monkeypatch.setitem(programs._state, "checked", -programs.CHECK_EVERY)
    monkeypatch.setitem(programs._state, "warned", False)
    cleared, compiled = programs.times_cleared(), programs.compiled_programs()
    with pytest.warns(UserWarning, match="max_map_count"):
        jaxmix.fit_kmeans(0, X, 2, max_iter=3)  # the guard runs as the fit starts
    assert programs.times_cleared() == cleared + 1
    assert programs.compiled_programs() > compiled, "caches were emptied: it compiles again"
    compiled = programs.compiled_programs()
    monkeypatch.setattr(programs, "map_count", lambda: 10)
    jaxmix.fit_kmeans(0, X, 2, max_iter=3)
    assert programs.compiled_programs() == compiled, "below the limit: nothing cleared"


def test_guard_does_nothing_below_the_limit(monkeypatch):
    monkeypatch.setattr(programs, "map_count", lambda: 100)
    monkeypatch.setattr(programs, "map_limit", lambda: 1000)
    monkeypatch.setitem(programs._state, "checked", -programs.CHECK_EVERY)
    assert programs.guard() is False
