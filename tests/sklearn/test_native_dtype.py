"""The scikit-learn face computes in its input's dtype without any JAX flag
(issue 17): run in a fresh process with JAX's default (x64 off), since this
test session turns x64 on."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap

SCRIPT = textwrap.dedent("""
    import jax, numpy as np
    from sklearn.datasets import make_blobs
    from jaxmix.sklearn import DBSCAN, GaussianMixture, KMeans, MiniBatchKMeans
    assert not jax.config.jax_enable_x64
    x64, _ = make_blobs(300, centers=3, random_state=0)
    x32 = x64.astype(np.float32)
    for make in (lambda: GaussianMixture(3, random_state=0),
                 lambda: KMeans(3, random_state=0, n_init=1),
                 lambda: MiniBatchKMeans(3, random_state=0, n_init=1, batch_size=64)):
        got = {}
        for x in (x64, x32):
            est = make().fit(x)
            fitted = est.means_ if hasattr(est, "means_") else est.cluster_centers_
            assert fitted.dtype == x.dtype, (type(est).__name__, fitted.dtype, x.dtype)
            out = (est.predict_proba(x) if hasattr(est, "predict_proba") else est.transform(x))
            assert out.dtype == x.dtype, (type(est).__name__, out.dtype)
            got[x.dtype] = est.predict(x)
        # the same random_state makes the same random choices for both dtypes
        assert (got[np.dtype(np.float64)] == got[np.dtype(np.float32)]).all(), type(est)
    # a pair 1e-9 beyond eps: apart in float64, neighbours if computed in float32
    pair = np.array([[0.0], [1.0 + 1e-9]])
    assert DBSCAN(eps=1.0, min_samples=2).fit(pair).labels_.tolist() == [-1, -1]
    assert DBSCAN(eps=1.0, min_samples=2).fit(pair.astype(np.float32)).labels_.tolist() == [0, 0]
    assert GaussianMixture(3, random_state=0).fit(x64).score_samples(x64).dtype == np.float64
    assert not jax.config.jax_enable_x64  # the user's setting is restored
    print("ok")
""")


def test_float64_in_float64_out_without_the_x64_flag():
    env = dict(os.environ, JAX_ENABLE_X64="0")
    proc = subprocess.run([sys.executable, "-c", SCRIPT], env=env, capture_output=True,
                          text=True, timeout=600)
    assert proc.returncode == 0 and proc.stdout.strip().endswith("ok"), proc.stdout + proc.stderr
