"""jaxmix.compiling: jit with backend compiler options, usable at top level
and under transformations."""

import jax
import jax.numpy as jnp
import numpy as np

import jaxmix
from jaxmix import compiling
from jaxmix.compiling import CPU_OPTIONS, jit


@jit(static_argnames="power")
def _poly(x, power):
    return jnp.sum(x ** power)


def test_top_level_and_nested_calls_agree():
    x = jnp.arange(4.0)
    top = float(_poly(x, power=2))
    nested = float(jax.jit(lambda v: _poly(v, power=2))(x))
    batched = np.asarray(jax.vmap(lambda v: _poly(v, power=2))(jnp.stack([x, 2 * x])))
    grad = np.asarray(jax.grad(lambda v: _poly(v, power=2))(x))
    assert top == nested == 14.0
    np.testing.assert_allclose(batched, [14.0, 56.0])
    np.testing.assert_allclose(grad, 2 * np.arange(4.0))


def test_cpu_programs_get_the_cpu_options():
    if jax.default_backend() != "cpu":
        return
    lowered = _poly.lower(jnp.ones(3), power=3)
    assert lowered.compile() is not None
    assert _poly._get() is not _poly._nested
    # every option is one XLA accepts (compile() above raises on an unknown name)
    assert CPU_OPTIONS == {"xla_cpu_use_fusion_emitters": False,
                           "xla_backend_optimization_level": 1}


def _sum_work(x, power):
    return x.size


_poly_with_work = jit(lambda x, power: jnp.sum(x ** power), static_argnames="power",
                      work=_sum_work)


def test_small_work_compiles_at_the_small_options(monkeypatch):
    """A call whose declared work is at most SMALL_WORK takes the small CPU
    options, a larger one the default; both compute the same."""
    if jax.default_backend() != "cpu":
        return
    monkeypatch.setattr(compiling, "SMALL_WORK", 4)
    small, large = jnp.arange(4.0), jnp.arange(5.0)
    assert float(_poly_with_work(small, power=2)) == 14.0
    assert set(_poly_with_work._jitted) == {"small"}
    assert float(_poly_with_work(large, power=2)) == 30.0
    assert set(_poly_with_work._jitted) == {"small", ""}
    assert compiling.SMALL_CPU_OPTIONS["xla_backend_optimization_level"] == 0
    assert _poly._tier((small,), {"power": 2}) == "", "no declared work: the default"


def test_a_small_fit_equals_the_same_fit_at_the_default_options(monkeypatch):
    """The seed-sized fit compiled at level 0 and, with SMALL_WORK 0, at
    level 1: the same result up to float32 rounding."""
    x = np.random.default_rng(0).normal(size=(300, 3)).astype(np.float32)
    x[:150] += 4.0
    small = jaxmix.fit_gmm(0, x, 3, n_restarts=3, max_iter=20)
    monkeypatch.setattr(compiling, "SMALL_WORK", 0)
    default = jaxmix.fit_gmm(0, x, 3, n_restarts=3, max_iter=20)
    np.testing.assert_array_equal(np.asarray(small.n_iter), np.asarray(default.n_iter))
    for a, b in zip(jax.tree.leaves(small.params), jax.tree.leaves(default.params)):
        np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=2e-4, atol=2e-5)


def test_work_sees_keyword_arguments_and_lower_takes_the_tier(monkeypatch):
    """A call passing the data by keyword picks the tier as a positional one
    does, and ``lower`` lowers the program that call would run."""
    if jax.default_backend() != "cpu":
        return
    monkeypatch.setattr(compiling, "SMALL_WORK", 4)
    small = jnp.arange(3.0)
    assert _poly_with_work._tier((), {"x": small, "power": 2}) == "small"
    assert _poly_with_work._tier((small,), {"power": 2}) == "small"
    monkeypatch.setattr(_poly_with_work, "_jitted", {})
    assert _poly_with_work.lower(small, power=2).compile() is not None
    assert set(_poly_with_work._jitted) == {"small"}, "lowered with the small options"
    assert float(_poly_with_work(x=small, power=2)) == 5.0
