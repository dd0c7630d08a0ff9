import os
import time

import bdpy
import h5py
import hdf5storage
import numpy as np
import pytest
import scipy.io
from bdpy.dataform import Features, load_array

from bhscore import atomic
from bhscore import formats as F
from bhscore.errors import CorruptFileError, MissingDataError, MissingItemError, UserError
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


def test_feature_index_permutation_applied_as_bdpy(tmp_path, names):
    """An index as long as the layer reorders its units, in bdpy and here."""
    feats = _tree(tmp_path, names, np.random.default_rng(0))
    perm = np.random.default_rng(3).permutation(7)
    path = F.write_feature_index(tmp_path / "index_random7.mat", {"fc8": perm})
    bd = Features(str(tmp_path), feature_index=str(path))
    ours = F.read_layer(tmp_path, "fc8", feature_index=F.read_feature_index(path))
    np.testing.assert_array_equal(ours, bd.get_features("fc8"))
    np.testing.assert_allclose(ours, feats["fc8"].reshape(len(names), -1)[:, perm], rtol=1e-6)
    assert not np.array_equal(ours, F.read_layer(tmp_path, "fc8"))


def test_feature_index_of_files_holding_the_subset(tmp_path, names):
    """Files extracted with an index hold its units already: an index into the full layer is not reapplied."""
    feats = _tree(tmp_path, names, np.random.default_rng(0))
    full = F.read_layer(tmp_path, "fc8")
    subset = {"fc8": np.array([3, 40, 99, 120, 500, 777, 901])}  # units of a 1000-unit layer
    np.testing.assert_array_equal(F.read_layer(tmp_path, "fc8", feature_index=subset), full)
    np.testing.assert_allclose(full, feats["fc8"].reshape(len(names), -1), rtol=1e-6)
    with pytest.raises(UserError, match=r"layer 'fc8' has 3 unit indices.*hold 7 units"):
        F.read_layer(tmp_path, "fc8", feature_index={"fc8": np.array([1, 2, 700])})


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
    rois = {"V1": np.zeros((len(names), 2)), "V2": np.zeros((len(names), 1))}
    path = F.write_fmri(tmp_path / "x.h5", rois, names)
    with pytest.raises(MissingItemError) as e:
        F.read_fmri(path, ["V4"])
    assert str(e.value) == f"{path} has no ROI 'V4'; it has: V1, V2"
    assert not isinstance(e.value, CorruptFileError) and "delete" not in str(e.value)


def test_bdata_roi_without_voxels_is_named(tmp_path, names):
    rois = {"V1": np.ones((len(names), 2)), "V4": np.ones((len(names), 0))}
    path = F.write_fmri(tmp_path / "x.h5", rois, names)
    assert F.read_fmri(path, ["V1"]).rois["V1"].shape == (len(names), 2)
    with pytest.raises(MissingItemError, match=r"x\.h5: ROI 'V4' has no voxels"):
        F.read_fmri(path, ["V1", "V4"])


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
    assert path.stat().st_mode & 0o777 == atomic._FILE_MODE


# -------------------------------------------------------------------------------------------------
# MAT reading: empty arrays, transposition, truncated files, missing variables
# -------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("metadata", [True, False], ids=["hdf5storage", "matlab-attributes-only"])
@pytest.mark.parametrize("shape", [(1, 0), (0,), (2, 0, 3), (1, 5), (5,), (2, 3, 4)])
def test_mat73_arrays_read_as_hdf5storage_reads_them(tmp_path, shape, metadata):
    """hdf5storage stores an empty array as its shape vector (MATLAB_empty = 1): read it back empty."""
    a = np.arange(int(np.prod(shape)), dtype=np.float32).reshape(shape)
    path = tmp_path / "accuracy.mat"
    opts = dict(format="7.3", oned_as="column", store_python_metadata=metadata)
    hdf5storage.savemat(str(path), {"accuracy": a}, **opts)
    ours = F.load_mat_array(path, "accuracy")
    theirs = hdf5storage.loadmat(str(path))["accuracy"]
    assert ours.shape == theirs.shape and ours.dtype == theirs.dtype == np.float32
    np.testing.assert_array_equal(ours, theirs)
    if metadata:
        assert ours.shape == shape


def test_empty_accuracy_reads_back_empty(tmp_path):
    path = tmp_path / "accuracy.mat"
    hdf5storage.savemat(str(path), {"accuracy": np.zeros((1, 0), np.float32)}, format="7.3", oned_as="column",
                        store_python_metadata=True)  # fmt: skip
    with h5py.File(path, "r") as f:  # what hdf5storage 0.2 writes: the shape vector, flagged
        assert f["accuracy"][()].tolist() == [1, 0] and f["accuracy"].attrs["MATLAB_empty"] == 1
    acc, n = F.read_accuracy(path)
    assert acc.shape == (0,) and n is None


def test_matlab_written_empty_array(tmp_path):
    """MATLAB's own layout: a uint64 dimension vector in MATLAB order, MATLAB_class and MATLAB_empty only."""
    path = tmp_path / "accuracy.mat"
    with h5py.File(path, "w", userblock_size=512) as f:
        ds = f.create_dataset("accuracy", data=np.array([1, 0], dtype=np.uint64))
        ds.attrs["MATLAB_class"] = np.bytes_("single")
        ds.attrs["MATLAB_empty"] = np.uint8(1)
        f.create_dataset("n_samples", data=np.array([[50.0]]))
    got = F.load_mat_array(path, "accuracy")
    assert got.shape == (1, 0) and got.dtype == np.float32
    assert F.read_accuracy(path)[0].shape == (0,)


def test_plain_hdf5_datasets_are_not_transposed(tmp_path):
    """Only datasets with MATLAB/hdf5storage attributes have their axes reversed."""
    a = np.arange(6.0).reshape(2, 3)
    path = tmp_path / "accuracy.mat"
    with h5py.File(path, "w") as f:  # e.g. written by h5py or Julia's HDF5.jl
        f.create_dataset("accuracy", data=a)
        f.create_dataset("matlab", data=a).attrs["MATLAB_class"] = np.bytes_("double")
        f.create_dataset("python", data=a).attrs["Python.Shape"] = np.array([3, 2], dtype=np.uint64)
    got = F.load_mat_arrays(path, ["accuracy", "matlab", "python"])
    np.testing.assert_array_equal(got["accuracy"], a)
    np.testing.assert_array_equal(got["matlab"], a.T)
    np.testing.assert_array_equal(got["python"], a.T)
    np.testing.assert_array_equal(F.read_accuracy(path)[0], a.ravel())


@pytest.mark.parametrize("kind", ["accuracy", "feature-v7.3", "feature-v5"])
@pytest.mark.parametrize("cut", ["empty", "truncated"])
def test_empty_or_truncated_files_are_corrupt(tmp_path, kind, cut):
    path = tmp_path / "x.mat"
    if kind == "accuracy":
        F.write_accuracy(path, np.linspace(-1, 1, 5000), n_samples=50)
        read = F.read_accuracy
    else:
        F.save_feature(path, np.ones((1, 5000)), flavour=kind.removeprefix("feature-"))
        read = F.load_feature
    data = path.read_bytes()
    path.write_bytes(b"" if cut == "empty" else data[: len(data) * 2 // 3])
    with pytest.raises(CorruptFileError) as e:
        read(path)
    assert str(path) in str(e.value) and "delete it and re-create or re-download it" in str(e.value)


@pytest.mark.parametrize("flavour", ["v7.3", "v5"])
def test_missing_variable_lists_what_the_file_has(tmp_path, flavour):
    path = tmp_path / "accuracy.mat"
    arrays = {"acc": np.ones((1, 3), np.float32), "n_samples": np.array([[50.0]])}
    if flavour == "v7.3":
        hdf5storage.savemat(str(path), arrays, format="7.3", oned_as="column", store_python_metadata=True)
    else:
        scipy.io.savemat(path, arrays)
    with pytest.raises(MissingItemError) as e:
        F.read_accuracy(path)
    assert str(e.value) == f"{path} has no variable 'accuracy'; it has: acc, n_samples"
    assert not isinstance(e.value, CorruptFileError)
