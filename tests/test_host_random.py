"""The host's threefry (jaxmix.host_random) against JAX's own, and fits that
hash their starts on the host against the same fits hashing in the program."""

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import jaxmix
from jaxmix import host_random
from jaxmix.fit.rows import restart_rows, row_keys, with_draws
from jaxmix.kmeans.init import host_plusplus_bits, plusplus_bits


def _keys(n, seed=0):
    keys = np.random.default_rng(seed).integers(0, 2 ** 32, (n, 2), dtype=np.uint32)
    keys[:3] = [[0, 0], [2 ** 32 - 1, 2 ** 32 - 1], [0, 2 ** 32 - 1]]  # the edges
    return keys


def test_fold_in_and_words_are_jax_bit_for_bit():
    keys = _keys(64)
    data = np.random.default_rng(1).integers(0, 2 ** 32, 64, dtype=np.uint32)
    data[:2] = [0, 2 ** 32 - 1]
    theirs = jax.vmap(jax.random.fold_in)(jnp.asarray(keys), jnp.asarray(data))
    np.testing.assert_array_equal(host_random.fold_in(keys, data), np.asarray(theirs))
    words = jax.vmap(lambda k: jax.random.bits(k, (2,), jnp.uint32))(jnp.asarray(keys))
    np.testing.assert_array_equal(host_random.word_pairs(keys), np.asarray(words))


@pytest.mark.parametrize("k, trials", [(1, 2), (2, 1), (5, 3)])
def test_plusplus_bits_on_the_host_are_the_programs(k, trials):
    keys = _keys(6, seed=k)
    theirs = jax.jit(jax.vmap(lambda key: plusplus_bits(key, k, trials)))(jnp.asarray(keys))
    np.testing.assert_array_equal(host_plusplus_bits(keys, k, trials), np.asarray(theirs))


@pytest.mark.parametrize("per_k", [False, True])
def test_row_keys_on_the_host_are_the_programs(per_k):
    key = jax.random.PRNGKey(7)
    rows = restart_rows([2, 5], 3)
    theirs = jax.jit(lambda kk: row_keys(kk, rows, per_k))(key)
    np.testing.assert_array_equal(with_draws(key, rows, per_k=per_k).draws.key,
                                  np.asarray(theirs))


def test_host_key_only_where_jax_default_threefry_is_mirrored():
    np.testing.assert_array_equal(host_random.host_key(jax.random.key(3)), [0, 3])
    np.testing.assert_array_equal(host_random.host_key(jax.random.PRNGKey(3)), [0, 3])
    assert host_random.host_key(jax.random.key(3, impl="rbg")) is None
    seen = []
    jax.jit(lambda kk: seen.append(host_random.host_key(kk)) or kk)(jax.random.PRNGKey(0))
    assert seen == [None]  # traced: the program hashes
    rows = restart_rows([3], 2)
    assert with_draws(jax.random.key(3, impl="rbg"), rows).draws is None


def test_typed_threefry_key_under_another_default_prng_hashes_in_the_program():
    """The draws hand on raw keys, which JAX reads with the default PRNG."""
    with jax.default_prng_impl("rbg"):
        assert host_random.host_key(jax.random.key(1, impl="threefry2x32")) is None
        res = jaxmix.fit_kmeans(jax.random.key(1, impl="threefry2x32"), X, 3, init="random",
                                max_iter=2)
    assert np.all(np.isfinite(np.asarray(res.params.centroids)))


def _in_program(monkeypatch):
    monkeypatch.setattr(host_random, "host_key", lambda key: None)


def _same(a, b, rtol=0.0):
    a, b = jax.tree.leaves(a), jax.tree.leaves(b)
    assert len(a) == len(b)
    for x, y in zip(a, b):
        if rtol and np.issubdtype(np.asarray(x).dtype, np.floating):
            np.testing.assert_allclose(np.asarray(x), np.asarray(y), rtol=rtol, atol=rtol)
        else:
            np.testing.assert_array_equal(np.asarray(x), np.asarray(y))


X = np.random.default_rng(3).normal(size=(90, 2)).astype(np.float32) + \
    np.repeat(np.array([[0, 0], [4, 0], [0, 4]], np.float32), 30, axis=0)


FITS = {
    "fit_gmm": lambda key: jaxmix.fit_gmm(key, X, 3, n_restarts=3, max_iter=5),
    "fit_kmeans": lambda key: jaxmix.fit_kmeans(key, X, 3, n_restarts=3, max_iter=5),
    "select_k": lambda key: jaxmix.select_k(key, X, [2, 3], n_restarts=2,
                                            max_iter=5).log_likelihood,
    "fit_gradient": lambda key: jaxmix.fit_gradient(key, X, 3, optax.adam(1e-2), n_restarts=2,
                                                    max_iter=3),
}


MINIBATCH = {"fit_minibatch_kmeans": lambda key: jaxmix.fit_minibatch_kmeans(
    key, X, 3, n_restarts=2, batch_size=32, max_iter=2)}


@pytest.mark.parametrize("fit", [*FITS.values(), *MINIBATCH.values()], ids=[*FITS, *MINIBATCH])
def test_fits_hashing_on_the_host_equal_fits_hashing_in_the_program(fit, monkeypatch):
    """The same start, and here the same fit bit for bit, except the
    gradient fit: its two programs differ beyond the hashes and XLA rounds
    adam's steps apart by an ulp (as jaxmix.host_random says it may), so its
    floats agree to float32 rounding (its counts and flags exactly)."""
    key = jax.random.PRNGKey(11)
    on_host = fit(key)
    _in_program(monkeypatch)
    _same(on_host, fit(key), rtol=1e-6 if fit is FITS["fit_gradient"] else 0.0)


@pytest.mark.parametrize("fit", [*FITS.values(), *MINIBATCH.values()], ids=[*FITS, *MINIBATCH])
def test_fits_take_a_typed_key_as_its_raw_key(fit):
    """``jax.random.key(s)`` and ``jax.random.PRNGKey(s)`` are the same key
    (a mini-batch run's state carries it: typed, it once broke the driver)."""
    _same(fit(jax.random.key(11)), fit(jax.random.PRNGKey(11)))


def test_mini_batch_keys_on_the_host_are_the_programs():
    from jaxmix.fit.gradient import _shuffle_keys
    key, restart = jax.random.PRNGKey(5), np.arange(4, dtype=np.int32)
    on_host = _shuffle_keys(key, restart)
    assert isinstance(on_host, np.ndarray)
    np.testing.assert_array_equal(on_host, np.asarray(jax.jit(_shuffle_keys)(key, restart)))


@pytest.mark.parametrize("method", ["k-means++", "random"])
def test_seeding_draws_hashed_on_the_host_seed_as_the_program(method):
    from jaxmix.data.chunked import chunk
    from jaxmix.kmeans.init import Draws, init_centroids, seed_key
    key, data = jax.random.PRNGKey(4), chunk(jnp.asarray(X), None)
    hashed = seed_key(key, 3, 4, method)
    assert isinstance(hashed, Draws)
    _same(init_centroids(hashed, data, 4, 3, method), init_centroids(key, data, 4, 3, method))
