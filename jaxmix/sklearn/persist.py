"""Estimators to and from files (the format of :mod:`jaxmix.io`, never pickle).

:mod:`jaxmix.io` writes an estimator from the attributes its class names and
reads a file back as a :class:`~jaxmix.io.StoredEstimator`; :func:`load_as`
makes the estimator from it, setting only the names the class declares.
:class:`Persistent` gives the estimators their ``save(path)`` and
``Class.load(path)``; :func:`jaxmix.sklearn.load_estimator` reads whichever
estimator a file holds.
"""

from __future__ import annotations

import os

import numpy as np

from jaxmix.io import check_names, load_model, peek_metadata, read_estimator, save_estimator
from jaxmix.sklearn._common import native_dtype


@native_dtype
def load_as(path, classes, covariance_type: str | None = None):
    """The estimator in ``path``, which must hold one of ``classes`` (matched
    by class name); ``ValueError`` naming the file otherwise.

    Only the names the class declares are set: constructor parameters of its
    ``get_params`` (checked by its parameter constraints), arrays of its
    ``_saved_arrays`` (all required) and ``_saved_optional_arrays``, scalars of
    its ``_saved_scalars``; any other name in the file is refused. The class's
    ``_check_loaded`` then checks the values.

    Args:
      classes: the estimator classes accepted.
      covariance_type: insist on a model of this covariance type.
    """
    by_kind = {cls.__name__: cls for cls in classes}
    from_params = {cls._params_kind: cls for cls in classes if cls._params_kind}
    if peek_metadata(path)["kind"] in from_params:  # a parameters file (jaxmix fit, save_params)
        model = load_model(path, covariance_type=covariance_type)
        return from_params[model.kind]._from_model(path, model)
    stored = read_estimator(path, tuple(by_kind), covariance_type)
    cls = by_kind[stored.kind]
    est = cls()
    check_names(path, "parameters", stored.params, est.get_params(deep=False))
    check_names(path, "arrays", stored.arrays, cls._saved_arrays + cls._saved_optional_arrays,
                required=cls._saved_arrays)
    check_names(path, "attributes", stored.attributes, cls._saved_scalars)
    est.set_params(**stored.params)
    try:
        est._validate_params()  # scikit-learn's constraints, as fit checks them
    except ValueError as err:
        raise ValueError(f"{os.fspath(path)}: params: {err}") from None
    for name, value in {**stored.arrays, **stored.attributes}.items():
        setattr(est, name, value)
    set_feature_names(est, stored.about)
    est._check_loaded(path)
    return est


def set_feature_names(est, about) -> None:
    """``feature_names_in_`` (scikit-learn's attribute) from a file's names."""
    if about.feature_names is not None:
        est.feature_names_in_ = np.asarray(about.feature_names, dtype=object)


def check_scalars(path, est, types: dict, required=("n_features_in_",)) -> None:
    """``ValueError`` naming the file unless each of the class's
    ``_saved_scalars`` that ``est`` has is of its type in ``types`` (``bool``,
    ``int`` >= 0, or ``float``: an int is made a float) and each of
    ``required`` is there."""
    for name in type(est)._saved_scalars:
        kind = types[name]
        if not hasattr(est, name):
            if name in required:
                raise ValueError(f"{os.fspath(path)} is corrupt: attribute {name!r} is missing")
            continue
        value = getattr(est, name)
        numeric = isinstance(value, (int, float)) and not isinstance(value, bool)
        ok = {bool: isinstance(value, bool), float: numeric,
              int: numeric and isinstance(value, int) and value >= 0}[kind]
        if not ok:
            want = {bool: "a bool", int: "an integer >= 0", float: "a number"}[kind]
            raise ValueError(f"{os.fspath(path)}: attribute {name!r} must be {want}, got "
                             f"{value!r}")
        setattr(est, name, kind(value))


class Persistent:
    """``save`` and ``load`` for an estimator class that names what it saves.

    A subclass sets ``_saved_arrays`` (fitted arrays a fitted estimator has),
    and optionally ``_saved_optional_arrays`` and ``_saved_scalars``
    (see :func:`jaxmix.io.save_estimator`).
    """

    _saved_optional_arrays = ()
    _saved_scalars = ()
    _params_kind = None  # the parameters kind the class also loads (``_from_model``)

    def save(self, path):
        """Write the fitted model to ``path`` (see :mod:`jaxmix.io`)."""
        save_estimator(path, self)

    @classmethod
    def load(cls, path):
        """Read a model written by :meth:`save`."""
        return load_as(path, (cls,))

    def _check_loaded(self, path):
        """Checks and conversions after :func:`load_as` set the attributes (none here)."""
