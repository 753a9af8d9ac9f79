"""Deprecated entry points of the first release: streamed fits now go through
``fit_gmm`` / ``fit_kmeans`` (a chunk source is one more data placement) and
``fit_minibatch_kmeans`` (an iterator of batches)."""

from __future__ import annotations

from jaxmix.data.source import open_source
from jaxmix.fit.gmm import fit_gmm
from jaxmix.fit.kmeans import fit_kmeans
from jaxmix.fit.minibatch import fit_minibatch_kmeans


def fit_gmm_stream(key, source, n_components: int, *, sample_weight=None, **kwargs):
    """``fit_gmm(key, open_source(source, sample_weight), n_components, ...)``."""
    return fit_gmm(key, open_source(source, sample_weight), n_components, **kwargs)


def fit_kmeans_stream(key, source, n_clusters: int, *, sample_weight=None, **kwargs):
    """``fit_kmeans(key, open_source(source, sample_weight), n_clusters, ...)``."""
    return fit_kmeans(key, open_source(source, sample_weight), n_clusters, **kwargs)


def minibatch_kmeans_stream(key, batches, n_clusters: int, **kwargs):
    """``fit_minibatch_kmeans(key, iter(batches), n_clusters, ...)``."""
    return fit_minibatch_kmeans(key, iter(batches), n_clusters, **kwargs)
