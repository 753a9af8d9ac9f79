"""An optax optimizer named by its factory and keyword arguments.

``optax.adam(1e-2)`` is a pair of closures: two calls build two objects that
JAX cannot tell apart from different optimizers, so a gradient fit given a
fresh instance compiles again, and a compiled fit cannot be stored across
processes (:mod:`jaxmix.executables`). :func:`named_optimizer` gives the
same optimizer as a value: equal names and arguments are equal static
arguments, one compiled program.

>>> import optax
>>> from jaxmix.optimizers import named_optimizer
>>> opt = named_optimizer("adam", learning_rate=1e-2)
>>> opt == named_optimizer("adam", learning_rate=0.01)
True
>>> import jax.numpy as jnp
>>> state = opt.init(jnp.zeros(2))   # it is used as the optax object is
"""

from __future__ import annotations

import dataclasses
import functools

import optax

_PLAIN = (bool, int, float, str, type(None))


def _plain(value) -> bool:
    """A number, string, bool or None, or a tuple of them (hashable, pickled
    without code)."""
    if isinstance(value, tuple):
        return all(_plain(v) for v in value)
    return isinstance(value, _PLAIN)


@dataclasses.dataclass(frozen=True)
class NamedOptimizer:
    """``optax.<name>(**dict(options))``, built on first use. Build it with
    :func:`named_optimizer`; it has ``init`` and ``update`` (with optax's
    extra arguments, so line searches such as ``lbfgs`` get ``value_fn``)."""
    name: str
    options: tuple = ()  # sorted (keyword, value) pairs

    def transformation(self) -> optax.GradientTransformationExtraArgs:
        return _build(self.name, self.options)

    def init(self, params):
        return self.transformation().init(params)

    def update(self, updates, state, params=None, **extra_args):
        return self.transformation().update(updates, state, params, **extra_args)


@functools.lru_cache(maxsize=64)
def _build(name: str, options: tuple) -> optax.GradientTransformationExtraArgs:
    built = getattr(optax, name)(**dict(options))
    if not isinstance(built, optax.GradientTransformation):
        raise TypeError(f"optax.{name} returned a {type(built).__name__}, not an optimizer")
    return optax.with_extra_args_support(built)


def named_optimizer(name: str, **options) -> NamedOptimizer:
    """The optimizer ``optax.<name>(**options)`` as a comparable value.

    ``name``: a public optax factory that returns a gradient transformation
    (``"adam"``, ``"sgd"``, ``"lbfgs"``, ...). ``options``: its keyword
    arguments, numbers, strings, bools, None or tuples of them (a schedule
    or another callable cannot be compared: pass the optax object itself).
    ``ValueError`` names what is wrong; the optimizer is built once here so
    that a bad argument fails now, not inside a fit.
    """
    factory = getattr(optax, name, None) if isinstance(name, str) and \
        not name.startswith("_") else None
    if not callable(factory) or isinstance(factory, type):
        raise ValueError(f"named_optimizer: name must be an optax optimizer's factory "
                         f"('adam', 'sgd', 'lbfgs', ...), got {name!r}")
    for key, value in options.items():
        if not _plain(value):
            raise ValueError(f"named_optimizer: option {key}={value!r} is not a number, "
                             "string, bool, None or tuple of them; pass the optax object "
                             f"itself (optax.{name}(...)) to use it")
    spec = NamedOptimizer(name, tuple(sorted(options.items())))
    try:
        spec.transformation()
    except TypeError as err:
        raise ValueError(f"named_optimizer: optax.{name}(**{options!r}) failed: {err}") from None
    return spec


def resolve(optimizer):
    """The optax transformation behind ``optimizer`` (itself unless named)."""
    return optimizer.transformation() if isinstance(optimizer, NamedOptimizer) else optimizer
