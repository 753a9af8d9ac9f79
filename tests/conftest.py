"""Shared test configuration and helpers.

float64 is enabled for the whole session, once, before any test module runs:
comparisons against scikit-learn / scipy at 1e-5 or tighter need it, and
toggling ``jax_enable_x64`` between modules would mix dtypes inside one
session. jaxmix still computes in float32 whenever it is given float32 input
(``validation.float_dtype``), so float32 behaviour stays testable by passing
``np.float32`` arrays.

Helpers are plain functions (import them with ``from conftest import ...``)
so that they can be used in ``pytest.mark.parametrize`` and module fixtures.
"""

from __future__ import annotations

import os

import jax

jax.config.update("jax_enable_x64", True)
# The `jaxmix` command enables the persistent compilation cache in the user's
# cache folder; tests that call it (in-process or in subprocesses) must not.
# tests/test_compile_cache.py points the cache at temporary folders itself.
os.environ["JAXMIX_COMPILATION_CACHE"] = "off"

import numpy as np  # noqa: E402
import pytest  # noqa: E402
from sklearn.mixture._gaussian_mixture import (  # noqa: E402
    _compute_precision_cholesky,
    _estimate_gaussian_parameters,
    _estimate_log_gaussian_prob,
)

from jaxmix import GMMParams  # noqa: E402

TYPES = ("full", "tied", "diag", "spherical")
INITS = ("kmeans", "k-means++", "random", "random_from_data")


def random_spd(rng, d, scale=1.0):
    """A well-conditioned random SPD matrix (condition number < ~10)."""
    a = rng.normal(size=(d, d))
    q, _ = np.linalg.qr(a)
    eig = scale * rng.uniform(0.3, 2.0, size=d)
    return (q * eig) @ q.T


def random_covariances(rng, covariance_type, k, d, scale=1.0):
    """Covariances in sklearn's layout for ``covariance_type``."""
    if covariance_type == "full":
        return np.stack([random_spd(rng, d, scale) for _ in range(k)])
    if covariance_type == "tied":
        return random_spd(rng, d, scale)
    if covariance_type == "diag":
        return scale * rng.uniform(0.3, 2.0, size=(k, d))
    return scale * rng.uniform(0.3, 2.0, size=(k,))


def random_params(rng, covariance_type, k, d, spread=4.0, scale=1.0):
    """Random float64 mixture parameters and the covariances they came from."""
    w = rng.uniform(0.5, 1.5, size=k)
    w /= w.sum()
    means = spread * rng.normal(size=(k, d))
    cov = random_covariances(rng, covariance_type, k, d, scale)
    pc = _compute_precision_cholesky(cov, covariance_type)
    return GMMParams(w, means, pc, covariance_type), cov


def blobs(rng, n, centers, scale=1.0):
    """``n`` points around ``centers`` (equal shares), anisotropic noise."""
    centers = np.asarray(centers, float)
    k, d = centers.shape
    labels = np.arange(n) % k
    noise = rng.normal(size=(n, d)) * scale * rng.uniform(0.5, 1.5, size=(k, 1, d))[labels, 0]
    return centers[labels] + noise


def np_params(p: GMMParams):
    """Leaves as float64 numpy arrays (for comparisons)."""
    return GMMParams(np.asarray(p.weights, np.float64), np.asarray(p.means, np.float64),
                     np.asarray(p.precisions_cholesky, np.float64), p.covariance_type)


def index(p: GMMParams, r: int) -> GMMParams:
    """Restart ``r`` of restart-batched params."""
    return jax.tree.map(lambda a: a[r], p)


def sk_weighted_log_prob(x, p: GMMParams):
    """sklearn's ``log w_k + log N(x | mu_k, Sigma_k)``, float64."""
    p = np_params(p)
    return (_estimate_log_gaussian_prob(np.asarray(x, np.float64), p.means,
                                        p.precisions_cholesky, p.covariance_type)
            + np.log(p.weights))


def sk_em_step(x, p: GMMParams, reg_covar):
    """One EM iteration as sklearn does it: ``(new params, mean log-lik of p)``."""
    from scipy.special import logsumexp

    x = np.asarray(x, np.float64)
    wlp = sk_weighted_log_prob(x, p)
    norm = logsumexp(wlp, axis=1)
    resp = np.exp(wlp - norm[:, None])
    return sk_params_from_resp(x, resp, reg_covar, p.covariance_type), float(norm.mean())


def sk_params_from_resp(x, resp, reg_covar, covariance_type):
    """sklearn's M-step on given responsibilities."""
    nk, means, cov = _estimate_gaussian_parameters(np.asarray(x, np.float64), resp, reg_covar,
                                                   covariance_type)
    return GMMParams(nk / x.shape[0], means, _compute_precision_cholesky(cov, covariance_type),
                     covariance_type)


def assert_params_close(actual: GMMParams, desired: GMMParams, rtol, atol, err_msg=""):
    assert actual.covariance_type == desired.covariance_type
    a, b = np_params(actual), np_params(desired)
    for name in ("weights", "means", "precisions_cholesky"):
        np.testing.assert_allclose(getattr(a, name), getattr(b, name), rtol=rtol, atol=atol,
                                   err_msg=f"{err_msg} {name}")


def match_components(means, ref_means):
    """Permutation ``perm`` with ``means[perm]`` closest to ``ref_means``."""
    from itertools import permutations

    means, ref_means = np.asarray(means), np.asarray(ref_means)
    k = ref_means.shape[0]
    best = min(permutations(range(k)),
               key=lambda perm: np.sum((means[list(perm)] - ref_means) ** 2))
    return list(best)


def pytest_configure(config):
    """One XLA compilation cache for the whole run (tests/session_cache.py)."""
    import session_cache
    session_cache.start(config)


def pytest_unconfigure(config):
    import session_cache
    session_cache.finish(config)


@pytest.hookimpl(tryfirst=True)  # before -m deselects
def pytest_collection_modifyitems(config, items):
    """Tests named in tests/slow_for_time.py run in the slow set only."""
    from slow_for_time import mark_slow_for_time
    whole_files = not any("::" in str(arg) for arg in config.args)
    mark_slow_for_time(items, pytest.mark.slow, check=whole_files)


@pytest.fixture
def rng():
    return np.random.default_rng(0)


# Drop JAX's compiled programs after a test module once the process holds
# more memory mappings than RELEASE_MAPS (about 20 fit programs) or this
# share of the kernel's cap, whichever is lower, or where the count is unknown.
RELEASE_MAPS = 13_000
RELEASE_FRACTION = 0.2


@pytest.fixture(autouse=True, scope="module")
def _release_compiled_programs():
    """Drop JAX's compiled programs after a test module once they hold much.

    One session compiles thousands of programs. A default run once aborted
    inside an XLA compile late in the session: each compiled program keeps
    hundreds of memory mappings and past ``vm.max_map_count`` LLVM aborts the
    process (:mod:`jaxmix.fit.programs`). Clearing after every module bounded
    that, but made every module compile again what the modules before it had
    compiled; clearing once the mappings pass ``RELEASE_MAPS`` bounds them as
    well (the largest module adds about 14,000) and lets modules run in a row
    reuse programs; after a release the run's persistent cache
    (tests/session_cache.py) serves them again without compiling. So a test
    must not assume that a program is new to the process: count compiles and
    traces as differences over shapes it alone uses, or as "no more than".
    """
    yield
    from jaxmix.fit.programs import map_count, map_limit
    used, limit = map_count(), map_limit()
    if used is None or limit is None or used > min(RELEASE_MAPS, RELEASE_FRACTION * limit):
        jax.clear_caches()


def rewrite_metadata(path, **changes) -> None:
    """Change entries of a jaxmix model file's JSON metadata in place (a
    crafted or an old-format file); an entry set to None is removed."""
    import io
    import json
    import zipfile
    with zipfile.ZipFile(path) as zf:
        members = {name: zf.read(name) for name in zf.namelist()}
    meta = json.loads(str(np.load(io.BytesIO(members["__metadata__.npy"]))[()]))
    meta.update(changes)
    meta = {key: value for key, value in meta.items() if value is not None}
    buf = io.BytesIO()
    np.save(buf, np.array(json.dumps(meta)))
    members["__metadata__.npy"] = buf.getvalue()
    with zipfile.ZipFile(path, "w") as zf:
        for name, data in members.items():
            zf.writestr(name, data)
