"""Estimators to and from files (the format of :mod:`jaxmix.io`, never pickle).

:mod:`jaxmix.io` writes an estimator from the attributes its class names and
reads a file back as a :class:`~jaxmix.io.StoredEstimator`; :func:`load_as`
makes the estimator from it. :class:`Persistent` gives the estimators their
``save(path)`` and ``Class.load(path)``; :func:`jaxmix.sklearn.load_estimator`
reads whichever estimator a file holds.
"""

from __future__ import annotations

import os

from jaxmix.io import read_estimator, require_arrays, save_estimator


def load_as(path, classes, covariance_type: str | None = None):
    """The estimator in ``path``, which must hold one of ``classes`` (matched
    by class name); ``ValueError`` naming the file otherwise.

    Args:
      classes: the estimator classes accepted.
      covariance_type: insist on a model of this covariance type.
    """
    by_kind = {cls.__name__: cls for cls in classes}
    stored = read_estimator(path, tuple(by_kind), covariance_type)
    cls = by_kind[stored.kind]
    try:
        est = cls(**stored.params)
    except TypeError as err:
        raise ValueError(f"{os.fspath(path)}: parameters do not fit {cls.__name__}: "
                         f"{err}") from None
    require_arrays(path, stored.arrays, cls._saved_arrays)
    for name, value in {**stored.arrays, **stored.attributes}.items():
        setattr(est, name, value)
    est._check_loaded(path)
    return est


class Persistent:
    """``save`` and ``load`` for an estimator class that names what it saves.

    A subclass sets ``_saved_arrays`` (fitted arrays a fitted estimator has),
    and optionally ``_saved_optional_arrays`` and ``_saved_scalars``
    (see :func:`jaxmix.io.save_estimator`).
    """

    _saved_optional_arrays = ()
    _saved_scalars = ()

    def save(self, path):
        """Write the fitted model to ``path`` (see :mod:`jaxmix.io`)."""
        save_estimator(path, self)

    @classmethod
    def load(cls, path):
        """Read a model written by :meth:`save`."""
        return load_as(path, (cls,))

    def _check_loaded(self, path):
        """Checks and conversions after :func:`load_as` set the attributes (none here)."""
