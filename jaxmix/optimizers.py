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
import math
import numbers

import optax


_NOT_PLAIN = object()


def _plain(value):
    """``value`` as a Python bool, int, float, str or None (NumPy scalars
    converted), or a tuple of them: hashable, pickled without code;
    ``_NOT_PLAIN`` for anything else, or a number that is not finite."""
    if isinstance(value, tuple):
        items = tuple(_plain(v) for v in value)
        return _NOT_PLAIN if _NOT_PLAIN in items else items
    if value is None or isinstance(value, (bool, str)):
        return value
    if isinstance(value, numbers.Integral):
        return int(value)
    if isinstance(value, numbers.Real) and math.isfinite(float(value)):
        return float(value)
    return _NOT_PLAIN


def optax_factory(name):
    """``optax.<name>`` if it is a public factory function (``ValueError``
    naming ``name`` otherwise)."""
    factory = getattr(optax, name, None) if isinstance(name, str) and \
        not name.startswith("_") else None
    if not callable(factory) or isinstance(factory, type):
        raise ValueError(f"named_optimizer: name must be an optax optimizer's factory "
                         f"('adam', 'sgd', 'lbfgs', ...), got {name!r}")
    return factory


@dataclasses.dataclass(frozen=True)
class NamedOptimizer:
    """``optax.<name>(**dict(options))``, built on first use. Build it with
    :func:`named_optimizer` (which checks the name and options); it has
    ``init`` and ``update`` (with optax's extra arguments, so line searches
    such as ``lbfgs`` get ``value_fn``). Each distinct option value is its
    own program: to sweep a learning rate without recompiling, pass
    ``optax.inject_hyperparams(optax.adam)(learning_rate=...)`` itself and
    vary ``hyperparams`` in the fit."""
    name: str
    options: tuple = ()  # sorted (keyword, value) pairs

    def transformation(self) -> optax.GradientTransformationExtraArgs:
        return _build(self.name, self.options)

    def init(self, params):
        return self.transformation().init(params)

    def update(self, updates, state, params=None, **extra_args):
        return self.transformation().update(updates, state, params, **extra_args)


@functools.lru_cache(maxsize=64, typed=True)
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
    optax_factory(name)
    plain = {}
    for key, value in options.items():
        plain[key] = _plain(value)
        if plain[key] is _NOT_PLAIN:
            raise ValueError(f"named_optimizer: option {key}={value!r} is not a finite "
                             "number, string, bool, None or tuple of them; pass the optax "
                             f"object itself (optax.{name}(...)) to use it")
    spec = NamedOptimizer(name, tuple(sorted(plain.items())))
    try:
        spec.transformation()
    except TypeError as err:
        raise ValueError(f"named_optimizer: optax.{name}(**{options!r}) failed: {err}") from None
    return spec


def resolve(optimizer):
    """The optax transformation behind ``optimizer`` (itself unless named)."""
    return optimizer.transformation() if isinstance(optimizer, NamedOptimizer) else optimizer
