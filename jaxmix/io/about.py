"""What a model file says about its model besides the parameters (format
version 2): feature names, the preprocessing its inputs need, and the fit's
settings and scores. Every key is optional; a version-1 file has none.

In the metadata, under ``"about"``::

    {"feature_names": ["alcohol", ...],          # the model's d features
     "columns": [1, 2, ...],                     # the data file's columns kept, in order
     "center": [13.0, ...], "scale": [0.81, ...],  # x_model = (x[:, columns] - center) / scale
     "fit": {"method": "em", "k": 3, ..., "bic": 1234.5}}  # JSON scalars only

Read as untrusted input: lists of the model's ``d`` entries, names strings,
columns distinct integers >= 0, centres finite, scales finite and positive,
``fit`` a JSON object of scalars.
"""

from __future__ import annotations

import math
from typing import NamedTuple

import numpy as np

from jaxmix.io.untrusted import is_int, problem, shown


class About(NamedTuple):
    """Attributes (each ``None`` when the file does not say):
      feature_names: the model's feature names.
      columns: the columns of the data file the model reads, in its order.
      center, scale: standardisation applied after the column selection.
      fit: the fit's settings and scores (``{}`` when none).
    """

    feature_names: list | None = None
    columns: list | None = None
    center: list | None = None
    scale: list | None = None
    fit: dict = {}

    def to_json(self) -> dict:
        """The metadata object (absent keys left out)."""
        out = {name: list(v) for name, v in zip(self._fields[:4], self[:4]) if v is not None}
        if self.fit:
            out["fit"] = {name: _json_scalar(v) for name, v in self.fit.items()}
        return out

    def transform(self, x: np.ndarray) -> np.ndarray:
        """``x`` (the data file's columns) as the model's inputs."""
        x = np.asarray(x, np.float64)
        if self.columns is not None:
            x = x[:, self.columns]
        if self.center is not None:
            x = (x - np.asarray(self.center)) / np.asarray(self.scale)
        return x


def _json_scalar(value):
    if isinstance(value, (np.generic,)):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return repr(value)
    return value


def _scalar(v) -> bool:
    return v is None or isinstance(v, (bool, int, float, str))


def read_about(where: str, meta: dict, n_features: int | None) -> About:
    """The file's :class:`About`, checked (``n_features``: the model's ``d``)."""
    about = meta.get("about", {})
    if not isinstance(about, dict):
        raise problem(where, "metadata 'about'", f"must be a JSON object, got {shown(about)}")
    unknown = sorted(set(about) - {"feature_names", "columns", "center", "scale", "fit"})
    if unknown:
        raise problem(where, "metadata 'about'", f"has unknown keys {shown(unknown)}")
    checks = dict(feature_names=(lambda v: isinstance(v, str), "strings"),
                  columns=(lambda v: is_int(v) and v >= 0, "integers >= 0"),
                  center=(lambda v: _finite(v), "finite numbers"),
                  scale=(lambda v: _finite(v) and v > 0, "finite positive numbers"))
    values = {}
    for name, (ok, what) in checks.items():
        v = about.get(name)
        if v is not None and not (isinstance(v, list) and all(ok(e) for e in v)
                                  and (n_features is None or len(v) == n_features)):
            size = "" if n_features is None else f" of the model's {n_features} features"
            raise problem(where, f"about[{name!r}]", f"must be a list of {what}{size}, "
                          f"got {shown(v)}")
        values[name] = v
    if values["columns"] is not None and len(set(values["columns"])) != len(values["columns"]):
        raise problem(where, "about['columns']", "must not repeat a column")
    if (values["center"] is None) != (values["scale"] is None):
        raise problem(where, "metadata 'about'", "has one of 'center' and 'scale' without the "
                      "other")
    fit = about.get("fit", {})
    if not (isinstance(fit, dict) and all(_scalar(v) for v in fit.values())):
        raise problem(where, "about['fit']", f"must be a JSON object of scalars, got {shown(fit)}")
    return About(**values, fit=dict(fit))


def _finite(v) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)
