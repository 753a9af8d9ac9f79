"""Fuzz the public entry points (issue 16).

Arbitrary finite arrays, weights and parameter values either give finite
results or a ``ValueError`` / ``TypeError`` whose message names the argument:
never NaN, never another exception type.

Every example draws data (float32 or float64: the compute dtype follows the
data), optional weights and every hyper-parameter, each with a status:

* ``valid``: the call must return finite results, or raise naming the data
  (``X``, ``sample_weight``: finite data may still be refused when the fit's
  sums would overflow the compute dtype);
* ``unsure``: allowed by the documented rules but extreme for the compute
  dtype or the machine (a tolerance or weights beyond float32, a key beyond
  64 bits, ``max_iter=2**63``): finite results, or an error naming it;
* ``invalid`` (at most one argument per example, besides data-dependent
  faults such as ``k`` above ``n``): the call must raise naming it.

A fit whose every restart failed may raise ``AllRestartsFailed`` (a
``ValueError``) when nothing invalid was passed; its message must say what
to change. Results: every float leaf of ``best_params`` (or the estimator's
fitted arrays) finite, Gaussian-mixture parameters that jaxmix's own params
checker accepts (a zero precision factor is an infinite covariance), labels
in range, a finite K-Means inertia, no NaN objective or criterion.

``FOUND`` pins the cases the fuzz found (one test each, so that each shows
on its own); sizes that abort the process run in a child process.

Compiling dominates the run time (seconds per program), so what compiles
(dtype, ``d``, covariance type, restart bucket, initialiser) comes from small
per-profile lists; ``n`` and ``k`` are padded to buckets by the library and
vary freely. The default run uses one (dtype, d) per covariance type; the
``slow`` run (``-m slow``) crosses them all, with more examples.
``derandomize=True``: the same examples on every run.
"""

from __future__ import annotations

import subprocess
import sys
from typing import NamedTuple

import jax
import numpy as np
import optax
import pytest
from hypothesis import HealthCheck, given, note, settings, strategies as st
from hypothesis.control import currently_in_test_context
from hypothesis.extra import numpy as hnp
from hypothesis.strategies import SearchStrategy

import jaxmix as jm
from jaxmix.fit.driver import AllRestartsFailed
from jaxmix.sklearn import DBSCAN, GaussianMixture, KMeans
from jaxmix.validation import check_gmm_params

pytestmark = pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")

F32, F64 = np.float32, np.float64
VALID, UNSURE, INVALID = "valid", "unsure", "invalid"
TYPES = ("full", "tied", "diag", "spherical")
DENSE = ("full", "tied")

# One optimizer instance: it is a static argument of the compiled gradient fit.
OPT = optax.adam(0.05)


# ---------------------------------------------------------------------------
# Profiles: what compiles (kept small by default), how many examples


class Profile(NamedTuple):
    examples: int
    configs: dict          # covariance type -> [(dtype, d), ...] of the GMM fits
    pairs: list            # [(dtype, d), ...] of K-Means and DBSCAN
    restarts: tuple        # valid n_restarts / n_init (each bucket compiles)
    gmm_inits: tuple       # valid init of the GMM fits (each compiles)
    kmeans_inits: tuple
    ns: tuple              # n of in-memory data (padded to one bucket)
    stream_ns: tuple       # n of streamed data (each number of chunks compiles)


FAST = Profile(
    examples=60,
    configs={"full": [(F32, 3)], "tied": [(F64, 3)], "diag": [(F32, 1)],
             "spherical": [(F64, 2)]},
    pairs=[(F32, 3), (F64, 1)],
    restarts=(2,), gmm_inits=("kmeans",), kmeans_inits=("k-means++",),
    ns=(1, 2, 8, 17, 17, 40, 40), stream_ns=(17, 23, 32))
SLOW = Profile(
    examples=300,
    configs={ct: [(F32, 1), (F32, 3), (F64, 1), (F64, 3)] for ct in TYPES},
    pairs=[(F32, 1), (F32, 3), (F64, 1), (F64, 3)],
    restarts=(1, 3), gmm_inits=("kmeans", "k-means++", "random", "random_from_data"),
    kmeans_inits=("k-means++", "random"),
    ns=(1, 2, 3, 5, 8, 17, 29, 40), stream_ns=(1, 5, 16, 17, 31, 40))
PROFILES = [pytest.param(FAST, id="fast"), pytest.param(SLOW, id="slow", marks=pytest.mark.slow)]
STREAM_CHUNK = 16


def fuzz(profile: Profile, strategy: SearchStrategy, body, scale: float = 1.0):
    """Run ``body(case)`` on ``scale * profile.examples`` examples of ``strategy``."""
    @settings(max_examples=int(scale * profile.examples), deadline=None, derandomize=True,
              database=None, suppress_health_check=[HealthCheck.too_slow,
                                                    HealthCheck.data_too_large])
    @given(strategy)
    def run(case):
        body(case)
    run()


# ---------------------------------------------------------------------------
# Argument values


def _strategy(values) -> SearchStrategy:
    return values if isinstance(values, SearchStrategy) else st.sampled_from(list(values))


def ints(lo: int, hi: int) -> SearchStrategy:
    """Integers in ``[lo, hi]`` as Python, int64 or int32 values."""
    return st.integers(lo, hi).flatmap(
        lambda v: st.sampled_from([v, np.int64(v), np.int32(v)]))


# Not integers, or integers of the wrong kind, where an integer is expected.
NOT_INT = [1.5, 2.0, np.float64(2.0), float("nan"), float("inf"), True, False, None, "2",
           [2], 1 + 0j, np.array([2, 2])]
# Integers beyond any real size. 2**31 and 2**32 are left out for n_restarts:
# a restart table of that many rows is gigabytes, too much for a fuzz run to try.
HUGE_INT = [2 ** 40, 2 ** 63, 2 ** 64, 10 ** 30]
# Not a finite non-negative number.
NOT_NONNEG = [-5e-324, -1e-300, -1e-3, -1.0, -1e300, float("inf"), -float("inf"),
              float("nan"), "0.1", None, [0.1], 1j, np.array([0.1, 0.1])]
NONNEG = st.one_of(
    st.sampled_from([0, 0.0, -0.0, 5e-324, 1e-300, 1e-30, 1e-6, 1e-3, 1, 1.0, 7, 1e10, 1e30,
                     np.float32(1e-3), np.float64(0.5), np.int64(1)]),
    st.floats(0, 10))

K = dict(valid=ints(1, 4), invalid=[0, -1, -(2 ** 63), 2 ** 31 - 1, 2 ** 31] + HUGE_INT + NOT_INT)
RESTARTS_INVALID = [0, -1] + NOT_INT + HUGE_INT
# 2**31 - 1 is left out: the fits size their history by max_iter (16 GiB at 2**31).
MAX_ITER = dict(valid=[0, 1, 2, 5, 100, np.int64(3)], unsure=[2 ** 31, 2 ** 63],
                invalid=[-1, -(2 ** 63)] + NOT_INT)
# beyond float32's range: refused by name when the fit computes in float32
TOL = dict(valid=NONNEG, unsure=[1e39, 1e300], invalid=NOT_NONNEG)
KEY = dict(valid=st.one_of(st.integers(0, 2 ** 31 - 1), st.sampled_from([-1, np.int64(7),
                                                                         np.uint32(3)])),
           unsure=[2 ** 63, 2 ** 64, -(2 ** 63) - 1, 10 ** 30],
           invalid=[1.5, None, "0", True, np.array(0.5), np.zeros(3, np.uint32), [0, 1]])
CHUNK = dict(valid=[None], invalid=[0, -1, 1.5, "8"])
BAD_CHOICE = ["", "KMEANS", "k-means", None, 1, "full ", ["kmeans"]]


class Args:
    """Draws the arguments of one example with their statuses: at most one
    of ``names`` (``self.bad``, drawn first) gets an invalid value."""

    def __init__(self, draw, names=(), bad=None):
        self.draw = draw
        # About half the examples have no invalid argument.
        self.bad = bad if bad is not None else draw(st.sampled_from(
            [None] * max(4, len(names)) + list(names)))

    def __call__(self, name, valid, unsure=None, invalid=None):
        """``(value, status)`` of argument ``name``."""
        if name == self.bad and invalid is not None:
            return self.draw(_strategy(invalid)), INVALID
        if unsure is not None and self.draw(st.sampled_from([False] * 11 + [True])):
            return self.draw(_strategy(unsure)), UNSURE
        return self.draw(_strategy(valid)), VALID


def tiny(dtype) -> float:
    """The smallest positive subnormal of ``dtype``."""
    return float(np.nextafter(dtype(0), dtype(1)))


def elements(dtype, lo: float, hi: float) -> SearchStrategy:
    """Finite floats of ``dtype`` in ``[lo, hi]`` (bounds rounded to ``dtype``)."""
    return st.floats(float(dtype(lo)), float(dtype(hi)), width=32 if dtype == F32 else 64)


@st.composite
def data(draw, dtype, n: int, d: int):
    """``(n, d)`` finite values of ``dtype``: unit scale, scaled by up to
    1e+-30, spread over +-1e30, or mixing tiny and huge values; optionally
    duplicated rows and a constant column."""
    kind = draw(st.sampled_from(["unit"] * 3 + ["scaled"] * 2 + ["wide", "edges"]))
    edges = [0.0, -0.0, 1.0, -1.0, 1e-30, -1e-30, 1e30, -1e30, tiny(dtype), 1e-38, 3e38]
    if kind == "wide":
        el = elements(dtype, -1e30, 1e30)
    elif kind == "edges":
        el = st.one_of(elements(dtype, -10, 10), st.sampled_from(edges))
    else:
        el = elements(dtype, -10, 10)
    x = np.array(draw(hnp.arrays(dtype, (n, d), elements=el)))
    if kind == "scaled":
        with np.errstate(under="ignore"):
            x = (x * dtype(10.0 ** draw(st.integers(-30, 30)))).astype(dtype)
    if n > 1 and draw(st.booleans()):  # duplicated rows
        rows = draw(st.lists(st.integers(0, n - 1), min_size=1, max_size=n))
        x[rows] = x[draw(st.integers(0, n - 1))]
    if draw(st.sampled_from([False] * 3 + [True])):  # a constant column
        x[:, draw(st.integers(0, d - 1))] = draw(el)
    return x


def broken_data(x) -> SearchStrategy:
    """Not a finite, non-empty, 2-D numeric array."""
    nan = x.astype(np.float64)
    nan.flat[0] = np.nan
    inf = x.copy()
    inf.flat[-1] = np.inf
    return st.sampled_from([nan, inf, x[:, 0], x[None], x[:0], x[:, :0], x.astype(str),
                            x.astype(complex)])


@st.composite
def weights(draw, n: int, broken: bool = False):
    """``None`` or ``(n,)`` finite non-negative weights (zeros, tiny and huge
    values included); ``broken``: negative, NaN, all zero or misshapen."""
    if broken:
        w = np.ones(n)
        fault = draw(st.sampled_from(["negative", "nan", "inf", "zero", "long", "2d", "str"]))
        if fault == "negative":
            w[draw(st.integers(0, n - 1))] = -draw(st.sampled_from([5e-324, 1e-3, 1.0, 1e30]))
        elif fault in ("nan", "inf"):
            w[draw(st.integers(0, n - 1))] = np.nan if fault == "nan" else np.inf
        elif fault == "zero":
            w = np.zeros(n)
        elif fault == "long":
            w = np.ones(n + 1)
        elif fault == "2d":
            w = np.ones((n, 1))
        else:
            w = np.full(n, "1")
        return w
    kind = draw(st.sampled_from(["none"] * 4 + ["ones", "spread", "zeros", "huge", "tiny",
                                                "ints"]))
    if kind == "none":
        return None
    if kind == "ones":
        return np.ones(n)
    if kind == "ints":
        return np.array(draw(hnp.arrays(np.int64, n, elements=st.integers(0, 10))))
    el = {"spread": st.one_of(st.floats(0, 1e3), st.just(0.0)),
          "zeros": st.sampled_from([0.0, 0.0, 1.0, 0.5]),
          "huge": st.one_of(st.floats(1e30, 1e300), st.sampled_from([1.0, 1e36, 1e38, 1e39])),
          "tiny": st.sampled_from([5e-324, 1e-320, 1e-300, 1e-45, 1e-40, 1.0])}[kind]
    return np.array(draw(hnp.arrays(np.float64, n, elements=el)))


def weight_status(w, n: int, k: int | None, dtype=F64):
    """``(status, names)`` of weights ``w`` for a fit of ``k`` components in
    ``dtype``; a fault that only rounding to ``dtype`` removes (a weight of
    ``-5e-324`` in float32) is ``UNSURE``."""
    if w is None:
        return VALID, set()
    w = np.asarray(w)
    if w.shape != (n,) or w.dtype.kind not in "biuf":
        return INVALID, {"sample_weight"}

    def bad(a):
        return not np.all(np.isfinite(a)) or np.any(a < 0) or not np.any(a > 0)
    with np.errstate(over="ignore", under="ignore"):
        cast = w.astype(dtype)
    if bad(w.astype(np.float64)):
        return (INVALID if bad(cast) else UNSURE), {"sample_weight"}
    if k is not None and np.count_nonzero(w) < k:
        return INVALID, {"sample_weight", "n_components", "n_clusters", "ks"}
    return UNSURE, {"sample_weight"}  # finite in float64, maybe not in the compute dtype


def as_k(k, n: int):
    """``k`` as an int when it is a valid number of components for ``n`` samples."""
    if isinstance(k, (int, np.integer)) and not isinstance(k, (bool, np.bool_)) and 1 <= k <= n:
        return int(k)
    return None


def precision_factor(draw, ct: str, k: int, d: int):
    """A valid factor of ``ct`` (upper triangular, positive diagonal), values wide."""
    diag = st.one_of(st.floats(1e-3, 1e3),
                     st.sampled_from([1.0, 1e-30, 1e30, 1e-300, 1e300, 1e-19, 1e19]))
    off = st.one_of(st.floats(-1e3, 1e3), st.sampled_from([0.0, 1e30, -1e30]))
    if ct in DENSE:
        shape = (k, d, d) if ct == "full" else (d, d)
        pc = np.triu(np.array(draw(hnp.arrays(np.float64, shape, elements=off))), 1)
        idx = np.arange(d)
        pc[..., idx, idx] = draw(hnp.arrays(np.float64, shape[:-1], elements=diag))
        return pc
    return np.array(draw(hnp.arrays(np.float64, (k, d) if ct == "diag" else (k,),
                                    elements=diag)))


@st.composite
def gmm_params(draw, ct: str, k: int, d: int, broken: bool | None = None):
    """``GMMParams`` of ``k`` components and ``d`` features, float64 values
    finite and wide. ``broken`` (``None``: drawn, rarely): a wrong ``k`` or
    ``d`` (all fields or one), a non-positive weight or factor diagonal, an
    entry below the factor's diagonal, NaN or infinity, another covariance
    type, or not a GMMParams."""
    if broken is None:
        broken = draw(st.sampled_from([False] * 6 + [True]))
    fault = draw(st.sampled_from(["k", "k_one", "d", "d_one", "weight", "factor", "lower",
                                  "nonfinite", "type", "not_params"])) if broken else None
    kk, dd = k + (fault == "k"), d + (fault == "d")
    w = np.array(draw(hnp.arrays(np.float64, kk, elements=st.one_of(
        st.floats(1e-3, 1e3), st.sampled_from([1.0, 1e-30, 1e30, 1e-300, 1e300])))))
    means = np.array(draw(hnp.arrays(np.float64, (kk, dd), elements=st.one_of(
        st.floats(-10, 10), st.floats(-1e30, 1e30),
        st.sampled_from([1e300, -1e300, 1e19, -3e19])))))
    pc = precision_factor(draw, ct, kk, dd)
    if fault == "k_one":
        w = np.append(w, 1.0)
    elif fault == "d_one":
        means = np.concatenate([means, means[:, :1]], axis=1)
    elif fault == "weight":
        w[draw(st.integers(0, kk - 1))] = draw(st.sampled_from([0.0, -0.0, -1.0, -5e-324]))
    elif fault == "factor":
        value = draw(st.sampled_from([0.0, -1.0, -1e-300]))
        if ct in DENSE:
            pc[..., 0, 0] = value
        else:
            pc.reshape(-1)[draw(st.integers(0, pc.size - 1))] = value
    elif fault == "lower" and ct in DENSE and dd > 1:
        pc[..., -1, 0] = draw(st.sampled_from([1.0, -1e-300, 1e30]))
    elif fault == "nonfinite":
        arr = draw(st.sampled_from([w, means, pc]))
        arr.reshape(-1)[0] = draw(st.sampled_from([np.nan, np.inf, -np.inf]))
    elif fault == "not_params":
        return draw(st.sampled_from([(w, means, pc), {"weights": w, "means": means}, w]))
    other = ct
    if fault == "type":
        other = draw(st.sampled_from([t for t in TYPES if t != ct]))
        pc = precision_factor(draw, other, kk, dd)  # a valid factor of the other type
    return jm.GMMParams(w, means, pc, other)


def params_status(p, ct: str, k: int | None, d: int, dtype):
    """``VALID``, ``UNSURE`` or ``INVALID`` for ``p`` as parameters of ``ct``
    with ``k`` (``None``: its own) and ``d``, computed in ``dtype``. ``UNSURE``:
    valid in float64 but not in ``dtype`` (overflow, underflow to zero) or
    the other way round (an entry of ``-1e-300`` below a factor's diagonal
    is zero in float32)."""
    if not isinstance(p, jm.GMMParams) or p.covariance_type != ct:
        return INVALID
    w, means, pc = (np.asarray(a, np.float64)
                    for a in (p.weights, p.means, p.precisions_cholesky))
    if k is None and means.ndim == 2:
        k = means.shape[0]
    if (w.shape != (k,) or means.shape != (k, d)
            or pc.shape != tuple(jm.gmm.family(ct).pc_shape(k, d))):
        return INVALID

    def bad(w, means, pc):
        if not all(np.all(np.isfinite(a)) for a in (w, means, pc)) or np.any(w <= 0):
            return True
        if not np.isfinite(np.sum(w)):
            return True
        diag = np.diagonal(pc, axis1=-2, axis2=-1) if ct in DENSE else pc
        return bool(np.any(diag <= 0) or (ct in DENSE and np.any(np.tril(pc, -1) != 0)))
    with np.errstate(over="ignore", under="ignore"):
        in_64, in_dtype = bad(w, means, pc), bad(*(a.astype(dtype) for a in (w, means, pc)))
    return INVALID if in_64 and in_dtype else UNSURE if in_64 or in_dtype else VALID


# ---------------------------------------------------------------------------
# The contract


class Expect:
    """One example's argument statuses: the names an error must (invalid) or
    may (unsure, and the data) name."""

    def __init__(self, data_names=("X",)):
        self.invalid: set = set()
        self.allowed: set = set(data_names)

    def add(self, name: str, status: str, names=None):
        names = {name} if names is None else set(names)
        if status == INVALID:
            self.invalid |= names
        elif status == UNSURE:
            self.allowed |= names

    def take(self, case, *names, rename=None):
        """The values of ``case[name] = (value, status)``, statuses recorded,
        as keyword arguments (``rename``: keyword -> case key)."""
        out = {}
        pairs = [(n, n) for n in names] + list((rename or {}).items())
        for kw, name in pairs:
            value, status = case[name]
            self.add(kw, status)
            out[kw] = value
        return out


HINTS = ("increase", "rescale", "reg_covar", "scale", "lower", "use ", "fewer", "check")


def run_case(call, expect: Expect, check):
    """Call ``call()`` and hold it to the contract; ``check(result)`` on success."""
    if currently_in_test_context():  # the pinned cases run outside Hypothesis
        note(f"invalid: {sorted(expect.invalid)}; may be named: {sorted(expect.allowed)}")
    try:
        result = call()
    except (ValueError, TypeError) as err:
        msg = str(err)
        if isinstance(err, AllRestartsFailed) or isinstance(err.__cause__, AllRestartsFailed):
            assert not expect.invalid, (
                f"invalid {sorted(expect.invalid)} accepted: the fit ran and every restart "
                f"failed ({msg})")
            assert msg.strip() and any(h in msg for h in HINTS), \
                f"AllRestartsFailed does not say what to change: {msg!r}"
            return
        names = expect.invalid | expect.allowed
        assert any(name in msg for name in names), (
            f"{type(err).__name__} names none of {sorted(names)}: {msg}")
        return
    assert not expect.invalid, f"invalid {sorted(expect.invalid)} accepted"
    check(result)


def assert_finite(tree, what: str):
    for leaf in jax.tree.leaves(tree):
        a = np.asarray(leaf)
        if a.dtype.kind == "f":
            assert np.all(np.isfinite(a)), f"{what} is not finite: {a}"


def assert_valid_gmm(params, what: str = "best_params"):
    """Finite, and parameters jaxmix itself accepts (positive weights and
    factor diagonals: a zero factor is an infinite covariance)."""
    assert_finite(params, what)
    try:
        check_gmm_params(params, what)
    except ValueError as err:
        raise AssertionError(f"{what} are not valid parameters: {err}\n{params}") from None


def check_fit(k: int, d: int):
    """A :class:`FitResult` check: the best restart finite (and valid), ``k`` components."""
    def check(result):
        best = int(result.best)
        assert 0 <= best < np.shape(result.failed)[0]
        params = result.best_params
        if isinstance(params, jm.GMMParams):
            assert_valid_gmm(params)
            assert np.shape(params.means) == (k, d)
            # -inf: a restart failed before its first step (its params are the start)
            assert not np.isnan(np.asarray(result.objective)[best]), "objective is NaN"
        else:  # K-Means: the objective is -inertia of the final centroids, always computed
            assert_finite(params, "best_params")
            assert np.shape(params.centroids) == (k, d)
            assert np.isfinite(np.asarray(result.objective)[best]), \
                f"inertia is not finite: {-np.asarray(result.objective)[best]}"
    return check


def check_labels(labels, n: int, k: int, noise: bool = False):
    labels = np.asarray(labels)
    assert labels.shape == (n,) and labels.dtype.kind in "iu"
    assert labels.min() >= (-1 if noise else 0) and labels.max() < k


def k_status(case, n: int):
    """``case["k"]``'s status; a ``k`` above ``n`` is invalid."""
    k, status = case["k"]
    if status != INVALID and as_k(k, n) is None:
        return INVALID
    return status


# ---------------------------------------------------------------------------
# The fits of jaxmix

GMM_ARGS = ("X", "sample_weight", "n_components", "covariance_type", "n_restarts", "init",
            "tol", "reg_covar", "max_iter", "key", "chunk_size", "init_params")


@st.composite
def gmm_case(draw, profile: Profile, ct: str, streamed: bool = False, names=GMM_ARGS):
    """The arguments of a Gaussian-mixture fit of covariance type ``ct``."""
    a = Args(draw, names)
    dtype, d = draw(st.sampled_from(profile.configs[ct]))
    n = draw(st.sampled_from(profile.stream_ns if streamed else profile.ns))
    x = draw(data(dtype, n, d))
    case = dict(dtype=dtype, n=n, d=d, x=(x, VALID), bad=a.bad)
    if a.bad == "X":
        case["x"] = (draw(broken_data(x)), INVALID)
    case["k"] = a("n_components", **K)
    case["w"] = draw(weights(n, broken=a.bad == "sample_weight"))
    case["covariance_type"] = a("covariance_type", valid=[ct],
                                invalid=["Full", "", None, "dense", 1])
    case["n_restarts"] = a("n_restarts", valid=profile.restarts, invalid=RESTARTS_INVALID)
    case["init"] = a("init", valid=profile.gmm_inits, invalid=BAD_CHOICE)
    case["tol"] = a("tol", **TOL)
    case["reg_covar"] = a("reg_covar", **TOL)
    case["max_iter"] = a("max_iter", **MAX_ITER)
    case["key"] = a("key", **KEY)
    case["chunk_size"] = a("chunk_size", **CHUNK)
    case["init_params"] = None
    k = as_k(case["k"][0], n) or 2
    if a.bad == "init_params" or draw(st.sampled_from([False] * 4 + [True])):
        case["init_params"] = draw(gmm_params(ct, k, d, broken=a.bad == "init_params" or None))
    return case


def gmm_expect(case, data_names=("X",)):
    """``(Expect, keyword arguments)`` of a :func:`gmm_case` (without ``x``, ``k``)."""
    e = Expect(data_names)
    n, k = case["n"], case["k"][0]
    e.add("X", case["x"][1])
    e.add("n_components", k_status(case, n))
    kw = e.take(case, "covariance_type", "n_restarts", "tol", "reg_covar", "max_iter", "key",
                "chunk_size")
    p = case["init_params"]
    if p is not None:  # init is ignored then
        ct = kw["covariance_type"]
        e.add("init_params", params_status(p, ct, as_k(k, n), case["d"], case["dtype"])
              if ct in TYPES else VALID)
        kw["init"] = case["init"][0]
    else:
        kw.update(e.take(case, "init"))
    kw["init_params"] = p
    status, names = weight_status(case["w"], n, as_k(k, n), case["dtype"])
    e.add("sample_weight", status, names)
    return e, kw


@pytest.mark.parametrize("profile", PROFILES)
@pytest.mark.parametrize("ct", TYPES)
def test_fit_gmm(profile, ct):
    def body(case):
        e, kw = gmm_expect(case)
        key, x, k = kw.pop("key"), case["x"][0], case["k"][0]
        run_case(lambda: jm.fit_gmm(key, x, k, sample_weight=case["w"], **kw), e,
                 check_fit(k, case["d"]))
    fuzz(profile, gmm_case(profile, ct), body)


# Streamed and gradient fits: 8 s and 17 s even in the fast profile, and
# tests/data/test_stream.py and tests/gmm/test_gradient.py cover both in the
# default run, so their fuzzing is in the slow set.
@pytest.mark.slow
@pytest.mark.parametrize("profile", PROFILES)
def test_fit_gmm_streamed(profile):
    """``fit_gmm`` on ``open_source(x, w)``, read in chunks of ``STREAM_CHUNK`` rows."""
    def body(case):
        e, kw = gmm_expect(case, data_names=("X", "source"))
        key, x, k = kw.pop("key"), case["x"][0], case["k"][0]
        kw["chunk_size"] = STREAM_CHUNK
        run_case(lambda: jm.fit_gmm(key, jm.open_source(x, case["w"]), k, **kw), e,
                 check_fit(k, case["d"]))
    cts = st.sampled_from(["full", "spherical"] if profile is FAST else list(TYPES))
    names = tuple(n for n in GMM_ARGS if n != "chunk_size")
    fuzz(profile, cts.flatmap(lambda ct: gmm_case(profile, ct, True, names)), body)


@pytest.mark.slow
@pytest.mark.parametrize("profile", PROFILES)
def test_fit_gradient(profile):
    """``fit_gradient`` with ``optax.adam(0.05)`` and at most 5 iterations."""
    def body(case):
        e, kw = gmm_expect(case)
        key, x, k = kw.pop("key"), case["x"][0], case["k"][0]
        kw.update(e.take(case, "batch_size", rename={"optimizer": "opt"}))
        opt = kw.pop("optimizer")
        run_case(lambda: jm.fit_gradient(key, x, k, opt, sample_weight=case["w"], **kw), e,
                 check_fit(k, case["d"]))

    @st.composite
    def strategy(draw):
        ct = draw(st.sampled_from(["full", "spherical"] if profile is FAST else list(TYPES)))
        names = GMM_ARGS + ("optimizer", "batch_size")
        case = draw(gmm_case(profile, ct, names=names))
        a = Args(draw, bad=case["bad"])
        case["max_iter"] = a("max_iter", valid=[0, 1, 3, 5], unsure=[2 ** 63],
                             invalid=[-1, 2.5, None])
        case["n_restarts"] = a("n_restarts", valid=(1,) if profile is FAST else (1, 2),
                               invalid=RESTARTS_INVALID)
        case["opt"] = a("optimizer", valid=[OPT], invalid=[None, "adam", optax.adam, 0.05])
        case["batch_size"] = a("batch_size", valid=[None] if profile is FAST else [None, 8],
                               invalid=[0, -1, 1.5, "8"])
        return case
    fuzz(profile, strategy(), body)


KMEANS_ARGS = ("X", "sample_weight", "n_clusters", "n_restarts", "init", "init_centroids",
               "tol", "max_iter", "key", "chunk_size")


@st.composite
def init_centroids(draw, k: int, d: int, dtype, broken: bool):
    """``(k, d)`` float64 centroids, finite and wide; ``broken``: misshapen or not finite."""
    shape = (k, d)
    if broken:
        shape = draw(st.sampled_from([(k + 1, d), (k, d + 1), (d,), (k, d)]))
    c0 = np.array(draw(hnp.arrays(np.float64, shape, elements=st.one_of(
        st.floats(-10, 10), st.floats(-1e30, 1e30),
        st.sampled_from([1e300, -1e200, 3e38, 1e39, 1.1e19, -3e19, 5e-324])))))
    if broken and shape == (k, d):
        c0.reshape(-1)[0] = draw(st.sampled_from([np.nan, np.inf]))
    status = INVALID if broken else VALID
    # centroids whose squared distances may overflow the compute dtype may be refused
    reach = np.sqrt(np.finfo(dtype).max) / 2 ** 4
    with np.errstate(invalid="ignore"):
        if not broken and np.any(np.abs(c0) > reach):
            status = UNSURE
    return c0, status


@pytest.mark.parametrize("profile", PROFILES)
def test_fit_kmeans(profile):
    def body(case):
        e = Expect()
        n, d, k = case["n"], case["d"], case["k"][0]
        e.add("X", case["x"][1])
        e.add("n_clusters", k_status(case, n))
        kw = e.take(case, "n_restarts", "tol", "max_iter", "key", "chunk_size")
        c0, c0_status = case["init_centroids"]
        if c0 is not None:
            e.add("init_centroids", c0_status)
            kw["init"] = case["init"][0]
        else:
            kw.update(e.take(case, "init"))
        status, names = weight_status(case["w"], n, as_k(k, n), case["dtype"])
        e.add("sample_weight", status, names)
        key, x = kw.pop("key"), case["x"][0]
        run_case(lambda: jm.fit_kmeans(key, x, k, init_centroids=c0, sample_weight=case["w"],
                                       **kw), e, check_fit(k, d))

    @st.composite
    def strategy(draw):
        a = Args(draw, KMEANS_ARGS)
        dtype, d = draw(st.sampled_from(profile.pairs))
        n = draw(st.sampled_from(profile.ns))
        x = draw(data(dtype, n, d))
        case = dict(dtype=dtype, n=n, d=d, x=(x, VALID))
        if a.bad == "X":
            case["x"] = (draw(broken_data(x)), INVALID)
        case["k"] = a("n_clusters", **K)
        case["w"] = draw(weights(n, broken=a.bad == "sample_weight"))
        case["n_restarts"] = a("n_restarts", valid=(None, 1) if profile is FAST else
                               (None,) + profile.restarts, invalid=RESTARTS_INVALID)
        case["init"] = a("init", valid=profile.kmeans_inits,
                         invalid=["kmeans", "k-means", "", None, 1])
        case["tol"] = a("tol", **TOL)
        case["max_iter"] = a("max_iter", **MAX_ITER)
        case["key"] = a("key", **KEY)
        case["chunk_size"] = a("chunk_size", **CHUNK)
        case["init_centroids"] = (None, VALID)
        if a.bad == "init_centroids" or draw(st.sampled_from([False] * 4 + [True])):
            case["init_centroids"] = draw(init_centroids(as_k(case["k"][0], n) or 2, d, dtype,
                                                         a.bad == "init_centroids"))
        return case
    fuzz(profile, strategy(), body)


def ks_valid(ks, n: int):
    """The grid ``ks`` as ints when it is valid for ``n`` samples, else ``None``."""
    try:
        values = [as_k(k, n) for k in ks]
    except TypeError:
        return None
    if not values or None in values or len(set(values)) != len(values):
        return None
    return values


@pytest.mark.parametrize("profile", PROFILES)
def test_select_k(profile):
    def body(case):
        e = Expect()
        n, ks = case["n"], case["ks"]
        e.add("X", case["x"][1])
        kw = e.take(case, "covariance_type", "n_restarts", "tol", "reg_covar", "max_iter",
                    "key", "init")
        grid = ks_valid(ks, n)
        e.add("ks", INVALID if grid is None else VALID)
        status, names = weight_status(case["w"], n, None if grid is None else max(grid),
                                      case["dtype"])
        e.add("sample_weight", status, names)
        key, x = kw.pop("key"), case["x"][0]

        def check(sel):
            for p in sel.params[0]:
                assert_valid_gmm(p, "params")
            failed = np.asarray(sel.failed, bool)
            for field in ("log_likelihood", "bic", "aic"):
                v = np.asarray(getattr(sel, field), np.float64)
                assert not np.any(np.isnan(v)), f"{field} has NaN: {v}"
                assert np.all(np.isfinite(v[~failed])), f"{field} not finite: {v}"
        run_case(lambda: jm.select_k(key, x, ks, sample_weight=case["w"], **kw), e, check)

    @st.composite
    def strategy(draw):
        ct = draw(st.sampled_from(["tied"] if profile is FAST else list(TYPES)))
        names = ("X", "sample_weight", "ks", "covariance_type", "n_restarts", "init", "tol",
                 "reg_covar", "max_iter", "key")
        case = draw(gmm_case(profile, ct, names=names))
        a = Args(draw, bad=case["bad"])
        grid = st.sampled_from([[1, 2], [2, 4], [3, 1], (1, 3), np.array([2, 3])])
        if profile is SLOW:
            grid = st.lists(st.integers(1, 4), min_size=1, max_size=3, unique=True)
        case["ks"] = a("ks", valid=grid, invalid=[
            [], [0, 1], [1, 1], [1.5], "12", None, 3, [2, -1], [[1, 2]], [1, 2 ** 40],
            [2 ** 63], [True, 2]])[0]
        case["n_restarts"] = a("n_restarts", valid=[1], invalid=RESTARTS_INVALID)
        return case
    fuzz(profile, strategy(), body)


@pytest.mark.parametrize("profile", PROFILES)
def test_fit_dbscan(profile):
    """``fit_dbscan``: any finite weights are valid (negative ones too, as sklearn)."""
    def body(case):
        e = Expect(("X", "x"))
        e.add("x", case["x"][1])
        kw = e.take(case, "eps", "min_samples", "block", "method")
        w = case["w"]
        if w is not None:
            a = np.asarray(w)
            ok = a.shape == (case["n"],) and a.dtype.kind in "biuf" and np.all(np.isfinite(a))
            e.add("sample_weight", UNSURE if ok else INVALID)

        def check(res):
            check_labels(res.labels, case["n"], case["n"], noise=True)
            assert_finite(res, "DBSCANResult")
        run_case(lambda: jm.fit_dbscan(case["x"][0], sample_weight=w, **kw), e, check)

    @st.composite
    def strategy(draw):
        a = Args(draw, ("x", "sample_weight", "eps", "min_samples", "block", "method"))
        dtype, d = draw(st.sampled_from(profile.pairs))
        n = draw(st.sampled_from(profile.ns))
        x = draw(data(dtype, n, d))
        case = dict(n=n, x=(x, VALID))
        if a.bad == "x":
            case["x"] = (draw(broken_data(x)), INVALID)
        case["eps"] = a("eps", valid=st.one_of(st.floats(1e-3, 1e3), st.sampled_from(
            [5e-324, 1e-300, 1e-30, 0.5, 1, 1e30, 1e300, np.float32(0.5)])),
            invalid=[0, 0.0, -1.0, float("inf"), float("nan"), None, "0.5"])
        case["min_samples"] = a("min_samples", valid=ints(1, 50), unsure=[2 ** 31 - 1, 2 ** 63],
                                invalid=[0, -1] + NOT_INT)
        case["block"] = a("block", valid=[256] if profile is FAST else [256, 7, 64],
                          unsure=[2 ** 40], invalid=[0, -1, 1.5, "256"])
        case["method"] = a("method", valid=["auto"] if profile is FAST else
                           ["auto", "exact", "gemm"], invalid=["", "AUTO", None])
        w = draw(weights(n, broken=a.bad == "sample_weight"))
        if w is not None and a.bad != "sample_weight" and draw(st.booleans()):
            w = w.astype(np.float64) - draw(st.sampled_from([1.0, 1e30]))  # negative weights
        case["w"] = w
        return case
    fuzz(profile, strategy(), body)


@pytest.mark.parametrize("profile", PROFILES)
@pytest.mark.parametrize("criterion", ["bic", "aic"])
def test_criteria(profile, criterion):
    """``bic`` / ``aic`` of arbitrary parameters (of any type) on arbitrary data."""
    fn = getattr(jm, criterion)

    def body(case):
        e = Expect()
        e.add("X", case["x"][1])
        p = case["params"]
        ct = p.covariance_type if isinstance(p, jm.GMMParams) else case["ct"]
        e.add("params", params_status(p, ct, None, case["d"], case["dtype"]))
        kw = e.take(case, "chunk_size")

        def check(value):
            # +inf: data of zero density under the params (a tie to nothing); never NaN
            assert np.isfinite(value) or value == np.inf, f"{criterion} = {value}"
        run_case(lambda: fn(p, case["x"][0], **kw), e, check)

    @st.composite
    def strategy(draw):
        a = Args(draw, ("X", "params", "chunk_size"))
        ct = draw(st.sampled_from(TYPES))
        dtype, d = draw(st.sampled_from(profile.configs[ct]))
        n = draw(st.sampled_from(profile.ns))
        x = draw(data(dtype, n, d))
        case = dict(ct=ct, dtype=dtype, d=d, x=(x, VALID))
        if a.bad == "X":
            case["x"] = (draw(broken_data(x)), INVALID)
        case["params"] = draw(gmm_params(ct, draw(st.integers(1, 4)), d,
                                         broken=a.bad == "params"))
        case["chunk_size"] = a("chunk_size", **CHUNK)
        return case
    fuzz(profile, strategy(), body, scale=0.5)


# ---------------------------------------------------------------------------
# The scikit-learn estimators

# scikit-learn's own messages name the data "array" ("Found array with 1 sample(s)")
# and the weights "Sample weights" ("Sample weights must be 1D array or scalar").
SK_X = ("X", "array")
SK_WEIGHTS = ("sample_weight", "Sample weights")


def sk_x_status(case):
    """scikit-learn converts numeric strings: such data are not invalid there."""
    x, status = case["x"]
    return UNSURE if np.asarray(x).dtype.kind == "U" else status


@pytest.mark.parametrize("profile", PROFILES)
@pytest.mark.parametrize("ct", TYPES)
def test_gaussian_mixture(profile, ct):
    def body(case):
        e = Expect(SK_X)
        n, d, k = case["n"], case["d"], case["k"][0]
        e.add("X", sk_x_status(case))
        e.add("n_components", k_status(case, n))
        if n < 2:  # scikit-learn needs two samples
            e.add("X", INVALID, SK_X)
        kw = e.take(case, "covariance_type", "tol", "reg_covar", "max_iter", "random_state",
                    rename={"n_init": "n_restarts", "init_params": "init"})
        means = case["means_init"]
        if means is not None:
            big = case["dtype"] == F32 and np.any(np.abs(means) > np.finfo(F32).max)
            e.add("means_init", INVALID if means.shape != (k, d) else UNSURE if big else VALID)

        def call():
            gm = GaussianMixture(k, means_init=means, **kw).fit(case["x"][0])
            return gm, gm.predict(case["x"][0])

        def check(out):
            gm, labels = out
            assert_valid_gmm(jm.GMMParams(gm.weights_, gm.means_, gm.precisions_cholesky_,
                                          gm.covariance_type), "fitted parameters")
            assert_finite([gm.covariances_, gm.precisions_], "covariances_, precisions_")
            assert not np.isnan(gm.lower_bound_)
            check_labels(labels, n, k)
        run_case(call, e, check)

    @st.composite
    def strategy(draw):
        names = ("X", "n_components", "covariance_type", "n_restarts", "init", "tol",
                 "reg_covar", "max_iter", "random_state", "means_init")
        case = draw(gmm_case(profile, ct, names=names))
        a = Args(draw, bad=case["bad"])
        case["max_iter"] = a("max_iter", valid=[0, 1, 5, 100], unsure=[2 ** 31, 2 ** 63],
                             invalid=[-1, 1.5, None])
        case["random_state"] = a("random_state", valid=st.integers(0, 2 ** 32 - 1),
                                 invalid=[-1, 2 ** 32, 1.5, "0"])
        case["means_init"] = None
        if profile is SLOW and (a.bad == "means_init"
                                or draw(st.sampled_from([False] * 5 + [True]))):
            k, d = as_k(case["k"][0], case["n"]) or 2, case["d"]
            shape = (k + 1, d) if a.bad == "means_init" else (k, d)
            case["means_init"] = np.array(draw(hnp.arrays(np.float64, shape, elements=st.one_of(
                st.floats(-10, 10), st.floats(-1e30, 1e30), st.just(1e39)))))
        return case
    fuzz(profile, strategy(), body, scale=0.5)


@pytest.mark.parametrize("profile", PROFILES)
def test_kmeans_estimator(profile):
    def body(case):
        e = Expect(SK_X)
        n, k = case["n"], case["k"][0]
        e.add("X", sk_x_status(case))
        e.add("n_clusters", k_status(case, n))
        kw = e.take(case, "n_init", "tol", "max_iter", "init", "random_state", "algorithm")
        status, names = weight_status(case["w"], n, None, case["dtype"])
        e.add("sample_weight", status, set(names) | set(SK_WEIGHTS))

        def call():
            km = KMeans(k, **kw).fit(case["x"][0], sample_weight=case["w"])
            return km, km.predict(case["x"][0])

        def check(out):
            km, labels = out
            assert_finite(km.cluster_centers_, "cluster_centers_")
            assert np.isfinite(km.inertia_), f"inertia_ = {km.inertia_}"
            check_labels(km.labels_, n, k)
            check_labels(labels, n, k)
        run_case(call, e, check)

    @st.composite
    def strategy(draw):
        a = Args(draw, ("X", "sample_weight", "n_clusters", "n_init", "init", "tol",
                        "max_iter", "random_state", "algorithm"))
        dtype, d = draw(st.sampled_from(profile.pairs))
        n = draw(st.sampled_from(profile.ns))
        x = draw(data(dtype, n, d))
        case = dict(dtype=dtype, n=n, d=d, x=(x, VALID))
        if a.bad == "X":
            case["x"] = (draw(broken_data(x)), INVALID)
        case["k"] = a("n_clusters", valid=ints(1, 4), invalid=[0, -1, 1.5, None, "2", 2 ** 31,
                                                               2 ** 63])
        case["w"] = draw(weights(n, broken=a.bad == "sample_weight"))
        case["n_init"] = a("n_init", valid=["auto", 1] if profile is FAST else
                           ["auto", 1, 2, 3], invalid=[0, -1, 1.5, None, "1"])
        case["init"] = a("init", valid=profile.kmeans_inits, invalid=["kmeans", "", None, 1])
        case["tol"] = a("tol", **TOL)
        case["max_iter"] = a("max_iter", valid=[1, 5, 300], unsure=[2 ** 31, 2 ** 63],
                             invalid=[0, -1, 1.5, None])
        case["random_state"] = a("random_state", valid=st.integers(0, 2 ** 32 - 1),
                                 invalid=[-1, 2 ** 32, 1.5, "0"])
        case["algorithm"] = a("algorithm", valid=["lloyd", "elkan"], invalid=["", "full", None])
        return case
    fuzz(profile, strategy(), body, scale=0.5)


@pytest.mark.parametrize("profile", PROFILES)
def test_dbscan_estimator(profile):
    def body(case):
        e = Expect(SK_X)
        n = case["n"]
        e.add("X", sk_x_status(case))
        kw = e.take(case, "eps", "min_samples", rename={"block_size": "block"})
        w = case["w"]
        if w is not None:
            a = np.asarray(w)
            ok = a.shape == (n,) and a.dtype.kind in "biuf" and np.all(np.isfinite(a))
            e.add("sample_weight", UNSURE if ok else INVALID, SK_WEIGHTS)
        dist = e.take(case, "max_distance")["max_distance"]

        def call():
            db = DBSCAN(**kw).fit(case["x"][0], sample_weight=w)
            return db, db.predict(case["x"][0], max_distance=dist)

        def check(out):
            db, labels = out
            check_labels(db.labels_, n, n, noise=True)
            check_labels(labels, n, n, noise=True)
            assert_finite(db.components_, "components_")
        run_case(call, e, check)

    @st.composite
    def strategy(draw):
        a = Args(draw, ("X", "sample_weight", "eps", "min_samples", "block_size",
                        "max_distance"))
        dtype, d = draw(st.sampled_from(profile.pairs))
        n = draw(st.sampled_from(profile.ns))
        x = draw(data(dtype, n, d))
        case = dict(n=n, x=(x, VALID))
        if a.bad == "X":
            case["x"] = (draw(broken_data(x)), INVALID)
        case["eps"] = a("eps", valid=st.one_of(st.floats(1e-3, 1e3), st.sampled_from(
            [1e-300, 0.5, 1e30, 1e300])), invalid=[0, -1.0, float("nan"), None, "0.5"])
        case["min_samples"] = a("min_samples", valid=ints(1, 50), unsure=[2 ** 31 - 1, 2 ** 63],
                                invalid=[0, -1, 1.5, None])
        case["block"] = a("block_size", valid=[256], unsure=[2 ** 40], invalid=[0, -1, 1.5])
        case["max_distance"] = a("max_distance", valid=[None, 0.5, 1e-30, 1e30],
                                 invalid=[0, -1.0, float("nan"), "1"])
        w = draw(weights(n, broken=a.bad == "sample_weight"))
        if w is not None and a.bad != "sample_weight" and draw(st.booleans()):
            w = w.astype(np.float64) - 1.0  # negative weights
        case["w"] = w
        return case
    fuzz(profile, strategy(), body, scale=0.5)


# ---------------------------------------------------------------------------
# Cases the fuzz found, pinned: one test each, in shapes the fuzz compiles anyway.

_RNG = np.random.default_rng(0)
X32 = _RNG.normal(size=(20, 3)).astype(F32)   # as FAST's full / K-Means / DBSCAN float32
X64 = _RNG.normal(size=(20, 1))               # as FAST's K-Means / DBSCAN float64
DUPLICATES = np.zeros((8, 3))                 # as FAST's select_k (tied, float64, d=3)


def _far_params(ct="spherical", d=3, pc=1.0):
    pcs = {"spherical": np.full(1, pc), "full": pc * np.eye(d)[None]}
    return jm.GMMParams(np.ones(1), np.full((1, d), 1e300), pcs[ct], ct)


def _check_dbscan(res):
    assert_finite(res, "DBSCANResult")


def _check_selection(sel):
    for p in sel.params[0]:
        assert_valid_gmm(p, "params")


def _check_finite(value):
    assert_finite(value, "result")


# id: (call, names that must be named, names that may be named, check of a result)
FOUND = {
    "fit_gmm max_iter=2**31": (
        lambda: jm.fit_gmm(0, X32, 2, n_restarts=2, max_iter=2 ** 31), (), ("max_iter",),
        check_fit(2, 3)),
    "fit_gmm max_iter=2**63": (
        lambda: jm.fit_gmm(0, X32, 2, n_restarts=2, max_iter=2 ** 63), (), ("max_iter",),
        check_fit(2, 3)),
    "fit_gmm n_components=2**31": (
        lambda: jm.fit_gmm(0, X32, 2 ** 31), ("n_components",), (), None),
    "fit_kmeans n_clusters=2**40": (
        lambda: jm.fit_kmeans(0, X64, 2 ** 40), ("n_clusters",), (), None),
    "fit_gmm n_restarts=2**40": (
        lambda: jm.fit_gmm(0, X32, 2, n_restarts=2 ** 40), (), ("n_restarts",),
        check_fit(2, 3)),
    "fit_kmeans n_restarts=2**63": (
        lambda: jm.fit_kmeans(0, X64, 2, n_restarts=2 ** 63), (), ("n_restarts",),
        check_fit(2, 1)),
    "fit_gmm key=2**63": (
        lambda: jm.fit_gmm(2 ** 63, X32, 2, n_restarts=2), (), ("key",), check_fit(2, 3)),
    "fit_dbscan min_samples=2**63": (
        lambda: jm.fit_dbscan(X64, 0.5, 2 ** 63), (), ("min_samples",), _check_dbscan),
    "fit_dbscan block=2**40": (
        lambda: jm.fit_dbscan(X64, 0.5, 2, block=2 ** 40), (), ("block",), _check_dbscan),
    "GaussianMixture max_iter=2**31": (
        lambda: GaussianMixture(2, n_init=2, max_iter=2 ** 31).fit(X32).means_, (),
        ("max_iter",), _check_finite),
    "KMeans max_iter=2**31": (
        lambda: KMeans(2, max_iter=2 ** 31).fit(X64).cluster_centers_, (), ("max_iter",),
        _check_finite),
    "streamed weights all zero": (
        lambda: jm.fit_gmm(0, jm.open_source(X32, np.zeros(20)), 2, chunk_size=STREAM_CHUNK),
        ("sample_weight",), (), None),
    "fit_gmm init_params beyond float32": (
        lambda: jm.fit_gmm(0, X32, 1, n_restarts=2, init_params=_far_params("full")),
        (), ("init_params",), check_fit(1, 3)),
    "fit_kmeans init_centroids whose inertia overflows float32": (
        lambda: jm.fit_kmeans(0, X32, 1, init_centroids=np.full((1, 3), 1.9e19)), (),
        ("init_centroids",), check_fit(1, 3)),
    "fit_kmeans init_centroids beyond float32": (
        lambda: jm.fit_kmeans(0, X32, 1, init_centroids=np.full((1, 3), 1e300)), (),
        ("init_centroids",), check_fit(1, 3)),
    "bic params beyond float32": (
        lambda: jm.bic(_far_params(), X32), (), ("params",), _check_finite),
    # a model under which the data have zero density: BIC +inf is the right value
    "bic of far params is inf": (
        lambda: jm.bic(_far_params(), X32.astype(F64)), (), ("params", "X"),
        lambda value: np.testing.assert_equal(float(value), np.inf)),
    "bic is NaN": (  # now +inf: the data have zero density under these params
        lambda: jm.bic(_far_params("full", 2, 1e300), np.full((1, 2), 1e9)), (),
        ("params", "X"), lambda value: np.testing.assert_equal(float(value), np.inf)),
    "select_k NaN params": (
        lambda: jm.select_k(0, DUPLICATES, [1, 2], covariance_type="tied", n_restarts=1,
                            reg_covar=0), (), ("X", "reg_covar"), _check_selection),
    "fit_gmm reg_covar beyond float32": (
        lambda: jm.fit_gmm(0, X32, 2, n_restarts=2, reg_covar=1e39), (), ("reg_covar",),
        check_fit(2, 3)),
    "streamed one row, init=random_from_data": (
        lambda: jm.fit_gmm(0, jm.open_source(X32[:1]), 1, n_restarts=2, init="random_from_data",
                           chunk_size=STREAM_CHUNK), (), ("X", "source"), check_fit(1, 3)),
    "GaussianMixture means_init on duplicated points": (
        lambda: GaussianMixture(1, covariance_type="diag", n_init=2, means_init=[[0.0]],
                                reg_covar=0).fit(np.zeros((2, 1), F32)).means_, (),
        ("means_init", "reg_covar", "X"), _check_finite),
    "GaussianMixture n_init=True": (
        lambda: GaussianMixture(1, n_init=True).fit(X32), ("n_init",), (), None),
    "fit_gmm tol='0.1'": (
        lambda: jm.fit_gmm(0, X32, 2, n_restarts=2, tol="0.1"), ("tol",), (), None),
    "fit_gmm reg_covar=True": (
        lambda: jm.fit_gmm(0, X32, 2, n_restarts=2, reg_covar=True), ("reg_covar",), (), None),
    "fit_dbscan eps='0.5'": (
        lambda: jm.fit_dbscan(X64, "0.5", 2), ("eps",), (), None),
    "fit_dbscan weights summing beyond float32": (
        lambda: jm.fit_dbscan(X32, 1.0, 3, sample_weight=np.full(20, 1e38)), (),
        ("sample_weight",), _check_dbscan),
}


@pytest.mark.parametrize("case", FOUND)
def test_found_cases(case):
    call, must, may, check = FOUND[case]
    e = Expect(())
    for name in must:
        e.add(name, INVALID)
    for name in may:
        e.add(name, UNSURE)
    run_case(call, e, check or (lambda result: None))


# ---------------------------------------------------------------------------
# Sizes that take the whole process down cannot be fuzzed in it: they run one
# after another in a child process, where each must end normally (a
# ValueError/TypeError naming the argument, or a result), never abort.

PROCESS_CASES = {
    "fit_dbscan block=2**63": ("jm.fit_dbscan(np.zeros((4, 2)), 0.5, 2, block=2 ** 63)",
                               "block"),
    "DBSCAN block_size=2**63": ("DBSCAN(block_size=2 ** 63).fit(np.zeros((4, 2)))",
                                "block_size"),
}


CHILD = """
import numpy as np
import jaxmix as jm
from jaxmix.sklearn import DBSCAN
for case, call, name in {cases!r}:
    try:
        eval(call)
    except (ValueError, TypeError) as err:
        if name not in str(err):
            print("did not name the argument:", case, repr(err), flush=True)
            continue
    except Exception as err:
        print("raised:", case, repr(err), flush=True)
        continue
    print("ended normally:", case, flush=True)
"""


@pytest.fixture(scope="module")
def process_cases():
    """Every case of PROCESS_CASES in turn in one child process (one import of
    JAX, not one per case): its exit status and output."""
    cases = [(case, call, name) for case, (call, name) in PROCESS_CASES.items()]
    return subprocess.run([sys.executable, "-c", CHILD.format(cases=cases)],
                          capture_output=True, text=True, timeout=300)


@pytest.mark.parametrize("case", PROCESS_CASES)
def test_huge_sizes_do_not_abort_the_process(case, process_cases):
    out = process_cases
    assert f"ended normally: {case}\n" in out.stdout, (
        f"exit status {out.returncode} (cases: {out.stdout.splitlines()}): "
        f"{out.stderr[-2000:]}")
    if case == list(PROCESS_CASES)[-1]:  # and the process after the last case
        assert out.returncode == 0, f"exit status {out.returncode}: {out.stderr[-2000:]}"
