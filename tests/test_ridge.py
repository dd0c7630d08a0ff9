"""bhscore.ridge against the reference package fastl2lir 0.11 on the same seeded inputs."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import torch

from bhscore import ridge
from bhscore.ridge import InputMatrix, fit, fit_reference

pytestmark = [
    pytest.mark.filterwarnings("ignore::DeprecationWarning:fastl2lir"),
    pytest.mark.filterwarnings("ignore::PendingDeprecationWarning"),
]


def _data(seed=0, n=300, m=80, q=20, offset=0.0, scale=1.0):
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((n, m)) * scale + offset
    Y = X[:, :10] @ rng.standard_normal((10, q)) * 0.2 + rng.standard_normal((n, q)) + offset / 2
    return X, Y


def _reference_selection(X, Y, k, dtype):
    """fastl2lir's selection, reproduced with its own corrmat and its argsort rule."""
    from fastl2lir.fastl2lir import corrmat

    X, Y = X.astype(dtype), Y.astype(dtype)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        C = corrmat(X, Y, "col")
    C[np.nonzero(np.var(X, axis=0) < 1e-8), :] = 0.0
    return np.sort(np.stack([np.argsort(abs(C[:, j]))[::-1][:k] for j in range(Y.shape[1])]), axis=1)


def _rel(a, b):
    return np.abs(a - b).max() / np.abs(b).max()


def _check(ours, ref, tol):
    assert ours.W.shape == ref.W.shape and ours.b.shape == ref.b.shape
    assert _rel(ours.W, ref.W) <= tol
    assert _rel(ours.b, ref.b) <= tol


@pytest.mark.parametrize("mode", ["gram", "wide"])
def test_float64_equivalence_non_centred(mode):
    X, Y = _data(offset=3.0, scale=2.0)
    k = 30
    ours = fit(X, Y, 100.0, k, dtype="float64", mode=mode, chunk_size=23, device="cpu")
    ref = fit_reference(X, Y, 100.0, k, dtype="float64")
    np.testing.assert_array_equal(ours.selection, _reference_selection(X, Y, k, np.float64))
    # fastl2lir's own nonzero pattern is the same selection
    np.testing.assert_array_equal(ref.W != 0, ours.W != 0)
    _check(ours, ref, 1e-10)


@pytest.mark.parametrize("mode", ["gram", "wide"])
def test_float32_equivalence(mode):
    X, Y = _data(seed=1, n=400, m=120, q=30)
    k = 40
    ours = fit(X, Y, 100.0, k, dtype="float32", mode=mode, chunk_size=50, device="cpu")
    ref = fit_reference(X, Y, 100.0, k, dtype="float32")
    assert ours.W.dtype == np.float32
    np.testing.assert_array_equal(ours.selection, _reference_selection(X, Y, k, np.float32))
    _check(ours, ref, 1e-4)


def test_float32_non_centred_as_accurate_as_reference():
    """Large offsets make float32 ill-conditioned for both; ours stays as close to the float64 answer."""
    X, Y = _data(seed=2, offset=3.0, scale=2.0)
    truth = fit(X, Y, 100.0, 30, dtype="float64", device="cpu")
    ref = fit_reference(X, Y, 100.0, 30, dtype="float32")
    ours = fit(X, Y, 100.0, 30, dtype="float32", device="cpu")
    for attr in ("W", "b"):
        err_ref = _rel(getattr(ref, attr), getattr(truth, attr))
        assert _rel(getattr(ours, attr), getattr(truth, attr)) <= 5 * err_ref + 1e-6


@pytest.mark.parametrize("n", [300, 60])  # primal (n > m + 1) and dual (n <= m + 1) forms
@pytest.mark.parametrize("n_feat", [0, 80, 500])
def test_no_selection_is_plain_ridge(n, n_feat):
    X, Y = _data(seed=3, n=n, m=80, offset=1.0)
    ours = fit(X, Y, 50.0, n_feat, device="cpu")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # fastl2lir warns when n_feat > n_inputs
        ref = fit_reference(X, Y, 50.0, n_feat)
    assert ours.selection is None
    _check(ours, ref, 1e-10)
    # alpha sits on the whole diagonal, the bias included
    Xa = np.hstack([X, np.ones((n, 1))])
    Wb = np.linalg.solve(Xa.T @ Xa + 50.0 * np.eye(81), Xa.T @ Y)
    np.testing.assert_allclose(ours.W, Wb[:-1], rtol=1e-8, atol=1e-12)


def test_wide_plain_ridge_dual():
    X, Y = _data(seed=4, n=50, m=120, offset=0.5)
    ours = fit(X, Y, 10.0, 0, mode="wide", chunk_size=32, device="cpu")
    _check(ours, fit_reference(X, Y, 10.0, 0), 1e-10)


@pytest.mark.parametrize("mode", ["gram", "wide"])
def test_constant_inputs_ties_follow_fastl2lir(mode):
    """60 constant inputs (C = 0) and only 40 others for n_feat = 50: 10 of the tied zeros are selected in
    fastl2lir's (numpy sort) order; a non-centred constant is collinear with the bias, so W depends on it."""
    X, Y = _data(seed=5, m=100)
    X[:, 10:70] = 3.0
    k = 50
    ours = fit(X, Y, 100.0, k, mode=mode, chunk_size=11, device="cpu")
    ref = fit_reference(X, Y, 100.0, k)
    np.testing.assert_array_equal(ours.selection, _reference_selection(X, Y, k, np.float64))
    _check(ours, ref, 1e-10)


def test_constant_inputs_never_beat_informative_ones():
    X, Y = _data(seed=6, m=60)
    X[:, :5] = 1.5
    ours = fit(X, Y, 100.0, 20, device="cpu")
    assert not np.isin(ours.selection, np.arange(5)).any()
    _check(ours, fit_reference(X, Y, 100.0, 20), 1e-10)


@pytest.mark.parametrize("mode", ["gram", "wide"])
def test_constant_outputs(mode):
    """A constant output has C = NaN (ranked first by numpy's sort): same selection and weights, no crash."""
    X, Y = _data(seed=7)
    Y[:, 2] = 4.0
    Y[:, 5] = 0.0
    ours = fit(X, Y, 100.0, 30, mode=mode, chunk_size=27, device="cpu")
    ref = fit_reference(X, Y, 100.0, 30)
    np.testing.assert_array_equal(ours.selection, _reference_selection(X, Y, 30, np.float64))
    assert np.all(ours.W[:, 5] == 0) and ours.b[0, 5] == 0
    _check(ours, ref, 1e-10)


def test_alpha_zero_and_batch_size_invariance():
    X, Y = _data(seed=8)
    a = fit(X, Y, 0.0, 20, device="cpu", batch_size=1)
    b = fit(X, Y, 0.0, 20, device="cpu", batch_size=7)
    np.testing.assert_allclose(a.W, b.W, rtol=0, atol=1e-12)
    _check(a, fit_reference(X, Y, 0.0, 20), 1e-9)


def test_wide_inputs_streamed_z_scored_memmap(tmp_path):
    """Wide mode reading a memory map through InputMatrix (rows expanded, z-scored on the fly) equals the
    Gram mode on the materialised matrix."""
    rng = np.random.default_rng(9)
    F = rng.standard_normal((40, 150)).astype(np.float32) * 3 + 1  # per image
    rows = rng.permutation(np.repeat(np.arange(40), 3))  # 120 samples, each image 3 times
    path = tmp_path / "feat.npy"
    np.save(path, F)
    mm = np.load(path, mmap_mode="r")
    Xs = F[rows].astype(np.float64)
    mean, sd = Xs.mean(0), Xs.std(0, ddof=1)
    Y = Xs[:, :5] @ rng.standard_normal((5, 12)) + rng.standard_normal((120, 12))
    src = InputMatrix(mm, rows=rows, center=mean, scale=sd, dtype="float64")
    wide = fit(src, Y, 10.0, 20, mode="wide", chunk_size=32, batch_size=5, device="cpu")
    Xz = (Xs - mean) / sd
    dense = fit(Xz, Y, 10.0, 20, mode="gram", device="cpu")
    np.testing.assert_array_equal(wide.selection, dense.selection)
    _check(wide, dense, 1e-10)
    _check(wide, fit_reference(Xz, Y, 10.0, 20), 1e-10)


def test_predict_and_dense_weights():
    X, Y = _data(seed=10)
    res = fit(X, Y, 100.0, 30, device="cpu")
    W = res.W
    assert ((W != 0).sum(axis=0) == 30).all()
    np.testing.assert_allclose(res.predict(X[:7]), X[:7] @ W + res.b, rtol=1e-12, atol=1e-12)
    est = ridge.FastL2LiR(solver="batched", device="cpu").fit(X, Y, alpha=100.0, n_feat=30)
    np.testing.assert_allclose(est.predict(X[:7]), res.predict(X[:7]), rtol=1e-12)
    ref = ridge.FastL2LiR(solver="fastl2lir").fit(X, Y, alpha=100.0, n_feat=30)
    np.testing.assert_allclose(ref.predict(X[:7]), res.predict(X[:7]), rtol=1e-8, atol=1e-10)


def test_solver_table():
    """Every solver of the table takes fit's arguments (those it has no use for are ignored)."""
    X, Y = _data(seed=14)
    rows = np.arange(X.shape[0]) % 100
    fits = {name: solve(X, Y[:100], 100.0, 30, dtype="float64", device="cpu", progress=False, y_rows=rows)
            for name, solve in ridge.SOLVERS.items()}  # fmt: skip
    assert list(fits) == ["batched", "fastl2lir"]
    _check(fits["batched"], fits["fastl2lir"], 1e-10)
    _check(fits["fastl2lir"], fit_reference(X, Y[:100][rows], 100.0, 30), 0.0)
    assert ridge.get_solver("fastl2lir") is fit_reference
    with pytest.raises(ValueError, match="batched"):
        ridge.FastL2LiR(solver="ours")


def test_input_errors():
    X, Y = _data(seed=11)
    X[3, 4] = np.nan
    with pytest.raises(ValueError, match="non-finite"):
        fit(X, Y, 1.0, 10, device="cpu")
    with pytest.raises(ValueError, match="samples"):
        fit(np.ones((10, 4)), np.ones((9, 2)), 1.0, 2, device="cpu")
    with pytest.raises(ValueError, match="float32 or float64"):
        fit(np.ones((10, 4)), np.ones((10, 2)), dtype="float16")


def test_threads_restored():
    before = torch.get_num_threads()
    X, Y = _data(seed=12, q=200)
    fit(X, Y, 100.0, 40, device="cpu", batch_size=8)
    assert torch.get_num_threads() == before


@pytest.mark.gpu
@pytest.mark.parametrize("dtype,tol", [("float64", 1e-10), ("float32", 1e-4)])
@pytest.mark.parametrize("mode", ["gram", "wide"])
def test_cuda_matches_reference(dtype, tol, mode):
    if not torch.cuda.is_available():
        pytest.skip("no CUDA device")
    X, Y = _data(seed=13, n=600, m=200, q=50)
    ours = fit(X, Y, 100.0, 60, dtype=dtype, device="cuda", mode=mode, chunk_size=64)
    ref = fit_reference(X, Y, 100.0, 60, dtype=dtype)
    if dtype == "float64":
        np.testing.assert_array_equal(ours.selection, _reference_selection(X, Y, 60, np.float64))
    _check(ours, ref, tol)
