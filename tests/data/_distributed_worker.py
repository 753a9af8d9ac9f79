"""Fits for tests/test_distributed.py, run on one device or on a 4-device mesh.

``XLA_FLAGS`` must be set before jax is imported, so the sharded run is this
script in a subprocess::

    python tests/_distributed_worker.py IN.npz OUT.npz [--slow]

It reads the data from ``IN.npz``, runs :func:`run_cases` on a mesh of 4
simulated CPU devices (float64) and writes every result leaf, plus the
collectives found in the compiled EM and Lloyd steps, to ``OUT.npz``. The test
imports :func:`run_cases` and runs it without a mesh for the reference.

With ``--process I --processes P --port N`` it is process ``I`` of ``P``
joined by ``jax.distributed.initialize`` (CPU collectives over gloo), each
with 2 devices and its own contiguous part of the rows, and runs
:func:`run_multiprocess_cases` on a global array built with
``jax.make_array_from_process_local_data``; process 0 writes ``OUT.npz``.
"""

from __future__ import annotations

import os
import sys

N_DEVICES = 4
MULTIPROCESS = "--process" in sys.argv

if __name__ == "__main__":
    per_process = 2 if MULTIPROCESS else N_DEVICES
    os.environ["XLA_FLAGS"] = (os.environ.get("XLA_FLAGS", "")
                               + f" --xla_force_host_platform_device_count={per_process}")

import jax  # noqa: E402

jax.config.update("jax_enable_x64", True)
if __name__ == "__main__" and MULTIPROCESS:
    jax.config.update("jax_cpu_collectives_implementation", "gloo")

import numpy as np  # noqa: E402
import optax  # noqa: E402

from jaxmix import GMMParams, fit_gmm, fit_gradient, fit_kmeans  # noqa: E402

TYPES = ("full", "tied", "diag", "spherical")
INITS = ("kmeans", "k-means++", "random", "random_from_data")


def make_inputs(seed: int = 0, n: int = 2999, d: int = 3, k: int = 3) -> dict:
    """Three clusters far from the origin (the fit centres them), ``n`` not a
    multiple of the device count (padding), positive random weights."""
    rng = np.random.default_rng(seed)
    centres = 40.0 + 6.0 * rng.normal(size=(k, d))
    labels = np.arange(n) % k
    x = centres[labels] + rng.normal(size=(n, d)) * rng.uniform(0.5, 1.5, size=(k, 1, d))[labels, 0]
    return {"x": x, "w": rng.uniform(0.5, 2.0, size=n), "means0": centres + rng.normal(size=(k, d))}


def init_params(inputs: dict, covariance_type: str) -> GMMParams:
    """Equal weights, means near the centres, unit covariances."""
    k, d = inputs["means0"].shape
    pc = {"full": np.broadcast_to(np.eye(d), (k, d, d)), "tied": np.eye(d),
          "diag": np.ones((k, d)), "spherical": np.ones(k)}[covariance_type]
    return GMMParams(np.full(k, 1.0 / k), inputs["means0"], np.array(pc), covariance_type)


# Chunks of 512 rows: 6 chunks, padded to 8 on 4 devices. tests/test_stream.py
# runs the same in-memory fits (shared compilations within one pytest session).
CHUNK = 512
EM_KW = dict(tol=0.0, max_iter=8, chunk_size=CHUNK)


def run_cases(inputs: dict, mesh=None, slow: bool = False) -> dict:
    """``name -> FitResult`` for every case; ``mesh=None`` is the reference."""
    x, w = inputs["x"], inputs["w"]
    k = inputs["means0"].shape[0]
    out = {}
    for cov in TYPES:  # EM from given parameters, fixed iteration count
        out[f"em_{cov}"] = fit_gmm(0, x, k, covariance_type=cov, init_params=init_params(
            inputs, cov), sample_weight=w, mesh=mesh, **EM_KW)
    # initialisers and the centring offset: k-means++ seeding, Lloyd, one-hot M-step
    out["em_kmeans_init"] = fit_gmm(1, x, k, n_restarts=2, sample_weight=w, chunk_size=CHUNK,
                                    mesh=mesh)
    out["map_em"] = fit_gmm(2, x, k, covariance_type="diag", init_params=init_params(
        inputs, "diag"), prior="default", mesh=mesh, **EM_KW)
    out["kmeans"] = fit_kmeans(3, x, k, n_restarts=2, sample_weight=w, chunk_size=CHUNK,
                               mesh=mesh)
    out["gradient"] = fit_gradient(4, x, k, optax.adam(0.05), init_params=init_params(
        inputs, "full"), tol=0.0, max_iter=8, mesh=mesh)
    if slow:
        for cov in TYPES:
            for init in INITS:
                out[f"slow_{cov}_{init}"] = fit_gmm(5, x, k, covariance_type=cov, init=init,
                                                    n_restarts=2, mesh=mesh)
        out["slow_kmeans_random"] = fit_kmeans(6, x, k, init="random", n_restarts=3, mesh=mesh)
    return out


def flatten(results: dict) -> dict:
    """``"name/field/i" -> array`` for every leaf of every FitResult."""
    flat = {}
    for name, result in results.items():
        for field in result._fields:
            for i, leaf in enumerate(jax.tree.leaves(getattr(result, field))):
                flat[f"{name}/{field}/{i}"] = np.asarray(leaf)
    return flat


def compare(reference: dict, other: dict, name: str, rtol: float = 1e-5,
            atol: float = 1e-8) -> float:
    """Assert that case ``name`` of two :func:`flatten` outputs agrees: integer
    leaves exactly, floats to ``rtol``, ``best`` through the objective (ties
    between equal restarts may break either way). Returns the largest
    difference relative to each leaf's largest magnitude."""
    keys = [key for key in reference if key.startswith(name + "/")]
    assert keys and all(key in other for key in keys)
    worst = 0.0
    for key in keys:
        a, b = reference[key], other[key]
        if key.split("/")[1] == "best":
            objective = reference[f"{name}/objective/0"]
            np.testing.assert_allclose(objective[int(b)], np.max(objective), rtol=rtol)
        elif a.dtype.kind in "biu":
            np.testing.assert_array_equal(a, b, err_msg=key)
        else:
            np.testing.assert_allclose(b, a, rtol=rtol, atol=atol, err_msg=key)
            scale = np.nanmax(np.abs(a)) if np.any(np.isfinite(a)) else 1.0
            worst = max(worst, float(np.nanmax(np.abs(a - b))) / max(scale, 1e-300))
    return worst


def collectives(fn, *args) -> dict:
    """Counts of the collectives in the compiled ``jit(fn)(*args)``."""
    text = jax.jit(fn).lower(*args).compile().as_text()
    ops = ("all-reduce", "all-gather", "all-to-all", "collective-permute", "reduce-scatter")
    return {op: sum(line.count(f" {op}(") + line.count(f" {op}-start(")
                    for line in text.splitlines()) for op in ops}


def step_collectives(inputs: dict, mesh) -> dict:
    """Collectives of one EM step (both paths) and one Lloyd step on placed data."""
    from jaxmix.data.sharding import place
    from jaxmix.fit.init import broadcast_params
    from jaxmix.gmm.step import batched_em_step
    from jaxmix.kmeans.update import LloydState, batched_lloyd_step
    from jaxmix.data.chunked import chunk

    data = place(chunk(inputs["x"], 250), mesh)
    params = broadcast_params(init_params(inputs, "full"), 2)
    state = LloydState(np.broadcast_to(inputs["means0"], (2,) + inputs["means0"].shape),
                       np.zeros(2, np.uint32))
    out = {}
    for path in ("gemm", "exact"):
        out[path] = collectives(lambda d, p: batched_em_step(d, 1e-6, path)(p), data, params)
    out["lloyd"] = collectives(lambda d, s: batched_lloyd_step(d, relocate=False)(s), data, state)
    return out


def run_multiprocess_cases(inputs: dict, x=None) -> dict:
    """EM (weighted, from given parameters) and K-Means on ``x`` (default:
    the data); the initialisers are covered by the 4-device cases."""
    x = inputs["x"][:MULTIPROCESS_ROWS] if x is None else x
    w = inputs["w"][:MULTIPROCESS_ROWS]   # numpy, the same on every process
    return {"mp_gmm": fit_gmm(7, x, 3, init_params=init_params(inputs, "full"),
                              sample_weight=w, **EM_KW),   # 4 chunks: padding rows
            "mp_kmeans": fit_kmeans(8, x, 3, init_centroids=inputs["means0"])}


MULTIPROCESS_ROWS = 2000   # split evenly between the processes


def main_multiprocess(argv) -> None:
    from jax.sharding import NamedSharding, PartitionSpec

    from jaxmix.data.sharding import data_mesh

    option = lambda name: int(argv[argv.index(name) + 1])
    rank, size = option("--process"), option("--processes")
    jax.distributed.initialize(f"localhost:{option('--port')}", num_processes=size,
                               process_id=rank)
    inputs = dict(np.load(argv[1]))
    mesh = data_mesh()   # every device of every process
    assert mesh.devices.size == 2 * size and jax.process_count() == size
    part = MULTIPROCESS_ROWS // size
    local = inputs["x"][rank * part:(rank + 1) * part]   # this process's rows only
    x = jax.make_array_from_process_local_data(NamedSharding(mesh, PartitionSpec("data")), local)
    assert not x.is_fully_addressable
    results = run_multiprocess_cases(inputs, x)
    flat = flatten(results)   # replicated results: every process can read them
    if rank == 0:
        np.savez(argv[2], **flat)


def main(argv) -> None:
    from jaxmix.data.sharding import data_mesh

    inputs = dict(np.load(argv[1]))
    mesh = data_mesh()
    assert mesh.devices.size == N_DEVICES, jax.devices()
    flat = flatten(run_cases(inputs, mesh, slow="--slow" in argv))
    for step, counts in step_collectives(inputs, mesh).items():
        for op, count in counts.items():
            flat[f"hlo/{step}/{op}"] = np.asarray(count)
    np.savez(argv[2], **flat)


if __name__ == "__main__":
    main_multiprocess(sys.argv) if MULTIPROCESS else main(sys.argv)
