"""scikit-learn's own suites pass against :mod:`jaxmix.sklearn` (issue 17):
``test_gaussian_mixture.py``, ``test_k_means.py`` and ``test_dbscan.py`` of
the installed scikit-learn, imports switched (:mod:`upstream`), in JAX's
default float32 mode and with x64. The default run takes a fast part of each
suite in the default mode; the slow set runs every suite whole in both modes.
"""

from __future__ import annotations

import pytest
from upstream import passed, run_suite

# A fast part of each suite, in the default run (full test ids; 42 is
# scikit-learn's default global_random_seed).
FAST = {
    "gaussian_mixture": ["test_warm_start[0]", "test_max_iter_zero"],
    "k_means": ["test_kmeans_results[float64-lloyd-sparse_matrix]",
                "test_unit_weights_vs_no_weights[42-MiniBatchKMeans-dense]"],
    "dbscan": ["test_dbscan_feature", "test_dbscan_sparse_precomputed[True]",
               "test_dbscan_input_not_modified[csr_matrix-precomputed]",
               "test_dbscan_no_core_samples[csr_matrix]", "test_dbscan_metric_params",
               "test_dbscan_precomputed_metric_with_initial_rows_zero[csr_matrix]"],
}


def _check(suite, tmp_path, x64, only):
    code, out, selected = run_suite(suite, tmp_path, x64, only)
    # exit code 0: nothing failed or errored (5, no test ran, is not success)
    assert selected > 0 and passed(out) > 0 and code == 0, out[-6000:]


@pytest.mark.parametrize("suite", sorted(FAST))
def test_fast_part_passes_in_the_default_mode(suite, tmp_path):
    _check(suite, tmp_path, False, FAST[suite])


@pytest.mark.slow
@pytest.mark.parametrize("x64", [False, True], ids=["float32-default", "x64"])
@pytest.mark.parametrize("suite", sorted(FAST))
def test_whole_suite_passes(suite, x64, tmp_path):
    _check(suite, tmp_path, x64, None)
