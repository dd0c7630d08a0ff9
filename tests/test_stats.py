"""bhscore.stats: per-subject scores, the paired bootstrap, pairwise tables, the layer-order null, calibration."""

from __future__ import annotations

import itertools
import math
import warnings

import numpy as np
import pandas as pd
import pytest
from scipy import stats as sps

from bhscore import score as bhs
from bhscore import stats
from bhscore.stats.resample import resample_decoding_counts
from bhscore.stats.simulation import _affinity

ROIS = 5


def random_levels(rng, n_layers=6, n_units=(40, 40, 40), n_subjects=3, n_samples=50):
    """Per-subject accuracies (decoding and encoding) with a mild planted hierarchy and some NaN items."""
    aff = _affinity(0.7, n_layers, ROIS)
    dec = {}
    for s in range(n_subjects):
        levels = []
        for j in range(n_layers):
            a = 0.4 * aff[j][:, None] + 0.2 * rng.standard_normal((ROIS, n_units[s]))
            a[:, rng.random(n_units[s]) < 0.05] = np.nan
            levels.append(np.clip(a, -0.99, 0.99).astype(np.float32))
        dec[f"sub-0{s + 1}"] = levels
    enc = {
        f"sub-0{s + 1}": [
            np.clip(0.4 * aff[:, r][:, None] + 0.2 * rng.standard_normal((n_layers, 30 + 5 * s)), -0.99, 0.99)
            for r in range(ROIS)
        ]
        for s in range(n_subjects)
    }
    return dec, enc


@pytest.fixture(scope="module")
def sim_tops():
    """Four simulated DNNs (strengths 1, 0.6, 0.6, 0) on one brain, small."""
    return stats.simulate_tops([1.0, 0.6, 0.6, 0.0], [6, 7, 7, 5], rng=3, n_units=150, n_voxels=150,
                               names=["Top", "MidA", "MidB", "Flat"])  # fmt: skip


# -------------------------------------------------------------------------------------------------
# item tops and per-subject scores
# -------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("method", ["legacy", "corrected"])
def test_item_tops_count_like_level_counts(method):
    rng = np.random.default_rng(0)
    dec, enc = random_levels(rng)
    tops = stats.item_tops("X", dec, enc, 50, method)
    for pooled, counts_of in (
        (stats.pool_subjects(dec), tops.decoding_counts),
        (stats.pool_subjects(enc), tops.encoding_counts),
    ):
        want, want_n = bhs.level_counts(pooled, 50, method)
        got, got_n = counts_of()
        np.testing.assert_array_equal(got, want)
        np.testing.assert_array_equal(got_n, want_n)
    for s, subject in enumerate(tops.subjects):  # one subject alone
        np.testing.assert_array_equal(
            tops.decoding_counts(s)[0], bhs.level_counts(dec[subject], 50, method)[0]
        )
        np.testing.assert_array_equal(
            tops.encoding_counts(s)[0], bhs.level_counts(enc[subject], 50, method)[0]
        )


def test_pool_subjects_side_by_side():
    a = {"s1": [np.array([[1, 2], [3, 4]])], "s2": [np.array([[5], [6]])]}
    np.testing.assert_array_equal(stats.pool_subjects(a)[0], [[1, 2, 5], [3, 4, 6]])


def test_scores_and_subject_scores_by_hand():
    rng = np.random.default_rng(1)
    dec, enc = random_levels(rng, n_layers=7)
    options = bhs.ScoreOptions(n_draws=30, seed=4)
    tops = stats.item_tops("X", dec, enc, 50)
    ref = bhs.score_from_levels("X", stats.pool_subjects(dec), stats.pool_subjects(enc), 50,
                                bhs.ScoreOptions(n_draws=30, seed=4, n_bootstrap=0))  # fmt: skip
    got = stats.scores_from_tops(tops, options)
    assert got["decoding"] == ref.decoding and got["encoding"] == ref.encoding  # bit for bit
    per = stats.subject_scores(tops, options)
    subsets = bhs.layer_subsets(7, 5, 30, 4)
    for s, subject in enumerate(tops.subjects):  # each subject alone, with the score's own functions
        counts, _ = bhs.level_counts(dec[subject], 50)
        assert per["decoding"][s] == pytest.approx(np.nanmean(bhs.subset_scores(counts, subsets)), abs=1e-12)
        assert per["encoding"][s] == pytest.approx(bhs.pooled_score(bhs.level_counts(enc[subject], 50)[0]), abs=1e-12)
        assert per["averaged"][s] == pytest.approx((per["decoding"][s] + per["encoding"][s]) / 2, abs=1e-15)


def test_levels_by_subject_pool_to_the_tree_levels(accuracy_settings):
    """The new AccuracyTree method reads each file once and pools to decoding_levels() / encoding_levels()."""
    s = accuracy_settings
    name = next(iter(s.dnns))
    tree = bhs.AccuracyTree(s, name)
    by_dec, by_enc = tree.levels_by_subject("decoding"), tree.levels_by_subject("encoding", 50)
    n_files = len(s.dnns[name].layers) * len(s.subjects) * len(s.rois)
    if hasattr(tree, "files"):
        assert [len(tree.files[k]) for k in ("decoding", "encoding")] == [n_files, n_files]
    assert list(by_dec) == list(s.subjects) and len(by_enc[s.subjects[0]]) == len(s.rois)
    for got, want in zip(
        stats.pool_subjects(by_dec), bhs.AccuracyTree(s, name).decoding_levels(), strict=True
    ):
        np.testing.assert_array_equal(got, want)
    for got, want in zip(
        stats.pool_subjects(by_enc), bhs.AccuracyTree(s, name).encoding_levels(50), strict=True
    ):
        np.testing.assert_array_equal(got, want)
    assert by_enc[s.subjects[0]][0].shape[1] == 50  # the paper's subsample of each file
    with pytest.raises(ValueError, match="kind must be"):
        tree.levels_by_subject("both")


def test_read_item_tops_match_the_score_table(accuracy_settings):
    s = accuracy_settings
    options = bhs.ScoreOptions.from_settings(s)
    for name in s.dnns:
        tops = stats.read_item_tops(s, name, options)
        ref = bhs.score_dnn(s, name, n_bootstrap=0)
        np.testing.assert_array_equal(tops.decoding_counts()[0], ref.decoding_counts)
        np.testing.assert_array_equal(tops.encoding_counts()[0], ref.encoding_counts)
        got = stats.scores_from_tops(tops, options)
        assert (got["decoding"], got["encoding"]) == (ref.decoding, ref.encoding)


# -------------------------------------------------------------------------------------------------
# resampling
# -------------------------------------------------------------------------------------------------


def test_random_layer_subsets_are_uniform():
    rng = np.random.default_rng(0)
    sub = stats.random_layer_subsets(7, 5, (4000, 5), rng).reshape(-1, 5)
    assert (sub[:, 0] == 0).all() and (sub[:, -1] == 6).all() and (np.diff(sub, axis=1) > 0).all()
    inner = [tuple(r) for r in sub[:, 1:4]]
    counts = np.array([inner.count(c) for c in itertools.combinations(range(1, 6), 3)])
    assert counts.sum() == len(inner)  # every draw is one of the C(5, 3) = 10 subsets
    assert sps.chisquare(counts).pvalue > 1e-3


def test_subset_spearman_equals_reference():
    rng = np.random.default_rng(2)
    counts = rng.integers(0, 30, size=(6, 9, 5))
    counts[0, :, 1:] = 0  # one top row only: undefined (NaN) in both
    subsets = stats.random_layer_subsets(9, 5, (6, 11), rng)
    want = bhs.spearman_from_counts(counts[np.arange(6)[:, None, None], subsets])
    np.testing.assert_allclose(stats.subset_spearman(counts, subsets), want, rtol=1e-12, equal_nan=True)
    assert np.isnan(want[0]).all()


def _tops(dec_codes, enc_codes, name="X"):
    """ItemTops from explicit codes: dec_codes (n_layers, n_subjects, n_units); enc_codes (n_subjects, n_rois, n)."""
    return stats.ItemTops(name, tuple(f"s{i}" for i in range(len(enc_codes))), ROIS,
                          [[np.asarray(u, dtype=np.int16) for u in layer] for layer in dec_codes],
                          [[np.asarray(v, dtype=np.int16) for v in per] for per in enc_codes])  # fmt: skip


def test_joint_unit_resampling_draws_whole_units():
    """Every subject has the same tops: a unit drawn jointly adds 3 to one cell, so counts stay multiples of 3."""
    rng = np.random.default_rng(5)
    unit = rng.integers(0, ROIS + 1, size=(6, 200))  # 6 layers, top ROI (or dropped) of each unit
    t = _tops(np.repeat(unit[:, None, :], 3, axis=1), rng.integers(0, 7, size=(3, ROIS, 20)))
    joint = resample_decoding_counts(t, 300, np.random.default_rng(1), "joint")
    per_subject = resample_decoding_counts(t, 300, np.random.default_rng(1), "subject")
    assert (joint % 3 == 0).all() and not (per_subject % 3 == 0).all()
    observed = t.decoding_counts()[0]
    for boot in (joint, per_subject):
        assert (boot.sum(axis=2) <= 600).all()  # never more kept units than units x subjects
        # the mean of the resampled tables is the observed table (multinomial with the observed proportions)
        np.testing.assert_allclose(boot.mean(axis=0), observed, rtol=0.08, atol=3)


def test_encoding_resampling_is_paired_across_dnns():
    """Two DNNs with the same voxel tops get identical encoding replicates (same voxels drawn for both)."""
    rng = np.random.default_rng(6)
    enc = rng.integers(0, 7, size=(3, ROIS, 60))
    a = _tops(rng.integers(0, 6, size=(6, 3, 50)), enc, "A")
    b = _tops(rng.integers(0, 6, size=(6, 3, 50)), enc, "B")
    boot = stats.bootstrap_scores([a, b], bhs.ScoreOptions(n_draws=20), n_boot=200, seed=0)
    assert boot.paired.all()
    np.testing.assert_array_equal(boot.replicates["encoding"][0], boot.replicates["encoding"][1])
    assert boot.replicates["encoding"][0].std() > 0
    assert not np.array_equal(boot.replicates["decoding"][0], boot.replicates["decoding"][1])
    d = stats.differences(boot.point["encoding"], boot.replicates["encoding"])
    assert d.diff[0, 1] == 0 and d.ci_low[0, 1] == 0 == d.ci_high[0, 1] and d.p_value[0, 1] == 1.0


def test_unpaired_when_voxel_counts_differ():
    rng = np.random.default_rng(7)
    a = _tops(rng.integers(0, 6, size=(5, 3, 30)), rng.integers(0, 6, size=(3, ROIS, 40)), "A")
    b = _tops(rng.integers(0, 6, size=(5, 3, 30)), rng.integers(0, 6, size=(3, ROIS, 41)), "B")
    boot = stats.bootstrap_scores([a, b], bhs.ScoreOptions(n_draws=10), n_boot=50)
    assert boot.paired.tolist() == [True, False]
    assert not stats.pairwise_table(boot)["paired"].any()


def test_bootstrap_is_seeded_and_keyed_by_dnn(sim_tops):
    """Same seed, same replicates; a pair's replicates do not depend on the other DNNs of the run."""
    options = bhs.ScoreOptions(n_draws=30)
    full = stats.bootstrap_scores(sim_tops, options, n_boot=100, seed=9)
    again = stats.bootstrap_scores(sim_tops, options, n_boot=100, seed=9)
    pair = stats.bootstrap_scores([sim_tops[2], sim_tops[0]], options, n_boot=100, seed=9)
    other = stats.bootstrap_scores(sim_tops, options, n_boot=100, seed=10)
    for c in stats.COMPONENTS:
        np.testing.assert_array_equal(full.replicates[c], again.replicates[c])
        np.testing.assert_array_equal(pair.replicates[c], full.replicates[c][[2, 0]])
        assert not np.array_equal(other.replicates[c], full.replicates[c])
        np.testing.assert_array_equal(
            full.point[c], other.point[c]
        )  # the scores themselves are not resampled


def test_bootstrap_spread_matches_replications():
    """The bootstrap s.d. of one DNN's scores is close to their s.d. over independent simulated experiments."""
    options = bhs.ScoreOptions(n_draws=30)
    sims = [
        stats.simulate_tops([0.5], 6, rng=[4, i], n_units=120, n_voxels=120, names=[f"R{i}"])[0]
        for i in range(60)
    ]
    spread = {
        c: np.std([stats.scores_from_tops(t, options)[c] for t in sims], ddof=1) for c in stats.COMPONENTS
    }
    boot = stats.bootstrap_scores(sims[:8], options, n_boot=300)
    for c in stats.COMPONENTS:
        ratio = np.mean(np.std(boot.replicates[c], axis=1, ddof=1)) / spread[c]
        assert 0.7 < ratio < 1.45, (c, ratio)


# -------------------------------------------------------------------------------------------------
# pairwise tables
# -------------------------------------------------------------------------------------------------


def test_holm_by_hand():
    p = np.array([0.01, 0.04, 0.03, 0.005, np.nan])
    np.testing.assert_allclose(stats.holm(p), [0.03, 0.06, 0.06, 0.02, np.nan])
    assert np.isnan(stats.holm(np.array([np.nan]))).all()
    assert stats.holm(np.array([0.5, 0.6])).tolist() == [1.0, 1.0]


def test_differences_structure():
    rng = np.random.default_rng(8)
    point = np.array([0.5, 0.45, 0.2])
    reps = point[:, None] + 0.02 * rng.standard_normal((3, 2000))
    d = stats.differences(point, reps)
    np.testing.assert_allclose(d.diff, -d.diff.T)
    np.testing.assert_allclose(d.se, d.se.T)
    np.testing.assert_allclose(d.ci_low, -d.ci_high.T)
    assert np.isnan(np.diag(d.p_value)).all() and np.allclose(d.p_holm, d.p_holm.T, equal_nan=True)
    z = 0.05 / d.se[0, 1]
    assert d.p_value[0, 1] == pytest.approx(2 * sps.norm.sf(z))
    assert d.se[0, 1] == pytest.approx(0.02 * math.sqrt(2), rel=0.05)
    assert d.ci_low[0, 1] == pytest.approx(0.05 - 1.96 * 0.02 * math.sqrt(2), abs=0.006)
    assert d.p_value[0, 2] < 1e-10 and d.p_holm[0, 2] < 1e-9


def _shares(letters):
    return np.array([[bool(set(a) & set(b)) for b in letters] for a in letters])


def test_compact_letters_chain_and_property():
    # A differs from C only: A 'a', B 'ab', C 'b'
    diff = np.zeros((3, 3), dtype=bool)
    diff[0, 2] = diff[2, 0] = True
    assert stats.compact_letters([0, 1, 2], diff) == ["a", "ab", "b"]
    rng = np.random.default_rng(9)
    for _ in range(40):  # any symmetric decision matrix: sharing a letter <=> not different
        n = int(rng.integers(2, 10))
        m = np.triu(rng.random((n, n)) < rng.random(), k=1)
        m = m | m.T
        letters = stats.compact_letters(list(rng.permutation(n)), m)
        assert all(letters)
        np.testing.assert_array_equal(_shares(letters), ~m)


def test_pairwise_table_and_letters(sim_tops):
    options = bhs.ScoreOptions(n_draws=30)
    boot = stats.bootstrap_scores(sim_tops, options, n_boot=300)
    t = stats.pairwise_table(boot)
    assert list(t.columns) == stats.PAIRWISE_COLUMNS and len(t) == 3 * 4 * 3
    avg = t[t.component == "averaged"].set_index(["dnn_a", "dnn_b"])
    assert avg.loc[("Top", "Flat"), "significant"] and avg.loc[("Top", "Flat"), "diff"] > 0.5
    assert avg.loc[("Flat", "Top"), "diff"] == -avg.loc[("Top", "Flat"), "diff"]
    assert not avg.loc[("MidA", "MidB"), "significant"]  # same planted strength
    # Holm over the 6 unordered pairs, by hand
    half = t[(t.component == "averaged") & (t.dnn_a < t.dnn_b)]
    np.testing.assert_allclose(half.p_holm, stats.holm(half.p_value.to_numpy()))
    letters = stats.letters_by_component(t, boot.dnns, boot.point)["averaged"]
    assert letters[0] == "a" and set(letters[1]) & set(letters[2]) and not set(letters[0]) & set(letters[3])


def test_compute_stats_table(sim_tops):
    options = bhs.ScoreOptions(n_draws=30)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no stray warnings on normal data
        tables = stats.compute_stats(sim_tops, options, n_boot=100, n_permutations=200)
    st = tables.dnn_stats
    assert list(st.columns) == stats.dnn_stats_columns(sim_tops[0].subjects)
    assert stats.subjects_of(st) == list(sim_tops[0].subjects)
    per = stats.subject_scores(sim_tops[1], options)
    row = st.set_index("dnn").loc["MidA"]
    assert row["averaged_subject_sd"] == pytest.approx(np.std(per["averaged"], ddof=1))
    assert row["null_method"] == "exact" and row["null_n_orderings"] == math.factorial(7)
    assert (st.set_index("dnn").loc[["Top", "MidA"], "averaged_null_p"] < 0.01).all()
    empty = stats.compute_stats([], options)
    assert empty.dnn_stats.empty and empty.pairwise.empty


# -------------------------------------------------------------------------------------------------
# the layer-order null
# -------------------------------------------------------------------------------------------------


def test_layer_permutations_exact_and_random():
    perms, exact = stats.layer_permutations(5)
    assert exact and len(perms) == 120 and len({tuple(p) for p in perms}) == 120
    perms, exact = stats.layer_permutations(9, n_permutations=300, seed=1)
    assert not exact and perms.shape == (300, 9) and (np.sort(perms, axis=1) == np.arange(9)).all()


def test_null_equals_brute_force_on_permuted_accuracies():
    """The null from permuted count tables = rescoring the raw accuracies with the layers reordered."""
    rng = np.random.default_rng(10)
    dec, enc = random_levels(rng, n_layers=5, n_units=(30, 30, 30))
    options = bhs.ScoreOptions(n_draws=10, seed=2)
    tops = stats.item_tops("X", dec, enc, 50)
    null = stats.layer_order_null(tops, options)
    assert null.method == "exact" and null.n_orderings == 120
    pooled_dec, pooled_enc = stats.pool_subjects(dec), stats.pool_subjects(enc)
    subsets = bhs.layer_subsets(5, 5, 10, 2)
    scores = {c: [] for c in stats.COMPONENTS}
    for perm in itertools.permutations(range(5)):
        d_counts, _ = bhs.level_counts([pooled_dec[i] for i in perm], 50)
        d = float(np.nanmean(bhs.subset_scores(d_counts, subsets)))
        e = bhs.pooled_score(bhs.level_counts([level[list(perm)] for level in pooled_enc], 50)[0])  # layers are the rows
        scores["decoding"].append(d)
        scores["encoding"].append(e)
        scores["averaged"].append((d + e) / 2)
    for c in stats.COMPONENTS:
        values = np.array(scores[c])
        assert null.p_value[c] == pytest.approx(np.mean(values >= values[0] - 1e-12), abs=1e-12)
        assert null.null_mean[c] == pytest.approx(values.mean(), abs=1e-12)
    assert null.p_value["averaged"] <= 0.05  # a planted hierarchy beats most orderings


def test_null_monte_carlo_p_formula():
    t = stats.simulate_tops([1.0], 10, rng=1, n_units=100, n_voxels=100)[0]
    null = stats.layer_order_null(t, bhs.ScoreOptions(n_draws=20), n_permutations=199)
    assert null.method == "monte_carlo" and null.n_orderings == 199
    assert null.p_value["averaged"] == pytest.approx(
        1 / 200
    )  # no random order scores as high as the true one


# -------------------------------------------------------------------------------------------------
# calibration (fast versions; the 200-pair versions are marked slow)
# -------------------------------------------------------------------------------------------------


def _rate(df, component, alpha=0.05):
    return float((df[df.component == component].p_value < alpha).mean())


def test_paired_test_small_calibration():
    small = {"n_units": 100, "n_voxels": 100, "n_layers": 6, "n_boot": 200}
    null = stats.calibrate_pairs(0.0, 30, seed=3, **small)
    planted = stats.calibrate_pairs(0.3, 10, seed=4, **small)
    for c in stats.COMPONENTS:
        assert _rate(null, c) <= 0.2, c  # a broken test rejects far more often
        assert _rate(planted, c) == 1.0, c
        assert planted[planted.component == c]["diff"].mean() > 0.15


def test_null_small_uniformity():
    df = stats.calibrate_null(60, n_layers=5, n_units=80, n_voxels=80, options=bhs.ScoreOptions(n_draws=10))
    for c in stats.COMPONENTS:
        p = df[df.component == c].p_value
        assert (df.method == "exact").all() and 0.3 < p.mean() < 0.7 and (p <= 0.1).mean() <= 0.25, c


@pytest.mark.slow
def test_paired_test_calibration_200_pairs():
    """False-positive rate at the nominal level over 200 simulated pairs; power for a planted difference."""
    size = {"n_units": 300, "n_voxels": 300, "n_layers": 6, "n_boot": 500}
    null = stats.calibrate_pairs(0.0, 200, seed=5, **size)
    for c in stats.COMPONENTS:
        lo, hi = sps.binom.ppf([0.001, 0.999], 200, 0.05) / 200  # 99.8% range of a calibrated test's rate
        assert lo <= _rate(null, c) <= hi, (c, _rate(null, c))
    planted = stats.calibrate_pairs(0.05, 100, seed=6, **size)
    assert _rate(planted, "averaged") >= 0.8


@pytest.mark.slow
def test_null_uniform_200_dnns():
    for n_layers in (6, 8):  # exact (720 orderings) and Monte Carlo
        df = stats.calibrate_null(200, n_layers=n_layers, n_permutations=500, n_units=300, n_voxels=300)
        for c in stats.COMPONENTS:
            p = df[df.component == c].p_value.to_numpy()
            assert sps.kstest(p, "uniform").pvalue > 1e-3, (n_layers, c)
            assert (p <= 0.05).mean() <= sps.binom.ppf(0.999, 200, 0.05) / 200


def test_simulate_tops_shapes_and_seed():
    a = stats.simulate_tops([1.0, 0.0], [6, 5], rng=0, n_units=20, n_voxels=30)
    b = stats.simulate_tops([1.0, 0.0], [6, 5], rng=0, n_units=20, n_voxels=30)
    assert [t.n_layers for t in a] == [6, 5] and a[0].encoding[0][0].size == 30
    assert all(np.array_equal(x, y) for x, y in zip(a[0].decoding[2], b[0].decoding[2], strict=True))
    assert isinstance(
        stats.pairwise_table(stats.bootstrap_scores(a, bhs.ScoreOptions(n_draws=5), 20)), pd.DataFrame
    )
