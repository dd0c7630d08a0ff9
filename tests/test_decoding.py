"""Decoding and encoding jobs: z-scoring, accuracy, sample matching, outputs, end to end with the score."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from bhscore import formats, jobs
from bhscore.errors import UserError
from bhscore.fitting import (
    RidgeOptions,
    TrainingInputs,
    fit_predict,
    pearson_columns,
    sample_rows,
    zscore_stats,
)
from bhscore.paths import TEST, TRAINING, Layout
from bhscore.provenance import ParamSet
from bhscore.settings import load_settings
from bhscore.sources import accuracy_file

pytestmark = [
    pytest.mark.filterwarnings("ignore::DeprecationWarning:fastl2lir"),
    pytest.mark.filterwarnings("ignore::PendingDeprecationWarning"),
]

N_TEST = 30


@pytest.fixture(scope="module")
def small_dataset(tmp_path_factory):
    """A small simulated experiment (2 subjects, 2 DNNs x 5 layers); returns its settings path."""
    from bhscore.simulate import SimulatedDNN, simulate_dataset

    dnns = (
        SimulatedDNN("Planted", "simulated/Planted", 5, hierarchical=True, flavour="v7.3"),
        SimulatedDNN("Control", "simulated/Control", 5, hierarchical=False, flavour="v5"),
    )
    path = simulate_dataset(
        tmp_path_factory.mktemp("dec") / "data", seed=1, n_train=100, train_repeats=2, n_test=N_TEST,
        test_repeats=3, n_units=32, voxels_per_roi=(20, 30), dnns=dnns, n_feat=15,
    )  # fmt: skip
    raw = json.loads(path.read_text())
    raw["subjects"] = raw["subjects"][:2]
    raw["analysis"]["score"]["n_bootstrap"] = 50
    path.write_text(json.dumps(raw))
    return path


def _copy_dataset(src_settings: Path, dst: Path) -> Path:
    """A fresh data root with the same inputs (fMRI, features, settings), no outputs."""
    import shutil

    root = src_settings.parent
    for sub in ("fmri", "features"):
        shutil.copytree(root / sub, dst / sub)
    shutil.copy(src_settings, dst / "settings.json")
    return dst / "settings.json"


# -------------------------------------------------------------------------------------------------
# numerics
# -------------------------------------------------------------------------------------------------


def test_zscore_ddof1_and_constant_guard():
    rng = np.random.default_rng(0)
    X = rng.standard_normal((50, 6)) * 3 + 2
    X[:, 2] = 0.1  # constant: a naive (x - mean) / std gives NaN or huge values
    zs = zscore_stats(X)
    np.testing.assert_allclose(zs.norm[[0, 1, 3]], X[:, [0, 1, 3]].std(0, ddof=1))
    Z = zs.apply(X)
    assert np.isfinite(Z).all() and np.all(Z[:, 2] == 0)
    np.testing.assert_allclose(Z[:, 0].std(ddof=1), 1.0)
    np.testing.assert_allclose(zs.invert(Z), X, rtol=1e-12)
    # statistics over expanded rows (an image shown several times) = over the materialised samples
    rows = rng.integers(0, 50, size=120)
    a, b = zscore_stats(X, rows=rows, chunk=4), zscore_stats(X[rows])
    np.testing.assert_allclose(a.mean, b.mean, rtol=1e-13)
    np.testing.assert_allclose(a.norm, b.norm, rtol=1e-13)


def test_pearson_columns():
    rng = np.random.default_rng(1)
    P, T = rng.standard_normal((40, 5)), rng.standard_normal((40, 5))
    T[:, 1] = 3.0
    P[:, 3] = P[0, 3]
    r = pearson_columns(P, T)
    for j in (0, 2, 4):
        np.testing.assert_allclose(r[j], np.corrcoef(P[:, j], T[:, j])[0, 1], rtol=1e-12)
    assert np.isnan(r[1]) and np.isnan(r[3])


def test_samples_matched_by_name_and_mismatch_named():
    rows = sample_rows(["b", "a", "b", "c"], ["a", "b", "c"], "x")
    np.testing.assert_array_equal(rows, [1, 0, 1, 2])
    with pytest.raises(UserError, match="n01_9, n02_7"):
        sample_rows(["a", "n02_7", "n01_9"], ["a"], "layer fc6")


@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_fit_predict_solvers_agree_and_constant_units_give_nan(dtype):
    rng = np.random.default_rng(2)
    X = rng.standard_normal((200, 60)) + 4
    X[:, 7] = 2.0  # a constant voxel
    Y = X[:, :8] @ rng.standard_normal((8, 25)) + rng.standard_normal((200, 25))
    Y[:, 4] = 1.5  # a dead unit
    Xt = rng.standard_normal((20, 60)) + 4
    Yt = Xt[:, :8] @ rng.standard_normal((8, 25))
    Yt[:, 9] = 0.0  # a unit constant over the test images
    out = {}
    for solver in ("batched", "fastl2lir"):
        # the sane alternatives of the original scripts' numerics (tests/test_original_options.py)
        opt = RidgeOptions(alpha=100.0, n_feat=20, dtype=dtype, solver=solver, device="cpu",
                           constant_inputs="zero", zscore_over="samples", float32_rounding=False)
        out[solver] = fit_predict(TrainingInputs(X, opt), Y, Xt, Yt)
    a, b = out["batched"].accuracy, out["fastl2lir"].accuracy
    assert np.isnan(a[4]) and np.isnan(a[9]) and np.isnan(b[4])
    ok = ~np.isnan(a)
    assert ok.sum() == 23 and np.nanmin(a) > -1
    np.testing.assert_allclose(a[ok], b[ok], atol=1e-9 if dtype == "float64" else 1e-4)
    np.testing.assert_allclose(out["batched"].prediction, out["fastl2lir"].prediction, rtol=1e-3, atol=1e-6)


# -------------------------------------------------------------------------------------------------
# jobs on a simulated dataset
# -------------------------------------------------------------------------------------------------


def test_end_to_end_planted_hierarchy_recovered(small_dataset, tmp_path):
    from bhscore.score import score_table

    s = load_settings(_copy_dataset(small_dataset, tmp_path))
    dec = jobs.run(s, "decoding", progress=False)
    enc = jobs.run(s, "encoding", progress=False)
    n_jobs = 2 * 5 * 2 * 5
    assert len(dec.ran) == n_jobs and len(enc.ran) == n_jobs
    lay = Layout.from_settings(s)
    acc, n = formats.read_accuracy(accuracy_file(s, "decoding", "Planted", "layer2", "sub-02", "V3"))
    assert acc.shape == (32,) and n == N_TEST
    acc, n = formats.read_accuracy(accuracy_file(s, "encoding", "Control", "layer4", "sub-01", "HVC"))
    assert acc.size == formats.read_fmri(lay.fmri_file("sub-01", TEST), ["HVC"]).rois["HVC"].shape[1]
    table = score_table(s, progress=False).set_index("dnn")
    for col in ("decoding", "encoding", "averaged"):
        assert table.loc["Planted", col] > 0.5, table
        assert table.loc["Planted", col] > table.loc["Control", col] + 0.4, table
    # a second run finds everything done
    again = jobs.run(s, "decoding", progress=False)
    assert again.ran == [] and again.already_done == n_jobs


def test_optional_outputs_and_reference_solver(small_dataset, tmp_path):
    s = load_settings(_copy_dataset(small_dataset, tmp_path))
    sel = dict(dnns=["Planted"], layers=["layer3"], subjects=["sub-01"], rois=["V4"])
    rep = jobs.run(s, "decoding", save_predictions=True, save_model=True, progress=False, **sel)
    assert len(rep.ran) == 1
    lay = Layout.from_settings(s)
    acc, _ = formats.read_accuracy(accuracy_file(s, "decoding", "Planted", "layer3", "sub-01", "V4"))
    set_id = ParamSet.from_settings(s, "decoding").id
    pred_dir = lay.decoded_features_dir(set_id, "simulated/Planted", "layer3", "sub-01", "V4")
    names = formats.feature_labels(lay.features_dir(TEST, "simulated/Planted"), "layer3")
    pred = np.vstack([formats.load_feature(pred_dir / f"{n}.mat").ravel() for n in names])
    true = formats.read_layer(lay.features_dir(TEST, "simulated/Planted"), "layer3", labels=names)
    from bhscore.fitting import pearson_columns as pc

    np.testing.assert_allclose(pc(pred, true), acc, atol=1e-5)
    # the saved decoder reproduces the decoded features from the averaged test fMRI
    model = formats.load_bdmodel(lay.model_dir("decoding", set_id, "simulated/Planted", "layer3", "sub-01", "V4"))
    te = formats.read_fmri(lay.fmri_file("sub-01", TEST), ["V4"])
    Xt, names_t = formats.average_by_label(te.rois["V4"], te.labels)
    assert names_t == names
    Z = (Xt - model["x_mean"]) / model["x_norm"]
    np.testing.assert_allclose(
        (Z @ model["W"] + model["b"]) * model["y_norm"] + model["y_mean"], pred, atol=2e-3
    )
    # the reference solver gives the same accuracies, in a parameter set of its own
    sel = {**sel, "rois": ["V2"]}
    ref = jobs.run(s, "decoding", solver="fastl2lir", progress=False, **sel)
    ours = jobs.run(s, "decoding", progress=False, **sel)
    assert ref.param_set != ours.param_set and len(ref.ran) == len(ours.ran) == 1
    a, b = (formats.read_accuracy(lay.accuracy_file(lay.param_set_dir("decoding", r.param_set), "simulated/Planted",
                                                    "layer3", "sub-01", "V2"))[0] for r in (ref, ours))  # fmt: skip
    np.testing.assert_allclose(a, b, atol=1e-6)


def test_missing_feature_file_is_named(small_dataset, tmp_path):
    s = load_settings(_copy_dataset(small_dataset, tmp_path))
    lay = Layout.from_settings(s)
    layer_dir = lay.features_dir(TRAINING, "simulated/Control") / "layer1"
    victim = sorted(layer_dir.glob("*.mat"))[5]
    victim.unlink()
    for kind in ("decoding", "encoding"):
        with pytest.raises(UserError, match=victim.stem):
            jobs.run(s, kind, dnns=["Control"], layers=["layer1"], subjects=["sub-01"], progress=False)
        assert not list(lay.computed_root.rglob("accuracy.mat"))


def test_killed_run_leaves_nothing_that_looks_complete_and_rerun_finishes(small_dataset, tmp_path):
    settings_path = _copy_dataset(small_dataset, tmp_path)
    s = load_settings(settings_path)
    lay = Layout.from_settings(s)
    tree = lay.computed_root / "decoding_accuracy"
    env = {**os.environ, "TQDM_DISABLE": "1"}
    proc = subprocess.Popen(
        [sys.executable, "-m", "bhscore.cli", "decode", "--settings", str(settings_path), "--no-progress"],
        env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and len(list(tree.rglob("accuracy.mat"))) < 3:
            time.sleep(0.02)
        proc.send_signal(signal.SIGKILL)  # no chance to clean up
    finally:
        proc.wait(timeout=30)
    finished = list(tree.rglob("accuracy.mat"))
    n_jobs = 2 * 5 * 2 * 5
    assert 3 <= len(finished) < n_jobs, "the run was not interrupted mid-way"
    for path in finished:  # every visible file is complete and readable
        acc, n = formats.read_accuracy(path)
        assert acc.shape == (32,) and n == N_TEST
    rep = jobs.run(s, "decoding", progress=False)
    assert len(rep.ran) == n_jobs - len(finished) and rep.already_done == len(finished)
    assert len(list(tree.rglob("accuracy.mat"))) == n_jobs
    assert not list(tree.rglob(".*tmp*")), "temporary files of the killed job were left behind"
