"""``jaxmix predict MODEL DATA`` and ``jaxmix info MODEL``: a saved model
applied to new data, and what a model file holds.

Any jaxmix mixture file works: ``jaxmix fit``'s ``model.npz`` (also with
``--family``), a ``GaussianMixture``'s or ``MixtureModel``'s ``save``, or
:func:`jaxmix.save_params` (one model, not restart-batched). The data go through the model's recorded preprocessing:
its columns (by header name when both the model and the file have names,
else by index) and its standardisation.

``predict`` writes one row per sample: ``label``, ``probability_0`` ..
``probability_{k-1}``, ``log_density`` and, when the model records an
anomaly threshold, ``anomaly`` (1 where the log-density is below it).
``--out`` ending in ``.csv`` writes a CSV with that header, ``.npy`` a
float64 array with those columns in that order; without ``--out`` the CSV
goes to stdout.
"""

from __future__ import annotations

import io
import json
import os
from typing import Callable, NamedTuple

import jax
import numpy as np

from jaxmix.atomic import atomic_write, write_text
from jaxmix.cli.data import UsageError, load
from jaxmix.io import About, load_model, peek_metadata
from jaxmix.params import GMMParams


def add_commands(sub) -> None:
    """The ``predict`` and ``info`` subcommands."""
    predict = sub.add_parser("predict", help="apply a saved model to a data file",
                             description="Labels, component probabilities, log-densities and "
                                         "anomaly flags of DATA under MODEL.")
    predict.add_argument("model", metavar="MODEL", help="a jaxmix model file (.npz)")
    predict.add_argument("data", metavar="DATA", help="a .npy, .npz or .csv file")
    predict.add_argument("--out", help="write to this .csv or .npy file (default: CSV on "
                                       "stdout)")
    predict.add_argument("--key", help=".npz files: the array to read")
    predict.add_argument("--delimiter", default=",", help=".csv files: field separator")
    predict.add_argument("--header", action="store_true", default=None,
                         help=".csv files: the first row is a header")
    predict.set_defaults(run=run_predict)
    info = sub.add_parser("info", help="show what a model file holds",
                          description="Print a model file's kind, shapes, features, "
                                      "preprocessing and the fit's record.")
    info.add_argument("model", metavar="MODEL", help="a jaxmix model file (.npz)")
    info.set_defaults(run=run_info)


class Applied(NamedTuple):
    """A model file ready to apply: what it says, and its ``(n, k)`` weighted
    component log-densities ``log w_j + log p(x | j)``."""
    about: About
    n_features: int
    description: str
    weighted: Callable


def _model(path) -> Applied:
    if not os.path.isfile(path):
        raise UsageError(f"MODEL {path!r}: no such file; check the path")
    if peek_metadata(path)["kind"] == "MixtureParams":
        return _family_model(path)
    model = load_model(path)
    p = model.params
    if not isinstance(p, GMMParams):
        raise UsageError(f"MODEL {path!r} holds K-Means centroids; predict takes a mixture")
    _single(path, p.weights)
    from jaxmix.gmm import weighted_log_prob
    k, d = p.means.shape
    return Applied(model.about, d, f"Gaussian mixture: covariance {p.covariance_type}, k={k}, "
                   f"d={d}, dtype {np.asarray(p.means).dtype}",
                   lambda x: weighted_log_prob(p, np.asarray(x, p.means.dtype)))


def _family_model(path) -> Applied:
    from jaxmix.families import weighted_log_prob
    from jaxmix.io.mixture_file import load_mixture, n_features_of

    family, p, about = load_mixture(path)
    _single(path, p.weights)
    d = n_features_of(family, jax.tree.leaves(p.theta))
    dtype = np.asarray(p.weights).dtype
    return Applied(about, d, f"{family.name} mixture: k={p.weights.shape[0]}, d={d}, dtype "
                   f"{dtype}", lambda x: weighted_log_prob(family, p, np.asarray(x, dtype)))


def _single(path, weights) -> None:
    if np.ndim(weights) != 1:
        raise UsageError(f"MODEL {path!r} holds {np.shape(weights)[0]} restarts; save the one "
                         "to apply (FitResult.best_params)")


def model_inputs(model, args) -> np.ndarray:
    """``args.data``'s columns as the model's inputs (its recorded
    preprocessing): by header name when the model has names and the file a
    header, else by the recorded indices; other columns are not parsed."""
    about, d = model.about, model.n_features
    choices = [c for c in (about.feature_names, about.columns) if c is not None] or [None]
    for i, columns in enumerate(choices):
        try:
            data = load(args.data, key=args.key, delimiter=args.delimiter, header=args.header,
                        columns=columns)
            break
        except UsageError as err:  # names, but a file without a header: try the indices
            if i == len(choices) - 1 or "has no header" not in str(err):
                raise
    if data.x.shape[1] != d:
        raise UsageError(f"DATA {args.data!r} has {data.x.shape[1]} features; the model "
                         f"takes {d}")
    return about._replace(columns=None).transform(data.x)


def predictions(model: Applied, x: np.ndarray):
    """``(column names, (n, columns) float64 values)``."""
    weighted = np.asarray(model.weighted(x), np.float64)
    log_density = np.logaddexp.reduce(weighted, axis=1)
    proba = np.exp(weighted - log_density[:, None])
    names = ["label"] + [f"probability_{j}" for j in range(proba.shape[1])] + ["log_density"]
    columns = [np.argmax(proba, axis=1), *proba.T, log_density]
    threshold = model.about.fit.get("anomaly_threshold")
    if isinstance(threshold, (int, float)) and not isinstance(threshold, bool):
        names.append("anomaly")
        columns.append(log_density < float(threshold))
    return names, np.column_stack(columns).astype(np.float64)


def _csv(names, values) -> str:
    out = io.StringIO()
    out.write(",".join(names) + "\n")
    integer = [n in ("label", "anomaly") for n in names]
    for row in values:
        out.write(",".join(str(int(v)) if i else repr(float(v)) for v, i in zip(row, integer))
                  + "\n")
    return out.getvalue()


def run_predict(args) -> int:
    model = _model(args.model)
    if args.out is not None and os.path.splitext(args.out)[1].lower() not in (".csv", ".npy"):
        raise UsageError(f"--out {args.out!r}: give a .csv or .npy file")
    names, values = predictions(model, model_inputs(model, args))
    if args.out is None:
        print(_csv(names, values), end="")
    elif args.out.lower().endswith(".npy"):
        with atomic_write(args.out) as f:
            np.save(f, values)
        print(f"wrote {args.out}: {values.shape[0]} rows, columns {', '.join(names)}")
    else:
        write_text(args.out, _csv(names, values))
        print(f"wrote {args.out}: {values.shape[0]} rows, columns {', '.join(names)}")
    return 0


def run_info(args) -> int:
    model = _model(args.model)
    meta, about = peek_metadata(args.model), model.about
    lines = [f"{args.model}: {meta['kind']} (format version {meta['format_version']}, "
             f"written by jaxmix {meta.get('jaxmix_version', '?')})",
             f"  {model.description}",
             f"  features: {about.feature_names if about.feature_names else 'not named'}",
             f"  columns read: {about.columns if about.columns is not None else 'all, in order'}",
             f"  standardised: {'yes' if about.center is not None else 'no'}"]
    if about.fit:
        lines.append("  fit: " + json.dumps(about.fit))
    print("\n".join(lines))
    return 0
