"""dtype ``float32_mixed``: fastl2lir <= 0.7's arithmetic (float32 selection, float64 Gram and solves), checked
against fastl2lir 0.7 itself (installed beside the current fastl2lir by ``make install``)."""

from __future__ import annotations

import numpy as np
import pytest

from bhscore import ridge
from bhscore.fitting import RidgeOptions, TrainingInputs, fit_predict
from bhscore.ridge.reference import LEGACY_ENV, fit_reference, legacy_fastl2lir

ALPHA, K = 100.0, 40


def _zscore(A: np.ndarray) -> np.ndarray:
    return (A - A.mean(axis=0)) / A.std(axis=0, ddof=1)


@pytest.fixture(scope="module")
def data():
    """Encoding-like: 120 images x 5 presentations, inputs per image; outputs with a planted dependence."""
    rng = np.random.default_rng(7)
    rows = np.repeat(np.arange(120), 5)
    F = _zscore(rng.standard_normal((120, 300)))
    Y = _zscore(F[rows][:, :25] @ rng.standard_normal((25, 30)) + 2 * rng.standard_normal((600, 30)))
    return F, rows, Y


def _close(ours: ridge.RidgeFit, ref: ridge.RidgeFit) -> None:
    W, Wr = ours.W, ref.coef
    assert W.dtype == np.float32  # stored as fastl2lir stores them
    np.testing.assert_array_equal(W != 0, Wr != 0)  # the same selections
    assert np.abs(W - Wr).max() <= 1e-6 * np.abs(Wr).max()
    assert np.abs(ours.b - ref.b).max() <= 1e-6 * np.abs(ref.b).max()


def test_the_legacy_reference_is_fastl2lir_0_7_beside_the_current_one():
    import fastl2lir

    legacy = legacy_fastl2lir()
    assert legacy.__name__ == "fastl2lir_legacy" and legacy is not fastl2lir
    assert "0.7" in legacy.__path__[0]


@pytest.mark.parametrize("mode", ["gram", "wide"])
def test_mixed_equals_fastl2lir_0_7_row_expanded(data, mode):
    F, rows, Y = data
    ref = fit_reference(F[rows], Y, ALPHA, K, "float32", solve_dtype="float64")
    ours = ridge.fit(F[rows], Y, ALPHA, K, dtype="float32", solve_dtype="float64", mode=mode, device="cpu")
    _close(ours, ref)


@pytest.mark.parametrize("mode", ["gram", "wide"])
def test_mixed_equals_fastl2lir_0_7_per_image_inputs(data, mode):
    F, rows, Y = data
    ref = fit_reference(F[rows], Y, ALPHA, K, "float32", solve_dtype="float64")
    ours = ridge.fit(ridge.InputMatrix(F, rows), Y, ALPHA, K, dtype="float32", solve_dtype="float64", mode=mode,
                     device="cpu")  # fmt: skip
    assert ours.info["per_image"]
    _close(ours, ref)


def test_mixed_equals_fastl2lir_0_7_per_image_outputs(data):
    F, rows, _ = data
    rng = np.random.default_rng(3)
    X = _zscore(F[rows][:, :40] @ rng.standard_normal((40, 200)) + 3 * rng.standard_normal((600, 200)))
    ref = fit_reference(X, F[:, :30], ALPHA, K, "float32", y_rows=rows, solve_dtype="float64")
    ours = ridge.fit(X, F[:, :30], ALPHA, K, dtype="float32", solve_dtype="float64", y_rows=rows, device="cpu")
    assert ours.info["per_image"]
    _close(ours, ref)


def test_mixed_is_neither_float32_nor_float64(data):
    """The mode matters: fastl2lir 0.7's float32 fit differs from 0.11's float32 and from float64."""
    F, rows, Y = data
    legacy = fit_reference(F[rows], Y, ALPHA, K, "float32", solve_dtype="float64").coef
    for dtype in ("float32", "float64"):
        other = fit_reference(F[rows], Y, ALPHA, K, dtype).coef
        assert np.abs(legacy - other).max() > 1e-9 * np.abs(legacy).max(), dtype


def test_settings_dtype_float32_mixed_through_both_solvers(data):
    """``float32_mixed`` in the settings: the batched solver and the reference solver (fastl2lir 0.7) agree."""
    F, rows, Y = data
    params = {"alpha": ALPHA, "n_feat": K, "dtype": "float32_mixed", "float32_rounding": True}
    results = {}
    for solver in ("batched", "fastl2lir"):
        options = RidgeOptions.from_params({**params, "solver": solver}, device="cpu")
        assert (options.dtype, options.solve_dtype) == ("float32", "float64")
        inputs = TrainingInputs(F, options, rows=rows)
        results[solver] = fit_predict(inputs, Y, F[:10], Y[:10]).prediction
    np.testing.assert_allclose(results["batched"], results["fastl2lir"], rtol=1e-5, atol=1e-6)


def test_a_missing_legacy_fastl2lir_names_the_install_command(tmp_path, monkeypatch):
    import sys

    monkeypatch.setenv(LEGACY_ENV, str(tmp_path))
    monkeypatch.delitem(sys.modules, "fastl2lir_legacy", raising=False)
    with pytest.raises(ModuleNotFoundError, match="make install"):
        legacy_fastl2lir()


def test_the_parameter_set_of_float32_mixed_is_its_own():
    from bhscore.provenance import ParamSet
    from bhscore.settings import load_settings

    settings = load_settings()  # the repository's settings.json
    ids = {dt: ParamSet.from_settings(settings, "encoding", dtype=dt).id for dt in ("float32", "float32_mixed")}
    assert ids["float32"] != ids["float32_mixed"]
