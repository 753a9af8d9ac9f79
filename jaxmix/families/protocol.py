r"""The component-family protocol: what a family of mixture components defines
so that the generic fit (:mod:`jaxmix.families.fit`) can run EM and MAP-EM
on it, with batched restarts, over any data placement of
:mod:`jaxmix.data` (the E-step is one :func:`jaxmix.data.reduce.reduce`).

A family is a frozen (hashable) dataclass, so it can be a static argument
of a compiled fit; its component parameters are a pytree whose leaves lead
with the component axis ``k``; its prior is a pytree of traced values (or
``None``). It defines::

    log_prob(theta, x)            (m, k) log p(x_n | component j), no weights
    stats(x, r)                   expected sufficient statistics of a chunk:
                                  a pytree, additive over chunks (r: (m, k)
                                  responsibilities times the sample weights)
    m_step(nk, stats, prior)      the components maximising the expected
                                  complete-data log-likelihood (+ log prior)
    log_prior(theta, prior)       scalar (0 for prior=None)
    default_prior(x, w, k)        a weak conjugate prior from the data
    n_free(d)                     free parameters of one component
    check_data(x)                 ValueError naming ``X`` unless x is in the
                                  family's support (host-side, concrete x)
    sample(key, theta, labels, d) one draw per label

The weights are the generic part's: ``w_k = (nk + alpha - 1) / (N + k (alpha - 1))``
under a symmetric Dirichlet(``alpha``) prior (``alpha = 1``: maximum
likelihood). Statistics are sums weighted by ``r`` (zero on padded rows),
so a chunked, sharded or streamed pass gives the same M-step.

:class:`jaxmix.families.Bernoulli` and :class:`jaxmix.families.Poisson`
follow it; see :mod:`jaxmix.families.bernoulli` for a family in 60 lines.
"""

from __future__ import annotations

from typing import Protocol


class ComponentFamily(Protocol):
    """Static description of one family of mixture components (see the module)."""

    name: str

    def log_prob(self, theta, x): ...
    def stats(self, x, r): ...
    def m_step(self, nk, stats, prior): ...
    def log_prior(self, theta, prior): ...
    def default_prior(self, x, w, k: int): ...
    def n_free(self, d: int) -> int: ...
    def check_data(self, x) -> None: ...
    def sample(self, key, theta, labels, d: int): ...
