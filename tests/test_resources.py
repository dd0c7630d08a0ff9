"""Worker memory estimate (bhscore.resources): sizes read from the data agree with the real readers."""

from __future__ import annotations

import pytest

from bhscore import formats, resources
from bhscore.errors import MissingDataError, MissingItemError
from bhscore.paths import TEST, TRAINING, Layout
from bhscore.resources import GiB, Sizes, estimate_peak_bytes, memory_request
from bhscore.settings import load_settings

PAPERISH = Sizes(n_samples=6000, n_train_images=1200, n_test_images=50, fmri_columns=14500,
                 subject_voxels=14000, roi_voxels=3000, layer_units=1000)  # fmt: skip


def test_sizes_match_the_real_readers(simulated_dataset):
    settings = load_settings(simulated_dataset)
    layout = Layout.from_settings(settings)
    rois = list(settings.rois)
    for subject in settings.subjects:
        for split in (TRAINING, TEST):
            path = layout.fmri_file(subject, split)
            n, cols, voxels, n_images = resources.fmri_sizes(path, rois)
            data = formats.read_fmri(path, rois)
            assert (n, n_images) == (data.n_samples, len(set(data.labels)))
            assert voxels == {r: data.rois[r].shape[1] for r in rois}
            assert cols > sum(voxels.values())  # plus the label columns
    dnn = next(iter(settings.dnns))
    features = layout.features_dir(TRAINING, settings.dnn(dnn).dir)
    for layer in settings.dnns[dnn].layers:
        assert resources.layer_units(features, layer) == formats.read_layer(features, layer).shape[1]

    sizes, parts = resources.measure(settings, "decoding")
    train = [formats.read_fmri(layout.fmri_file(s, TRAINING), rois) for s in settings.subjects]
    assert sizes.n_samples == max(d.n_samples for d in train)
    assert sizes.roi_voxels == max(d.rois[r].shape[1] for d in train for r in rois)
    assert sizes.subject_voxels == max(sum(d.rois[r].shape[1] for r in rois) for d in train)
    assert parts == estimate_peak_bytes("decoding", sizes, settings.analysis.decoding.dtype,
                                        settings.analysis.decoding.n_feat)  # fmt: skip


def test_missing_data_and_rois_are_named(simulated_dataset, tmp_path):
    settings = load_settings(simulated_dataset)
    path = Layout.from_settings(settings).fmri_file("sub-01", TRAINING)
    with pytest.raises(MissingItemError, match="V9"):
        resources.fmri_sizes(path, ["V1", "V9"])
    with pytest.raises(MissingDataError, match="make download-fmri"):
        resources.fmri_sizes(tmp_path / "none.h5", ["V1"])
    with pytest.raises(MissingDataError, match="layer 'conv9'"):
        resources.layer_units(tmp_path, "conv9")


def test_estimate_terms():
    dec = estimate_peak_bytes("decoding", PAPERISH, "float64", 500)
    assert dec["fMRI"] == 8 * 6000 * (14500 + 14000) + 8 * 50 * 14000
    assert dec["inputs"] == 6000 * 3000 * 16 + 2 * 3001**2 * 8  # z-scored voxels + Gram
    assert 2.5 * GiB < sum(dec.values()) < 5 * GiB
    # float32 halves the fit's arrays; bigger ROIs need more
    assert sum(estimate_peak_bytes("decoding", PAPERISH, "float32", 500).values()) < sum(dec.values())
    bigger = Sizes(**{**PAPERISH.__dict__, "roi_voxels": 6000})
    assert sum(estimate_peak_bytes("decoding", bigger, "float64", 500).values()) > sum(dec.values())
    # encoding: a Gram of 16384 units is held; wider layers go without one (wide mode)
    gram = estimate_peak_bytes("encoding", Sizes(**{**PAPERISH.__dict__, "layer_units": 16384}), "float32")
    wide = estimate_peak_bytes("encoding", Sizes(**{**PAPERISH.__dict__, "layer_units": 16385}), "float32")
    assert gram["inputs"] > 2 * 16385**2 * 4 and wide["inputs"] == 0
    assert wide["solver"] == 2 * resources.SOLVER_BUDGET
    with pytest.raises(ValueError):
        estimate_peak_bytes("scoring", PAPERISH)


def test_memory_request_rounds_up_with_headroom():
    assert memory_request(1) == "1G"
    assert memory_request(GiB) == "2G"  # 1.25 GiB
    assert memory_request(4 * GiB) == "5G"
    assert memory_request(0.8 * GiB) == "1G"


def test_constants_match_the_solver():
    from bhscore import ridge

    assert resources.SOLVER_BUDGET == ridge.DEFAULT_BUDGET
    assert resources.MAX_GRAM_INPUTS == ridge.MAX_GRAM_INPUTS


def test_cli(simulated_dataset, capsys):
    assert resources.main(["encoding", "--settings", str(simulated_dataset), "--mem-only"]) == 0
    assert capsys.readouterr().out.strip() == "2G"
    assert resources.main(["decoding", "--settings", str(simulated_dataset)]) == 0
    out = capsys.readouterr().out
    assert "sbatch --mem=2G" in out and "15 job groups: --array=0-14" in out
    assert resources.main(["decoding", "--settings", str(simulated_dataset), "--dnn", "Nope"]) == 2
    assert "Nope" in capsys.readouterr().err
