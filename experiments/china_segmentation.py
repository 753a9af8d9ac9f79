"""Colour segmentation of ``sklearn.datasets.load_sample_image("china.jpg")``
with jaxmix's K-Means, as in the seed notebook (Hands-On ML, chapter 9).

Every pixel is a point in RGB space; K-Means with k = 10, 8, 6, 4, 2 clusters
the colours, and each pixel is replaced by its cluster centre's colour.
scikit-learn's ``KMeans`` runs on the same pixels with the same settings as
the reference (inertia and time).

    python experiments/china_segmentation.py            # n_init=10, random_state=42

Writes ``experiments/results/china_segmentation.png`` (original + one panel
per k) and ``experiments/results/china_segmentation.md``.
"""

from __future__ import annotations

import argparse
import pathlib
import time

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from sklearn.base import clone  # noqa: E402
from sklearn.cluster import KMeans as SkKMeans  # noqa: E402
from sklearn.datasets import load_sample_image  # noqa: E402

from jaxmix.sklearn import KMeans  # noqa: E402

RESULTS = pathlib.Path(__file__).resolve().parent / "results"
N_COLORS = (10, 8, 6, 4, 2)


def segment(model, pixels):
    """``(fitted model, seconds)``: fit, timed."""
    start = time.perf_counter()
    model.fit(pixels)
    return model, time.perf_counter() - start


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n-init", type=int, default=10)
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--out", type=pathlib.Path, default=RESULTS)
    args = parser.parse_args(argv)

    image = load_sample_image("china.jpg")
    pixels = (image.reshape(-1, 3) / 255.0).astype(np.float32)
    rows, panels = [], []
    for k in N_COLORS:
        ours, t_ours = segment(KMeans(k, n_init=args.n_init, random_state=args.seed), pixels)
        _, t_warm = segment(clone(ours), pixels)  # compiled already
        ref, t_ref = segment(SkKMeans(k, n_init=args.n_init, random_state=args.seed), pixels)
        panels.append(ours.cluster_centers_[ours.labels_].reshape(image.shape))
        rows.append((k, ours.inertia_, ref.inertia_, t_ours, t_warm, t_ref, ours.n_iter_,
                     ref.n_iter_))
        print(f"k={k:2d}: jaxmix inertia {ours.inertia_:.3f} in {t_ours:.1f} s (warm "
              f"{t_warm:.1f} s), sklearn "
              f"{ref.inertia_:.3f} in {t_ref:.1f} s", flush=True)

    fig, axes = plt.subplots(2, 3, figsize=(10, 5))
    fig.subplots_adjust(wspace=0.05, hspace=0.15)
    for ax, picture, title in zip(axes.flat, [image / 255.0] + panels,
                                  ["Original image"] + [f"{k} colors" for k in N_COLORS]):
        ax.imshow(np.clip(picture, 0, 1))
        ax.set_title(title)
        ax.axis("off")
    args.out.mkdir(parents=True, exist_ok=True)
    fig.savefig(args.out / "china_segmentation.png", dpi=100, bbox_inches="tight")

    lines = [
        "# Colour segmentation of china.jpg",
        "",
        f"`python experiments/china_segmentation.py --n-init {args.n_init} --seed {args.seed}`: "
        f"{pixels.shape[0]} pixels (RGB scaled to [0, 1], float32); `jaxmix.sklearn.KMeans` and "
        f"`sklearn.cluster.KMeans`, both `n_init={args.n_init}, random_state={args.seed}` "
        "(k-means++ then Lloyd; the random draws differ between the libraries). Time: one "
        "`fit` each; jaxmix's first fit includes compilation, \"warm\" is a second fit of a "
        "clone (same shapes, compiled already).",
        "",
        "| k | jaxmix inertia | sklearn inertia | jaxmix / sklearn - 1 | jaxmix s (first) "
        "| jaxmix s (warm) | sklearn s | jaxmix n_iter | sklearn n_iter |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for k, a, b, ta, tw, tb, ia, ib in rows:
        lines.append(f"| {k} | {a:.3f} | {b:.3f} | {a / b - 1:+.2e} | {ta:.1f} | {tw:.1f} "
                     f"| {tb:.1f} | {ia} | {ib} |")
    lines += ["", "![segmentation](china_segmentation.png)", ""]
    (args.out / "china_segmentation.md").write_text("\n".join(lines))
    print("\n".join(lines))


if __name__ == "__main__":
    main()
