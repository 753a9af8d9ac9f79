"""``jaxmix fit --family NAME``: mixtures of a component family of
:mod:`jaxmix.families` over the ``--k`` grid, one :class:`~jaxmix.cli.fit.Row`
per k (its ``covariance_type`` column names the family), saved by
:func:`jaxmix.io.mixture_file.save_mixture`.

Families by name: ``bernoulli`` (0/1 columns), ``poisson`` (counts),
``exponential`` (values >= 0), ``vmf`` (von Mises-Fisher: unit vectors) and
``categorical`` (integer codes; each column's number of categories is its
largest code + 1).
"""

from __future__ import annotations

import time

import jax
import numpy as np

from jaxmix.cli.data import UsageError
from jaxmix.cli.fit import ANOMALY_PERCENTILE, Row
from jaxmix.families import (Bernoulli, Categorical, Exponential, Poisson, VonMisesFisher, aic,
                             bic, fit_mixture, log_prob)

# --family NAME: families without settings; "categorical" reads its sizes from the data.
SIMPLE = {"bernoulli": Bernoulli, "poisson": Poisson, "exponential": Exponential,
          "vmf": VonMisesFisher}
NAMES = tuple(SIMPLE) + ("categorical",)


def family_named(name: str, x: np.ndarray):
    """The family ``--family name`` asks for, for data ``x``."""
    if name == "categorical":
        if not np.all((x >= 0) & (x == np.floor(x))):
            raise UsageError("--family categorical: every column must hold integer codes >= 0")
        return Categorical(tuple(int(c) + 1 for c in x.max(axis=0)))
    if name not in SIMPLE:
        raise UsageError(f"--family {name!r}: choose one of {', '.join(NAMES)}")
    return SIMPLE[name]()


def family_sweep(x, ks, family, prior, *, n_restarts: int, seed: int, max_iter=None, tol=None,
                 progress=lambda line: None) -> list:
    """A :class:`Row` per k (one compiled fit per k, restarts batched)."""
    options = {name: v for name, v in (("max_iter", max_iter), ("tol", tol)) if v is not None}
    rows = []
    for i, k in enumerate(ks, start=1):
        progress(f"[{i}/{len(ks)}] {family.name} k={k}, {n_restarts} restarts ...")
        start = time.perf_counter()
        try:
            result = fit_mixture(jax.random.fold_in(jax.random.PRNGKey(seed), k), x, k, family,
                                 n_restarts=n_restarts, prior=prior, **options)
        except ValueError as err:
            raise UsageError(str(err)) from None
        seconds = time.perf_counter() - start
        best, p = int(result.best), result.best_params
        loglik = float(np.mean(np.asarray(log_prob(family, p, x), np.float64)))
        rows.append(Row(family.name, k, loglik, bic(family, p, x), aic(family, p, x),
                        bool(result.converged[best]), int(result.n_iter[best]), seconds, p))
        progress(f"    done in {seconds:.1f} s: BIC {rows[-1].bic:.2f}")
    return rows


def family_record(family, row: Row, x) -> dict:
    """The fit record's family-specific entries (the anomaly threshold)."""
    density = np.asarray(log_prob(family, row.params, x), np.float64)
    return dict(family=family.name, anomaly_percentile=ANOMALY_PERCENTILE,
                anomaly_threshold=float(np.percentile(density, ANOMALY_PERCENTILE)))
