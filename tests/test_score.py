import itertools
import math
import warnings

import numpy as np
import pytest
from scipy import stats

from bhscore import score as S
from bhscore.simulate import simulate_accuracies

N = 50


def _expanded_spearman(levels_tops):
    x = np.concatenate([np.full(len(t), i) for i, t in enumerate(levels_tops)])
    y = np.concatenate(levels_tops)
    return stats.spearmanr(x, y)[0]


# --- filter --------------------------------------------------------------------------------------


def test_legacy_filter_band_at_n50():
    r = np.round(np.arange(0.0, 1.0, 0.0001), 4)
    kept = r[S.keep_mask(r, N, "legacy")]
    # the band is 0.30469.. < r < 0.95244.. (method.md rounds it to 0.3047 < r < 0.9524)
    assert kept.min() == pytest.approx(0.3047) and kept.max() == pytest.approx(0.9524)
    assert np.all(np.diff(kept) < 0.00011)  # one contiguous band
    assert not S.keep_mask(np.array([0.3046, 0.9525, 0.99, 1.0]), N, "legacy").any()


def test_corrected_filter_threshold_at_n50():
    r = np.round(np.arange(0.0, 1.0, 0.0001), 4)
    kept = r[S.keep_mask(r, N, "corrected")]
    assert kept.min() == pytest.approx(0.2788) and kept.max() == pytest.approx(0.9999)
    assert not S.keep_mask(np.array([0.2787, -0.9, 0.0]), N, "corrected").any()


def test_corrected_p_matches_scipy_pearson():
    rng = np.random.default_rng(0)
    x, y = rng.standard_normal((2, N))
    y = y + 0.5 * x
    res = stats.pearsonr(x, y)
    assert S.correlation_p_values(np.array([res.statistic]), N, "corrected")[0] == pytest.approx(res.pvalue, rel=1e-9)


def test_threshold_depends_on_n():
    assert S.keep_mask(np.array([0.25]), 100, "corrected")[0]
    assert not S.keep_mask(np.array([0.25]), 50, "corrected")[0]


def test_bad_method():
    with pytest.raises(ValueError, match="legacy"):
        S.correlation_p_values(np.array([0.5]), N, "bonferroni")


# --- top rows and counts -------------------------------------------------------------------------


def test_top_rows_ties_first_and_nan_as_zero_without_mutation():
    acc = np.array([[0.4, np.nan, -0.2], [0.4, -0.1, np.nan]])
    before = acc.copy()
    best, top = S.top_rows(acc)
    np.testing.assert_array_equal(top, [0, 0, 1])  # tie -> first row; NaN counts as 0 > -0.2
    np.testing.assert_array_equal(best, [0.4, 0.0, 0.0])
    np.testing.assert_array_equal(np.isnan(acc), np.isnan(before))  # input untouched


HAND_LEVELS = [
    np.array([[0.5, 0.6], [0.4, 0.1]]),  # tops 0, 0
    np.array([[0.1, 0.5], [0.5, 0.4]]),  # tops 1, 0
    np.array([[0.1, 0.97], [0.7, 0.2]]),  # tops 1, (0 with r = 0.97: dropped by legacy only)
]


def _pooled(levels, n, method="legacy"):
    """The BH score of all the levels pooled (no layer selection)."""
    return S.pooled_score(S.level_counts(levels, n, method)[0])


def test_hand_computed_score_legacy():
    # pairs (level, top): (0,0) (0,0) (1,1) (1,0) (2,1); midranks x 1.5 1.5 3.5 3.5 5, y 2 2 4.5 2 4.5
    expected = 6.25 / math.sqrt(9.0 * 7.5)
    assert _pooled(HAND_LEVELS, N, "legacy") == pytest.approx(expected, abs=1e-12)


def test_hand_computed_score_corrected_keeps_strong_unit():
    expected = _expanded_spearman([np.array([0, 0]), np.array([1, 0]), np.array([1, 0])])
    assert _pooled(HAND_LEVELS, N, "corrected") == pytest.approx(expected, abs=1e-12)
    assert _pooled(HAND_LEVELS, N, "corrected") != pytest.approx(_pooled(HAND_LEVELS, N, "legacy"))


def test_inputs_not_mutated():
    levels = [a.copy() for a in HAND_LEVELS]
    levels[0][1, 0] = np.nan
    copies = [a.copy() for a in levels]
    _pooled(levels, N)
    S.level_counts(levels, N)
    for a, b in zip(levels, copies, strict=True):
        np.testing.assert_array_equal(a, b)


def test_spearman_from_counts_equals_scipy_on_expanded_pairs():
    rng = np.random.default_rng(3)
    for _ in range(20):
        counts = rng.integers(0, 15, size=(rng.integers(2, 9), 5))
        tops = [np.repeat(np.arange(5), c) for c in counts]
        assert S.spearman_from_counts(counts) == pytest.approx(_expanded_spearman(tops), abs=1e-12)


def test_spearman_batched_shapes():
    counts = np.random.default_rng(0).integers(0, 9, size=(4, 3, 6, 5))
    rho = S.spearman_from_counts(counts)
    assert rho.shape == (4, 3)
    assert rho[2, 1] == pytest.approx(S.spearman_from_counts(counts[2, 1]))


def test_no_kept_unit_gives_nan_with_warning():
    levels = [np.full((5, 4), 0.05) for _ in range(5)]
    with pytest.warns(RuntimeWarning, match="no item passed the significance filter"):
        assert math.isnan(_pooled(levels, N))


# --- layer selection -----------------------------------------------------------------------------


def test_layer_subsets_keep_first_and_last():
    subsets = S.layer_subsets(12, 5, n_draws=200, seed=1)
    assert subsets.shape == (200, 5)
    assert np.all(subsets[:, 0] == 0) and np.all(subsets[:, -1] == 11)
    assert np.all(np.diff(subsets, axis=1) > 0)
    assert set(np.unique(subsets[:, 1:-1])) == set(range(1, 11))


def test_layer_subsets_seeded():
    np.testing.assert_array_equal(S.layer_subsets(20, seed=5), S.layer_subsets(20, seed=5))
    assert not np.array_equal(S.layer_subsets(20, seed=5), S.layer_subsets(20, seed=6))


def test_exact_subsets_are_all_combinations():
    subsets = S.layer_subsets(9, 5, exact=True)
    assert len(subsets) == S.n_exact_subsets(9) == math.comb(7, 3)
    assert {tuple(s[1:-1]) for s in subsets} == set(itertools.combinations(range(1, 8), 3))


def test_decoding_score_is_mean_over_subsets_computed_naively():
    rng = np.random.default_rng(0)
    counts = rng.integers(0, 30, size=(9, 5))
    n_items = counts.sum(axis=1) + 7
    for selection in ("random", "exact"):
        opts = S.ScoreOptions(layer_selection=selection, n_draws=40, seed=3, n_bootstrap=0)
        score, _, _ = S.decoding_score_from_counts(counts, n_items, opts)
        subsets = S.layer_subsets(9, 5, 40, 3, exact=selection == "exact")
        naive = np.mean([_expanded_spearman([np.repeat(np.arange(5), counts[level]) for level in sub]) for sub in subsets])
        assert score == pytest.approx(naive, abs=1e-12)


# --- bootstrap -----------------------------------------------------------------------------------


def test_resample_counts_preserves_level_totals_and_mean():
    rng = np.random.default_rng(0)
    counts = np.array([[5, 3, 0], [1, 1, 8]])
    n_items = np.array([10, 12])
    boot = S.resample_counts(counts, n_items, 4000, rng)
    assert boot.shape == (4000, 2, 3)
    assert np.all(boot.sum(axis=2) <= n_items)
    np.testing.assert_allclose(boot.mean(axis=0), counts, atol=0.15)
    assert np.all(boot[:, 0, 2] == 0)  # an empty category stays empty


def test_bootstrap_ci_deterministic_and_brackets_score():
    rng = np.random.default_rng(1)
    levels = []
    for j in range(8):
        acc = 0.2 * rng.random((5, 300))
        acc[min(j * 5 // 8, 4)] += 0.25
        levels.append(acc)
    enc = [0.35 + 0.1 * rng.random((8, 200)) for _ in range(5)]
    opts = S.ScoreOptions(n_bootstrap=300, seed=4)
    a = S.score_from_levels("x", levels, enc, N, opts)
    b = S.score_from_levels("x", levels, enc, N, opts)
    assert a.decoding == b.decoding and a.decoding_ci == b.decoding_ci and a.averaged_ci == b.averaged_ci
    assert a.decoding_ci[0] < a.decoding < a.decoding_ci[1]
    assert a.decoding > 0.5


# --- encoding voxel subsample --------------------------------------------------------------------


def test_legacy_voxel_subsample_bit_for_bit():  # the legacy global-state calls are the point here
    acc = np.random.default_rng(0).standard_normal(2345)
    state = np.random.get_state()  # noqa: NPY002
    try:
        np.random.seed(0)  # noqa: NPY002
        expected = np.random.choice(acc, size=1000, replace=False)  # noqa: NPY002
    finally:
        np.random.set_state(state)  # noqa: NPY002
    before = np.random.get_state()[1].copy()  # noqa: NPY002
    got = S.legacy_voxel_subsample(acc, 1000)
    np.testing.assert_array_equal(got, expected)
    np.testing.assert_array_equal(np.random.get_state()[1], before)  # global state untouched  # noqa: NPY002


def test_legacy_voxel_subsample_short_vector_unchanged():
    acc = np.arange(10.0)
    out = S.legacy_voxel_subsample(acc, 1000)
    np.testing.assert_array_equal(out, acc)
    assert out is not acc


# --- accuracy trees ------------------------------------------------------------------------------


def test_scores_from_simulated_trees_rank_planted_hierarchy(accuracy_settings):
    table = S.score_table(accuracy_settings, progress=False)
    assert list(table["dnn"]) == ["D0", "D1", "D2"]
    d = table.set_index("dnn")
    assert d.loc["D0", "averaged"] > 0.6
    assert d.loc["D0", "averaged"] > d.loc["D1", "averaged"] > d.loc["D2", "averaged"]
    assert abs(d.loc["D2", "averaged"]) < 0.15  # strength 0: no hierarchy
    assert np.allclose(d["averaged"], (d["decoding"] + d["encoding"]) / 2)
    assert (d["decoding_ci_low"] <= d["decoding"]).all() and (d["decoding"] <= d["decoding_ci_high"]).all()
    assert (d["decoding_n_items"] == [6 * 3 * 60, 8 * 3 * 60, 7 * 3 * 60]).all()
    assert (d["decoding_n_kept"] < d["decoding_n_items"]).all()


def test_tree_levels_match_manual_assembly(accuracy_settings):
    from bhscore.formats import read_accuracy
    from bhscore.paths import Layout

    tree = S.AccuracyTree(accuracy_settings, "D1")
    dec = tree.decoding_levels()
    lay = Layout.from_settings(accuracy_settings)
    dnn = accuracy_settings.dnns["D1"]
    manual = np.vstack(
        [
            np.concatenate(
                [read_accuracy(lay.accuracy_file(lay.published_accuracy_root("decoding"), dnn.dir, dnn.layers[2], s, roi))[0]
                 for s in accuracy_settings.subjects]
            )
            for roi in accuracy_settings.rois
        ]
    )
    np.testing.assert_array_equal(dec[2], manual)
    assert tree.n_samples == 50
    enc = tree.encoding_levels(subsample=30)
    assert len(enc) == 5 and enc[0].shape == (len(dnn.layers), 3 * 30)
    # the same voxels are kept for every layer (seed reset per file): check via a full-vs-subsample identity
    full = tree.encoding_levels()[0]
    per_subject = np.split(full, 3, axis=1)
    picked = np.random.RandomState(0).permutation(80)[:30]
    np.testing.assert_array_equal(enc[0][:, :30], per_subject[0][:, picked])


def test_p_method_changes_only_via_option(accuracy_settings):
    legacy = S.score_dnn(accuracy_settings, "D0", n_bootstrap=0)
    corrected = S.score_dnn(accuracy_settings, "D0", n_bootstrap=0, p_method="corrected")
    assert corrected.decoding_counts.sum() >= legacy.decoding_counts.sum()
    assert legacy.decoding_counts.shape == (6, 5)


def test_mean_accuracy_profile(accuracy_settings):
    levels = S.AccuracyTree(accuracy_settings, "D0").decoding_levels()
    prof = S.mean_accuracy_profile(levels)
    assert prof.shape == (6, 5)
    # planted: the best ROI moves up the hierarchy with depth
    assert np.argmax(prof[0]) == 0 and np.argmax(prof[-1]) == 4
    np.testing.assert_array_equal(prof[2], np.nanmean(levels[2], axis=1))
    # encoding levels are per ROI: (n_rois, n_layers)
    assert S.mean_accuracy_profile(S.AccuracyTree(accuracy_settings, "D0").encoding_levels()).shape == (5, 6)
    # an all-NaN row: NaN, without a warning
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        out = S.mean_accuracy_profile([np.array([[np.nan, np.nan], [0.1, np.nan]])])
    np.testing.assert_array_equal(out, [[np.nan, 0.1]])


def test_seeded_score_is_deterministic(accuracy_settings):
    a = S.score_dnn(accuracy_settings, "D1", n_bootstrap=50)
    b = S.score_dnn(accuracy_settings, "D1", n_bootstrap=50)
    assert (a.decoding, a.decoding_ci) == (b.decoding, b.decoding_ci)
    c = S.score_dnn(accuracy_settings, "D1", n_bootstrap=0, seed=99)
    assert c.decoding != a.decoding  # another layer draw


def test_missing_tree_names_path_and_remedy(tmp_path):
    from bhscore.errors import MissingDataError
    from bhscore.settings import settings_from_dict

    from .conftest import small_settings_dict

    s = settings_from_dict(small_settings_dict(tmp_path / "empty", n_dnns=1))
    with pytest.raises(MissingDataError) as e:
        S.score_dnn(s, "D0")
    msg = str(e.value)
    assert "published/decoding_accuracy/ImageNetTest/sim/D0/conv1_abs/sub-01/V1/accuracy.mat" in msg
    assert "make download-accuracy" in msg and "bhscore decode" in msg


def test_simulated_accuracies_are_seeded(tmp_path):
    from bhscore.formats import read_accuracy
    from bhscore.settings import settings_from_dict

    from .conftest import small_settings_dict

    out = []
    for k in range(2):
        s = settings_from_dict(small_settings_dict(tmp_path / f"r{k}", n_dnns=1))
        simulate_accuracies(s, seed=7, n_units=5, n_voxels=5)
        out.append(read_accuracy(tmp_path / f"r{k}" / "published/encoding_accuracy/ImageNetTest/sim/D0/conv2/sub-02/V3/accuracy.mat")[0])
    np.testing.assert_array_equal(out[0], out[1])


def test_warning_free_on_normal_data(accuracy_settings):
    with warnings.catch_warnings():
        warnings.simplefilter("error", RuntimeWarning)
        S.score_dnn(accuracy_settings, "D0", n_bootstrap=20)
