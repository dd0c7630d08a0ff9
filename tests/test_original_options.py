"""The options that reproduce the original scripts' numerics, against the reference path.

The reference path is what KamitaniLab/BHscore's scripts do, step by step: statistics in numpy, bdpy's
ModelTraining normalisation (``(x - mean) / std``, inf -> 0, NaN kept, then rows sorted, then cast to float32),
fastl2lir's fit, ModelTest's float32 prediction with the float32 saved statistics and weights.
"""

import warnings

import numpy as np
import pytest

from bhscore.fitting import RidgeOptions, TrainingInputs, fit_predict, pearson_columns
from bhscore.ridge import fit_reference

ALPHA, N_FEAT = 10.0, 8


def _reference(x, y, x_index, y_index, x_test, fit_dtype):
    """The original train + predict scripts; x, y are the arrays before sorting (per image or per sample)."""
    x_mean, x_norm = np.mean(x, axis=0)[None], np.std(x, axis=0, ddof=1)[None]
    y_mean, y_norm = np.mean(y, axis=0)[None], np.std(y, axis=0, ddof=1)[None]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # 0/0 of a constant column, as in the originals
        X = (x - x_mean) / x_norm
        X[np.isinf(X)] = 0
        Y = (y - y_mean) / y_norm
        Y[np.isinf(Y)] = 0
    X, Y = X[x_index].astype(np.float32), Y[y_index].astype(np.float32)
    model = fit_reference(X, Y, ALPHA, N_FEAT, fit_dtype)
    W, b = model.W.astype(np.float32), model.b.astype(np.float32)  # saved as float32 (bdmodel)
    f32 = np.float32
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        xt = ((x_test - x_mean.astype(f32)) / x_norm.astype(f32)).astype(f32)
        return (xt @ W + b) * y_norm.astype(f32) + y_mean.astype(f32)


def _data(seed=0, n_images=40, reps=3, n_vox=30, n_units=20):
    rng = np.random.default_rng(seed)
    feats = rng.standard_normal((n_images, n_units)).astype(np.float32)
    rows = np.tile(np.arange(n_images), reps)
    vox = feats[rows] @ rng.standard_normal((n_units, n_vox)) + 2 * rng.standard_normal((rows.size, n_vox))
    test_feats = rng.standard_normal((15, n_units)).astype(np.float32)
    test_vox = test_feats @ rng.standard_normal((n_units, n_vox))
    return feats, rows, vox + 3, test_feats, test_vox + 3


def _opts(dtype, **kw):
    return RidgeOptions(alpha=ALPHA, n_feat=N_FEAT, dtype=dtype, device="cpu", **kw)


@pytest.mark.parametrize("solver", ["batched", "fastl2lir"])
def test_decoding_defaults_match_reference(solver):
    feats, rows, vox, test_feats, test_vox = _data()
    # decoding: x = voxels per sample, y = features per image, sorted to the samples
    ref = _reference(vox, feats, np.arange(rows.size), rows, test_vox, "float64")
    out = fit_predict(TrainingInputs(vox, _opts("float64", solver=solver)), feats[rows], test_vox, test_feats)
    np.testing.assert_allclose(out.prediction, ref, rtol=0, atol=2e-6 * np.abs(ref).max())
    np.testing.assert_allclose(out.accuracy, pearson_columns(ref, test_feats), atol=1e-6)
    # the alternatives change the numbers only in the last bits here (Y's scale cancels out of a linear fit)
    alt = fit_predict(TrainingInputs(vox, _opts("float64", solver=solver, zscore_over="samples",
                                                float32_rounding=False)), feats[rows], test_vox, test_feats)
    assert not np.array_equal(alt.prediction, out.prediction)


@pytest.mark.parametrize("solver", ["batched", "fastl2lir"])
def test_encoding_defaults_match_reference(solver):
    feats, rows, vox, test_feats, test_vox = _data(1)
    # encoding: x = features per image (statistics over the images), sorted to the samples; y = voxels
    ref = _reference(feats, vox, rows, np.arange(rows.size), test_feats, "float32")
    out = fit_predict(TrainingInputs(feats, _opts("float32", solver=solver), rows=rows), vox, test_feats, test_vox)
    np.testing.assert_allclose(out.accuracy, pearson_columns(ref, test_vox), atol=2e-5)
    over_samples = fit_predict(TrainingInputs(feats, _opts("float32", solver=solver, zscore_over="samples"),
                                              rows=rows), vox, test_feats, test_vox)  # fmt: skip
    assert not np.array_equal(over_samples.prediction, out.prediction)


def test_constant_input_makes_every_accuracy_nan_as_the_original():
    feats, rows, vox, test_feats, test_vox = _data(2)
    feats[:, 5] = 0.0  # a dead unit: 0/0 in the original z-scoring
    ref = _reference(feats, vox, rows, np.arange(rows.size), test_feats, "float32")
    assert np.isnan(pearson_columns(ref, test_vox)).all()  # fastl2lir selects the NaN unit for every voxel
    out = fit_predict(TrainingInputs(feats, _opts("float32"), rows=rows), vox, test_feats, test_vox)
    assert np.isnan(out.accuracy).all()
    sane = fit_predict(TrainingInputs(feats, _opts("float32", constant_inputs="zero"), rows=rows), vox, test_feats,
                       test_vox)  # fmt: skip
    assert np.isfinite(sane.accuracy).all() and sane.accuracy.mean() > 0



# -------------------------------------------------------------------------------------------------
# item 4: the original encoding flattens each image's units in Fortran order
# -------------------------------------------------------------------------------------------------


def test_fortran_unit_order_equals_numpys_fortran_reshape():
    from bhscore.formats import fortran_unit_order

    rng = np.random.default_rng(0)
    for shape in [(3, 4, 5), (2, 7), (6,), (1, 1, 9)]:
        x = rng.standard_normal((4, *shape))
        np.testing.assert_array_equal(
            x.reshape(4, -1)[:, fortran_unit_order(shape)], x.reshape(4, -1, order="F")
        )


def test_encoding_inputs_follow_the_settings_unit_order(tmp_path):
    """A layer of (C, H, W) units is reordered for encoding (default 'fortran'), a flat one is left alone."""
    import json

    from bhscore import formats
    from bhscore.datastore import DataStore
    from bhscore.paths import TRAINING, Layout
    from bhscore.settings import load_settings

    raw = {"data_root": ".", "subjects": ["sub-01"], "rois": ["V1", "V2"],
           "analysis": {"score": {"layers_per_draw": 3}, "encoding": {"inputs": "subset"}},
           "dnns": {"N": {"dir": "fw/N", "layers": ["conv", "pool", "fc"]}}}  # fmt: skip
    (tmp_path / "settings.json").write_text(json.dumps(raw))
    s = load_settings(tmp_path / "settings.json")
    d = Layout.from_settings(s).features_dir(TRAINING, "fw/N")
    formats.save_feature(d / "conv" / "n01_1.mat", np.zeros((1, 2, 3, 4)))
    formats.save_feature(d / "fc" / "n01_1.mat", np.zeros((1, 10)))
    formats.save_feature(d / "pool" / "n01_1.mat", np.zeros((1, 5, 1, 1)))
    store = DataStore(s, kind="encoding")
    np.testing.assert_array_equal(store.unit_order("N", "conv"), formats.fortran_unit_order((2, 3, 4)))
    assert store.unit_order("N", "fc") is None and store.unit_order("N", "pool") is None
    raw["analysis"]["encoding"]["unit_order"] = "c"
    (tmp_path / "settings.json").write_text(json.dumps(raw))
    assert DataStore(load_settings(tmp_path / "settings.json"), kind="encoding").unit_order("N", "conv") is None
