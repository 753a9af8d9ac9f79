"""Families by name, for files and the command line: a family as a JSON
object and back (read as untrusted input), and the shapes of its component
parameters, derived from the family itself (no per-family code).

A family of your own (a frozen dataclass, see :mod:`jaxmix.families.protocol`)
is written as ``{"name": ..., "fields": {...}}`` (its dataclass fields but
``name`` and ``support``: numbers, strings, booleans or lists of them) and
read back only from the classes the reader names (``families=[MyFamily]``):
a file never chooses which code runs.

>>> from jaxmix.families import Categorical
>>> to_spec(Categorical((3, 2)))
{'name': 'categorical', 'n_categories': [3, 2]}
>>> from_spec(to_spec(Categorical((3, 2))), "model.npz")
Categorical(n_categories=(3, 2), name='categorical', support='integer codes 0 .. n_categories - 1 per column')
"""

from __future__ import annotations

import dataclasses
import math

import jax
import jax.numpy as jnp
import numpy as np

from jaxmix.families.bernoulli import Bernoulli
from jaxmix.families.categorical import Categorical
from jaxmix.families.exponential import Exponential
from jaxmix.families.gaussian import DiagGaussian
from jaxmix.families.gmm import TYPES as GAUSSIAN_TYPES, Gaussian
from jaxmix.families.poisson import Poisson
from jaxmix.families.product import Product
from jaxmix.families.student import StudentT
from jaxmix.families.vmf import VonMisesFisher

# Families without settings, by name (the command line's --family).
SIMPLE = {"bernoulli": Bernoulli, "poisson": Poisson, "exponential": Exponential,
          "von Mises-Fisher": VonMisesFisher}


def to_spec(family) -> dict:
    """``family`` as a JSON object."""
    if isinstance(family, Categorical):
        return {"name": family.name, "n_categories": list(family.n_categories)}
    if isinstance(family, DiagGaussian):
        return {"name": family.name, "reg_covar": family.reg_covar}
    if isinstance(family, Gaussian):
        return {"name": family.name, "covariance_type": family.covariance_type,
                "reg_covar": family.reg_covar}
    if isinstance(family, StudentT):
        return {"name": family.name, "dof": family.dof, "fixed_dof": family.fixed_dof,
                "reg_covar": family.reg_covar}
    if isinstance(family, Product):
        return {"name": family.name,
                "blocks": [[to_spec(f), list(cols)] for f, cols in family.blocks]}
    if type(family) in SIMPLE.values():
        return {"name": family.name}
    if dataclasses.is_dataclass(family):
        defaults = {f.name: f.default for f in dataclasses.fields(family)}
        if family.name != defaults.get("name"):
            raise ValueError(f"family {family!r}: a family of your own is read back by its "
                             "class's default name; leave name at its default")
        fields = {f.name: _python(getattr(family, f.name)) for f in dataclasses.fields(family)
                  if f.name not in ("name", "support")}
        if all(_plain(v) for v in fields.values()):
            return {"name": family.name, "fields": fields}
    raise ValueError(f"no file format for the family {family!r}: a family of your own must be "
                     "a dataclass whose fields are numbers, strings, booleans or lists of them")


def from_spec(spec, where: str, families=()):
    """The family a JSON object names; ``ValueError`` naming ``where``
    otherwise. ``families``: the classes of your own a file may name."""
    def bad(text):
        return ValueError(f"{where}: family {spec!r} {text}")
    if not isinstance(spec, dict) or not isinstance(spec.get("name"), str):
        raise bad("must be a JSON object with a 'name'")
    name, keys = spec["name"], set(spec) - {"name"}
    if keys == {"fields"}:
        return _own(name, spec["fields"], families, bad)
    if name in SIMPLE and not keys:
        return SIMPLE[name]()
    if name == "categorical" and keys == {"n_categories"}:
        sizes = spec["n_categories"]
        if not (isinstance(sizes, list) and sizes and all(
                isinstance(c, int) and not isinstance(c, bool) and 1 <= c <= 2 ** 20
                for c in sizes)):
            raise bad("needs n_categories: a list of integers from 1 to 2^20")
        return Categorical(tuple(sizes))
    if name == "diagonal Gaussian" and keys == {"reg_covar"}:
        reg = spec["reg_covar"]
        if not (_number(reg) and reg >= 0):
            raise bad("needs reg_covar: a finite number >= 0")
        return DiagGaussian(float(reg))
    if name == "Gaussian" and keys == {"covariance_type", "reg_covar"}:
        ct, reg = spec["covariance_type"], spec["reg_covar"]
        if ct not in GAUSSIAN_TYPES or not (_number(reg) and reg >= 0):
            raise bad(f"needs covariance_type one of {GAUSSIAN_TYPES} and reg_covar >= 0")
        return Gaussian(ct, float(reg))
    if name == "student-t" and keys == {"dof", "fixed_dof", "reg_covar"}:
        dof, fixed, reg = spec["dof"], spec["fixed_dof"], spec["reg_covar"]
        if not (_number(dof) and dof > 0 and isinstance(fixed, bool) and _number(reg)
                and reg >= 0):
            raise bad("needs dof > 0, fixed_dof a bool and reg_covar >= 0")
        return StudentT(float(dof), fixed, float(reg))
    if name == "product" and keys == {"blocks"} and isinstance(spec["blocks"], list):
        blocks = []
        for block in spec["blocks"]:
            if not (isinstance(block, list) and len(block) == 2 and isinstance(block[1], list)
                    and all(isinstance(c, int) and not isinstance(c, bool) for c in block[1])):
                raise bad("blocks must be [family, [column, ...]] pairs")
            blocks.append((from_spec(block[0], where, families), tuple(block[1])))
        return Product(tuple(blocks))
    raise bad("is not a family this jaxmix knows, or has the wrong keys")


def _own(name, fields, families, bad):
    """A family of the caller's ``families`` named ``name``, built from ``fields``."""
    if not isinstance(fields, dict) or not all(_plain(v) for v in fields.values()):
        raise bad("needs fields: an object of numbers, strings, booleans or lists of them")
    for cls in families:
        if not (isinstance(cls, type) and dataclasses.is_dataclass(cls)):
            raise ValueError(f"families must hold family classes (dataclasses), got {cls!r}")
        defaults = {f.name: f.default for f in dataclasses.fields(cls)}
        if defaults.get("name") == name:
            try:
                return cls(**{k: tuple(v) if isinstance(v, list) else v
                              for k, v in fields.items()})
            except (TypeError, ValueError) as err:
                raise bad(f"does not build a {cls.__name__}: {err}") from None
    raise bad(f"is not built in; pass its class to the reader (families=[...]), e.g. "
              f"load_mixture(path, families=[{name.title().replace(' ', '')}])")


def _python(v):
    """NumPy scalars as Python numbers, tuples (and arrays) as lists."""
    if isinstance(v, np.generic):
        return v.item()
    if isinstance(v, (tuple, list, np.ndarray)):
        return [_python(e) for e in v]
    return v


def _plain(v) -> bool:
    """A JSON scalar, or a list of them."""
    if isinstance(v, (list, tuple)):
        return all(_plain(e) and not isinstance(e, (list, tuple)) for e in v)
    return v is None or isinstance(v, (bool, str)) or _number(v)


def _number(v) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


def theta_shapes(family, k: int, d: int, dtype):
    """The ``jax.ShapeDtypeStruct`` tree of ``k`` components on ``d`` columns:
    the shapes the family's own M-step produces."""
    def m_step():
        x, r = jnp.zeros((1, d), dtype), jnp.zeros((1, k), dtype)
        return family.m_step(None, jnp.ones((k,), dtype), family.stats(None, x, r), None)
    return jax.eval_shape(m_step)
