"""Which columns of a data file the command reads: ``--columns`` and ``--drop``
by header name or 0-based index, and ``--scale`` standardisation.

``--columns a,b,3`` keeps those, in that order; ``--drop label`` removes
those; both together keep ``--columns`` less ``--drop``. A field that is all
decimal digits is an index, anything else a name (so a column named ``"3"``
is found by its index). Dropped columns are never parsed, so a text label
column can simply be dropped.
"""

from __future__ import annotations

import numpy as np

from jaxmix.io.about import About


class ColumnError(ValueError):
    """A column selection that does not fit the file (a usage error)."""


def parse_spec(text: str | None) -> list | None:
    """``"a,b,3"`` -> ``["a", "b", 3]`` (``None`` stays ``None``)."""
    if text is None:
        return None
    items = [part.strip() for part in str(text).split(",")]
    if not all(items):
        raise ColumnError(f"{text!r}: an empty column name; separate names or indices by "
                          "single commas")
    return [int(item) if item.isdigit() else item for item in items]


def resolve(columns, drop, names, width: int, path: str) -> list:
    """The file's column indices to read, in order (``names``: the header's, or None)."""
    def index(item, flag):
        if isinstance(item, int):
            if item >= width:
                raise ColumnError(f"{flag} {item}: DATA {path!r} has {width} columns "
                                  f"(0-based indices 0..{width - 1})")
            return item
        if names is None:
            raise ColumnError(f"{flag} {item!r} names a column, but DATA {path!r} has no "
                              "header; give 0-based indices instead")
        if item not in names:
            raise ColumnError(f"{flag} {item!r}: DATA {path!r} has no such column; its header "
                              f"has {names}")
        return names.index(item)

    keep = list(range(width)) if columns is None else [index(c, "--columns") for c in columns]
    if len(set(keep)) != len(keep):
        raise ColumnError(f"--columns names a column twice: {columns}")
    dropped = {index(c, "--drop") for c in (drop or [])}
    keep = [c for c in keep if c not in dropped]
    if not keep:
        raise ColumnError(f"--columns/--drop leave no column of DATA {path!r} to fit")
    return keep


def standardised(x: np.ndarray):
    """``(x scaled to mean 0 and standard deviation 1, center, scale, notes)``;
    a constant column keeps scale 1 (it is only centred)."""
    center, scale = x.mean(axis=0), x.std(axis=0)
    constant = ~(scale > 0)
    scale = np.where(constant, 1.0, scale)
    notes = ([f"--scale: {int(constant.sum())} constant column(s) only centred"]
             if constant.any() else [])
    return (x - center) / scale, center, scale, notes


def about_inputs(names, columns, center=None, scale=None) -> About:
    """What a model file records about its inputs: the kept columns' names
    (when the file has a header), their indices and the standardisation."""
    return About(feature_names=None if names is None else [names[c] for c in columns],
                 columns=list(columns),
                 center=None if center is None else [float(v) for v in center],
                 scale=None if scale is None else [float(v) for v in scale])
