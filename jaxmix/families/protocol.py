r"""The component-family protocol: what a family of mixture components defines
so that the generic fit (:mod:`jaxmix.families.fit`) can run EM and MAP-EM
on it, with batched restarts, over any data placement of
:mod:`jaxmix.data` (the E-step is one :func:`jaxmix.data.reduce.reduce`).

A family is a frozen (hashable) dataclass, so it can be a static argument
of a compiled fit; its component parameters are a pytree whose leaves lead
with the component axis ``k``; its prior is a pytree of traced values (or
``None``). It defines::

    log_prob(theta, x)            (m, k) log p(x_n | component j), no weights
    stats(theta, x, r)            expected sufficient statistics of a chunk:
                                  a pytree, additive over chunks (r: (m, k)
                                  responsibilities times the sample weights;
                                  theta the current components, None when
                                  seeding: latent-variable families use it)
    m_step(theta, nk, stats, prior)  the components maximising the expected
                                  complete-data log-likelihood (+ log prior);
                                  theta: those the stats were taken under
    log_prior(theta, prior)       scalar (0 for prior=None)
    default_prior(x, w, k)        a weak conjugate prior from the data
    n_free(d)                     free parameters of one component (d: the
                                  data's columns)
    in_support(x)                 (m,) bool: rows in the family's support
                                  (checked over every chunk of every
                                  placement; ``support`` says it in words)
    sample(key, theta, labels)    one draw per label

and optionally ``degenerate(theta) -> (k,) bool`` (a component collapsed in
the family's own sense, e.g. a variance at its floor; every family's
components with less than one sample's weight are degenerate too), and,
for families whose statistics are taken about the current components
(centred Gaussians, Student-t), ``recentre(stats, nk, old, new)``: the
statistics taken under ``old`` re-expressed about ``new`` (online EM
averages statistics over many components' passes; :func:`recentred`).

The weights are the generic part's: ``w_k = (nk + alpha - 1) / (N + k (alpha - 1))``
under a symmetric Dirichlet(``alpha``) prior (``alpha = 1``: maximum
likelihood). Statistics are sums weighted by ``r`` (zero on padded rows),
so a chunked, sharded or streamed pass gives the same M-step.

:class:`jaxmix.families.Bernoulli` and :class:`jaxmix.families.Poisson`
follow it; see :mod:`jaxmix.families.bernoulli` for a family in 60 lines.
"""

from __future__ import annotations

from typing import Protocol

import jax.numpy as jnp


class ComponentFamily(Protocol):
    """Static description of one family of mixture components (see the module)."""

    name: str
    support: str

    def log_prob(self, theta, x): ...
    def stats(self, theta, x, r): ...
    def m_step(self, theta, nk, stats, prior): ...
    def log_prior(self, theta, prior): ...
    def default_prior(self, x, w, k: int): ...
    def n_free(self, d: int) -> int: ...
    def in_support(self, x): ...
    def sample(self, key, theta, labels): ...


def recentred(family, stats, nk, old, new):
    """``stats`` (taken about ``old``) re-expressed about ``new``: the family's
    ``recentre``, or unchanged for a family whose statistics do not depend
    on the components they were taken under."""
    move = getattr(family, "recentre", None)
    return stats if move is None else move(stats, nk, old, new)


def shifted_moments(weight, s1, s2, u, outer: bool):
    """First and second moments about ``c`` re-expressed about ``c - u``:
    ``s1 + weight u`` and ``s2 + s1 u^T + u s1^T + weight u u^T`` (``outer``:
    ``(k, d, d)`` matrices; else elementwise ``(k, d)``)."""
    moved = s1 + weight[:, None] * u
    if outer:
        cross = s1[:, :, None] * u[:, None, :]
        return moved, s2 + cross + jnp.swapaxes(cross, 1, 2) + weight[:, None, None] * (
            u[:, :, None] * u[:, None, :])
    return moved, s2 + 2 * s1 * u + weight[:, None] * u * u
