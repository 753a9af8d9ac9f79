"""scikit-learn-compatible estimators: change one import.

>>> from jaxmix.sklearn import GaussianMixture, KMeans, MiniBatchKMeans

``GaussianMixture`` (:mod:`jaxmix.sklearn.gmm`), ``KMeans`` and
``MiniBatchKMeans`` (:mod:`jaxmix.sklearn.kmeans`) take scikit-learn's
constructor parameters and defaults, expose its methods and fitted attributes,
and work with ``clone``, ``Pipeline`` and ``GridSearchCV``. They validate
input, call the functional core (``n_init`` restarts batched in one compiled
call) and return numpy arrays. ``save(path)`` / ``Class.load(path)`` use the
versioned npz + JSON format of :mod:`jaxmix.io` (never pickle).
"""

from jaxmix.sklearn.dbscan import DBSCAN
from jaxmix.sklearn.gmm import GaussianMixture
from jaxmix.sklearn.kmeans import KMeans, MiniBatchKMeans

__all__ = ["DBSCAN", "GaussianMixture", "KMeans", "MiniBatchKMeans"]
