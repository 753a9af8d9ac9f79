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

import numpy as np

from jaxmix.cli.data import UsageError
from jaxmix.cli.fit import ANOMALY_PERCENTILE, Row, fit_callback
from jaxmix.families import (Bernoulli, Categorical, Exponential, Poisson, VonMisesFisher,
                             log_prob, select_mixture_k)

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
    """A :class:`Row` per k (:func:`jaxmix.families.select_mixture_k`: one
    compiled fit per component bucket, restarts batched)."""
    options = {name: v for name, v in (("max_iter", max_iter), ("tol", tol)) if v is not None}
    seconds = {}

    def report(k, result, elapsed):
        if result is None:
            i = int(np.searchsorted(np.sort(ks), k)) + 1
            progress(f"[{i}/{len(ks)}] {family.name} k={k}, {n_restarts} restarts ...")
        else:
            seconds[k] = elapsed
            progress(f"    done in {elapsed:.1f} s")

    try:
        sel = select_mixture_k(seed, x, ks, family, n_restarts=n_restarts, prior=prior,
                               progress=report, callback=fit_callback(progress), **options)
    except ValueError as err:
        raise UsageError(str(err)) from None
    return [Row(family.name, int(k), float(sel.log_likelihood[0, g]), float(sel.bic[0, g]),
                float(sel.aic[0, g]), bool(sel.converged[0, g]), int(sel.n_iter[0, g]),
                seconds[int(k)], sel.params[0][g]) for g, k in enumerate(sel.ks)]


def family_record(family, row: Row, x) -> dict:
    """The fit record's family-specific entries (the anomaly threshold)."""
    density = np.asarray(log_prob(family, row.params, x), np.float64)
    return dict(family=family.name, anomaly_percentile=ANOMALY_PERCENTILE,
                anomaly_threshold=float(np.percentile(density, ANOMALY_PERCENTILE)))
