"""What the ``jaxmix`` command shows and writes: progress lines, tables,
markdown and figures. Figures need matplotlib (the ``experiments`` extra);
:func:`have_matplotlib` says whether it is there.
"""

from __future__ import annotations

import sys
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np

from jaxmix.atomic import atomic_write
from jaxmix.compiling import jit
from jaxmix.gmm import family, predict

MATPLOTLIB_HINT = "pip install matplotlib, or install jaxmix with its 'experiments' extra"


def progress(line: str) -> None:
    """One progress line on stderr (stdout keeps only the results)."""
    print(line, file=sys.stderr, flush=True)


class LiveProgress:
    """:func:`progress`, plus, on a terminal, the seconds elapsed ticking at
    the end of a line that ends in ``...`` (a compile or a fit under way)
    until the next line; plain lines when stderr is not a terminal. A
    thread rewrites the line twice a second; :meth:`close` stops it. Written
    here rather than taken from ``tqdm`` or ``rich``: the work has no known
    length (compiling), so a bar would not help, and a ticker is a few lines."""

    def __init__(self, stream=None, interval: float = 0.5):
        self.stream = sys.stderr if stream is None else stream
        self.live = bool(getattr(self.stream, "isatty", lambda: False)())
        self.interval, self._stop, self._thread = interval, None, None
        self._note = ""

    def __call__(self, line: str) -> None:
        self.close()
        if not (self.live and line.endswith("...")):
            print(line, file=self.stream, flush=True)
            return
        import threading
        import time
        start, self._stop, self._note = time.perf_counter(), threading.Event(), ""

        def tick(stop=self._stop):
            while True:
                print(f"\r{line} {time.perf_counter() - start:.0f} s{self._note}\033[K", end="",
                      file=self.stream, flush=True)
                if stop.wait(self.interval):
                    print(file=self.stream, flush=True)
                    return
        self._thread = threading.Thread(target=tick, daemon=True)
        self._thread.start()

    def fit_callback(self):
        """A fit ``callback`` showing the iterations and the best objective at
        the end of the ticking line; ``None`` off a terminal (then the fits
        compile without one)."""
        if not self.live:
            return None

        def show(p):
            self._note = (f", iteration {int(p.iteration.max())}, best objective "
                          f"{float(p.objective.max()):.4f}")
        return show

    def close(self) -> None:
        """End a ticking line (idempotent)."""
        if self._thread is not None:
            self._stop.set()
            self._thread.join()
            self._thread = None


def have_matplotlib() -> bool:
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        return False
    return True


def markdown_table(header, rows) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)


def rows_table(rows, chosen=None) -> str:
    """The grid as markdown; ``*`` marks the chosen row."""
    header = ["covariance", "k", "mean log-lik", "BIC", "AIC", "converged", "n_iter",
              "time (s)"]
    body = [[r.covariance_type, f"{r.k}{' *' if r is chosen else ''}",
             f"{r.log_likelihood:.5f}", f"{r.bic:.2f}", f"{r.aic:.2f}",
             "failed" if r.params is None else r.converged, r.n_iter, f"{r.seconds:.2f}"]
            for r in rows]
    return markdown_table(header, body)


def params_table(params) -> str:
    """Weights and means of a mixture, one row per component."""
    means = np.asarray(params.means)
    body = [[j, f"{float(w):.4f}", ", ".join(f"{m:.4f}" for m in means[j])]
            for j, w in enumerate(np.asarray(params.weights))]
    return markdown_table(["component", "weight", "mean"], body)


# ---------------------------------------------------------------------------
# figures


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    return plt


def full_covariances(params) -> np.ndarray:
    """``(k, d, d)`` covariance matrices of any covariance type: the family's
    sampling map applied to the unit vectors (noise ``z M`` has covariance
    ``M^T M``; the product in float64)."""
    k, d = params.means.shape
    m = np.asarray(_sampling_maps(jnp.asarray(params.precisions_cholesky),
                                  covariance_type=params.covariance_type, k=k, d=d), np.float64)
    return np.einsum("kij,kil->kjl", m, m)


@jit(static_argnames=("covariance_type", "k", "d"))
def _sampling_maps(pc, *, covariance_type: str, k: int, d: int):
    """``(k, d, d)``: each component's ``M`` (one program, not an eager
    operation per step: those cost the demo a compile each)."""
    fam, eye = family(covariance_type), jnp.eye(d, dtype=pc.dtype)
    return jax.vmap(lambda j: fam.sample_noise(eye, pc, jnp.full((d,), j)))(jnp.arange(k))


_labels = jit(predict)  # the scatter's colours, one program


def _projection(x: np.ndarray):
    """``(centre, basis (d, 2), axis labels)``: the data's own axes when ``d == 2``,
    else its first two principal components."""
    if x.shape[1] == 2:
        return np.zeros(2), np.eye(2), ("x1", "x2")
    from sklearn.decomposition import PCA

    pca = PCA(2).fit(x)
    share = 100 * pca.explained_variance_ratio_
    return pca.mean_, pca.components_.T, (f"PC1 ({share[0]:.0f}% of variance)",
                                          f"PC2 ({share[1]:.0f}%)")


def plot_fit(path, x, params, title: str) -> None:
    """Scatter coloured by component, means, and 1- and 2-sigma ellipses
    (2-D data, or its first two principal components)."""
    from matplotlib.patches import Ellipse

    plt = _pyplot()
    centre, basis, labels = _projection(x)
    z = (x - centre) @ basis
    means = (np.asarray(params.means, np.float64) - centre) @ basis
    covs = basis.T @ full_covariances(params) @ basis
    colour = np.asarray(_labels(params, np.asarray(x, params.means.dtype)))
    fig, ax = plt.subplots(figsize=(6.4, 5.2))
    ax.scatter(z[:, 0], z[:, 1], s=4, c=colour, cmap="viridis", alpha=0.6)
    for mean, cov in zip(means, covs):
        values, vectors = np.linalg.eigh(cov)
        angle = np.degrees(np.arctan2(vectors[1, 1], vectors[0, 1]))
        for n_std in (1, 2):
            w, h = 2 * n_std * np.sqrt(np.maximum(values[::-1], 0))
            ax.add_patch(Ellipse(mean, w, h, angle=angle, fill=False, color="red",
                                 lw=1.2 / n_std))
    ax.scatter(means[:, 0], means[:, 1], marker="x", s=80, c="red", label="means")
    ax.set(xlabel=labels[0], ylabel=labels[1], title=title)
    ax.legend(loc="best", fontsize=8)
    _save(fig, path)


def plot_criterion(path, rows, criterion: str, chosen) -> None:
    """BIC (or AIC) against k, one line per covariance type; the choice marked."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(6.4, 4.4))
    for ct in dict.fromkeys(r.covariance_type for r in rows):
        mine = [r for r in rows if r.covariance_type == ct]
        ax.plot([r.k for r in mine], [getattr(r, criterion) for r in mine], "o-", label=ct)
    ax.plot([chosen.k], [getattr(chosen, criterion)], "k*", ms=16,
            label=f"chosen: {chosen.covariance_type}, k={chosen.k}")
    ax.set(xlabel="k (components)", ylabel=f"{criterion.upper()} (lower is better)",
           title=f"{criterion.upper()} of the best restart per k")
    ax.legend(fontsize=8)
    _save(fig, path)


def plot_traces(path, traces, title: str) -> None:
    """Each method's best restart per iteration: its objective (left) and its
    distance to its own final objective (right, log scale: convergence speed).

    ``traces``: ``{label: history array}`` (NaN after the stop).
    """
    plt = _pyplot()
    fig, (left, right) = plt.subplots(1, 2, figsize=(11, 4.2))
    for label, history in traces.items():
        h = np.asarray(history, np.float64)
        h = h[~np.isnan(h)]
        it = np.arange(1, h.size + 1)
        left.plot(it, h, ".-", ms=3, label=label)
        right.plot(it[:-1], np.maximum(h[-1] - h[:-1], 1e-8), ".-", ms=3, label=label)
    left.set(xscale="log", xlabel="iteration", ylabel="objective per sample (higher is better)",
             title=title)
    right.set(xscale="log", yscale="log", xlabel="iteration",
              ylabel="final - objective (floored at 1e-8)",
              title="convergence: distance to the run's own final objective")
    left.legend(fontsize=8)
    right.legend(fontsize=8)
    _save(fig, path, left=0.07, right=0.985, wspace=0.22)


# Fixed margins of the figures (fractions of the figure; their sizes and
# labels are fixed): fig.tight_layout measured every text first, a third of
# the figures' time in `jaxmix demo`.
MARGINS = dict(left=0.12, right=0.97, bottom=0.11, top=0.93)


def _save(fig, path, **margins) -> None:
    import matplotlib.pyplot as plt

    fig.subplots_adjust(**{**MARGINS, **margins})
    try:
        with atomic_write(path) as f:
            fig.savefig(f, dpi=100, format=Path(path).suffix.lstrip(".") or "png")
    finally:
        plt.close(fig)
