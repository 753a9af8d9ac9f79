"""jaxmix.compiling: jit with backend compiler options, usable at top level
and under transformations."""

import jax
import jax.numpy as jnp
import numpy as np

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
