"""``jaxmix demo``: the main job on the built-in seed data set.

1. choose ``k`` (and the covariance type) by BIC over a grid fitted by EM;
2. at that choice, fit by EM, MAP-EM and an optax optimizer (MAP objective),
   each from the same k-means starts, timing the first call (compile
   included) and a warm repeat;
3. write ``report.md``, ``model.npz`` and (with matplotlib) figures.
"""

from __future__ import annotations

import re
import time
from pathlib import Path
from typing import NamedTuple

import jax
import numpy as np

from jaxmix.atomic import write_text
from jaxmix.cli import report
from jaxmix.cli.fit import best_row, fit_one, make_method, result_row, sweep
from jaxmix.datasets import seed_blobs
from jaxmix.io import save_params
from jaxmix.numerics import float_dtype
from jaxmix.validation import seed_key


class Settings(NamedTuple):
    """The demo's knobs (``jaxmix demo --help``)."""
    k_max: int = 6
    covariance_types: tuple = ("full", "tied", "diag", "spherical")
    n_restarts: int = 10
    optimizer: str = "adam"
    learning_rate: float | None = None
    max_iter: int = 1000         # per fit in the method comparison
    seed: int = 0

    def command(self) -> str:
        rate = "" if self.learning_rate is None else f" --learning-rate {self.learning_rate}"
        return (f"jaxmix demo --k-max {self.k_max} --covariance "
                f"{' '.join(self.covariance_types)} --restarts {self.n_restarts} "
                f"--optimizer {self.optimizer}{rate} --max-iter {self.max_iter} "
                f"--seed {self.seed}")


COMPARE_TOL = 1e-6  # one stopping rule for every method compared


def compare_methods(x, k: int, covariance_type: str, methods, *, n_restarts: int, seed: int,
                    max_iter: int | None):
    """Per method: ``(method, FitResult, first-call seconds, warm seconds)``."""
    out = []
    for i, method in enumerate(methods, start=1):
        report.progress(f"[{i}/{len(methods)}] {method.name} at k={k} ({covariance_type}), "
                        f"{n_restarts} restarts ...")
        options = dict(n_restarts=n_restarts, max_iter=max_iter, tol=COMPARE_TOL)
        key = seed_key(seed)  # built on the host: no eager program
        result, first = fit_one(key, x, k, covariance_type, method, **options)
        _, warm = fit_one(key, x, k, covariance_type, method, **options)
        report.progress(f"    done: first call {first:.1f} s, warm {warm:.3f} s")
        out.append((method, result, first, warm))
    return out


def methods_table(x, runs, chosen) -> str:
    header = ["method", "objective", "final objective", "mean log-lik", "BIC",
              "n_iter (best)", "restarts converged", "first call (s)", "warm (s)"]
    body = []
    for method, result, first, warm in runs:
        row = result_row(result, x, chosen.covariance_type, chosen.k, first)
        body.append([method.name, method.objective,
                     f"{float(result.objective[int(result.best)]):.5f}",
                     f"{row.log_likelihood:.5f}", f"{row.bic:.2f}", row.n_iter,
                     f"{int(np.sum(result.converged))}/{result.converged.size}",
                     f"{first:.2f}", f"{warm:.3f}"])
    return report.markdown_table(header, body)


def run(out: Path, settings: Settings, figures: bool) -> list:
    """Run the demo; returns the paths written (the report first)."""
    start = time.perf_counter()
    s = settings
    out.mkdir(parents=True, exist_ok=True)  # fail before fitting, not after
    x = seed_blobs()
    em = make_method("em")
    rows = sweep(x, list(range(1, s.k_max + 1)), s.covariance_types, em,
                 n_restarts=s.n_restarts, seed=s.seed, progress=report.progress)
    chosen = best_row(rows, "bic")
    methods = [em, make_method("map-em"), make_method(s.optimizer, s.learning_rate, "default")]
    runs = compare_methods(x, chosen.k, chosen.covariance_type, methods,
                           n_restarts=s.n_restarts, seed=s.seed, max_iter=s.max_iter)
    written = [out / "model.npz"]
    save_params(written[0], chosen.params)
    if figures:
        written += _figures(out, x, rows, chosen, runs)
    text = _markdown(x, rows, chosen, runs, [p.name for p in written[1:]],
                     time.perf_counter() - start, s)
    write_text(out / "report.md", text)
    return [out / "report.md"] + written


def _figures(out: Path, x, rows, chosen, runs) -> list:
    paths = [out / "criterion.png", out / "fit.png", out / "methods.png"]
    report.plot_criterion(paths[0], rows, "bic", chosen)
    report.plot_fit(paths[1], x, chosen.params,
                    f"seed data: BIC's choice, {chosen.covariance_type} k={chosen.k} (EM)")
    report.plot_traces(paths[2], {f"{m.name} ({m.objective})": r.history[int(r.best)]
                                  for m, r, _, _ in runs},
                       f"{chosen.covariance_type}, k={chosen.k}: best restart per method")
    return paths


def _markdown(x, rows, chosen, runs, figures, seconds, s: Settings) -> str:
    image = {name: f"![{name}]({name})" for name in figures}
    lines = [
        "# jaxmix demo: the seed data set",
        "",
        f"`{s.command()}` ({seconds:.1f} s including compilation; jax {jax.__version__}, "
        f"{jax.devices()[0].platform}, computed in {float_dtype(x.dtype)}).",
        "",
        f"Data: `jaxmix.datasets.seed_blobs()`, {x.shape[0]} points in {x.shape[1]} "
        "dimensions (three blobs, two of them sheared).",
        "",
        f"## 1. Choosing k by BIC (EM, {s.n_restarts} restarts per k)",
        "",
        report.rows_table(rows, chosen),
        "",
        f"BIC chooses **{chosen.covariance_type}, k={chosen.k}** (`*`). EM rows of one "
        "covariance type come from one compiled `select_k` call; the time shown is that call's.",
        "",
        image.get("criterion.png", ""),
        "",
        "## 2. The chosen model (saved as `model.npz`, `jaxmix.load_params` reads it)",
        "",
        report.params_table(chosen.params),
        "",
        image.get("fit.png", ""),
        "",
        f"## 3. EM vs MAP-EM vs optax `{s.optimizer}` at {chosen.covariance_type}, k={chosen.k}",
        "",
        f"Same k-means starts for every method (same key), same stopping rule (objective "
        f"change below {COMPARE_TOL:g}, at most {s.max_iter} iterations). EM maximises the mean "
        "log-likelihood; MAP-EM and the optimizer maximise the mean log-posterior under "
        "`jaxmix.gmm.priors.default_prior`, so their final objectives are directly comparable; "
        "the log-likelihood and BIC columns evaluate every final model the same way.",
        "",
        methods_table(x, runs, chosen),
        "",
        image.get("methods.png", ""),
        "",
    ]
    if not figures:
        lines += [f"No figures were written (`--no-figures`, or matplotlib is missing: "
                  f"{report.MATPLOTLIB_HINT}).", ""]
    return re.sub(r"\n{3,}", "\n\n", "\n".join(lines))  # no gaps where figures are missing
