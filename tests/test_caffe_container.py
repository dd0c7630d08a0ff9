"""The in-container Caffe module (bhscore.caffe_container) run as the Docker image runs it: CPython 3.9 with
numpy, h5py and Pillow only, the code laid out as ``docker run`` mounts it, and a stub ``caffe``
(tests/caffe_stub/caffe.py, in-place layers included); its tree is read back with the host readers and bdpy.

The 3.9 environment is ``.venv-py39/`` in the repository (git-ignored, built once with pyenv's CPython 3.9 and
the bullseye-era wheels of PY39_PINS; about 10 s with a warm pip cache). Without a CPython 3.9 those runs skip;
the same checks then run under the host interpreter only.
"""

from __future__ import annotations

import glob
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import h5py
import hdf5storage
import numpy as np
import pytest
from PIL import Image

from bhscore import extraction as ex
from bhscore import formats
from bhscore.caffe_container import extract as cx
from bhscore.caffe_container import matfile
from bhscore.errors import UserError
from bhscore.settings import REPO_ROOT
from tests.test_caffe import PROTOTXT

#: The closest wheels for CPython 3.9 to Debian 11's python3-numpy 1.19.5, python3-h5py 2.10 (no 3.9 wheel:
#: 3.1.0 is the oldest) and python3-pil 8.1.2.
PY39_PINS = ("numpy==1.19.5", "h5py==3.1.0", "Pillow==8.1.2")
PY39_VENV = REPO_ROOT / ".venv-py39"
STUB_DIR = Path(__file__).parent / "caffe_stub"
LAYERS = ["conv1_abs", "conv1", "fire2:concat", "fc6", "fc7"]


# --------------------------------------------------------------------------------------------------
# the interpreters
# --------------------------------------------------------------------------------------------------


def _is_python39(python: str) -> bool:
    try:
        out = subprocess.run([python, "-c", "import sys, venv; print(sys.version_info[:2] == (3, 9))"],
                             capture_output=True, text=True, timeout=30)  # fmt: skip
    except (OSError, subprocess.TimeoutExpired):
        return False
    return out.returncode == 0 and out.stdout.strip() == "True"


def find_python39() -> str | None:
    """A CPython 3.9: $BHSCORE_PYTHON39, pyenv's 3.9.x (newest first), or python3.9 on PATH."""
    candidates = [os.environ.get("BHSCORE_PYTHON39", "")]
    roots = [os.environ.get("PYENV_ROOT", ""), str(Path.home() / ".pyenv")]
    if shutil.which("pyenv"):
        out = subprocess.run(["pyenv", "root"], capture_output=True, text=True, timeout=30)
        roots.insert(0, out.stdout.strip() if out.returncode == 0 else "")
    for root in filter(None, roots):
        found = glob.glob(os.path.join(root, "versions", "3.9.*", "bin", "python3.9"))
        candidates += sorted(found, key=lambda p: [int(x) for x in Path(p).parents[1].name.split(".")[:3] if x.isdigit()],
                             reverse=True)  # fmt: skip
    candidates += [shutil.which("python3.9") or ""]
    return next((c for c in candidates if c and Path(c).exists() and _is_python39(c)), None)


def _venv_ok(venv: Path) -> bool:
    stamp = venv / "bhscore-pins.txt"
    return stamp.is_file() and stamp.read_text().split() == list(PY39_PINS) and _is_python39(str(venv / "bin" / "python"))


@pytest.fixture(scope="session")
def python39() -> str:
    """``.venv-py39/bin/python`` with PY39_PINS, built on first use (reused while the pins are unchanged)."""
    if _venv_ok(PY39_VENV):
        return str(PY39_VENV / "bin" / "python")
    base = find_python39()
    if base is None:
        pytest.skip("no CPython 3.9 found (pyenv's versions/3.9.*, python3.9 on PATH or $BHSCORE_PYTHON39): "
                    "the Caffe container's Python is not tested")  # fmt: skip
    # built beside the target and renamed into place: a concurrent run never sees half an environment
    tmp = PY39_VENV.with_name(f"{PY39_VENV.name}.tmp{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    steps = [[base, "-m", "venv", str(tmp)],
             [str(tmp / "bin" / "python"), "-m", "pip", "install", "--quiet", "--disable-pip-version-check",
              "--only-binary=:all:", *PY39_PINS]]  # fmt: skip
    for cmd in steps:
        out = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
        if out.returncode != 0:
            shutil.rmtree(tmp, ignore_errors=True)
            pytest.fail(f"building {PY39_VENV.name} failed: {' '.join(cmd)}\n{out.stderr[-2000:]}")
    (tmp / "bhscore-pins.txt").write_text("\n".join(PY39_PINS) + "\n")
    shutil.rmtree(PY39_VENV, ignore_errors=True)
    try:
        os.rename(tmp, PY39_VENV)
    except OSError:  # another run got there first
        shutil.rmtree(tmp, ignore_errors=True)
    assert _venv_ok(PY39_VENV)
    return str(PY39_VENV / "bin" / "python")


@pytest.fixture(params=["python3.9", "host"])
def python(request) -> str:
    return request.getfixturevalue("python39") if request.param == "python3.9" else sys.executable


@pytest.fixture(scope="session")
def code_root(tmp_path_factory) -> Path:
    """The repository paths the docker command mounts, copied to where it mounts them (nothing else)."""
    cmd = ex.caffe_docker_command(repo_root=REPO_ROOT, images=".", out_dir=".", prototxt="p", caffemodel="m",
                                  layers=["x"], user="")  # fmt: skip
    root = tmp_path_factory.mktemp("container")
    mounts = [cmd[i + 1].split(":") for i, c in enumerate(cmd) if c == "-v"]
    code = [(src, dst) for src, dst, *_ in mounts if dst.startswith(ex.CAFFE_CODE_ROOT + "/")]
    assert {dst for _, dst in code} == {f"{ex.CAFFE_CODE_ROOT}/{p}" for p in ex.CAFFE_CODE_PATHS}
    assert f"PYTHONPATH={ex.CAFFE_CODE_ROOT}" in cmd and cmd[cmd.index(ex.CAFFE_IMAGE) + 1 :][:3] == ["python3", "-m", ex.CAFFE_MODULE]
    for src, dst in code:
        target = root / Path(dst).relative_to(ex.CAFFE_CODE_ROOT)
        target.parent.mkdir(parents=True, exist_ok=True)
        if Path(src).is_dir():
            shutil.copytree(src, target, ignore=shutil.ignore_patterns("__pycache__"))
        else:
            shutil.copy(src, target)
    assert not (root / "bhscore" / "__init__.py").exists()
    return root


def run_module(python: str, code_root: Path, args: list[str], cwd: Path) -> subprocess.CompletedProcess:
    """``python -m bhscore.caffe_container ARGS`` with the mounted code and the stub caffe on the path."""
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "PYTHONPATH": f"{code_root}{os.pathsep}{STUB_DIR}",
           "PYTHONDONTWRITEBYTECODE": "1", "HOME": str(cwd), "LC_ALL": "C.UTF-8"}  # fmt: skip
    return subprocess.run([python, "-m", "bhscore.caffe_container", *map(str, args)], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=120)  # fmt: skip


# --------------------------------------------------------------------------------------------------
# expected values (host code) and file structure
# --------------------------------------------------------------------------------------------------


def _images(root: Path, seed: int, n: int) -> list[Path]:
    """PNG stimuli of several modes and sizes (RGB, RGBA, greyscale, palette, one already 8x8)."""
    root.mkdir()
    rng = np.random.default_rng(seed)
    paths = []
    for i in range(n):
        pixels = rng.integers(0, 256, (12, 10, 4), dtype=np.uint8)
        img = [Image.fromarray(pixels[:, :, :3]), Image.fromarray(pixels, "RGBA"), Image.fromarray(pixels[:, :, 0]),
               Image.fromarray(pixels[:, :, :3]).convert("P"), Image.fromarray(pixels[:8, :8, :3])][i % 5]  # fmt: skip
        paths.append(root / f"n0000{seed}_{i}.png")
        img.save(paths[-1])
    return paths


def _expected(paths: list[Path]) -> dict[str, np.ndarray]:
    """Every unit of every layer (and ``conv1_raw``, conv1 before its ReLU), from the host's caffe preset and
    the stub's layer definitions."""
    pre = ex.make_preprocess("caffe", 8)
    x = np.stack([pre(p) for p in sorted(paths, key=lambda p: p.stem)])
    n = len(x)
    conv = x.mean(axis=1, keepdims=True) - 20.0
    relu = np.maximum(conv, 0)
    pooled = relu[:, :, ::2, ::2]
    s = pooled.reshape(n, -1).sum(1)
    fc6 = np.maximum(np.stack([s, -s], 1), 0)
    fc7 = np.stack([fc6.sum(1), -fc6.sum(1)], 1)
    full = {"conv1_abs": np.abs(conv), "conv1": relu, "fire2:concat": pooled, "fc6": fc6, "fc7": fc7, "conv1_raw": conv}
    return {k: v.reshape(n, -1) for k, v in full.items()}


def _structure(path: Path) -> dict:
    """Everything a reader sees in a MAT v7.3 file but the header text: userblock, the header's version and
    endian bytes, every object's type, dtype, shape, storage filters, and every attribute's value and type."""

    def value(a):
        a = np.asarray(a)
        return [value(v) for v in a] if a.dtype == object else a.tolist()

    def attrs(obj) -> dict:
        out = {}
        for k in obj.attrs:
            t = obj.attrs.get_id(k).get_type()
            kind = [type(t).__name__, t.get_size() if not isinstance(t, h5py.h5t.TypeVlenID) else "vlen"]
            if isinstance(t, h5py.h5t.TypeStringID):
                kind += [t.get_cset(), t.get_strpad(), t.is_variable_str()]
            out[k] = (kind, value(obj.attrs[k]))
        return out

    with h5py.File(path, "r") as f:
        tree = {"userblock": f.userblock_size, "/": attrs(f)}

        def visit(name, obj):
            info = [type(obj).__name__, attrs(obj)]
            if isinstance(obj, h5py.Dataset):
                info += [obj.dtype.str, obj.shape, obj.chunks, obj.compression, obj.compression_opts, obj.shuffle, obj.fletcher32]
            tree[name] = info

        f.visititems(visit)
    tree["header[116:]"] = path.read_bytes()[116:128]
    return tree


def _assert_host_format(ours: Path, tmp: Path) -> None:
    """``ours`` (a feature file or an index file) has the structure of the host writer's file of the same data."""
    ref = tmp / f"host_{ours.name}"
    if ours.name.startswith("index_random"):
        formats.write_feature_index(ref, formats.read_feature_index(ours))
    else:
        formats.save_feature(ref, formats.load_feature(ours))
    assert _structure(ours) == _structure(ref)
    assert ours.read_bytes()[:20] == b"MATLAB 7.3 MAT-file,"


# --------------------------------------------------------------------------------------------------
# the module end to end
# --------------------------------------------------------------------------------------------------


def test_container_module_writes_the_host_tree(python, code_root, tmp_path):
    imgs_a, imgs_b = _images(tmp_path / "train", 1, 5), _images(tmp_path / "test", 2, 3)
    (tmp_path / "deploy.prototxt").write_text(PROTOTXT)
    (tmp_path / "w.caffemodel").write_bytes(b"")
    out_a, out_b = tmp_path / "features" / "train", tmp_path / "features" / "test"
    common = ["--prototxt", tmp_path / "deploy.prototxt", "--caffemodel", tmp_path / "w.caffemodel",
              "--layers", ",".join(LAYERS), "--n-units", "10", "--batch-size", "2"]  # fmt: skip

    done = run_module(python, code_root, ["--images", tmp_path / "train", "--out", out_a, *common], tmp_path)
    assert done.returncode == 0, done.stderr
    assert "5 image(s) extracted" in done.stdout

    # the unit index is the host's draw, in a file the host and bdpy read
    index_file = out_a / ex.index_file_name(10)
    index = formats.read_feature_index(index_file)
    full = _expected(imgs_a)
    totals = {layer: full[layer].shape[1] for layer in LAYERS}
    assert totals == {"conv1_abs": 64, "conv1": 64, "fire2:concat": 16, "fc6": 2, "fc7": 2}
    host_index = ex.resolve_unit_index(totals, 10, 0, None)
    assert set(index) == set(LAYERS)
    for layer in LAYERS:
        np.testing.assert_array_equal(index[layer], host_index[layer])
    bdpy_index = hdf5storage.loadmat(str(index_file))["index"]  # what bdpy's Features(feature_index=...) reads
    assert all(np.array_equal(np.ravel(bdpy_index[k]), index[k]) for k in LAYERS)

    # values: the host's preprocessing and the stub's layers; conv1_abs survived the in-place ReLU
    from bdpy.dataform import Features

    bd = Features(str(out_a))
    assert sorted(bd.layers) == sorted(LAYERS) and list(bd.labels) == sorted(p.stem for p in imgs_a)
    for layer in LAYERS:
        ours = formats.read_layer(out_a, layer)
        np.testing.assert_allclose(ours, full[layer][:, index[layer]], rtol=1e-5, atol=1e-3)
        np.testing.assert_array_equal(np.asarray(bd.get_features(layer)).reshape(len(imgs_a), -1), ours)
    # the stub runs relu1 in place: conv1_abs holds negative pre-ReLU values only if read before it ran
    assert (full["conv1_raw"][:, index["conv1_abs"]] < 0).any()
    assert not list(out_a.rglob(".*"))  # no temporary files left

    # the files are the host writer's, structure and attributes included
    _assert_host_format(out_a / "fc6" / f"{imgs_a[0].stem}.mat", tmp_path)
    _assert_host_format(index_file, tmp_path)

    # resumable: a second run writes nothing
    mtimes = {p: p.stat().st_mtime_ns for p in out_a.rglob("*.mat")}
    again = run_module(python, code_root, ["--images", tmp_path / "train", "--out", out_a, *common], tmp_path)
    assert again.returncode == 0 and "0 image(s) extracted" in again.stdout, again.stderr
    assert {p: p.stat().st_mtime_ns for p in out_a.rglob("*.mat")} == mtimes

    # the other stimulus set reuses the index (another seed would draw other units)
    other = run_module(python, code_root, ["--images", tmp_path / "test", "--out", out_b, "--seed", "1",
                                           "--index-from", index_file, *common], tmp_path)  # fmt: skip
    assert other.returncode == 0, other.stderr
    index_b = formats.read_feature_index(out_b / ex.index_file_name(10))
    assert all(np.array_equal(index_b[k], index[k]) for k in LAYERS)
    assert not np.array_equal(ex.subsample_indices(64, 10, 1, "conv1"), index["conv1"])
    np.testing.assert_allclose(formats.read_layer(out_b, "conv1"), _expected(imgs_b)["conv1"][:, index["conv1"]],
                               rtol=1e-5, atol=1e-3)  # fmt: skip

    # a user error is one line and exit status 2
    bad = run_module(python, code_root, ["--images", tmp_path / "train", "--out", tmp_path / "x", *common[:4],
                                         "--layers", "conv9"], tmp_path)  # fmt: skip
    assert bad.returncode == 2 and "no blob 'conv9'" in bad.stderr and len(bad.stderr.strip().splitlines()) == 1


def test_unit_draw_under_python39_equals_host(python39, code_root):
    """The draw crosses numpy's two sampling algorithms (population above and below 10000)."""
    cases = [(64, 10, "conv1"), (9216, 1000, "fc6"), (10001, 1000, "pool5"), (290400, 1000, "conv1_abs"),
             (12000, 11000, "fire9:concat"), (5, 1000, "fc8")]  # fmt: skip
    code = ("import json, sys; from bhscore.unit_index import subsample_indices; "
            "print(json.dumps([subsample_indices(n, k, 0, layer).tolist() for n, k, layer in json.loads(sys.argv[1])]))")  # fmt: skip
    out = subprocess.run([python39, "-c", code, json.dumps(cases)], env={"PYTHONPATH": str(code_root)},
                         capture_output=True, text=True, timeout=60, check=True)  # fmt: skip
    for (n, k, layer), got in zip(cases, json.loads(out.stdout), strict=True):
        assert got == ex.subsample_indices(n, k, 0, layer).tolist(), (n, k, layer)


# --------------------------------------------------------------------------------------------------
# the writer against the host's, under the same h5py
# --------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("n_units", [6, 6000])  # plain and chunked + gzip (>= 16 KiB)
def test_feature_files_equal_the_host_writer_byte_for_byte(tmp_path, n_units):
    a = np.random.default_rng(0).standard_normal((1, n_units)).astype(np.float32)
    ours = matfile.write_arrays(tmp_path / "ours.mat", {"feat": a})
    ref = formats.save_feature(tmp_path / "ref.mat", a)
    assert ours.read_bytes()[128:] == ref.read_bytes()[128:]  # all but the header text (time, platform)
    assert ours.read_bytes()[116:128] == ref.read_bytes()[116:128] == bytes(8) + b"\x00\x02IM"
    np.testing.assert_array_equal(formats.load_feature(ours), a)
    assert ours.stat().st_mode == ref.stat().st_mode


def test_index_file_equals_the_host_writer(tmp_path):
    index = {"conv1_abs": np.array([3, 7, 9]), "fire2:concat": np.arange(0, 6000, 2), "fc8": np.array([0])}
    ours = matfile.write_struct(tmp_path / "index_random1000.mat", "index", index)
    formats.write_feature_index(tmp_path / "ref.mat", index)
    assert _structure(ours) == _structure(tmp_path / "ref.mat")
    got = formats.read_feature_index(ours)
    assert list(got) == list(index) and all(np.array_equal(got[k], index[k]) for k in index)
    assert {k: v.tolist() for k, v in cx.read_feature_index(tmp_path / "ref.mat").items()} == {k: v.tolist() for k, v in index.items()}
    with pytest.raises(ValueError, match="leading"):
        matfile.write_struct(tmp_path / "x.mat", "index", {".hidden": np.array([1])})


def test_container_index_rules_are_the_hosts(tmp_path):
    """One implementation (bhscore.unit_index), each side with its own files and error class."""
    own, other = tmp_path / "own" / ex.index_file_name(3), tmp_path / "other.mat"
    cx.resolve_unit_index({"fc6": 20}, 3, 0, own)
    formats.write_feature_index(other, {"fc6": np.array([0, 1, 2])})
    with pytest.raises(cx.ExtractionError, match="keep different units"):
        cx.resolve_unit_index({"fc6": 20}, 3, 0, own, [other])
    with pytest.raises(UserError, match="keep different units"):
        ex.resolve_unit_index({"fc6": 20}, 3, 0, own, [other])
    with pytest.raises(cx.ExtractionError, match="holds 3 unit indices"):
        cx.resolve_unit_index({"fc6": 20}, 4, 0, None, [other])


def test_container_constants_and_preprocessing_equal_the_host(tmp_path):
    assert cx.CAFFE_BGR_MEAN == ex.CAFFE_BGR_MEAN and cx.DEFAULT_N_UNITS == ex.DEFAULT_N_UNITS
    assert cx.IMAGE_SUFFIXES == ex.IMAGE_SUFFIXES and cx.index_file_name(7) == ex.index_file_name(7)
    paths = _images(tmp_path / "imgs", 3, 5)
    assert cx.list_images(tmp_path / "imgs") == ex.list_images(tmp_path / "imgs")
    host = ex.make_preprocess("caffe", (8, 6))
    for p in paths:
        np.testing.assert_array_equal(cx.preprocess_caffe(cx.load_image(p), (8, 6)), host(p))


# --------------------------------------------------------------------------------------------------
# the real image (needs a Docker daemon; deselected by default)
# --------------------------------------------------------------------------------------------------


@pytest.mark.docker
def test_docker_image_extracts_a_real_caffe_network(tmp_path):
    if shutil.which("docker") is None:
        pytest.skip("docker is not installed")
    image = "bhscore-caffe:test"
    subprocess.run(["docker", "build", "-q", "-t", image, str(REPO_ROOT / "feature_extraction" / "caffe")], check=True)
    # PROTOTXT with random-filler weights, saved by Caffe itself
    proto = PROTOTXT.replace("convolution_param { num_output: 1 kernel_size: 1 }",
                             'convolution_param { num_output: 1 kernel_size: 1 weight_filler { type: "gaussian" std: 1 } }')  # fmt: skip
    proto = proto.replace('type: "Pooling" bottom', 'type: "Pooling" pooling_param { pool: MAX kernel_size: 2 stride: 2 } bottom')
    proto = proto.replace('type: "InnerProduct" bottom: "fire2/concat" top: "fc6" }',
                          'type: "InnerProduct" bottom: "fire2/concat" top: "fc6" inner_product_param { num_output: 2 } }')  # fmt: skip
    proto = proto.replace('type: "InnerProduct" bottom: "fc6" top: "fc7" }',
                          'type: "InnerProduct" bottom: "fc6" top: "fc7" inner_product_param { num_output: 2 } }')  # fmt: skip
    model = tmp_path / "model"
    model.mkdir()
    (model / "deploy.prototxt").write_text(proto)
    user = f"{os.getuid()}:{os.getgid()}"
    subprocess.run(["docker", "run", "--rm", "--user", user, "-v", f"{model}:/w", image, "python3", "-c",
                    "import caffe; caffe.Net('/w/deploy.prototxt', caffe.TEST).save('/w/w.caffemodel')"], check=True)  # fmt: skip
    imgs = _images(tmp_path / "imgs", 4, 3)
    out = tmp_path / "out"
    out.mkdir()
    cmd = ex.caffe_docker_command(repo_root=REPO_ROOT, images=tmp_path / "imgs", out_dir=out,
                                  prototxt=model / "deploy.prototxt", caffemodel=model / "w.caffemodel",
                                  layers=LAYERS, n_units=None, batch_size=2, image=image)  # fmt: skip
    subprocess.run(cmd, check=True)
    shapes = {layer: formats.read_layer(out, layer).shape for layer in LAYERS}
    assert shapes == {"conv1_abs": (3, 64), "conv1": (3, 64), "fire2:concat": (3, 16), "fc6": (3, 2), "fc7": (3, 2)}
    # all units kept: conv1 = relu(raw), conv1_abs = |raw|, taken before Caffe's in-place ReLU
    conv_abs, conv = formats.read_layer(out, "conv1_abs"), formats.read_layer(out, "conv1")
    np.testing.assert_allclose(conv[conv > 0], conv_abs[conv > 0], rtol=1e-6)
    assert ((conv == 0) & (conv_abs > 0)).any() and len(imgs) == 3
