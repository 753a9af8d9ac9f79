"""The fit driver ``jaxmix.fit.driver.iterate``: failure, freezing, stopping.

Most tests drive ``iterate`` with a toy batched step whose every iterate is
known in closed form, and compare with a plain Python loop over one restart
at a time (:func:`reference`) that spells out the driver's documented rules:

* a step maps params to ``(new params, objective of the params it was given)``;
* a restart stops when ``|objective - previous objective| < tol``
  (``change_below_tol``), when it has run ``max_iter`` steps, or when a step
  returns a non-finite objective or non-finite new params: then it is
  ``failed``, keeps its last finite params and objective (the attempt counts
  in ``n_iter``), and is never ``best``;
* ``history[r, i]`` is the objective of iteration ``i``, NaN after the stop.

The toy step is elementwise per restart (one multiply, one sum of two
squares), so the batched driver, a lone restart and the numpy reference
compute bit-identical numbers; the comparisons are exact.

The same promises are then checked on the public EM fit (``jaxmix.fit_gmm``,
float64): a batched restart equals that restart run alone from its initial
parameters, ``max_iter=0`` returns the initial parameters, a tol sweep does
not recompile and only stops earlier, and a fit on data where every restart
fails hands back finite parameters.
"""

from __future__ import annotations

import contextlib

import jax
import jax.monitoring
import jax.numpy as jnp
import numpy as np
import pytest
from conftest import assert_params_close, blobs, index

import jaxmix as jm
from jaxmix.fit.driver import FitResult, iterate

# ----------------------------------------------------------------- toy step

TOL = 1e-6
MAX_ITER = 40
A0 = np.array([[1.0, 2.0], [3.0, -1.0], [0.5, 0.5]])
RHO = np.array([0.5, 0.9, 0.7])        # contraction per restart: they stop at different steps
BONUS = np.array([0.0, 100.0, 1.0])    # restart 1 has by far the highest objective
NEVER = 1e9                            # "never fails" (a leaf must be finite: inf would fail)


def toy_params(fail_at, a0=A0, rho=RHO, bonus=BONUS):
    """Restart-batched toy params; ``fail_at[r]``: first counter value ``t`` at
    which restart r's step goes non-finite (``NEVER``: never)."""
    r = len(rho)
    return {"a": jnp.asarray(a0[:r], jnp.float64), "rho": jnp.asarray(rho, jnp.float64),
            "bonus": jnp.asarray(bonus[:r], jnp.float64),
            "fail_at": jnp.asarray(fail_at, jnp.float64), "t": jnp.zeros((r,), jnp.float64)}


def make_step(mode):
    """Objective ``bonus - |a|^2``; update ``a <- rho a``, ``t <- t + 1``. From
    ``t >= fail_at`` the step returns a NaN objective (``mode="objective"``) or
    NaN new params (``mode="params"``)."""
    def step(p):
        obj = p["bonus"] - jnp.sum(p["a"] * p["a"], axis=-1)
        a = p["rho"][:, None] * p["a"]
        bad = p["t"] >= p["fail_at"]
        if mode == "objective":
            obj = jnp.where(bad, jnp.nan, obj)
        else:
            a = jnp.where(bad[:, None], jnp.nan, a)
        return dict(p, a=a, t=p["t"] + 1), obj
    return step


def reference(p, r, tol, max_iter, mode):
    """Restart ``r`` by a Python loop of single numpy steps, the driver's rules spelled out."""
    a, rho, bonus = np.array(p["a"][r]), float(p["rho"][r]), float(p["bonus"][r])
    fail_at, t = float(p["fail_at"][r]), 0.0
    objective, n_iter, converged, failed = -np.inf, 0, False, False
    history = np.full(max_iter, np.nan)
    accepted = []        # objectives of accepted steps
    while n_iter < max_iter and not converged and not failed:
        obj = bonus - np.sum(a * a)
        new_a = rho * a
        if t >= fail_at:
            obj, new_a = (np.nan, new_a) if mode == "objective" else (obj, new_a * np.nan)
        history[n_iter] = obj
        n_iter += 1
        if not (np.isfinite(obj) and np.all(np.isfinite(new_a))):
            failed = True
            break
        converged = abs(obj - objective) < tol
        a, t, objective = new_a, t + 1, obj
        accepted.append(obj)
    return dict(a=a, t=t, objective=objective, n_iter=n_iter, converged=converged,
                failed=failed, history=history, accepted=np.array(accepted))


def assert_restart_matches(res: FitResult, r, ref, err=""):
    np.testing.assert_array_equal(np.asarray(res.params["a"][r]), ref["a"], err_msg=err)
    assert float(res.params["t"][r]) == ref["t"], err
    assert float(res.objective[r]) == ref["objective"], err
    assert int(res.n_iter[r]) == ref["n_iter"], err
    assert bool(res.converged[r]) == ref["converged"], err
    assert bool(res.failed[r]) == ref["failed"], err
    n_ok = len(ref["accepted"])
    np.testing.assert_array_equal(np.asarray(res.history[r, :n_ok]), ref["accepted"],
                                  err_msg=err)
    # after the stop: NaN (the failing attempt's own entry is not pinned)
    assert np.all(np.isnan(np.asarray(res.history[r, ref["n_iter"]:]))), err


def run_toy(fail_at, mode="objective", tol=TOL, max_iter=MAX_ITER, **kw):
    return iterate(make_step(mode), toy_params(fail_at, **kw), tol, max_iter)


# ------------------------------------------------------------------ a. failure

@pytest.mark.parametrize("mode", ["objective", "params"])
def test_failed_restart_keeps_last_finite_state_and_never_wins(mode):
    """Restart 1 goes non-finite on its 4th step (counter t = 3). It is failed,
    keeps the params after its 3rd step (``rho^3 a0`` exactly) and the
    objective of its 3rd step, counts the failing attempt in n_iter, and is not
    best although its objective (about 100 - 8.6) is the highest; restarts 0
    and 2 are exactly as in a run where nothing fails."""
    res = run_toy([NEVER, 3, NEVER], mode)
    p0 = toy_params([NEVER, 3, NEVER])
    for r in range(3):
        assert_restart_matches(res, r, reference(p0, r, TOL, MAX_ITER, mode), f"restart {r}")

    assert np.asarray(res.failed).tolist() == [False, True, False]
    np.testing.assert_array_equal(np.asarray(res.params["a"][1]), 0.9 * (0.9 * (0.9 * A0[1])))
    assert float(res.params["t"][1]) == 3.0
    last_finite = 100.0 - np.sum((0.9 * (0.9 * A0[1])) ** 2)     # objective at t = 2
    assert float(res.objective[1]) == last_finite
    assert int(res.n_iter[1]) == 4
    assert not bool(res.converged[1])
    assert float(res.objective[1]) > np.max(np.asarray(res.objective)[[0, 2]])
    assert int(res.best) == 2                                   # highest non-failed
    np.testing.assert_array_equal(np.asarray(res.best_params["a"]), np.asarray(res.params["a"][2]))

    healthy = run_toy([NEVER, NEVER, NEVER], mode)
    for r in (0, 2):
        for name in ("a", "t"):
            np.testing.assert_array_equal(np.asarray(res.params[name][r]),
                                          np.asarray(healthy.params[name][r]))
        for field in ("objective", "n_iter", "converged", "history"):
            np.testing.assert_array_equal(np.asarray(getattr(res, field)[r]),
                                          np.asarray(getattr(healthy, field)[r]))
    assert int(healthy.best) == 1                               # the bonus wins when healthy


def test_failure_on_the_first_step_keeps_the_start():
    """A restart whose very first step is non-finite keeps params0 and the
    driver's initial objective, -inf (no accepted iteration)."""
    res = run_toy([NEVER, NEVER, 0.0])
    assert bool(res.failed[2]) and int(res.n_iter[2]) == 1
    np.testing.assert_array_equal(np.asarray(res.params["a"][2]), A0[2])
    assert float(res.params["t"][2]) == 0.0
    assert float(res.objective[2]) == -np.inf
    assert np.all(np.isnan(np.asarray(res.history[2])))
    assert not np.any(np.asarray(res.failed)[:2])


# ------------------------------------------------------------- b. all fail

def test_every_restart_failed_best_still_indexes_a_restart():
    """When every restart failed, ``best`` is still a valid index: the first
    restart whose params are finite, here restart 0 (pinned, as documented),
    and ``best_params`` is that restart's last finite params."""
    res = run_toy([3.0, 5.0, 0.0])
    assert np.all(np.asarray(res.failed))
    best = int(res.best)
    assert 0 <= best < 3
    assert best == 0
    for name in ("a", "t"):
        np.testing.assert_array_equal(np.asarray(res.best_params[name]),
                                      np.asarray(res.params[name][best]))
    assert np.all(np.isfinite(np.asarray(res.params["a"])))
    np.testing.assert_array_equal(np.asarray(res.params["t"]), [3.0, 5.0, 0.0])
    p0 = toy_params([3.0, 5.0, 0.0])
    for r in range(3):
        assert_restart_matches(res, r, reference(p0, r, TOL, MAX_ITER, "objective"))


# ------------------------------------------------------ c. frozen restarts

def test_frozen_restarts_equal_each_restart_run_alone():
    """Restarts stop at different iterations (rho 0.5 and 0.7 converge, 0.9
    runs into max_iter); each equals
    ``iterate`` on that restart alone (R = 1) and the Python reference: a
    finished restart is frozen while the others run on."""
    res = run_toy([NEVER] * 3)
    n_iter = np.asarray(res.n_iter)
    assert len(set(n_iter.tolist())) == 3, n_iter
    # restart 1 (rho 0.9) is still moving by more than tol at max_iter
    assert np.asarray(res.converged).tolist() == [True, False, True]
    assert n_iter[1] == MAX_ITER
    p0 = toy_params([NEVER] * 3)
    for r in range(3):
        alone = iterate(make_step("objective"), jax.tree.map(lambda a: a[r:r + 1], p0), TOL,
                        MAX_ITER)
        for name in ("a", "t"):
            np.testing.assert_array_equal(np.asarray(alone.params[name][0]),
                                          np.asarray(res.params[name][r]))
        for field in ("objective", "n_iter", "converged", "failed", "history"):
            np.testing.assert_array_equal(np.asarray(getattr(alone, field)[0]),
                                          np.asarray(getattr(res, field)[r]), err_msg=field)
        assert_restart_matches(res, r, reference(p0, r, TOL, MAX_ITER, "objective"))


def _toy_many(n):
    """``n`` toy restarts with contraction rates that stop them at many different
    iterations, some failing part way and some unusable from the start."""
    rng = np.random.default_rng(3)
    rho = rng.uniform(0.3, 0.95, n)
    fail_at = np.where(rng.uniform(size=n) < 0.2, rng.integers(0, 12, n), NEVER)
    return toy_params(fail_at, a0=rng.normal(size=(n, 2)), rho=rho,
                      bonus=rng.uniform(0, 5, n))


@pytest.mark.parametrize("slots", [1, 2, 3, 5, 11, 64])
def test_slots_refilled_as_restarts_stop_equal_one_batch(slots):
    """With fewer slots than restarts every restart still runs exactly as in
    one batch of all of them (and as alone, see above), whatever the slot
    count: params, objective, n_iter, flags, history and best, bit for bit.
    Rows not usable from the start never take a slot's step."""
    p0 = _toy_many(11)
    usable = jnp.asarray(np.arange(11) % 4 != 2)
    whole = iterate(make_step("objective"), p0, TOL, MAX_ITER, usable=usable)
    part = iterate(make_step("objective"), p0, TOL, MAX_ITER, usable=usable, slots=slots)
    assert len(set(np.asarray(whole.n_iter).tolist())) > 4
    for field in ("objective", "n_iter", "converged", "failed", "history", "best"):
        np.testing.assert_array_equal(np.asarray(getattr(part, field)),
                                      np.asarray(getattr(whole, field)), err_msg=field)
    for name in ("a", "t"):
        np.testing.assert_array_equal(np.asarray(part.params[name]),
                                      np.asarray(whole.params[name]))
    assert np.all(np.asarray(part.n_iter)[~np.asarray(usable)] == 0)


def test_slots_hand_each_restart_its_own_rows():
    """Per-restart constants (``rows``) reach the step and the stopping rule
    for the restart in each slot, not for the slot's first occupant."""
    p0 = _toy_many(7)
    rows = jnp.arange(7, dtype=jnp.float64)

    def step(p, r):
        new, obj = make_step("objective")(p)
        return new, obj + r  # a restart-specific offset of the objective

    def converged(old, new, prev, obj, tol, r):
        return jnp.abs(obj - prev) < tol * (1 + r)

    whole = iterate(step, p0, TOL, MAX_ITER, converged, rows=rows)
    part = iterate(step, p0, TOL, MAX_ITER, converged, rows=rows, slots=2)
    for field in ("objective", "n_iter", "converged", "history"):
        np.testing.assert_array_equal(np.asarray(getattr(part, field)),
                                      np.asarray(getattr(whole, field)), err_msg=field)
    plain = iterate(make_step("objective"), p0, TOL, MAX_ITER)
    np.testing.assert_allclose(np.asarray(whole.history[:, 0]),
                               np.asarray(plain.history[:, 0]) + np.arange(7))


def test_fit_gmm_restarts_beyond_the_slots_equal_one_batch(monkeypatch):
    """fit_gmm and fit_kmeans with more restarts than slots: the same
    results as with every restart in one batch."""
    import jaxmix.fit.buckets as buckets
    x = blobs(np.random.default_rng(5), 120, [[0.0, 0.0], [2.0, 1.0], [1.0, 2.5]])
    runs = {}
    for slots in (3, 64):
        monkeypatch.setattr(buckets, "RESTART_SLOTS", slots)
        jax.clear_caches()
        runs[slots] = (jm.fit_gmm(1, x, 3, n_restarts=7, covariance_type="diag", tol=1e-5,
                                  init="random"),
                       jm.fit_kmeans(1, x, 3, n_restarts=7))
    for few, many in zip(runs[3], runs[64]):
        for field in ("objective", "n_iter", "converged", "failed", "history", "best"):
            np.testing.assert_allclose(np.asarray(getattr(few, field)),
                                       np.asarray(getattr(many, field)), rtol=1e-12,
                                       err_msg=field)
        for u, v in zip(jax.tree.leaves(few.params), jax.tree.leaves(many.params)):
            np.testing.assert_allclose(np.asarray(u), np.asarray(v), rtol=1e-12, atol=1e-12)
    assert len(set(np.asarray(runs[3][0].n_iter).tolist())) > 1


# ------------------------------------------------------------- d. max_iter 0

def test_max_iter_zero_toy():
    """No step runs: params are params0 (bit for bit), n_iter 0, not converged,
    not failed, history ``(R, 0)``, objective -inf (the driver's initial
    value), best 0."""
    p0 = toy_params([NEVER] * 3)
    res = iterate(make_step("objective"), p0, TOL, 0)
    for name in p0:
        np.testing.assert_array_equal(np.asarray(res.params[name]), np.asarray(p0[name]))
    assert np.asarray(res.n_iter).tolist() == [0, 0, 0]
    assert not np.any(np.asarray(res.converged)) and not np.any(np.asarray(res.failed))
    assert res.history.shape == (3, 0)
    assert np.all(np.asarray(res.objective) == -np.inf)
    assert int(res.best) == 0


# ------------------------------------------------------------------ e. tol

@contextlib.contextmanager
def count_compiles():
    """Backend compilations (XLA programs built) inside the block."""
    events = []

    def listener(name, _duration, **_kw):
        if name == "/jax/core/compile/backend_compile_duration":
            events.append(name)

    jax.monitoring.register_event_duration_secs_listener(listener)
    try:
        yield events
    finally:
        jax.monitoring.unregister_event_duration_listener(listener)


def test_tol_is_traced_and_only_moves_the_stop():
    """Under one ``jit`` with tol an argument: one compile for four tols; each
    equals the Python reference; a larger tol stops no later, and its history
    is a prefix of the smaller tol's (the trajectory does not depend on tol)."""
    p0 = toy_params([NEVER] * 3)
    run = jax.jit(lambda tol: iterate(make_step("objective"), p0, tol, MAX_ITER))
    tols = [1e-9, 1e-6, 1e-3, 1e-1]
    run(tols[0])
    with count_compiles() as compiles:
        results = [run(t) for t in tols]
    assert not compiles, f"changing tol recompiled {len(compiles)} program(s)"
    for tol, res in zip(tols, results):
        for r in range(3):
            assert_restart_matches(res, r, reference(p0, r, tol, MAX_ITER, "objective"),
                                   f"tol {tol} restart {r}")
    n_iters = np.array([np.asarray(res.n_iter) for res in results])
    assert np.all(np.diff(n_iters, axis=0) <= 0), n_iters
    assert np.any(np.diff(n_iters, axis=0) < 0), "tols should make a difference"
    for small, large in zip(results, results[1:]):
        for r in range(3):
            n = int(large.n_iter[r])
            np.testing.assert_array_equal(np.asarray(large.history[r, :n]),
                                          np.asarray(small.history[r, :n]))


# ------------------------------------------------------- the public EM fit

N, D, K, R = 300, 2, 3, 4
KEY = jax.random.PRNGKey(3)
# overlapping blobs: restarts from random rows converge at different iterations
X = blobs(np.random.default_rng(1), N, [[-2.0, 0.0], [0.0, 2.0], [2.0, 0.5]])
FIT = dict(init="random_from_data", tol=1e-3, max_iter=200, chunk_size=100)


def fit_batched(x=X, **kw):
    """The R = 4 fit; every test of this section shares its compiled program
    (tol and reg_covar are traced)."""
    return jm.fit_gmm(KEY, x, K, n_restarts=R, **dict(FIT, **kw))


def initial_params():
    """Each restart's starting params: ``max_iter=0`` returns them."""
    return jm.fit_gmm(KEY, X, K, n_restarts=R, **dict(FIT, max_iter=0)).params


def test_fit_gmm_max_iter_zero_returns_the_starts():
    """``fit_gmm(max_iter=0)``: n_iter 0, not converged, not failed, history
    ``(R, 0)``, objective -inf, and the params are the initialiser's: with
    ``random_from_data`` each mean is one of the data rows (one EM step would
    move it off)."""
    res = jm.fit_gmm(KEY, X, K, n_restarts=R, **dict(FIT, max_iter=0))
    assert np.asarray(res.n_iter).tolist() == [0] * R
    assert not np.any(np.asarray(res.converged)) and not np.any(np.asarray(res.failed))
    assert res.history.shape == (R, 0)
    assert np.all(np.asarray(res.objective) == -np.inf)
    means = np.asarray(res.params.means)
    dist = np.min(np.abs(means[:, :, None, :] - X[None, None]).max(-1), axis=-1)
    assert np.all(dist < 1e-12), dist
    np.testing.assert_allclose(np.asarray(res.params.weights).sum(-1), 1.0, rtol=1e-12)


def test_fit_gmm_batched_restart_equals_restart_alone():
    """Each restart r of ``fit_gmm(n_restarts=4)`` equals
    ``fit_gmm(init_params=<restart r's start>, n_restarts=1)``: params,
    n_iter, converged, objective, history (float64; the two differ by the
    rounding of moving the start into the centred frame and back)."""
    batched = fit_batched()
    n_iter = np.asarray(batched.n_iter)
    assert len(set(n_iter.tolist())) > 1, f"restarts should stop at different steps: {n_iter}"
    p0 = initial_params()
    for r in range(R):
        alone = jm.fit_gmm(KEY, X, K, n_restarts=1, init_params=index(p0, r),
                           **{k: v for k, v in FIT.items() if k != "init"})
        assert_params_close(index(alone.params, 0), index(batched.params, r), 1e-9, 1e-12,
                            f"restart {r}")
        assert int(alone.n_iter[0]) == n_iter[r]
        assert bool(alone.converged[0]) == bool(batched.converged[r])
        assert bool(alone.failed[0]) == bool(batched.failed[r])
        np.testing.assert_allclose(float(alone.objective[0]), float(batched.objective[r]),
                                   rtol=1e-10)
        np.testing.assert_allclose(np.asarray(alone.history[0]),
                                   np.asarray(batched.history[r]), rtol=1e-10, equal_nan=True)


def test_fit_gmm_tol_sweep_does_not_recompile_and_stops_earlier():
    """A larger tol reuses the compiled fit (no XLA compile) and only stops
    each restart earlier on the same trajectory (history a prefix)."""
    results = {1e-3: fit_batched()}
    with count_compiles() as compiles:
        for tol in (1e-6, 1e-1):
            results[tol] = fit_batched(tol=tol)
    assert not compiles, f"changing tol recompiled {len(compiles)} program(s)"
    order = sorted(results)
    n_iters = np.array([np.asarray(results[t].n_iter) for t in order])
    assert np.all(np.diff(n_iters, axis=0) <= 0), n_iters
    assert np.any(n_iters[-1] < n_iters[0])
    for small, large in zip(order, order[1:]):
        for r in range(R):
            n = int(results[large].n_iter[r])
            np.testing.assert_array_equal(np.asarray(results[large].history[r, :n]),
                                          np.asarray(results[small].history[r, :n]))
    # converged restarts changed by less than their tol on the last step
    for tol in order:
        res = results[tol]
        for r in range(R):
            n = int(res.n_iter[r])
            if bool(res.converged[r]):
                assert abs(res.history[r, n - 1] - res.history[r, n - 2]) < tol


def test_fit_gmm_every_restart_failed_says_so():
    """Four distinct points, each repeated 75 times, k = 3, reg_covar = 0, full
    covariance: every component's covariance is singular, so every restart
    fails (its starting parameters are already not finite). Nothing finite is
    left to hand back: the eager fit raises a ValueError naming the fix; under
    ``jit`` (nothing can raise) every restart is ``failed`` and ``best`` still
    indexes a restart."""
    rng = np.random.default_rng(5)
    x = np.repeat(rng.normal(size=(4, D)) * 3.0, N // 4, axis=0)
    with pytest.raises(ValueError, match="every restart failed.*not finite.*reg_covar"):
        fit_batched(x, reg_covar=0.0)
    res = jax.jit(lambda x: fit_batched(x, reg_covar=0.0))(x)
    assert np.all(np.asarray(res.failed)), np.asarray(res.failed)
    assert 0 <= int(res.best) < R
    assert np.all(np.asarray(res.n_iter) == 0)  # failed before the first step


def test_a_failed_restart_is_never_best_even_before_any_iteration():
    """With ``max_iter=0`` every objective is still -inf: the best restart is
    the first that did not fail, not restart 0 (found by the fuzz test: a
    k=1 random_from_data start on duplicated points at reg_covar=0)."""
    from jaxmix.fit.driver import best_restart
    objective = jnp.full((3,), -jnp.inf)
    failed = jnp.array([True, False, False])
    params = jnp.array([[jnp.nan], [1.0], [2.0]])
    assert int(best_restart(objective, failed, params)) == 1
    assert int(best_restart(jnp.array([-jnp.inf, -5.0, -3.0]), failed, params)) == 2


def test_falling_iterations_counts_drops_beyond_rtol():
    from jaxmix.fit.driver import FitResult
    history = np.array([[-3.0, -2.0, -2.5, -1.0, np.nan], [-1.0, -1.0 - 1e-9, -0.5, 0.0, 0.0]])
    flags = np.zeros(2, bool)
    result = FitResult(None, history[:, -1], np.array([4, 3]), flags, flags, flags, history,
                       0, flags, np.array([4, 3]), np.zeros(2, int))
    # restart 0: one fall (-2.0 -> -2.5); restart 1: a fall of 1e-9 is rounding
    np.testing.assert_array_equal(result.falling_iterations(), [1, 0])
    np.testing.assert_array_equal(result.falling_iterations(rtol=1e-12), [1, 1])
