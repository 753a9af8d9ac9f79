"""Products of families over column blocks: mixed-type data (some Gaussian
columns, some categorical, some counts) as one family.

``Product(((DiagGaussian(), (0, 1)), (Categorical((3,)), (2,)), (Poisson(), (3, 4))))``
gives each block its columns; within a component the blocks are
independent, so the log-density is the sum of the blocks', the statistics,
M-step, prior and sampler are the blocks' own side by side (tuples), and
the free parameters add.
"""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp

from jaxmix.families.protocol import recentred


@dataclasses.dataclass(frozen=True)
class Product:
    """``blocks``: ``((family, column indices), ...)``, every column once."""

    blocks: tuple = ()
    name: str = "product"

    def __post_init__(self):
        columns = [c for _, cols in self.blocks for c in cols]
        if not self.blocks or sorted(columns) != list(range(len(columns))):
            raise ValueError("Product blocks must cover the columns 0 .. d-1, each once; got "
                             f"{[tuple(cols) for _, cols in self.blocks]}")

    @property
    def support(self) -> str:
        return "; ".join(f"{f.name} columns {list(cols)}: {f.support}" for f, cols in self.blocks)

    def _parts(self, x):
        return [(f, x[:, list(cols)]) for f, cols in self.blocks]

    def log_prob(self, theta, x):
        return sum(f.log_prob(t, xb) for (f, xb), t in zip(self._parts(x), theta))

    def stats(self, theta, x, r):
        thetas = theta if theta is not None else (None,) * len(self.blocks)
        return tuple(f.stats(t, xb, r) for (f, xb), t in zip(self._parts(x), thetas))

    def m_step(self, theta, nk, stats, prior):
        thetas = theta if theta is not None else (None,) * len(self.blocks)
        priors = prior if prior is not None else (None,) * len(self.blocks)
        return tuple(f.m_step(t, nk, s, p) for (f, _), t, s, p
                     in zip(self.blocks, thetas, stats, priors))

    def recentre(self, stats, nk, old, new):
        return tuple(recentred(f, s, nk, o, n) for (f, _), s, o, n
                     in zip(self.blocks, stats, old, new))

    def constrain(self, raw):
        return tuple(f.constrain(r) for (f, _), r in zip(self.blocks, raw))

    def unconstrain(self, theta):
        return tuple(f.unconstrain(t) for (f, _), t in zip(self.blocks, theta))

    def log_prior(self, theta, prior):
        if prior is None:
            return jnp.zeros(())
        return sum(f.log_prior(t, p) for (f, _), t, p in zip(self.blocks, theta, prior))

    def default_prior(self, x, w, k: int):
        return tuple(f.default_prior(xb, w, k) for f, xb in self._parts(x))

    def n_free(self, d: int) -> int:
        return sum(f.n_free(len(cols)) for f, cols in self.blocks)

    def in_support(self, x):
        n_columns = sum(len(cols) for _, cols in self.blocks)
        if x.shape[1] != n_columns:
            raise ValueError(f"X has {x.shape[1]} columns; the product's blocks cover "
                             f"{n_columns}")
        return jnp.all(jnp.stack([f.in_support(xb) for f, xb in self._parts(x)]), axis=0)

    def degenerate(self, theta):
        """A component collapsed in any block (by the blocks' own tests)."""
        tests = [f.degenerate(t) for (f, _), t in zip(self.blocks, theta)
                 if hasattr(f, "degenerate")]
        return jnp.any(jnp.stack(tests), axis=0) if tests else jnp.zeros(
            jax.tree.leaves(theta)[0].shape[:1], bool)

    def sample(self, key, theta, labels):
        keys = jax.random.split(key, len(self.blocks))
        parts = [f.sample(kk, t, labels) for (f, _), t, kk in zip(self.blocks, theta, keys)]
        order = [c for _, cols in self.blocks for c in cols]
        return jnp.concatenate(parts, axis=1)[:, jnp.argsort(jnp.asarray(order))]
