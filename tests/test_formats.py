import os
import time

import bdpy
import numpy as np
import pytest
from bdpy.dataform import Features, load_array

from bhscore import formats as F
from bhscore.errors import CorruptFileError, MissingDataError
from bhscore.simulate import stimulus_names


@pytest.fixture
def names():
    return stimulus_names(12, np.random.default_rng(1))


def _tree(root, names, rng, flavour="v7.3"):
    feats = {"conv1:abs": rng.standard_normal((len(names), 1, 2, 3, 2)), "fc8": rng.standard_normal((len(names), 1, 7))}
    for layer, arr in feats.items():
        for name, a in zip(names, arr, strict=True):
            F.save_feature(root / layer / f"{name}.mat", a, flavour=flavour)
    return feats


@pytest.mark.parametrize("flavour", ["v7.3", "v5"])
def test_features_round_trip_through_bdpy(tmp_path, names, flavour):
    rng = np.random.default_rng(0)
    feats = _tree(tmp_path, names, rng, flavour)
    bd = Features(str(tmp_path))
    assert bd.layers == sorted(feats) == F.feature_layers(tmp_path)
    assert list(bd.labels) == names == F.feature_labels(tmp_path, "fc8")
    for layer, arr in feats.items():
        ours = F.read_layer(tmp_path, layer)
        theirs = bd.get_features(layer)
        assert ours.dtype == np.float32 and ours.shape == (len(names), arr[0].size)
        np.testing.assert_array_equal(ours, theirs.reshape(len(names), -1))
        np.testing.assert_allclose(ours, arr.reshape(len(names), -1), rtol=1e-6)  # float32 storage
        assert F.load_feature(tmp_path / layer / f"{names[0]}.mat").shape == arr[0].shape


def test_rows_follow_requested_labels(tmp_path, names):
    feats = _tree(tmp_path, names, np.random.default_rng(0))
    order = names[::-1][:5]
    got = F.read_layer(tmp_path, "fc8", labels=order)
    want = feats["fc8"][[names.index(n) for n in order]].reshape(5, -1)
    np.testing.assert_allclose(got, want, rtol=1e-6)


def test_missing_images_named(tmp_path, names):
    _tree(tmp_path, names, np.random.default_rng(0))
    with pytest.raises(MissingDataError) as e:
        F.read_layer(tmp_path, "fc8", labels=[*names[:3], "n99999999_1"])
    assert "n99999999_1" in str(e.value) and "bhscore extract" in str(e.value)


def test_missing_layer_lists_present(tmp_path, names):
    _tree(tmp_path, names, np.random.default_rng(0))
    with pytest.raises(MissingDataError) as e:
        F.read_layer(tmp_path, "fc7")
    assert "fc7" in str(e.value) and "conv1:abs" in str(e.value) and "fc8" in str(e.value)


def test_missing_tree_names_make_target(tmp_path):
    with pytest.raises(MissingDataError, match="make download-features"):
        F.feature_layers(tmp_path / "nope")


def test_corrupt_file_named(tmp_path, names):
    _tree(tmp_path, names, np.random.default_rng(0))
    bad = tmp_path / "fc8" / f"{names[3]}.mat"
    bad.write_bytes(b"garbage" * 10)
    with pytest.raises(CorruptFileError, match=names[3]):
        F.read_layer(tmp_path, "fc8")


def test_feature_index_round_trip_and_bdpy(tmp_path, names):
    feats = _tree(tmp_path, names, np.random.default_rng(0))
    index = {"conv1:abs": np.array([0, 5, 11]), "fc8": np.array([6, 1])}
    path = F.write_feature_index(tmp_path / "index_random1000.mat", index)
    got = F.read_feature_index(path)
    assert set(got) == set(index) and all(np.array_equal(got[k], index[k]) for k in index)
    bd = Features(str(tmp_path), feature_index=str(path))
    ours = F.read_layer(tmp_path, "conv1:abs", feature_index=got)
    np.testing.assert_array_equal(ours, bd.get_features("conv1:abs"))
    np.testing.assert_allclose(ours, feats["conv1:abs"].reshape(len(names), -1)[:, [0, 5, 11]], rtol=1e-6)


def test_layer_cache_reused_and_invalidated(tmp_path, names):
    _tree(tmp_path, names, np.random.default_rng(0))
    cache = tmp_path / "cache"
    first = F.read_layer(tmp_path, "fc8", cache_dir=cache)
    assert (cache / "fc8.npy").exists()
    stamp = (cache / "fc8.npy").stat().st_mtime_ns
    second = F.read_layer(tmp_path, "fc8", cache_dir=cache)
    np.testing.assert_array_equal(first, second)
    assert (cache / "fc8.npy").stat().st_mtime_ns == stamp  # not rewritten
    # change one source file: the cache must be rebuilt with the new values
    time.sleep(0.01)
    F.save_feature(tmp_path / "fc8" / f"{names[2]}.mat", np.full((1, 7), 42.0))
    third = F.read_layer(tmp_path, "fc8", cache_dir=cache)
    assert np.all(third[2] == 42.0) and not np.all(first[2] == 42.0)


def test_bdata_round_trip_through_bdpy(tmp_path, names):
    rng = np.random.default_rng(0)
    labels = [names[i] for i in rng.permutation(np.repeat(np.arange(len(names)), 3))]
    rois = {"V1": rng.standard_normal((len(labels), 9)), "HVC": rng.standard_normal((len(labels), 4))}
    path = F.write_fmri(tmp_path / "sub-01_test.h5", rois, labels, names=names + ["n00000001_1"])
    bd = bdpy.BData(str(path))
    np.testing.assert_array_equal(bd.select("ROI_V1 = 1"), rois["V1"])
    np.testing.assert_array_equal(bd.select("ROI_HVC = 1"), rois["HVC"])
    assert bd.select("VoxelData = 1").shape == (len(labels), 13)
    assert bd.get_label("stimulus_name") == labels
    rank = {n: i + 1 for i, n in enumerate(sorted(names + ["n00000001_1"]))}
    np.testing.assert_array_equal(bd.select("image_index").ravel(), [rank[n] for n in labels])
    ours = F.read_fmri(path, ["V1", "HVC"])
    assert ours.labels == labels and ours.n_samples == len(labels)
    np.testing.assert_array_equal(ours.rois["HVC"], rois["HVC"])
    np.testing.assert_array_equal(ours.image_index, [rank[n] for n in labels])


def test_bdata_written_by_bdpy_is_read(tmp_path, names):
    """A file made with bdpy's own writer (as the real ones were) reads the same."""
    rng = np.random.default_rng(0)
    vox = rng.standard_normal((len(names), 6))
    codes = np.array([F.stimulus_code(n) for n in names])[:, None]
    bd = bdpy.BData()
    bd.add(vox, "VoxelData")
    bd.add(np.arange(1, len(names) + 1, dtype=float)[:, None], "image_index")
    bd.add(codes, "stimulus_name")
    bd.add_metadata("ROI_V1", np.array([1, 1, 1, 0, 0, 0, np.nan, np.nan]), description="1 = V1")
    bd.add_metadata("ROI_V2", np.array([0, 0, 0, 1, 1, 1, np.nan, np.nan]), description="1 = V2")
    bd.add_vmap("stimulus_name", {float(c): n for c, n in zip(codes.ravel(), names, strict=True)})
    bd.save(str(tmp_path / "x.h5"))
    got = F.read_fmri(tmp_path / "x.h5", ["V2"])
    np.testing.assert_array_equal(got.rois["V2"], vox[:, 3:])
    assert got.labels == names


def test_bdata_missing_roi_lists_present(tmp_path, names):
    path = F.write_fmri(tmp_path / "x.h5", {"V1": np.zeros((len(names), 2))}, names)
    with pytest.raises(CorruptFileError, match=r"no ROI 'V4'.*\['V1'\]"):
        F.read_fmri(path, ["V4"])


def test_fmri_missing_names_make_target(tmp_path):
    with pytest.raises(MissingDataError, match="make download-fmri"):
        F.read_fmri(tmp_path / "sub-01.h5", ["V1"])


def test_average_by_label():
    X = np.array([[1.0, 2.0], [3.0, 4.0], [10.0, 20.0], [5.0, 6.0]])
    mean, names = F.average_by_label(X, ["b", "b", "a", "b"])
    assert names == ["a", "b"]
    np.testing.assert_allclose(mean, [[10.0, 20.0], [3.0, 4.0]])


def test_accuracy_round_trip_through_bdpy(tmp_path):
    acc = np.array([0.1, np.nan, -0.3, 0.9])
    path = F.write_accuracy(tmp_path / "a" / "accuracy.mat", acc, n_samples=50)
    got, n = F.read_accuracy(path)
    assert n == 50
    np.testing.assert_allclose(got, acc.astype(np.float32), equal_nan=True)
    theirs = load_array(str(path), key="accuracy")
    assert theirs.shape == (1, 4) and theirs.dtype == np.float32
    F.write_accuracy(path, acc)  # without n_samples
    assert F.read_accuracy(path)[1] is None


def test_bdmodel_round_trip_through_bdpy(tmp_path):
    rng = np.random.default_rng(0)
    W = rng.standard_normal((8, 3)) * (rng.random((8, 3)) < 0.4)
    vecs = dict(b=rng.standard_normal((1, 3)), x_mean=rng.standard_normal((1, 8)), x_norm=rng.random((1, 8)),
                y_mean=rng.standard_normal((1, 3)), y_norm=rng.random((1, 3)))  # fmt: skip
    F.save_bdmodel(tmp_path / "model", W, **vecs)
    ours = F.load_bdmodel(tmp_path / "model")
    np.testing.assert_allclose(load_array(str(tmp_path / "model" / "W.mat"), key="W"), W.astype(np.float32))
    np.testing.assert_allclose(ours["W"], W.astype(np.float32))
    for k, v in vecs.items():
        np.testing.assert_allclose(ours[k], v.astype(np.float32))


def test_atomic_path_leaves_nothing_on_error(tmp_path):
    target = tmp_path / "d" / "out.mat"
    with pytest.raises(RuntimeError), F.atomic_path(target) as tmp:
        tmp.write_bytes(b"partial")
        raise RuntimeError("killed")
    assert not target.exists() and os.listdir(tmp_path / "d") == []


def test_temporary_files_are_invisible_to_readers(tmp_path, names):
    _tree(tmp_path, names, np.random.default_rng(0))
    (tmp_path / "fc8" / f".{names[0]}.abc.tmp.mat").write_bytes(b"partial")
    assert F.feature_labels(tmp_path, "fc8") == names
    assert list(Features(str(tmp_path)).labels) == names


def test_atomic_outputs_get_umask_mode(tmp_path):
    path = F.atomic_write_text(tmp_path / "x.txt", "hi")
    assert path.stat().st_mode & 0o777 == F._FILE_MODE
