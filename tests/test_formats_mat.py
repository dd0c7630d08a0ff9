"""The fast MAT v7.3 writer (bhscore.formats.mat.savemat_v73) against hdf5storage, the writer bdpy uses.

Every file is compared with the one ``hdf5storage.savemat(..., format='7.3', oned_as='column',
store_python_metadata=True)`` writes to a new path: MATLAB header, datasets (shape, dtype, storage),
attributes (names, HDF5 types, values), what the readers return, and finally the bytes themselves.
"""

import datetime
import os
import re

import h5py
import hdf5storage
import numpy as np
import pytest
from bdpy.dataform import Features, load_array

from bhscore import atomic
from bhscore import formats as F
from bhscore.formats import mat as M

# (dtype, shape): vectors, 1-d (stored as a column), n-d, scalars, both sides of hdf5storage's compression
# threshold (16 KiB: 4095 float32 plain, 4096 float32 gzip-compressed and chunked), a conv-layer feature.
CASES = [
    ("float32", (1, 1000)),
    ("float32", (1, 1)),
    ("float64", (3,)),
    ("int64", (2, 3, 4)),
    ("float64", (2, 1, 3, 1, 2)),
    ("float32", (1, 4095)),
    ("float32", (1, 4096)),
    ("float32", (1, 64, 8, 8)),
    ("int32", (7,)),
    ("uint8", (5, 2)),
]
IDS = [f"{dt}-{'x'.join(map(str, sh))}" for dt, sh in CASES]
TIME = re.compile(rb"Created on: [A-Z][a-z]{2} [A-Z][a-z]{2} \d\d \d\d:\d\d:\d\d \d{4}")


@pytest.fixture(autouse=True)
def _no_templates(monkeypatch):
    monkeypatch.setattr(M, "_mat73_templates", {})


def _reference(path, mapping):
    """What bdpy's save_array / hdf5storage writes (to a new file)."""
    assert not os.path.exists(path)
    hdf5storage.savemat(str(path), dict(mapping), format="7.3", oned_as="column", store_python_metadata=True)
    return path


def _array(rng, dtype, shape):
    return (rng.standard_normal(shape) * 1000).astype(dtype)


def _mask_time(header: bytes) -> bytes:
    m = TIME.search(header)
    assert m is not None, header
    return header[: m.start()] + b"#" * (m.end() - m.start()) + header[m.end() :]


def _attr_types(obj):
    """name -> (numpy dtype, shape, HDF5 type class, string size/padding/charset, raw value bytes)."""
    out = {}
    for name in obj.attrs:
        aid = obj.attrs.get_id(name)
        tid = aid.get_type()
        string = (
            (tid.get_size(), tid.get_strpad(), tid.get_cset()) if tid.get_class() == h5py.h5t.STRING else None
        )
        value = np.asarray(obj.attrs[name])
        raw = (
            repr([np.asarray(v).tolist() for v in value.ravel()])
            if value.dtype.hasobject
            else value.tobytes()
        )
        out[name] = (aid.dtype, aid.shape, tid.get_class(), string, raw)
    return out


def _dataset_signature(ds):
    plist = ds.id.get_create_plist()
    filters = [plist.get_filter(i)[:3] for i in range(plist.get_nfilters())]
    return (ds.shape, ds.dtype, ds.maxshape, ds.chunks, plist.get_layout(), filters, ds.fillvalue)


def _h5py_read(path, key):
    """A reader without scipy and without hdf5storage: the dataset, axes back in the writer's order."""
    with h5py.File(path, "r") as f:
        return f[key][()].T


def _assert_same_file(ours, ref):
    a, b = ours.read_bytes(), ref.read_bytes()
    # header: text up to the time, the time's format, 8 zero bytes, version 0x0200, endian 'IM', zeros to 512
    assert _mask_time(a[:128]) == _mask_time(b[:128])
    assert a[116:124] == bytes(8) and a[124:126] == b"\x00\x02" and a[126:128] == b"IM"
    assert a[128:512] == bytes(384)
    with h5py.File(ours, "r") as fo, h5py.File(ref, "r") as fr:
        assert fo.userblock_size == fr.userblock_size == 512
        names = []
        fr.visit(names.append)
        seen = []
        fo.visit(seen.append)
        assert seen == names
        assert dict(fo.attrs) == dict(fr.attrs) == {}
        for name in names:
            assert isinstance(fo[name], h5py.Dataset) == isinstance(fr[name], h5py.Dataset), name
            assert _attr_types(fo[name]) == _attr_types(fr[name]), name
            if isinstance(fr[name], h5py.Dataset):
                assert _dataset_signature(fo[name]) == _dataset_signature(fr[name]), name
                np.testing.assert_array_equal(fo[name][()], fr[name][()])
    # and, in the end, the very same bytes after the header
    assert len(a) == len(b) and a[128:] == b[128:]


def test_header_text_and_layout():
    now = datetime.datetime(2024, 2, 29, 7, 5, 9, tzinfo=datetime.UTC)
    h = F.mat73_header(now)
    assert len(h) == 128
    text = (
        f"MATLAB 7.3 MAT-file, Platform: hdf5storage {hdf5storage.__version__}, "
        "Created on: Thu Feb 29 07:05:09 2024 HDF5 schema 1.00 ."
    )
    assert h[:116] == text.encode().ljust(116, b" ")
    assert h[116:] == bytes(8) + b"\x00\x02IM"


def test_header_time_is_now_utc(tmp_path):
    F.write_accuracy(tmp_path / "a.mat", np.zeros(3))
    m = TIME.search((tmp_path / "a.mat").read_bytes()[:128])
    when = datetime.datetime.strptime(m.group().decode()[12:], "%a %b %d %H:%M:%S %Y").replace(
        tzinfo=datetime.UTC
    )
    assert abs((datetime.datetime.now(datetime.UTC) - when).total_seconds()) < 120


@pytest.mark.parametrize(("dtype", "shape"), CASES, ids=IDS)
def test_same_file_as_hdf5storage(tmp_path, dtype, shape):
    rng = np.random.default_rng(0)
    for i in range(3):  # first file written with h5py, the next from the template (when not compressed)
        mapping = {"x": _array(rng, dtype, shape), "n_samples": np.array([[50.0 + i]])}
        M.savemat_v73(tmp_path / f"ours{i}.mat", mapping)
        _assert_same_file(tmp_path / f"ours{i}.mat", _reference(tmp_path / f"ref{i}.mat", mapping))
    compressed = np.dtype(dtype).itemsize * np.prod(shape) >= 16 * 1024
    assert len(M._mat73_templates) == (0 if compressed else 1)


def test_template_is_used_and_still_exact(tmp_path, monkeypatch):
    rng = np.random.default_rng(1)
    F.write_accuracy(tmp_path / "first.mat", rng.random(50), n_samples=20)

    def fail(*args, **kwargs):
        raise AssertionError("h5py writer called although a template fits")

    monkeypatch.setattr(M, "_write_mat73_h5py", fail)
    acc = rng.standard_normal(50)
    acc[[3, 7]] = np.nan, np.inf
    F.write_accuracy(tmp_path / "second.mat", acc, n_samples=30)
    ref = _reference(
        tmp_path / "ref.mat",
        {"accuracy": acc.astype(np.float32).reshape(1, -1), "n_samples": np.array([[30.0]])},
    )
    _assert_same_file(tmp_path / "second.mat", ref)
    got, n = F.read_accuracy(tmp_path / "second.mat")
    np.testing.assert_array_equal(got, acc.astype(np.float32).astype(np.float64))
    assert n == 30
    with pytest.raises(AssertionError, match="template"):  # another shape needs a new template
        F.write_accuracy(tmp_path / "third.mat", rng.random(51), n_samples=20)


def test_several_variables_and_layouts(tmp_path):
    rng = np.random.default_rng(2)
    big = _array(rng, "float32", (1, 8, 32, 32))  # compressed, between two plain ones
    mapping = {
        "a": _array(rng, "float64", (4, 3))[:, ::2],  # not contiguous
        "big": big,
        "c": np.asfortranarray(_array(rng, "int64", (3, 5))),
    }
    M.savemat_v73(tmp_path / "ours.mat", mapping)
    _assert_same_file(tmp_path / "ours.mat", _reference(tmp_path / "ref.mat", mapping))


@pytest.mark.parametrize(("dtype", "shape"), CASES, ids=IDS)
def test_readers_agree(tmp_path, dtype, shape):
    rng = np.random.default_rng(3)
    a = _array(rng, dtype, shape)
    for i in range(2):
        ours = tmp_path / f"ours{i}.mat"
        M.savemat_v73(ours, {"data": a})
        ref = _reference(tmp_path / f"ref{i}.mat", {"data": a})
        results = []
        for path in (ours, ref):
            results.append(
                [
                    hdf5storage.loadmat(str(path))["data"],
                    load_array(str(path), key="data"),
                    F.load_mat_array(path, "data"),
                    _h5py_read(path, "data"),
                ]
            )
        for got_ours, got_ref in zip(*results, strict=True):
            assert got_ours.shape == got_ref.shape and got_ours.dtype == got_ref.dtype
            np.testing.assert_array_equal(got_ours, got_ref)
        # hdf5storage and bdpy give back the array as written (a 1-d one as 1-d); raw h5py readers its 2-d form
        np.testing.assert_array_equal(results[0][0], a)
        assert results[0][0].shape == a.shape and results[0][0].dtype == a.dtype
        np.testing.assert_array_equal(results[0][3].reshape(a.shape), a)


def test_feature_tree_same_for_bdpy_features(tmp_path):
    rng = np.random.default_rng(4)
    names = [f"n0000000{i}_{i}" for i in range(4)]
    shapes = {"conv": (1, 16, 16, 16), "fc": (1, 1000), "pool": (1, 3, 2, 2)}
    for layer, shape in shapes.items():
        for name in names:
            a = _array(rng, "float32", shape)
            F.save_feature(tmp_path / "ours" / layer / f"{name}.mat", a)
            (tmp_path / "ref" / layer).mkdir(parents=True, exist_ok=True)
            _reference(tmp_path / "ref" / layer / f"{name}.mat", {"feat": a})
            _assert_same_file(
                tmp_path / "ours" / layer / f"{name}.mat", tmp_path / "ref" / layer / f"{name}.mat"
            )
    ours, ref = Features(str(tmp_path / "ours")), Features(str(tmp_path / "ref"))
    assert ours.layers == ref.layers == sorted(shapes)
    assert list(ours.labels) == list(ref.labels) == names
    for layer, shape in shapes.items():
        a, b = ours.get_features(layer), ref.get_features(layer)
        assert a.shape == b.shape == (len(names), *shape[1:]) and a.dtype == b.dtype == np.float32
        np.testing.assert_array_equal(a, b)
        np.testing.assert_array_equal(
            F.read_layer(tmp_path / "ours", layer), F.read_layer(tmp_path / "ref", layer)
        )


@pytest.mark.parametrize(
    "value",
    [
        np.float64(3.0),  # numpy scalar, not an ndarray
        np.array(2.5),  # 0-d
        np.zeros((0, 3)),  # empty: hdf5storage stores the shape
        np.array([[True, False]]),  # bool: converted to uint8 with MATLAB_int_decode
        np.array([[1 + 2j]]),  # complex: compound type
        np.arange(4, dtype=">f8").reshape(1, 4),  # big-endian
        np.arange(3, dtype=np.float16),  # not a MATLAB class
    ],
    ids=["npscalar", "0d", "empty", "bool", "complex", "bigendian", "float16"],
)
def test_other_values_go_through_hdf5storage(tmp_path, value):
    assert M._mat73_dense({"v": value}) is None
    try:
        _reference(tmp_path / "ref.mat", {"v": value})
    except Exception as e:  # what hdf5storage refuses, savemat_v73 refuses the same way
        with pytest.raises(type(e)):
            M.savemat_v73(tmp_path / "ours.mat", {"v": value})
        return
    M.savemat_v73(tmp_path / "ours.mat", {"v": value})
    _assert_same_file(tmp_path / "ours.mat", tmp_path / "ref.mat")
    assert not M._mat73_templates


def test_names_needing_escapes_go_through_hdf5storage():
    assert M._mat73_dense({"a/b": np.zeros(2)}) is None
    assert M._mat73_dense({".a": np.zeros(2)}) is None
    assert M._mat73_dense({"feat": np.zeros(2), "index": {"fc8": np.zeros(2)}}) is None
    assert M._mat73_dense({"feat": np.zeros((1, 2), np.float32)}) is not None


def test_feature_index_and_bdmodel_files_have_the_matlab_header(tmp_path):
    index = {"conv1": np.array([0, 5, 11]), "fc8": np.array([6, 1])}
    F.write_feature_index(tmp_path / "index.mat", index)
    data = {k: v.astype(np.int64) for k, v in index.items()}
    _assert_same_file(tmp_path / "index.mat", _reference(tmp_path / "ref_index.mat", {"index": data}))
    rng = np.random.default_rng(5)
    W = rng.standard_normal((6, 2)) * (rng.random((6, 2)) < 0.5)
    vecs = {
        k: rng.random((1, n))
        for k, n in (("b", 2), ("x_mean", 6), ("x_norm", 6), ("y_mean", 2), ("y_norm", 2))
    }
    F.save_bdmodel(tmp_path / "model", W, **vecs)
    for name in ("W", *vecs):
        head = (tmp_path / "model" / f"{name}.mat").read_bytes()[:128]
        assert head.startswith(b"MATLAB 7.3 MAT-file") and head[124:] == b"\x00\x02IM", name
    for k, v in vecs.items():
        _assert_same_file(
            tmp_path / "model" / f"{k}.mat", _reference(tmp_path / f"ref_{k}.mat", {k: v.astype(np.float32)})
        )
    np.testing.assert_array_equal(
        load_array(str(tmp_path / "model" / "W.mat"), key="W"), W.astype(np.float32)
    )


@pytest.mark.parametrize("warm", [False, True], ids=["h5py", "template"])
def test_interrupted_write_leaves_nothing(tmp_path, monkeypatch, warm):
    if warm:  # a template exists: break the template path
        F.write_accuracy(tmp_path / "warm.mat", np.zeros(4))
        monkeypatch.setattr(M, "mat73_header", lambda *a: 1 / 0)
    else:  # break the h5py path after the file was created
        monkeypatch.setattr(M, "_create_mat73_dataset", lambda *a: 1 / 0)
    with pytest.raises(ZeroDivisionError):
        F.write_accuracy(tmp_path / "d" / "acc.mat", np.zeros(4))
    assert os.listdir(tmp_path / "d") == []


def test_template_cache_is_bounded(tmp_path, monkeypatch):
    monkeypatch.setattr(M, "_MAT73_TEMPLATES_MAX", 3)
    for n in range(1, 8):
        F.write_accuracy(tmp_path / f"{n}.mat", np.zeros(n))
        assert len(M._mat73_templates) == min(n, 3)
    assert [k[0][2] for k in M._mat73_templates] == [(1, 5), (1, 6), (1, 7)]  # oldest dropped first


def test_file_mode_follows_umask(tmp_path):
    for i in range(2):  # h5py-written, then template-written
        path = F.write_accuracy(tmp_path / f"{i}.mat", np.zeros(3))
        assert (path.stat().st_mode & 0o777) == atomic._FILE_MODE


def test_concurrent_writers_share_the_cache(tmp_path, monkeypatch):
    from concurrent.futures import ThreadPoolExecutor

    monkeypatch.setattr(M, "_MAT73_TEMPLATES_MAX", 2)  # evictions while other threads write

    def job(i):
        a = np.arange(1 + i % 3, dtype=np.float32) + i
        F.write_accuracy(tmp_path / f"{i}.mat", a, n_samples=i)
        return a

    with ThreadPoolExecutor(4) as pool:
        arrays = list(pool.map(job, range(60)))
    for i, a in enumerate(arrays):
        got, n = F.read_accuracy(tmp_path / f"{i}.mat")
        np.testing.assert_array_equal(got, a)
        assert n == i
    assert len(M._mat73_templates) <= 2
