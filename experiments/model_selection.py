"""Choosing k on the seed data: BIC / AIC of Gaussian mixtures, the K-Means
elbow and silhouette, and the 4th-percentile density anomalies.

    python experiments/model_selection.py            # k = 1..10, 10 restarts

Writes ``experiments/results/model_selection.png`` and
``experiments/results/model_selection.md``.
"""

from __future__ import annotations

import argparse
import pathlib
import time

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from jaxmix import (density_threshold, flag_anomalies, inertia_curve,  # noqa: E402
                    select_k, silhouette_score)
from jaxmix.gmm import predict  # noqa: E402
from jaxmix.datasets import seed_blobs  # noqa: E402

RESULTS = pathlib.Path(__file__).resolve().parent / "results"
TYPES = ("full", "tied", "diag", "spherical")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--k-max", type=int, default=10)
    parser.add_argument("--restarts", type=int, default=10)
    parser.add_argument("--seed", type=int, default=42)
    args = parser.parse_args()

    x = seed_blobs()
    ks = list(range(1, args.k_max + 1))
    start = time.perf_counter()
    sel = select_k(args.seed, x, ks, covariance_type=TYPES, n_restarts=args.restarts)
    t_gmm = time.perf_counter() - start
    start = time.perf_counter()
    curve = inertia_curve(args.seed, x, ks, n_restarts=args.restarts)
    t_km = time.perf_counter() - start
    sil_ks = [k for k in ks if k >= 2]
    sil_km = [silhouette_score(x, np.asarray(curve.labels(x, k))) for k in sil_ks]
    sil_gmm = []
    for k in sil_ks:
        labels = np.asarray(predict(sel.best_params(k, "full"), x))
        sil_gmm.append(silhouette_score(x, labels) if len(np.unique(labels)) > 1 else np.nan)

    best_type, best_k = sel.chosen("bic")
    params = sel.best_params(best_k, best_type)
    threshold = density_threshold(params, x, 4.0)
    flags = flag_anomalies(params, x, threshold)

    fig, axes = plt.subplots(1, 4, figsize=(20, 4.6))
    ax = axes[0]
    for t, ct in enumerate(TYPES):
        line, = ax.plot(ks, sel.bic[t], "o-", label=f"BIC {ct}")
        ax.plot(ks, sel.aic[t], "x--", color=line.get_color(), alpha=0.6, label=f"AIC {ct}")
    ax.axvline(best_k, color="grey", lw=0.8, ls=":")
    ax.set(xlabel="k", ylabel="criterion (lower is better)",
           title=f"GMM BIC (solid) / AIC (dashed); BIC picks {best_type}, k={best_k}")
    ax.legend(fontsize=7, ncol=2)
    ax = axes[1]
    ax.plot(ks, curve.inertia, "o-")
    ax.set(xlabel="k", ylabel="inertia", title="K-Means inertia (elbow)")
    ax = axes[2]
    ax.plot(sil_ks, sil_km, "o-", label="K-Means labels")
    ax.plot(sil_ks, sil_gmm, "s--", label="GMM (full) labels")
    ax.set(xlabel="k", ylabel="silhouette score", title="Silhouette (higher is better)")
    ax.legend()
    ax = axes[3]
    ax.scatter(*x[~flags].T, s=3, c=np.asarray(predict(params, x))[~flags], cmap="viridis")
    ax.scatter(*x[flags].T, s=14, c="red", marker="x", label="anomaly (4th pct density)")
    ax.set(title=f"{best_type} GMM, k={best_k}: {int(flags.sum())} anomalies",
           xlabel="x1", ylabel="x2")
    ax.legend(fontsize=8, loc="lower left")
    fig.suptitle(f"Seed data (n={len(x)}): choosing k over 1..{args.k_max}, "
                 f"{args.restarts} restarts each")
    fig.tight_layout()
    RESULTS.mkdir(parents=True, exist_ok=True)
    fig.savefig(RESULTS / "model_selection.png", dpi=110)

    md = [
        "# Model selection on the seed data",
        "",
        f"`python experiments/model_selection.py --k-max {args.k_max} --restarts "
        f"{args.restarts} --seed {args.seed}`; select_k over {len(TYPES)} covariance types "
        f"in {t_gmm:.1f} s, inertia curve in {t_km:.1f} s (compile included).",
        "",
        "## Gaussian mixtures: BIC / AIC",
        "",
        sel.to_markdown(),
        "",
        "## K-Means elbow and silhouette",
        "",
        "| k | inertia | silhouette (K-Means) | silhouette (GMM full) |",
        "|---|---|---|---|",
    ]
    for g, k in enumerate(ks):
        s1 = f"{sil_km[sil_ks.index(k)]:.4f}" if k in sil_ks else "-"
        s2 = f"{sil_gmm[sil_ks.index(k)]:.4f}" if k in sil_ks else "-"
        md.append(f"| {k} | {curve.inertia[g]:.2f} | {s1} | {s2} |")
    md += ["", f"Best silhouette (K-Means): k={sil_ks[int(np.nanargmax(sil_km))]}.",
           "", "## Anomalies", "",
           f"BIC's model ({best_type}, k={best_k}); log-density threshold at the 4th "
           f"percentile: {threshold:.4f}; {int(flags.sum())} of {len(x)} points flagged.", ""]
    (RESULTS / "model_selection.md").write_text("\n".join(md))
    print("\n".join(md))


if __name__ == "__main__":
    main()
