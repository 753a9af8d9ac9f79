"""Anomaly detection by density.

The rule of the seed notebook: take the log-density (``score_samples``) of
every training sample, set the threshold at a low percentile of them (4 %
there), and call a point anomalous when its log-density is *below* the
threshold::

    threshold = percentile(log p(x_train), q)        (linear interpolation,
    anomaly(x) = log p(x) < threshold                  as np.percentile)

>>> import jax.numpy as jnp, numpy as np
>>> from jaxmix import GMMParams, density_threshold, flag_anomalies
>>> p = GMMParams(jnp.array([1.0]), jnp.zeros((1, 1)), jnp.ones((1, 1, 1)))
>>> x = np.linspace(-3, 3, 101)[:, None]
>>> t = density_threshold(p, x, percentile=4.0)
>>> flag_anomalies(p, np.array([[0.0], [3.0]]), t).tolist()
[False, True]
"""

from __future__ import annotations

import numpy as np

from jaxmix.params import GMMParams
from jaxmix.criteria import score_samples_chunked


def density_threshold(params: GMMParams, x, percentile: float = 4.0, *,
                      chunk_size: int | None = None, family=None) -> float:
    """Log-density at the ``percentile``-th percentile of ``x`` (the training data).

    Equal to ``np.percentile(score_samples(x), percentile)``; a fraction of
    about ``percentile / 100`` of ``x`` lies below it. ``family``: a
    component family of :mod:`jaxmix.families`, whose
    :class:`~jaxmix.families.MixtureParams` ``params`` are.
    """
    try:
        q = float(percentile)
    except (TypeError, ValueError):
        raise ValueError(f"percentile must be a number in [0, 100], got {percentile!r}") from None
    if not 0.0 <= q <= 100.0:
        raise ValueError(f"percentile must be in [0, 100], got {percentile!r}")
    return float(np.percentile(_scores(params, x, chunk_size, family), q))


def flag_anomalies(params: GMMParams, x, threshold: float, *,
                   chunk_size: int | None = None, family=None) -> np.ndarray:
    """``(n,)`` booleans (numpy): ``log p(x_n) < threshold``, compared in
    float64; ``family`` as in :func:`density_threshold`."""
    threshold = float(threshold)
    if not np.isfinite(threshold):
        raise ValueError(f"threshold must be finite, got {threshold!r}")
    return _scores(params, x, chunk_size, family) < threshold


def _scores(params, x, chunk_size, family) -> np.ndarray:
    """Log-densities of the rows of ``x`` in float64."""
    if family is None:
        return np.asarray(score_samples_chunked(params, x, chunk_size), np.float64)
    from jaxmix.families.mixture import score_samples_chunked as family_scores
    return np.asarray(family_scores(family, params, x, chunk_size), np.float64)
