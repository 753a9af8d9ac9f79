"""Per-iteration callbacks (jaxmix.fit.progress): every iteration of every
restart reaches the callback with the objective its history records; the
fit is unchanged by it; another callback compiles nothing; without one the
program holds no callback at all."""

from __future__ import annotations

import csv

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import jaxmix as jm
from jaxmix.families import Poisson, fit_mixture
from jaxmix.fit import progress as prog
from jaxmix.fit.driver import iterate
from jaxmix.fit.rows import TRACE_COUNT

RNG = np.random.default_rng(0)
X = np.concatenate([RNG.normal(-3, 1, (150, 2)), RNG.normal(3, 1, (150, 2))])


def check_log(log: prog.TraceLog, result, label: str):
    """One row per iteration of each restart, holding its history's value."""
    rows = [r for r in log.rows if r[0] == label]
    assert len(rows) == int(np.sum(np.asarray(result.n_iter)))
    hist = np.asarray(result.history)
    for _, r, it, objective, seconds in rows:
        np.testing.assert_allclose(objective, hist[r, it - 1], rtol=1e-12)
        assert seconds >= 0
    per = {r: [row[2] for row in rows if row[1] == r] for r in range(hist.shape[0])}
    for r, its in per.items():
        assert its == list(range(1, int(result.n_iter[r]) + 1))


def test_em_callback_sees_every_iteration_and_changes_nothing():
    plain = jm.fit_gmm(0, X, 2, n_restarts=3)
    log = prog.TraceLog()
    before = TRACE_COUNT["gmm"]
    seen = jm.fit_gmm(0, X, 2, n_restarts=3, callback=log.recorder("em"))
    log_b = prog.TraceLog()
    again = jm.fit_gmm(0, X, 2, n_restarts=3, callback=log_b.recorder("again"))
    assert TRACE_COUNT["gmm"] - before <= 1, "a second callback must not recompile"
    for a, b in zip(jax.tree.leaves(plain), jax.tree.leaves(seen)):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
    check_log(log, seen, "em")
    check_log(log_b, again, "again")


@pytest.mark.slow
def test_callbacks_of_restarts_beyond_the_slots_and_of_other_fits(tmp_path):
    """20 restarts run in 16 refilled slots; gradient, K-Means and family
    fits report through the same driver; a log of all of them as CSV."""
    log = prog.TraceLog()
    em = jm.fit_gmm(0, X, 2, n_restarts=20, callback=log.recorder("em20"))
    check_log(log, em, "em20")
    adam = jm.fit_gradient(0, X, 2, optax.adam(0.05), n_restarts=2, max_iter=30,
                           callback=log.recorder("adam"))
    check_log(log, adam, "adam")
    km = jm.fit_kmeans(0, X, 2, n_restarts=2, callback=log.recorder("kmeans"))
    assert len([r for r in log.rows if r[0] == "kmeans"]) == int(np.sum(km.n_iter))
    counts = RNG.poisson(np.where(np.arange(300)[:, None] % 2, 2.0, 9.0), (300, 1)).astype(float)
    fam = fit_mixture(0, counts, 2, Poisson(), n_restarts=2, callback=log.recorder("poisson"))
    check_log(log, fam, "poisson")
    log.to_csv(tmp_path / "trace.csv")
    with open(tmp_path / "trace.csv") as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == len(log.rows) and rows[0]["label"] == "em20"
    assert float(rows[3]["objective"]) == log.rows[3][3]


def test_a_fit_jitted_by_the_user_calls_back_on_every_run():
    """Traced inside the user's jit, the callback stays registered: each run
    of the compiled function reports all its iterations."""
    log = prog.TraceLog()
    fit = jax.jit(lambda x: jm.fit_gmm(0, x, 2, n_restarts=2, callback=log.recorder("j")).n_iter)
    first = int(np.sum(fit(X)))
    assert len(log.rows) == first
    second = int(np.sum(fit(X + 0.5)))
    assert len(log.rows) == first + second
    assert [r[2] for r in log.rows[first:first + 2]] == [1, 1]


def test_no_callback_compiles_none_and_bad_callbacks_are_refused():
    def step(p):
        return p + 1.0, -jnp.abs(p - 3.0)

    def program(token):
        return jax.make_jaxpr(lambda p: iterate(step, p, 0.0, 5, progress=token))(
            jnp.zeros(2)).pretty_print()
    assert "callback" not in program(None)
    assert "callback" in program(jnp.int32(1))
    with pytest.raises(ValueError, match="callback must be a function"):
        jm.fit_gmm(0, X, 2, callback="print")


def test_sklearn_verbose_prints_live_iterations(capsys):
    from jaxmix.sklearn import GaussianMixture
    GaussianMixture(2, n_init=2, verbose=2, verbose_interval=1, tol=1e-8).fit(X)
    out = capsys.readouterr().out
    assert "  Iteration 2\t time lapse " in out and "ll change" in out
    assert "Initialization 1" in out


def test_restarts_that_start_together_in_refilled_slots_keep_their_counts(tmp_path):
    """40 restarts in 16 slots with tol=0 and max_iter=3: whole slot batches
    start at once; every restart's last reported count is its n_iter (the
    entry is reset only by a new run), and labels with commas stay one CSV
    field."""
    seen = []
    res = jm.fit_gmm(0, X, 2, n_restarts=40, max_iter=3, tol=0.0, init="random_from_data",
                     callback=seen.append)
    np.testing.assert_array_equal(seen[-1].iteration, np.asarray(res.n_iter))
    assert all(b.seconds >= a.seconds for a, b in zip(seen, seen[1:]))
    log = prog.TraceLog()
    log.recorder("a,b")(seen[0])
    log.to_csv(tmp_path / "t.csv")
    with open(tmp_path / "t.csv") as f:
        rows = list(csv.DictReader(f))
    assert rows[0]["label"] == "a,b" and len(rows) == int(seen[0].active.sum())


@pytest.mark.slow
def test_select_k_reports_the_grid_rows():
    log = prog.TraceLog()
    jm.select_k(0, X, [1, 2, 3], n_restarts=2, callback=log.recorder("grid"))
    assert sorted(set(log.column("restart"))) == list(range(6))
