"""K-Means: distances and assignment, seeding, statistics, the Lloyd and
mini-batch steps. Fits are :func:`jaxmix.fit_kmeans` and
:func:`jaxmix.fit_minibatch_kmeans`."""

from jaxmix.kmeans.assign import assign, predict, sq_distances, transform
from jaxmix.kmeans.init import init_centroids, kmeans_plusplus
from jaxmix.kmeans.minibatch import MiniBatchConfig, MiniBatchState, minibatch_init, minibatch_step
from jaxmix.kmeans.stats import KMeansStats, inertia, kmeans_stats
from jaxmix.kmeans.update import LloydState, batched_lloyd_step, lloyd_step, minibatch_update, score

__all__ = ["KMeansStats", "LloydState", "MiniBatchConfig", "MiniBatchState", "assign",
           "batched_lloyd_step", "inertia", "init_centroids", "kmeans_plusplus", "kmeans_stats",
           "lloyd_step", "minibatch_init", "minibatch_step", "minibatch_update", "predict",
           "score", "sq_distances", "transform"]
