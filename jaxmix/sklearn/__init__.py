"""scikit-learn-compatible estimators: change one import.

>>> from jaxmix.sklearn import GaussianMixture, KMeans, MiniBatchKMeans

``GaussianMixture`` (:mod:`jaxmix.sklearn.gmm`), ``BayesianGaussianMixture``
(:mod:`jaxmix.sklearn.bayesian`, variational), ``KMeans`` and
``MiniBatchKMeans`` (:mod:`jaxmix.sklearn.kmeans`) take scikit-learn's
constructor parameters and defaults, expose its methods and fitted attributes,
and work with ``clone``, ``Pipeline`` and ``GridSearchCV``. They validate
input, call the functional core (``n_init`` restarts batched in one compiled
call) and return numpy arrays. ``save(path)`` / ``Class.load(path)`` use the
versioned npz + JSON format of :mod:`jaxmix.io` (never pickle);
:func:`load_estimator` reads whichever of them a file holds.
"""

from jaxmix.sklearn.bayesian import BayesianGaussianMixture
from jaxmix.sklearn.dbscan import DBSCAN
from jaxmix.sklearn.gmm import GaussianMixture
from jaxmix.sklearn.kmeans import KMeans, MiniBatchKMeans
from jaxmix.sklearn.mixture import MixtureModel
from jaxmix.sklearn.persist import load_as

# The estimators with a file format (jaxmix.io); DBSCAN has none.
SAVED_ESTIMATORS = (GaussianMixture, KMeans, MiniBatchKMeans)


def load_estimator(path, cls=None, covariance_type: str | None = None):
    """Read an estimator written by its ``save`` (:func:`jaxmix.io.save_estimator`).

    Args:
      cls: the estimator class expected (``None``: whichever of
        ``SAVED_ESTIMATORS`` the file holds).
      covariance_type: insist on a ``GaussianMixture`` of this covariance type.
    """
    return load_as(path, SAVED_ESTIMATORS if cls is None else (cls,), covariance_type)


__all__ = ["BayesianGaussianMixture", "DBSCAN", "GaussianMixture", "KMeans", "MiniBatchKMeans",
           "MixtureModel", "SAVED_ESTIMATORS", "load_estimator"]
