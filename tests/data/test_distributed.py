"""Sharded fits on 4 simulated CPU devices equal single-device fits.

The sharded fits run in a subprocess (``tests/_distributed_worker.py``, which
sets ``XLA_FLAGS=--xla_force_host_platform_device_count=4`` before importing
jax); the reference is the same code run here, on one device, in float64.
The two differ only in the order of floating-point additions (the worker sums
each device's block of chunks, then the blocks), so their results agree to
~1e-13; the tests require the issue's 1e-5 relative.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

import jax
import numpy as np
import optax
import pytest

from _distributed_worker import (EM_KW, compare, flatten, init_params, make_inputs,
                                 run_cases, run_multiprocess_cases)
from jaxmix import fit_gmm, fit_gradient
from jaxmix.data.chunked import chunk_rows
from jaxmix.data.sharding import check_mesh, data_mesh, n_shards, place, resolve_mesh, shard
from jaxmix.data.chunked import chunk

WORKER = Path(__file__).with_name("_distributed_worker.py")
CASES = ("em_full", "em_tied", "em_diag", "em_spherical", "em_kmeans_init", "map_em", "kmeans",
         "gradient")


def run_worker(tmp: Path, inputs: dict, slow: bool = False):
    """Start the 4-device worker; returns the process and its output path."""
    np.savez(tmp / "in.npz", **inputs)
    env = dict(os.environ, JAX_PLATFORMS="cpu", PYTHONPATH=os.pathsep.join(
        [str(Path(__file__).parents[2])] + os.environ.get("PYTHONPATH", "").split(os.pathsep)))
    cmd = [sys.executable, str(WORKER), str(tmp / "in.npz"), str(tmp / "out.npz")]
    return subprocess.Popen(cmd + (["--slow"] if slow else []), env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def finish(proc, tmp: Path) -> dict:
    output, _ = proc.communicate(timeout=900)
    assert proc.returncode == 0, output[-4000:]
    return dict(np.load(tmp / "out.npz"))


@pytest.fixture(scope="module")
def outcome(tmp_path_factory):
    """``(reference leaves, sharded leaves)``; the worker runs while the
    reference is computed here."""
    tmp = tmp_path_factory.mktemp("distributed")
    inputs = make_inputs()
    proc = run_worker(tmp, inputs)
    try:
        reference = flatten(run_cases(inputs))
    finally:
        sharded = finish(proc, tmp)
    return reference, sharded


@pytest.mark.parametrize("name", CASES)
def test_sharded_equals_single_device(outcome, name):
    reference, sharded = outcome
    compare(reference, sharded, name)


@pytest.mark.parametrize("step", ["gemm", "exact", "lloyd"])
def test_statistics_are_all_reduced_not_gathered(outcome, step):
    """One EM or Lloyd step on sharded data reduces its statistics across the
    devices and never gathers the samples."""
    _, sharded = outcome
    assert int(sharded[f"hlo/{step}/all-reduce"]) >= 1
    for op in ("all-gather", "all-to-all", "collective-permute"):
        assert int(sharded[f"hlo/{step}/{op}"]) == 0, op


@pytest.mark.slow
def test_sharded_equals_single_device_every_init(tmp_path):
    inputs = make_inputs(seed=1)
    proc = run_worker(tmp_path, inputs, slow=True)
    try:
        reference = flatten(run_cases(inputs, slow=True))
    finally:
        sharded = finish(proc, tmp_path)
    for name in sorted({key.split("/")[0] for key in reference}):
        compare(reference, sharded, name)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("localhost", 0))
        return sock.getsockname()[1]


@pytest.mark.slow
def test_two_processes_equal_single_device(tmp_path):
    """``jax.distributed.initialize`` with 2 processes of 2 CPU devices (gloo
    collectives), each holding half of the rows: the recipe of
    docs/guides/scaling.md. Results equal the single-device fits."""
    inputs = make_inputs()
    np.savez(tmp_path / "in.npz", **inputs)
    port, env = free_port(), dict(os.environ, JAX_PLATFORMS="cpu")
    procs = [subprocess.Popen(
        [sys.executable, str(WORKER), str(tmp_path / "in.npz"), str(tmp_path / "out.npz"),
         "--process", str(rank), "--processes", "2", "--port", str(port)], env=env,
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True) for rank in range(2)]
    try:
        reference = flatten(run_multiprocess_cases(inputs))
    finally:
        outputs = [proc.communicate(timeout=900)[0] for proc in procs]
    for proc, output in zip(procs, outputs):
        assert proc.returncode == 0, output[-4000:]
    sharded = dict(np.load(tmp_path / "out.npz"))
    for name in ("mp_gmm", "mp_kmeans"):
        compare(reference, sharded, name)


# ---------------------------------------------------------------------------
# Host-side helpers (one device here)


def test_data_mesh_and_checks():
    mesh = data_mesh()
    assert mesh.axis_names == ("data",) and n_shards(mesh) == len(jax.devices())
    assert n_shards(None) == 1
    with pytest.raises(ValueError, match="mesh must be a jax.sharding.Mesh"):
        check_mesh("data")
    with pytest.raises(ValueError, match="axis named 'data'"):
        check_mesh(jax.make_mesh((1,), ("batch",)))
    explicit = jax.make_mesh((1,), ("data",))   # jax's default: Explicit axes
    assert check_mesh(explicit).axis_types == (jax.sharding.AxisType.Auto,)


def test_resolve_mesh():
    x = np.zeros((4, 2))
    assert resolve_mesh(None, x) is None
    assert resolve_mesh(None, shard(x, data_mesh())) is None   # one device: nothing to split
    assert resolve_mesh(data_mesh(), x).axis_names == ("data",)


@pytest.mark.parametrize("n,width,shards", [(4000, 2 ** 10, 4), (10_000, 4096, 4), (3, 1, 4),
                                            (999, 2 ** 14, 1), (12_345, 5399, 3)])
def test_chunk_rows(n, width, shards):
    """The one chunk rule: at most CHUNK_ELEMENTS per chunk (or MIN_CHUNK_ROWS
    rows), a multiple of ``shards`` chunks, less than one row of padding per chunk."""
    from jaxmix.data.chunked import CHUNK_ELEMENTS, MIN_CHUNK_ROWS
    got = chunk_rows(n, width, shards)
    n_chunks = -(-n // got)
    padded = shards * -(-n_chunks // shards) * got
    assert got <= max(MIN_CHUNK_ROWS, CHUNK_ELEMENTS // width) or got <= -(-n // shards)
    assert padded - n < shards * got and -(-n // padded) <= 1


def test_shard_rejects_uneven_rows():
    device = jax.devices()[0]
    two = jax.sharding.Mesh(np.array([device, device]), ("data",))   # shapes only
    with pytest.raises(ValueError, match="3 rows, not a multiple of the 2 devices"):
        shard(np.zeros((3, 2)), two)
    assert shard(np.zeros((3, 2)), data_mesh()).shape == (3, 2)


def test_place_pads_to_a_multiple_of_the_devices():
    data = chunk(np.ones((10, 2)), 4)
    assert place(data, None) is data
    placed = place(data, data_mesh())
    assert placed.x.shape[0] % len(jax.devices()) == 0
    np.testing.assert_array_equal(placed.w.sum(), 10)


def test_one_device_mesh_equals_no_mesh(outcome):
    inputs = make_inputs()
    kw = dict(init_params=init_params(inputs, "full"), sample_weight=inputs["w"], **EM_KW)
    reference, _ = outcome
    one = flatten({"em_full": fit_gmm(0, inputs["x"], 3, mesh=data_mesh(), **kw)})
    compare(reference, one, "em_full")


def test_gradient_minibatch_with_mesh_is_refused(rng):
    with pytest.raises(ValueError, match="batch_size"):
        fit_gradient(0, rng.normal(size=(20, 2)), 2, optax.adam(0.1), batch_size=4,
                     mesh=data_mesh())
