import numpy as np
import pytest
from bdpy.dataform import Features

from bhscore import formats as F
from bhscore.paths import TEST, TRAINING, Layout
from bhscore.settings import load_settings
from bhscore.simulate import ROIS, simulate_dataset, stimulus_names


def test_names_have_real_shape_and_are_sorted():
    names = stimulus_names(30, np.random.default_rng(0))
    assert names == sorted(names) and len(set(names)) == 30
    assert all(n[0] == "n" and len(n.split("_")[0]) == 9 and n.split("_")[1].isdigit() for n in names)


def test_dataset_layout_and_formats(simulated_dataset):
    s = load_settings(simulated_dataset)
    lay = Layout.from_settings(s)
    assert list(s.dnns) == ["Planted", "Control"]
    train = F.read_fmri(lay.fmri_file("sub-01", TRAINING), s.rois)
    test = F.read_fmri(lay.fmri_file("sub-01", TEST), s.rois)
    assert train.n_samples == 120 * 2 and test.n_samples == 50 * 4
    # image_index is the rank among the sorted names of the set
    names = sorted(set(test.labels))
    np.testing.assert_array_equal(test.image_index, [names.index(n) + 1 for n in test.labels])
    for dnn in s.dnns.values():
        bd = Features(str(lay.features_dir(TEST, dnn.dir)))
        assert sorted(bd.layers) == sorted(dnn.layers)
        assert list(bd.labels) == names
    # both MAT flavours occur; the first layer keeps a (1, C, H, W) shape
    first = lay.features_dir(TEST, s.dnns["Planted"].dir) / "conv1_abs" / f"{names[0]}.mat"
    assert F.load_feature(first).ndim == 4 and F.load_feature(first).min() >= 0
    ctrl = lay.features_dir(TEST, s.dnns["Control"].dir) / "layer1" / f"{names[0]}.mat"
    assert ctrl.read_bytes()[:10] == b"MATLAB 5.0"


def test_subjects_differ_in_voxel_counts(simulated_dataset):
    s = load_settings(simulated_dataset)
    lay = Layout.from_settings(s)
    counts = {sub: [F.read_fmri(lay.fmri_file(sub, TEST), [r]).rois[r].shape[1] for r in ROIS] for sub in s.subjects}
    assert len({tuple(c) for c in counts.values()}) == 3


def test_seeded(tmp_path):
    a = simulate_dataset(tmp_path / "a", seed=3, n_train=16, n_test=10, n_units=16, voxels_per_roi=(5, 8))
    b = simulate_dataset(tmp_path / "b", seed=3, n_train=16, n_test=10, n_units=16, voxels_per_roi=(5, 8))
    la, lb = Layout(a.parent), Layout(b.parent)
    fa = F.read_fmri(la.fmri_file("sub-02", TRAINING), ["V3"])
    fb = F.read_fmri(lb.fmri_file("sub-02", TRAINING), ["V3"])
    np.testing.assert_array_equal(fa.rois["V3"], fb.rois["V3"])
    assert fa.labels == fb.labels


def _corr(a, b):
    a = (a - a.mean(0)) / a.std(0)
    b = (b - b.mean(0)) / b.std(0)
    return a.T @ b / len(a)


def test_planted_hierarchy_visible_in_raw_correlations(simulated_dataset):
    """Independent of the decoders: the area whose averaged test responses best correlate with a layer
    moves up the hierarchy along the Planted DNN, and stays flat for the Control."""
    s = load_settings(simulated_dataset)
    lay = Layout.from_settings(s)
    fm = F.read_fmri(lay.fmri_file("sub-01", TEST), s.rois)
    best = {}
    for name, dnn in s.dnns.items():
        tops = []
        for layer in dnn.layers:
            feats = F.read_layer(lay.features_dir(TEST, dnn.dir), layer).astype(np.float64)
            strength = []
            for roi in s.rois:
                vox, names = F.average_by_label(fm.rois[roi], fm.labels)
                strength.append(np.mean(np.max(np.abs(_corr(feats, vox)), axis=1)))
            tops.append(int(np.argmax(strength)))
        best[name] = tops
    from scipy.stats import spearmanr

    assert best["Planted"][0] == 0 and best["Planted"][-1] == 4
    assert spearmanr(range(7), best["Planted"])[0] > 0.9


@pytest.mark.parametrize("bad", [{"n_test": 2}])
def test_rejects_too_few_test_images(tmp_path, bad):
    with pytest.raises(Exception, match="n_test_images"):
        simulate_dataset(tmp_path / "x", n_train=8, n_units=16, voxels_per_roi=(3, 4), **bad)


def test_settings_file_is_validated_and_written_last(tmp_path):
    from bhscore.settings import SettingsError
    from bhscore.simulate import SimulatedDNN

    short = (SimulatedDNN("Short", "simulated/Short", 3, hierarchical=True),)  # fewer layers than a draw
    with pytest.raises(SettingsError, match="Short"):
        simulate_dataset(tmp_path / "x", n_train=8, n_test=4, n_units=16, voxels_per_roi=(3, 4), dnns=short)
    assert not (tmp_path / "x" / "settings.json").exists()
