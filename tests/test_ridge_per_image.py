"""The per-image algebra of bhscore.ridge: samples that repeat an image's row are fitted from the distinct rows
(weighted by their counts), with fastl2lir's selections and the row-expanded path's weights."""

from __future__ import annotations

import numpy as np
import pytest

from bhscore.fitting import RidgeOptions, TrainingInputs, fit_predict
from bhscore.ridge import (
    VAR_THRESHOLD,
    GramInputs,
    Groups,
    InputMatrix,
    backend,
    distinct_rows,
    fit,
    fit_reference,
    selection,
)
from tests.test_ridge import _reference_selection, _rel

pytestmark = [
    pytest.mark.filterwarnings("ignore::DeprecationWarning:fastl2lir"),
    pytest.mark.filterwarnings("ignore::PendingDeprecationWarning"),
]

TOL = {"float64": 1e-12, "float32": 2e-5}  # max|dW| / max|W| between the per-image and row-expanded paths


def _repeats(rng, n_images, counts=(4, 5, 6)):
    """Sample -> image index: image i shown counts[i] times (4, 5 or 6), in random order."""
    shown = rng.choice(counts, size=n_images)
    return rng.permutation(np.repeat(np.arange(n_images), shown))


def _encoding_data(seed, n_images=120, m=300, q=24, offset=1.0):
    """Features per image (n_images, m), rows (n_samples,) and voxels (n_samples, q) driven by a few units."""
    rng = np.random.default_rng(seed)
    F = rng.standard_normal((n_images, m)) * 2.0 + offset
    rows = _repeats(rng, n_images)
    Y = F[rows][:, :8] @ rng.standard_normal((8, q)) * 0.3 + rng.standard_normal((rows.size, q)) + 5.0
    return F, rows, Y


def _zscored_source(F, rows, dtype):
    Xs = F[rows]
    return InputMatrix(F, rows=rows, center=Xs.mean(0), scale=Xs.std(0, ddof=1), dtype=dtype)


# -------------------------------------------------------------------------------------------------
# grouping
# -------------------------------------------------------------------------------------------------


def test_groups_sum_expand_and_unused_rows():
    rows = np.array([3, 1, 3, 3, 1, 4])  # row 0 and 2 of the matrix never shown
    g = Groups.from_rows(rows)
    np.testing.assert_array_equal(g.source_rows, [1, 3, 4])
    np.testing.assert_array_equal(g.counts, [2, 3, 1])
    A = np.arange(12.0).reshape(6, 2)
    np.testing.assert_array_equal(g.sum(A), [[2 + 8, 3 + 9], [0 + 4 + 6, 1 + 5 + 7], [10, 11]])
    np.testing.assert_array_equal(g.expand(np.array([[1.0], [3.0], [4.0]]))[:, 0], rows)


def test_distinct_rows_never_joins_rows_that_differ_after_the_probe():
    rng = np.random.default_rng(0)
    G = rng.standard_normal((30, 40)).astype(np.float32)
    G[7, :20] = G[3, :20]  # equal in the probed columns, different later
    rows = _repeats(rng, 30)
    g = distinct_rows(G[rows], probe=16)
    assert g is not None and g.n_groups == 30 and g.worthwhile
    np.testing.assert_array_equal(g.expand(G[rows][g.source_rows]), G[rows])
    assert distinct_rows(rng.standard_normal((50, 4))) is None  # all distinct


# -------------------------------------------------------------------------------------------------
# encoding: inputs per image
# -------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("dtype", ["float64", "float32"])
@pytest.mark.parametrize("mode", ["gram", "wide"])
def test_inputs_per_image_equal_row_expanded_and_fastl2lir(dtype, mode):
    F, rows, Y = _encoding_data(seed=1)
    src = _zscored_source(F, rows, dtype)
    k = 40
    per_image = fit(src, Y, 100.0, k, dtype=dtype, mode=mode, chunk_size=64, device="cpu")
    expanded = fit(src, Y, 100.0, k, dtype=dtype, mode=mode, chunk_size=64, device="cpu", exact_rows=True)
    X = src.materialize()
    np.testing.assert_array_equal(per_image.selection, expanded.selection)
    np.testing.assert_array_equal(per_image.selection, _reference_selection(X, Y, k, np.dtype(dtype)))
    assert _rel(per_image.W, expanded.W) <= TOL[dtype]
    assert _rel(per_image.b, expanded.b) <= TOL[dtype]
    ref = fit_reference(X, Y, 100.0, k, dtype=dtype)
    np.testing.assert_array_equal(ref.W != 0, per_image.W != 0)
    assert _rel(per_image.W, ref.W) <= max(TOL[dtype], 3 * _rel(expanded.W, ref.W))


def test_per_image_gram_is_the_weighted_gram():
    F, rows, _ = _encoding_data(seed=2, m=50)
    src = _zscored_source(F, rows, "float64")
    per_image, expanded = (
        GramInputs(src, "float64", "cpu"),
        GramInputs(src, "float64", "cpu", exact_rows=True),
    )
    assert per_image.per_image and not expanded.per_image
    assert per_image.F.shape == (np.unique(rows).size, 50)  # the distinct rows only
    np.testing.assert_allclose(per_image.G.numpy(), expanded.G.numpy(), rtol=1e-12, atol=1e-9)
    np.testing.assert_allclose(per_image.stats.std, expanded.stats.std, rtol=1e-13)


@pytest.mark.parametrize("mode", ["gram", "wide"])
def test_inputs_per_image_exact_ties_and_constant_outputs(mode):
    """Constant inputs (C = 0, ties among them decided by fastl2lir's argsort) outnumbering the selection's
    remainder, and a constant output (C = NaN everywhere)."""
    F, rows, Y = _encoding_data(seed=3, m=120)
    F[:, 20:100] = 3.0  # 40 informative inputs for n_feat 60: 20 of the tied zeros are selected
    Y[:, 4] = 2.5
    src = InputMatrix(F, rows=rows, dtype="float64")  # not z-scored: non-centred inputs
    k = 60
    per_image = fit(src, Y, 100.0, k, mode=mode, chunk_size=32, device="cpu")
    X = src.materialize()
    np.testing.assert_array_equal(per_image.selection, _reference_selection(X, Y, k, np.float64))
    ref = fit_reference(X, Y, 100.0, k)
    assert _rel(per_image.W, ref.W) <= 1e-9


def test_constant_flag_near_the_threshold_follows_the_expanded_variance():
    """An input whose variance sits at fastl2lir's 1e-8 threshold gets the row-expanded verdict."""
    F, rows, Y = _encoding_data(seed=4, m=60)
    x = np.zeros(F.shape[0])
    x[rows[0]] = 1.0
    v = np.var(x[rows])
    F[:, 5] = x * np.sqrt(1e-8 / v) * (1 + 1e-12)  # variance 1e-8 within rounding
    src = InputMatrix(F, rows=rows, dtype="float64")
    expanded_const = np.var(src.materialize(), axis=0) < VAR_THRESHOLD
    gi = GramInputs(src, "float64", "cpu")
    np.testing.assert_array_equal(gi.stats.const, expanded_const)
    k = 20
    sel = gi.fit(Y, 100.0, k).selection
    np.testing.assert_array_equal(sel, _reference_selection(src.materialize(), Y, k, np.float64))


@pytest.mark.parametrize("dtype", ["float64", "float32"])
@pytest.mark.parametrize("mode", ["gram", "wide", "outputs"])
def test_near_tie_band_and_full_columns_keep_fastl2lir_selection(monkeypatch, dtype, mode):
    """With the rounding bound inflated, most outputs are decided by exact values of the band or of the
    whole column: the selection must not change (inputs per image in Gram and wide mode; outputs per image)."""
    F, rows, Y = _encoding_data(seed=5, m=200, q=30)
    k = 30
    if mode == "outputs":  # decoding-like: voxels X (n, 200) from units per image F[:, :30]
        X = Y @ np.random.default_rng(5).standard_normal((30, 200)) * 0.2 + np.random.default_rng(
            6
        ).standard_normal((rows.size, 200))
        G = F[:, :30]
        expected = _reference_selection(X, G[rows], k, np.dtype(dtype))

        def run():
            return fit(X, G, 100.0, k, dtype=dtype, device="cpu", y_rows=rows)
    else:
        src = _zscored_source(F, rows, dtype)
        expected = _reference_selection(src.materialize(), Y, k, np.dtype(dtype))

        def run():
            return fit(src, Y, 100.0, k, dtype=dtype, mode=mode, chunk_size=48, device="cpu")

    real = selection.refine
    seen = {}

    def spy(*args, **kwargs):
        sel, counts = real(*args, **kwargs)
        for key, v in counts.items():
            seen[key] = seen.get(key, 0) + v
        return sel, counts

    monkeypatch.setattr(selection, "refine", spy)
    for bound in (2e-3, 0.5):  # wide bands; then bands beyond the kept candidates (whole columns)
        monkeypatch.setattr(selection, "rounding_bound", lambda *a, b=bound: np.full(30, b))
        np.testing.assert_array_equal(run().selection, expected)
    assert seen["band"] > 0 and seen["full"] > 0


# -------------------------------------------------------------------------------------------------
# decoding: outputs per image
# -------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_outputs_per_image_equal_row_expanded_and_fastl2lir(dtype):
    rng = np.random.default_rng(6)
    rows = _repeats(rng, 100)
    n, v, q, k = rows.size, 160, 40, 50
    G = rng.standard_normal((100, q))  # features per image
    X = G[rows][:, :4] @ rng.standard_normal((4, v)) * 0.4 + rng.standard_normal((n, v)) + 3.0  # voxels
    X[:, 9] = 7.0  # a constant voxel
    G[:, 2] = 0.0  # a constant unit
    gi = GramInputs(X, dtype, "cpu")
    per_image = gi.fit(G, 100.0, k, y_rows=rows)
    expanded = gi.fit(G[rows], 100.0, k)
    np.testing.assert_array_equal(per_image.selection, expanded.selection)
    np.testing.assert_array_equal(per_image.selection, _reference_selection(X, G[rows], k, np.dtype(dtype)))
    assert _rel(per_image.W, expanded.W) <= TOL[dtype]
    assert np.abs(per_image.b - expanded.b).max() <= TOL[dtype] * np.abs(expanded.W).max()
    assert np.all(per_image.W[:, 2] == 0) and per_image.b[0, 2] == 0
    # the same through fit(), and wide mode (which expands the outputs) agrees
    np.testing.assert_array_equal(fit(X, G, 100.0, k, dtype=dtype, device="cpu", y_rows=rows).selection,
                                  expanded.selection)  # fmt: skip
    wide = fit(X, G, 100.0, k, dtype=dtype, device="cpu", y_rows=rows, mode="wide", chunk_size=50)
    np.testing.assert_array_equal(wide.selection, expanded.selection)


# -------------------------------------------------------------------------------------------------
# the pipeline's TrainingInputs
# -------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("direction", ["decoding", "encoding"])
def test_training_inputs_per_image_and_exact_rows_agree(direction):
    rng = np.random.default_rng(7)
    n_images = 80
    rows = _repeats(rng, n_images)
    feats = rng.standard_normal((n_images, 90)) + 0.5  # per image
    voxels = feats[rows][:, :6] @ rng.standard_normal((6, 70)) * 0.5 + rng.standard_normal((rows.size, 70))
    test_feats, test_vox = rng.standard_normal((12, 90)), rng.standard_normal((12, 70))
    out = {}
    for exact in (False, True):
        opt = RidgeOptions(alpha=100.0, n_feat=25, dtype="float64", device="cpu", exact_rows=exact)
        if direction == "decoding":
            inputs = TrainingInputs(voxels, opt)
            out[exact] = fit_predict(inputs, feats[rows], test_vox, test_feats)
        else:
            inputs = TrainingInputs(feats, opt, rows=rows)
            out[exact] = fit_predict(inputs, voxels, test_feats, test_vox)
        assert inputs._gram.per_image == (direction == "encoding" and not exact)
    np.testing.assert_array_equal(out[False].fit.selection, out[True].fit.selection)
    np.testing.assert_allclose(out[False].accuracy, out[True].accuracy, rtol=0, atol=1e-12)
    np.testing.assert_allclose(out[False].prediction, out[True].prediction, rtol=1e-10, atol=1e-10)


@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_torch_code_paths_on_cpu_tensors(monkeypatch, dtype):
    """The GPU code paths (torch instead of numpy), run on CPU tensors: same selections as numpy's (Gram and
    wide mode per image, wide mode row-expanded, outputs per image)."""
    F, rows, Y = _encoding_data(seed=8, m=150, q=20)
    F[:, 40:50] = 2.0
    src = InputMatrix(F, rows=rows, dtype=dtype)
    X = np.hstack([Y[:, :10], np.random.default_rng(8).standard_normal((rows.size, 90))])  # "voxels"
    k = 30

    def results():
        return [
            fit(src, Y, 100.0, k, dtype=dtype, mode=mode, device="cpu", chunk_size=64, exact_rows=exact)
            for mode, exact in (("gram", False), ("wide", False), ("wide", True))
        ] + [GramInputs(X, dtype, "cpu").fit(F, 100.0, k, y_rows=rows)]

    numpy_results = results()
    monkeypatch.setattr(backend, "numpy_path", lambda device: False)
    torch_results = results()
    for a, b in zip(torch_results, numpy_results, strict=True):
        np.testing.assert_array_equal(a.selection, b.selection)
        assert _rel(a.W, b.W) <= TOL[dtype]
