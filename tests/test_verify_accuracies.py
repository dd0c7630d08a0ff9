"""``bhscore verify --accuracies`` on a small simulated experiment whose published tree is the reference path."""

from __future__ import annotations

import json

import numpy as np
import pytest

from bhscore import jobs
from bhscore.cli import main
from bhscore.formats import read_accuracy, write_accuracy
from bhscore.settings import load_settings
from bhscore.sources import accuracy_file
from bhscore.verify_accuracies import compare_accuracies, compare_files, write_reference_tree


@pytest.fixture(scope="module")
def experiment(tmp_path_factory):
    """Two DNNs of 5 layers, 3 subjects, 5 ROIs; published = bdpy ModelTraining + fastl2lir (original scripts)."""
    from bhscore.simulate import SimulatedDNN, simulate_dataset

    path = simulate_dataset(tmp_path_factory.mktemp("acc") / "sim", seed=2, n_train=40, n_test=20, n_units=16,
                            voxels_per_roi=(10, 14), n_feat=6,
                            dnns=(SimulatedDNN("Net", "fw/Net", 5, True),))  # fmt: skip
    raw = json.loads(path.read_text())
    raw["analysis"]["decoding"]["dtype"] = "float64"  # the original decoding: float64; encoding: float32
    orig = path.with_name("settings_original.json")
    orig.write_text(json.dumps({**raw, "analysis": {**raw["analysis"],
                    "decoding": {**raw["analysis"]["decoding"], "solver": "fastl2lir"},
                    "encoding": {**raw["analysis"]["encoding"], "solver": "fastl2lir"}}}))  # fmt: skip
    path.write_text(json.dumps(raw))
    write_reference_tree(load_settings(path), progress=False)
    for p in (path, orig):
        for kind in ("decoding", "encoding"):
            jobs.run(load_settings(p), kind, progress=False)
    return path, orig


def test_compare_files_statistics():
    a = np.array([0.1, 0.2, np.nan, 0.4])
    s = compare_files(a, a + np.array([0, 1e-3, 0, 0]))
    assert s["n_computed"] == 4 and s["nan_mismatch"] == 0 and s["max_abs_diff"] == pytest.approx(1e-3)
    assert compare_files(a, np.array([0.1, 0.2, 0.3, 0.4]))["nan_mismatch"] == 1
    assert np.isnan(compare_files(a, a[:3])["pearson_r"])


def test_original_mode_passes_and_batched_reports_its_difference(experiment, tmp_path, capsys):
    default, original = experiment
    res = compare_accuracies(load_settings(original))
    assert res.ok, res.failures[:3]
    assert len(res.files) == 2 * 5 * 3 * 5 and res.all_nan == {"Net": 0}
    dec = res.files[res.files.kind == "decoding"]
    assert dec.max_abs_diff.max() <= 1e-6 and dec.pearson_r.min() > 0.99999
    assert np.isfinite(res.scores.loc[0, "averaged_computed"])
    assert abs(res.scores.loc[0, "averaged_diff"]) < 1e-6  # same files: same score

    other = compare_accuracies(load_settings(default))
    enc = other.files[other.files.kind == "encoding"]
    # bhscore's own solver (float32 encoding): a measured, small difference, reported per file
    assert np.isfinite(enc.max_abs_diff).all() and enc.max_abs_diff.max() < 1e-3

    out = tmp_path / "out"
    rc = main(["verify", "--accuracies", "--settings", str(original), "--out", str(out)])
    text = capsys.readouterr().out
    assert rc == 0 and "PASS" in text and "all-NaN files in the published encoding tree: Net 0" in text
    for name in ("accuracy_files.csv", "accuracy_summary.csv", "accuracy_scores.csv", "verify_accuracies.png",
                 "verify_accuracies.pdf"):  # fmt: skip
        assert (out / name).stat().st_size > 0


def test_perturbed_published_file_fails_naming_it(experiment, capsys):
    _, original = experiment
    s = load_settings(original)
    pub = accuracy_file(s, "encoding", "Net", "layer2", "sub-02", "V3", source="published")
    saved = pub.read_bytes()
    try:
        acc, n = read_accuracy(pub)
        write_accuracy(pub, acc + np.where(np.arange(acc.size) == 3, 1e-3, 0.0), n)
        rc = main(["verify", "--accuracies", "--settings", str(original), "--dnn", "Net"])
        text = capsys.readouterr().out
        assert rc == 1 and "FAIL: 1 of 150" in text
        computed = accuracy_file(s, "encoding", "Net", "layer2", "sub-02", "V3", source="computed")
        assert f"{computed}: encoding Net layer2 sub-02 V3 vs {pub}" in text
    finally:
        pub.write_bytes(saved)


def test_write_reference_refuses_a_downloaded_published_tree(experiment, capsys):
    default, _ = experiment
    marker = default.parent / "downloads" / "decoding_accuracy.done.json"
    marker.parent.mkdir(exist_ok=True)
    marker.write_text("{}")
    try:
        assert main(["verify", "--accuracies", "--write-reference", "--settings", str(default)]) == 2
        assert "refused" in capsys.readouterr().err
    finally:
        marker.unlink()
