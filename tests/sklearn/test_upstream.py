"""scikit-learn's own suites pass against :mod:`jaxmix.sklearn` (issue 17):
``test_gaussian_mixture.py``, ``test_k_means.py`` and ``test_dbscan.py`` of
the installed scikit-learn, imports switched (:mod:`upstream`), in JAX's
default float32 mode and with x64. The default run takes a fast part of each
suite in the default mode; the slow set runs every suite whole in both modes.
"""

from __future__ import annotations

import pytest
from upstream import run_suites

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


@pytest.fixture(scope="module")
def fast_parts(tmp_path_factory):
    """The fast parts of all three suites, run in one pytest process."""
    return run_suites(FAST, tmp_path_factory.mktemp("upstream"), False)


def _check(results, suite):
    counts, problems, selected = results[suite]
    # nothing failed or errored, something passed, and every selected test ran
    assert (not problems and counts["passed"] > 0 and selected > 0
            and sum(counts.values()) == selected), (
        f"{suite}: {counts} of {selected} selected; failed: {problems}\n"
        + results["output"][-6000:])


@pytest.mark.parametrize("suite", sorted(FAST))
def test_fast_part_passes_in_the_default_mode(suite, fast_parts):
    _check(fast_parts, suite)


@pytest.mark.slow
@pytest.mark.parametrize("x64", [False, True], ids=["float32-default", "x64"])
@pytest.mark.parametrize("suite", sorted(FAST))
def test_whole_suite_passes(suite, x64, tmp_path):
    _check(run_suites({suite: None}, tmp_path, x64), suite)
