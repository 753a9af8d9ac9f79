"""EM speed: jaxmix against scikit-learn's GaussianMixture(n_init=R).

Both run the same number of EM iterations (tol=0) on the same data. The time
per restart-iteration is taken as a difference, ``(T(N2) - T(N1)) / ((N2 - N1)
* R)``, so initialisation and set-up cancel. jaxmix is timed after a warm-up
call; its compile time is reported separately. Each timing is the median of
``--repeats`` runs; ratios are of medians measured in the same run (the
machine is noisy, absolute times are not comparable across runs).

    python experiments/bench_gmm.py                      # n=1e5, d=16, k=16, R=16
    python experiments/bench_gmm.py --n 20000 --cov full diag tied spherical

The code lives in ``jaxmix.cli.bench`` (shared with ``jaxmix bench``, whose
default size is smaller).
"""

from __future__ import annotations

import argparse

from jaxmix.cli import bench


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    bench.add_arguments(ap, n=100_000, d=16, k=16, restarts=16)
    bench.run(ap.parse_args(argv))


if __name__ == "__main__":
    main()
