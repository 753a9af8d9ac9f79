"""Tests kept out of the default run because they take long, not because
they are long by nature (those carry ``@pytest.mark.slow`` in their files).

The default run must finish within CI's 10-minute budget on 2 cores; a full
run of 1,589 tests took 932 s there (2026-12-03, local, 2,061 worker-seconds,
mostly XLA compiling programs no other test shares; CI took 1,059 s with
the install). Each entry below took at least 7 s of one worker in that run
(the figure beside it) and its claim
keeps a cheaper test in the default run: a sibling parametrisation (another
covariance type, optimiser or family), or a test of the same property on a
simpler fit. Guides whose blocks fit for long run in the slow set; every
guide's blocks are still compiled in the default run (tests/test_guides.py).

``conftest.pytest_collection_modifyitems`` marks these ``slow``; it fails
the collection when an entry names no test of a collected file (a renamed
test must not silently come back into the default run, or silently leave it).
"""

from __future__ import annotations

SLOW_FOR_TIME = {
    # whole guides (tests/test_guides.py compiles every guide's blocks by default)
    "tests/test_guides.py::test_guide_runs[em-vs-gradient]": 33.5,
    "tests/test_guides.py::test_guide_runs[getting-started]": 23.1,
    "tests/test_guides.py::test_guide_runs[fitting-options]": 16.4,
    "tests/test_guides.py::test_guide_runs[scaling]": 12.8,
    "tests/test_guides.py::test_guide_runs[restarts-and-sweeps]": 10.1,
    # a second process: test_compile_cache.py::test_second_process_reads_the_compiled_fit stays
    "tests/test_executables.py::test_new_process_reads_the_fit_back_without_tracing_it": 21.9,
    "tests/test_compile_cache.py::test_cli_writes_the_default_folder_unless_turned_off": 13.8,
    # optimisers: adam (and sgd) stay
    "tests/test_optimizers.py::"
    "test_a_named_optimizer_fits_as_the_optax_object[lbfgs-options1]": 21.6,
    "tests/test_optimizers.py::test_family_gradient_fits_take_named_optimizers": 10.3,
    "tests/test_optimizers.py::test_equal_names_and_arguments_share_one_program": 9.8,
    "tests/gmm/test_gradient.py::test_a_learning_rate_sweep_compiles_once_and_matches_fixed_rates":
        18.7,
    "tests/gmm/test_gradient.py::test_stats_gradient_equals_autodiff[exact-full]": 18.5,
    "tests/gmm/test_gradient.py::test_stats_gradient_equals_autodiff[exact-tied]": 7.4,
    "tests/gmm/test_gradient.py::test_gradient_fit_stays_at_map_em_optimum[adam]": 13.3,
    "tests/gmm/test_gradient.py::test_every_method_starts_from_the_same_point[None]": 12.0,
    "tests/gmm/test_gradient.py::test_gradient_fit_away_from_optimum_moves": 9.4,
    "tests/gmm/test_gradient.py::test_reaches_em_objective_on_separated_data[lbfgs-None]": 7.6,
    "tests/gmm/test_gradient.py::test_no_nan_on_degenerate_data[sgd]": 7.6,
    # second round: these siblings took over the shared compiles (2026-12-03, 639 s run)
    "tests/gmm/test_gradient.py::test_no_nan_on_degenerate_data[lbfgs]": 14.7,
    "tests/gmm/test_gradient.py::test_stats_gradient_equals_autodiff[exact-diag]": 9.4,
    "tests/families/test_family_gradient.py::"
    "test_gradient_fit_starts_with_em_and_reaches_its_optimum[poisson]": 11.0,
    "tests/fit/test_compose.py::test_jit_over_traced_data_equals_eager[gradient]": 11.8,
    "tests/cli/test_cli.py::test_fit_npz_key_with_an_optax_optimizer": 8.8,
    # model selection grids: the random and random_from_data rows stay
    "tests/fit/test_select.py::test_grid_row_does_not_depend_on_the_grid[kmeans]": 18.0,
    "tests/fit/test_select.py::test_grid_row_does_not_depend_on_the_grid[k-means++]": 10.5,
    "tests/fit/test_select.py::test_bic_picks_true_k[2-0]": 7.0,
    # covariance types: the others stay
    "tests/gmm/test_map_em.py::test_map_em_fixed_point_is_stationary_for_log_posterior[full]": 14.8,
    "tests/gmm/test_map_em.py::test_map_m_step_maximises_expected_log_posterior[full]": 11.2,
    "tests/gmm/test_map_em.py::test_map_em_fixed_point_is_stationary_for_log_posterior[tied]": 10.3,
    "tests/gmm/test_map_em.py::test_map_m_step_maximises_expected_log_posterior[tied]": 7.9,
    "tests/fit/test_buckets.py::test_padded_em_equals_unpadded[tied-None]": 12.3,
    "tests/fit/test_buckets.py::test_padded_em_equals_unpadded[diag-None]": 9.1,
    "tests/fit/test_buckets.py::test_padded_em_equals_unpadded[spherical-None]": 8.1,
    "tests/gmm/test_em.py::test_params_from_labels_in_float32_far_from_the_origin[full]": 11.2,
    "tests/gmm/test_frozen.py::test_em_and_lbfgs_reach_one_constrained_optimum[full]": 9.1,
    "tests/test_fuzz.py::test_fit_gmm[tied-fast]": 7.1,
    "tests/gmm/test_float32_floor.py::test_float32_em_on_collapsing_components_is_float64s[12]":
        7.6,
    # families: the others stay
    "tests/families/test_online.py::test_one_pass_reaches_batch_em[product]": 11.8,
    "tests/families/test_families.py::"
    "test_padded_components_change_nothing_and_share_one_program[poisson]": 10.1,
    "tests/fit/test_conformance.py::test_family_fit_conforms[vmf-em]": 9.4,
    # the estimators' own tests of the same options stay
    "tests/sklearn/test_sklearn_gmm.py::test_prior_and_optimizer_fit_the_functional_fits": 12.1,
    "tests/kmeans/test_sparse.py::test_minibatch_on_sparse_data_and_memmaps_is_the_dense_fit":
        10.6,
    # third round (2026-12-03, 654 s default run; CI took 682 s): siblings stay
    # ([adam]; [diag]; gemm-tied, gemm-diag, gemm-spherical and exact-spherical)
    "tests/gmm/test_gradient.py::"
    "test_maximum_likelihood_gradient_fits_keep_the_covariance_floor[lbfgs]": 13.1,
    "tests/gmm/test_frozen.py::test_one_constrained_em_step_is_the_closed_form[full]": 9.1,
    "tests/gmm/test_gradient.py::test_stats_gradient_equals_autodiff[gemm-full]": 8.8,
}


def mark_slow_for_time(items, slow_marker, check: bool = True) -> None:
    """Add ``slow_marker`` to the collected ``items`` named in
    :data:`SLOW_FOR_TIME`; with ``check`` (whole files collected), raise when
    an entry of a collected file names no item."""
    ids = {item.nodeid: item for item in items}
    files = {nodeid.split("::")[0] for nodeid in ids}
    for nodeid in SLOW_FOR_TIME:
        if nodeid in ids:
            ids[nodeid].add_marker(slow_marker)
        elif check and nodeid.split("::")[0] in files:
            raise ValueError(f"tests/slow_for_time.py names {nodeid}, which is not a test: "
                             "update the entry")
