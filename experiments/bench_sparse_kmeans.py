"""TF-IDF text clustering: K-Means on a SciPy sparse matrix, jaxmix against
scikit-learn on the same data (issue 17).

The corpus is generated (no download): ``--topics`` topics, each a Dirichlet
distribution over a ``--vocabulary``-word vocabulary with a few hundred
favoured words; each of ``--docs`` documents draws 40-160 words from its
topic mixed with 20% background words. Counts become L2-normalised TF-IDF
rows (scikit-learn's ``TfidfTransformer``): a CSR matrix, about 1-2% dense,
the shape of real text data.

For each estimator (``KMeans(k, n_init=3)`` and ``MiniBatchKMeans(k,
n_init=3, batch_size=1024)``, default settings otherwise, the whole fit
including k-means++ initialisation) it prints, measured in one run: the
first call (jaxmix: compilation included), the best warm time of
``--repeats``, the final inertia, the adjusted Rand index against the
generating topics, and the time ratio scikit-learn / jaxmix. jaxmix reads
the sparse matrix one chunk of rows at a time and makes each chunk dense
(memory: the sparse matrix plus one dense chunk), so its work grows with the
vocabulary, not with the non-zeros as scikit-learn's sparse kernels do: the
larger the vocabulary, the worse the ratio (the ``--vocabulary`` flag shows it).

    python experiments/bench_sparse_kmeans.py
    python experiments/bench_sparse_kmeans.py --vocabulary 20000
"""

from __future__ import annotations

import argparse
import os
import pathlib
import time

import numpy as np
from sklearn import cluster
from sklearn.feature_extraction.text import TfidfTransformer
from sklearn.metrics import adjusted_rand_score
from scipy import sparse

import jaxmix.sklearn as jms

RESULTS = pathlib.Path(__file__).resolve().parent / "results"


def corpus(docs: int, vocabulary: int, topics: int, seed: int = 0):
    """``(tf-idf CSR (docs, vocabulary) float32, topic of each document)``."""
    rng = np.random.default_rng(seed)
    favoured = [rng.choice(vocabulary, 300, replace=False) for _ in range(topics)]
    word_p = np.full((topics, vocabulary), 0.2 / vocabulary)
    for t, words in enumerate(favoured):
        word_p[t, words] += 0.8 * rng.dirichlet(np.full(words.size, 0.5))
    word_p /= word_p.sum(axis=1, keepdims=True)
    labels = rng.integers(0, topics, docs)
    lengths = rng.integers(40, 161, docs)
    rows, cols = [], []
    for i, (t, m) in enumerate(zip(labels, lengths)):
        words = rng.choice(vocabulary, m, p=word_p[t])
        rows.append(np.full(m, i))
        cols.append(words)
    counts = sparse.csr_matrix((np.ones(int(lengths.sum())), (np.concatenate(rows),
                                                             np.concatenate(cols))),
                               shape=(docs, vocabulary))
    counts.sum_duplicates()
    return TfidfTransformer().fit_transform(counts).astype(np.float32).tocsr(), labels


def timed(make, x, repeats):
    t = time.perf_counter()
    est = make().fit(x)
    first = time.perf_counter() - t
    best = np.inf
    for _ in range(repeats):
        t = time.perf_counter()
        est = make().fit(x)
        best = min(best, time.perf_counter() - t)
    return first, best, est


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--docs", type=int, default=20000)
    parser.add_argument("--vocabulary", type=int, default=5000)
    parser.add_argument("--topics", type=int, default=20)
    parser.add_argument("--repeats", type=int, default=2)
    args = parser.parse_args(argv)
    load = os.getloadavg()[0]
    x, topics = corpus(args.docs, args.vocabulary, args.topics)
    k = args.topics
    lines = [f"# bench_sparse_kmeans: {args.docs} documents, vocabulary {args.vocabulary}, "
             f"{k} topics; TF-IDF CSR {x.nnz / np.prod(x.shape):.2%} dense, float32 "
             f"(load average before {load:.2f})", "",
             "| estimator | library | first call s | warm s | sklearn / jaxmix (warm) | "
             "inertia | ARI vs topics |", "|---|---|---|---|---|---|---|"]
    for name, kw in (("KMeans", dict(n_init=3)),
                     ("MiniBatchKMeans", dict(n_init=3, batch_size=1024))):
        rows = {}
        for lib, module in (("scikit-learn", cluster), ("jaxmix", jms)):
            cls = getattr(module, name)
            rows[lib] = timed(lambda: cls(k, random_state=0, **kw), x, args.repeats)
        for lib, (first, warm, est) in rows.items():
            ratio = rows["scikit-learn"][1] / rows["jaxmix"][1]
            lines.append(f"| {name} | {lib} | {first:.2f} | {warm:.2f} | "
                         f"{ratio:.2f} | {est.inertia_:.2f} | "
                         f"{adjusted_rand_score(topics, est.labels_):.3f} |")
    lines += ["", f"load average after: {os.getloadavg()[0]:.2f}"]
    text = "\n".join(lines)
    print(text)
    if (args.docs, args.vocabulary, args.topics) == (20000, 5000, 20):
        (RESULTS / "bench_sparse_kmeans.md").write_text(text + "\n")


if __name__ == "__main__":
    main()
