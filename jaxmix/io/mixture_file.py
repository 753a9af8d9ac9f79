"""Mixtures of any component family (:mod:`jaxmix.families`) in the model
file format of :mod:`jaxmix.io`: kind ``"MixtureParams"``, the family as a
JSON object (:mod:`jaxmix.families.spec`), ``weights`` and the component
leaves ``theta:0``, ``theta:1``, ... Read as untrusted input: the family is
rebuilt from its checked JSON, every leaf must have the shape the family's
own M-step gives for the file's ``k`` and ``d``, values finite, weights
positive and summing to one.
"""

from __future__ import annotations

import os

import jax
import numpy as np

from jaxmix.io.about import About, read_about
from jaxmix.io.model_file import read, write
from jaxmix.io.untrusted import is_int, problem, shown

KIND = "MixtureParams"


def save_mixture(path, family, params, about: About | None = None) -> None:
    """Write ``params`` (:class:`~jaxmix.families.MixtureParams`, single or
    restart-batched) of ``family``."""
    from jaxmix.families.spec import to_spec

    leaves = jax.tree.leaves(params.theta)
    arrays = {"weights": np.asarray(params.weights),
              **{f"theta:{i}": np.asarray(leaf) for i, leaf in enumerate(leaves)}}
    write(path, KIND, arrays, None, about, family=to_spec(family),
          n_features=n_features_of(family, leaves))


def n_features_of(family, leaves) -> int:
    """The data's columns, from the family (products know theirs) or the
    first leaf's last axis."""
    blocks = getattr(family, "blocks", None)
    if blocks:
        return sum(len(cols) for _, cols in blocks)
    if hasattr(family, "n_categories"):
        return len(family.n_categories)
    return int(np.shape(leaves[0])[-1])


def load_mixture(path, families=()):
    """``(family, MixtureParams, About)`` from a file of :func:`save_mixture`;
    ``families``: the classes of your own the file may name
    (:mod:`jaxmix.families.spec`)."""
    from jaxmix.families.mixture import MixtureParams
    from jaxmix.families.spec import from_spec, theta_shapes

    where = os.fspath(path)
    meta, arrays = read(path, KIND)
    family = from_spec(meta.get("family"), where, families)
    d = meta.get("n_features")
    if not (is_int(d) and d >= 1):
        raise problem(where, "metadata 'n_features'", f"must be an integer >= 1, got {shown(d)}")
    weights = arrays.get("weights")
    if weights is None or weights.ndim < 1 or weights.dtype.kind != "f":
        raise problem(where, "weights", "must be a float array (k,) or (restarts, k)")
    k, batch = weights.shape[-1], weights.shape[:-1]
    shapes = theta_shapes(family, k, d, weights.dtype)
    expected = jax.tree.leaves(shapes)
    names = ["weights"] + [f"theta:{i}" for i in range(len(expected))]
    if sorted(arrays) != sorted(names):
        raise problem(where, "arrays", f"must be {names}, got {sorted(arrays)}")
    leaves = []
    for i, spec in enumerate(expected):
        leaf = arrays[f"theta:{i}"]
        if leaf.shape != batch + spec.shape or leaf.dtype.kind != "f":
            raise problem(where, f"theta:{i}", f"must be float with shape {batch + spec.shape}, "
                          f"got {leaf.dtype} {leaf.shape}")
        leaves.append(leaf)
    if not all(np.all(np.isfinite(a)) for a in [weights, *leaves]):
        raise problem(where, "arrays", "contain NaN or infinity")
    if not (np.all(weights > 0) and np.allclose(weights.sum(axis=-1), 1, atol=1e-4)):
        raise problem(where, "weights", "must be positive and sum to 1")
    theta = jax.tree.structure(shapes).unflatten(leaves)
    return family, MixtureParams(weights, theta), read_about(where, meta, d)
