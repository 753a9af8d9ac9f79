"""Semi-supervised digits with K-Means label propagation (the seed notebook's
Hands-On ML chapter 9 workflow), with jaxmix's K-Means and with scikit-learn's
as the reference in the same run.

Data: ``load_digits``; the first 1400 images train, the remaining 397 test.
Each experiment trains ``LogisticRegression(max_iter=10_000)`` and reports
its accuracy on the 397 test images:

* A. 50 labelled images, the first 50 of the training set (no clustering);
* B. 50 representative images: K-Means(50) on the training set, the image
  closest to each centroid, labelled with its true label;
* C. full propagation: every training image gets its cluster's representative
  label;
* D. partial propagation: only the images closest to their centroid keep the
  propagated label: the ``p``-th percentile of distances within each cluster
  (p = 20 as described in the issue, and p = 99).

K-Means is ``KMeans(n_clusters=50, n_init=10, random_state=seed)`` from
``jaxmix.sklearn`` and from ``sklearn.cluster``; the clusters (and so B-D)
depend on the random draws, which differ between the libraries, so B-D are
also given over ``--seeds`` seeds (median, min, max).

    python experiments/digits_label_propagation.py          # seed 42, then seeds 0..4 (~3 min)

Writes ``experiments/results/digits_label_propagation.{md,png}``.
"""

from __future__ import annotations

import argparse
import pathlib
import warnings

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import sklearn  # noqa: E402
from sklearn.cluster import KMeans as SkKMeans  # noqa: E402
from sklearn.datasets import load_digits  # noqa: E402
from sklearn.linear_model import LogisticRegression  # noqa: E402

from jaxmix.sklearn import KMeans  # noqa: E402

RESULTS = pathlib.Path(__file__).resolve().parent / "results"
N_TRAIN, N_CLUSTERS = 1400, 50
PERCENTILES = (20, 99)
SEED_NOTEBOOK = {"A": 0.749, "B": 0.849, "C": 0.894, "D": 0.909}
LIBRARIES = {"jaxmix": KMeans, "sklearn": SkKMeans}


def accuracy(x, y, x_test, y_test) -> float:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # lbfgs convergence chatter on tiny label sets
        model = LogisticRegression(max_iter=10_000).fit(x, y)
    return float(model.score(x_test, y_test))


def propagation(kmeans_cls, seed, x, y, x_test, y_test) -> dict:
    """Experiments B-D for one K-Means run: accuracy and, for C/D, the share of
    training labels the propagation got right."""
    km = kmeans_cls(n_clusters=N_CLUSTERS, n_init=10, random_state=seed)
    dist = np.asarray(km.fit_transform(x), np.float64)            # (n, 50)
    labels = np.asarray(km.labels_)
    representative = np.argmin(dist, axis=0)                      # closest image per centroid
    y_rep = y[representative]
    out = {"B": (accuracy(x[representative], y_rep, x_test, y_test), None),
           "representatives": representative}
    y_prop = y_rep[labels]
    out["C"] = (accuracy(x, y_prop, x_test, y_test), float(np.mean(y_prop == y)))
    own = dist[np.arange(len(x)), labels]
    for p in PERCENTILES:
        cutoff = np.array([np.percentile(own[labels == c], p) for c in range(N_CLUSTERS)])
        keep = own <= cutoff[labels]
        out[f"D{p}"] = (accuracy(x[keep], y_prop[keep], x_test, y_test),
                        float(np.mean(y_prop[keep] == y[keep])), int(keep.sum()))
    return out


def plot_representatives(path, images, labels, title):
    fig, axes = plt.subplots(5, 10, figsize=(8, 4.6))
    for ax, image, label in zip(axes.flat, images, labels):
        ax.imshow(image.reshape(8, 8), cmap="binary", interpolation="bilinear")
        ax.set_title(str(label), fontsize=9)
        ax.axis("off")
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seed", type=int, default=42, help="the main run's random_state")
    parser.add_argument("--seeds", type=int, default=5, help="seeds 0..N-1 for the spread")
    parser.add_argument("--out", type=pathlib.Path, default=RESULTS)
    args = parser.parse_args(argv)

    x_all, y_all = load_digits(return_X_y=True)
    x, y = x_all[:N_TRAIN], y_all[:N_TRAIN]
    x_test, y_test = x_all[N_TRAIN:], y_all[N_TRAIN:]
    first_50 = accuracy(x[:50], y[:50], x_test, y_test)
    everything = accuracy(x, y, x_test, y_test)
    main_run = {lib: propagation(cls, args.seed, x, y, x_test, y_test)
                for lib, cls in LIBRARIES.items()}
    spread = {lib: [propagation(cls, s, x, y, x_test, y_test) for s in range(args.seeds)]
              for lib, cls in LIBRARIES.items()}
    for lib in LIBRARIES:
        print(lib, {k: v[0] for k, v in main_run[lib].items() if k != "representatives"},
              flush=True)

    args.out.mkdir(parents=True, exist_ok=True)
    rep = main_run["jaxmix"]["representatives"]
    plot_representatives(args.out / "digits_label_propagation.png", x[rep], y[rep],
                         f"The 50 representative training images and their labels\n(closest "
                         f"to each jaxmix K-Means centroid, random_state={args.seed})")
    text = markdown(args, first_50, everything, main_run, spread, len(x_test))
    (args.out / "digits_label_propagation.md").write_text(text)
    print(text)


EXPERIMENTS = [
    ("A", "A. 50 labelled images (the first 50), logistic regression"),
    ("B", "B. 50 representative images (closest to each of 50 centroids)"),
    ("C", "C. labels propagated to every image of each cluster"),
    ("D20", "D. labels propagated to the 20% of each cluster closest to its centroid"),
    ("D99", "D. labels propagated to the 99% of each cluster closest to its centroid"),
]


def _fmt(entry) -> str:
    return f"{entry[0]:.3f}"


def _extra(entry) -> str:
    if entry[1] is None:
        return "-"
    kept = f", {entry[2]} images" if len(entry) > 2 else ""
    return f"{entry[1]:.3f}{kept}"


def _spread(runs, key) -> str:
    acc = np.array([r[key][0] for r in runs])
    return f"{np.median(acc):.3f} [{acc.min():.3f}, {acc.max():.3f}]"


def markdown(args, first_50, everything, main_run, spread, n_test) -> str:
    lines = [
        "# Digits: K-Means label propagation",
        "",
        f"`python experiments/digits_label_propagation.py --seed {args.seed} --seeds "
        f"{args.seeds}`: `load_digits`, train = first {N_TRAIN} images, test = the other "
        f"{n_test} (float64 pixels, as the seed); `LogisticRegression(max_iter=10_000)` of "
        f"scikit-learn {sklearn.__version__}; `KMeans(n_clusters=50, n_init=10, "
        f"random_state={args.seed})` from jaxmix (`jaxmix.sklearn.KMeans`) and from sklearn "
        "(the reference, same script). Representatives are labelled with their true labels.",
        "",
        f"| experiment | seed notebook | jaxmix K-Means | sklearn K-Means | propagated labels "
        f"correct (jaxmix) | propagated labels correct (sklearn) | jaxmix, seeds 0..{args.seeds - 1}: "
        f"median [min, max] | sklearn, seeds 0..{args.seeds - 1} |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for key, name in EXPERIMENTS:
        seed_value = SEED_NOTEBOOK[key[0]]
        if key.startswith("D"):
            seed_value = f"{seed_value} (its partial propagation)"
        if key == "A":
            lines.append(f"| {name} | {seed_value} | {first_50:.3f} | {first_50:.3f} | - | - "
                         "| (no clustering) | |")
            continue
        lines.append(
            f"| {name} | {seed_value} | {_fmt(main_run['jaxmix'][key])} "
            f"| {_fmt(main_run['sklearn'][key])} | {_extra(main_run['jaxmix'][key])} "
            f"| {_extra(main_run['sklearn'][key])} | {_spread(spread['jaxmix'], key)} "
            f"| {_spread(spread['sklearn'], key)} |")
    lines += [
        f"| all {N_TRAIN} training labels (upper reference) | - | {everything:.3f} "
        f"| {everything:.3f} | - | - | | |",
        "",
        "The seed notebook's four numbers, in its order: 50 labelled images 0.749, 50 "
        "representative images 0.849, full propagation 0.894, partial propagation 0.909. "
        f"They are 297, 337, 355 and 361 correct of {n_test} test images, consistent with the same "
        f"first-{N_TRAIN} / rest split as here; which percentile the seed's partial "
        "propagation used is not recorded next to its number, so both 20 (as in the issue) "
        "and 99 are reported. Experiment A involves no clustering, so it is the same for "
        f"both libraries; its gap to the seed ({first_50:.3f} vs 0.749) is the logistic "
        "regression of this scikit-learn version, not K-Means. B-D depend on the "
        "clustering's random draws, which differ between libraries and seeds (see the spread "
        "columns): compare jaxmix with sklearn's K-Means run here, not with the seed's digits.",
        "",
        "![representatives](digits_label_propagation.png)",
        "",
    ]
    return "\n".join(lines)


if __name__ == "__main__":
    main()
