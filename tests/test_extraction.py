"""Feature extraction on hand-weighted tiny models whose activations are known exactly."""

from __future__ import annotations

import h5py
import numpy as np
import pytest
import torch
from PIL import Image
from torch import nn

from bhscore import extraction as ex
from bhscore.errors import CorruptFileError, MissingDataError, UserError
from bhscore.formats import load_feature, read_feature_index, read_layer

MEAN = np.array(ex.IMAGENET_MEAN, np.float32)
STD = np.array(ex.IMAGENET_STD, np.float32)


@pytest.fixture(autouse=True)
def _no_home_caches(tmp_path, monkeypatch):
    """Weight caches point into tmp_path: tests never read the home directory's caches."""
    monkeypatch.setattr(torch.hub, "_hub_dir", str(tmp_path / "torch_hub"))


class Tiny(nn.Module):
    """conv 1x1 (ch0 = R - G, ch1 = 0.5 B - 1) -> in-place ReLU -> 2x2 average pool -> flatten -> fc."""

    input_size = 16

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 2, 1)
        self.relu = nn.ReLU(inplace=True)
        self.pool = nn.AdaptiveAvgPool2d(2)
        self.flat = nn.Flatten()
        self.fc = nn.Linear(8, 3)
        with torch.no_grad():
            self.conv.weight.copy_(torch.tensor([[1.0, -1.0, 0.0], [0.0, 0.0, 0.5]]).reshape(2, 3, 1, 1))
            self.conv.bias.copy_(torch.tensor([0.0, -1.0]))
            self.fc.weight.copy_(torch.stack([torch.ones(8), torch.eye(8)[0], torch.zeros(8)]))
            self.fc.bias.copy_(torch.tensor([0.0, 0.0, 7.0]))

    def forward(self, x):
        return self.fc(self.flat(self.pool(self.relu(self.conv(x)))))


def tiny():
    return Tiny()


def _two_colour(path, left, right, size=16):
    a = np.zeros((size, size, 3), np.uint8)
    a[:, : size // 2] = left
    a[:, size // 2 :] = right
    Image.fromarray(a).save(path)
    return path


COLOURS = {"img_a": ((200, 50, 30), (10, 240, 250)), "img_b": ((0, 0, 0), (255, 255, 255)), "img_c": ((90, 90, 200), (30, 160, 20))}


@pytest.fixture
def tiny_images(tmp_path):
    d = tmp_path / "images"
    d.mkdir()
    for name, (left, right) in COLOURS.items():
        _two_colour(d / f"{name}.png", left, right)
    return d


def _expected(left, right):
    """Exact activations of Tiny for a 16x16 image with two uniform halves (no resize at input size 16)."""
    x = np.zeros((3, 16, 16), np.float32)
    for half, colour in ((slice(0, 8), left), (slice(8, 16), right)):
        v = (np.asarray(colour, np.float32) / np.float32(255) - MEAN) / STD
        x[:, :, half] = v[:, None, None]
    conv = np.stack([x[0] - x[1], 0.5 * x[2] - 1.0])
    relu = np.maximum(conv, 0)
    pool = relu.reshape(2, 2, 8, 2, 8).mean(axis=(2, 4))
    flat = pool.reshape(-1)
    fc = np.array([flat.sum(), flat[0], 7.0])
    return {"conv": conv, "conv_abs": np.abs(conv), "relu": relu, "pool": pool, "fc": fc}


LAYERS = ["conv", "conv_abs", "relu", "pool", "fc"]


def test_exact_activations_and_files(tiny_images, tmp_path):
    out = tmp_path / "feat"
    s = ex.extract_features(Tiny(), tiny_images, out, LAYERS, n_units=None, device="cpu", batch_size=2, progress=False)
    assert (s.n_computed, s.n_skipped, s.units["conv"]) == (3, 0, 512)
    for name, (left, right) in COLOURS.items():
        want = _expected(left, right)
        for layer in LAYERS:
            path = out / layer / f"{name}.mat"
            assert h5py.is_hdf5(path)  # MAT v7.3
            with h5py.File(path) as f:
                assert list(f.keys()) == ["feat"] or "feat" in f
                assert f["feat"].dtype == np.float32
            a = load_feature(path)
            assert a.shape == (1, want[layer].size)
            np.testing.assert_allclose(a[0], want[layer].reshape(-1), rtol=1e-5, atol=1e-5)
    # the in-place ReLU ran after the conv hook: negative conv outputs must survive
    assert (load_feature(out / "conv" / "img_a.mat") < 0).any()
    assert not (out / ex.index_file_name(1000)).exists()  # no subsampling, no index


def test_tree_is_read_by_formats_and_bdpy(tiny_images, tmp_path):
    from bdpy.dataform import Features

    out = tmp_path / "feat"
    ex.extract_features(Tiny(), tiny_images, out, LAYERS, n_units=4, device="cpu", progress=False)
    f = Features(str(out))
    assert sorted(f.layers) == sorted(LAYERS)
    assert list(f.labels) == sorted(COLOURS)
    for layer in LAYERS:
        ours = read_layer(out, layer)
        assert ours.shape == (3, min(4, _expected(*COLOURS["img_a"])[layer].size))
        np.testing.assert_array_equal(np.asarray(f.get(layer=layer)).reshape(3, -1), ours)


def test_abs_is_abs_of_module_output(tiny_images, tmp_path):
    out = tmp_path / "feat"
    ex.extract_features(Tiny(), tiny_images, out, ["conv", "conv_abs"], n_units=None, device="cpu", progress=False)
    raw, absval = read_layer(out, "conv"), read_layer(out, "conv_abs")
    np.testing.assert_array_equal(absval, np.abs(raw))
    assert (raw < 0).any() and (absval >= 0).all()


def test_modules_mapping_names_layers(tiny_images, tmp_path):
    out = tmp_path / "feat"
    ex.extract_features(
        Tiny(), tiny_images, out, ["first_abs", "readout"], modules={"first_abs": "conv", "readout": "fc"},
        n_units=None, device="cpu", progress=False,
    )  # fmt: skip
    want = _expected(*COLOURS["img_a"])
    np.testing.assert_allclose(load_feature(out / "first_abs" / "img_a.mat")[0], want["conv_abs"].ravel(), atol=1e-5)
    np.testing.assert_allclose(load_feature(out / "readout" / "img_a.mat")[0], want["fc"], atol=1e-5)


def test_subsample_same_units_in_training_and_test(tmp_path):
    train, test = tmp_path / "train", tmp_path / "test"
    for d, names in ((train, ["t1", "t2", "t3"]), (test, ["x1", "x2"])):
        d.mkdir()
        for i, n in enumerate(names):
            _two_colour(d / f"{n}.png", (40 * i, 100, 200), (250 - 30 * i, 20, 60))
    ftrain, ftest, ffull = tmp_path / "f" / "ImageNetTraining", tmp_path / "f" / "ImageNetTest", tmp_path / "full"
    kw = dict(device="cpu", progress=False)
    ex.extract_features(Tiny(), train, ftrain, LAYERS, n_units=10, seed=3, **kw)
    # a different seed for the test set: the training index must still win
    ex.extract_features(Tiny(), test, ftest, LAYERS, n_units=10, seed=99,
                        index_from=[ftrain / "index_random10.mat"], **kw)  # fmt: skip
    ix_train, ix_test = read_feature_index(ftrain / "index_random10.mat"), read_feature_index(ftest / "index_random10.mat")
    assert set(ix_train) == set(LAYERS)
    for layer in LAYERS:
        np.testing.assert_array_equal(ix_train[layer], ix_test[layer])
    assert ix_train["conv"].size == 10 and ix_train["fc"].tolist() == [0, 1, 2]  # fc has only 3 units
    assert np.all(np.diff(ix_train["conv"]) > 0) and ix_train["conv"].max() < 512
    # the stored units are exactly those columns of the full layer
    ex.extract_features(Tiny(), test, ffull, LAYERS, n_units=None, **kw)
    for layer in LAYERS:
        np.testing.assert_array_equal(read_layer(ftest, layer), read_layer(ffull, layer)[:, ix_train[layer]])


def test_subsample_indices_seeded_per_layer():
    a = ex.subsample_indices(10_000, 1000, 0, "conv1")
    assert a.shape == (1000,) and a.dtype == np.int64 and np.unique(a).size == 1000 and np.all(np.diff(a) > 0)
    np.testing.assert_array_equal(a, ex.subsample_indices(10_000, 1000, 0, "conv1"))
    assert not np.array_equal(a, ex.subsample_indices(10_000, 1000, 1, "conv1"))
    assert not np.array_equal(a, ex.subsample_indices(10_000, 1000, 0, "conv2"))
    np.testing.assert_array_equal(ex.subsample_indices(50, 1000, 0, "x"), np.arange(50))


def test_conflicting_index_files_are_refused(tiny_images, tmp_path):
    a, b = tmp_path / "a", tmp_path / "b"
    ex.extract_features(Tiny(), tiny_images, a, ["conv"], n_units=10, seed=1, device="cpu", progress=False)
    ex.extract_features(Tiny(), tiny_images, b, ["conv"], n_units=10, seed=2, device="cpu", progress=False)
    with pytest.raises(UserError, match="different"):
        ex.extract_features(Tiny(), tiny_images, b, ["conv"], n_units=10, index_from=[a / "index_random10.mat"],
                            device="cpu", progress=False, overwrite=True)  # fmt: skip


def test_options_object_and_keywords_are_the_same_call(tiny_images, tmp_path):
    opts = ex.ExtractionOptions(n_units=10, seed=5, device="cpu", progress=False)
    ex.extract_features(Tiny(), tiny_images, tmp_path / "a", ["conv"], opts)
    # keywords override the object's fields
    s = ex.extract_features(Tiny(), tiny_images, tmp_path / "b", ["conv"], ex.ExtractionOptions(seed=1), n_units=10, seed=5,
                            device="cpu", progress=False)  # fmt: skip
    assert s.units == {"conv": 10}
    np.testing.assert_array_equal(read_layer(tmp_path / "a", "conv"), read_layer(tmp_path / "b", "conv"))
    with pytest.raises(TypeError, match="n_unit"):
        ex.extract_features(Tiny(), tiny_images, tmp_path / "c", ["conv"], n_unit=10)


class _FailingPreprocess:
    """The real preprocessing, failing once on one image (an interrupted run)."""

    def __init__(self, fail_on):
        self.inner = ex.make_preprocess("paper", 16)
        self.fail_on = fail_on

    def __call__(self, path):
        if path.stem == self.fail_on:
            self.fail_on = None
            raise KeyboardInterrupt
        return self.inner(path)


def test_resume_after_interruption(tmp_path):
    imgs = tmp_path / "imgs"
    imgs.mkdir()
    for i in range(5):
        _two_colour(imgs / f"im{i}.png", (50 * i, 30, 90), (10, 40 * i, 200))
    paths = ex.list_images(imgs)
    out, ref = tmp_path / "out", tmp_path / "ref"
    specs = ex.resolve_layers(Tiny(), LAYERS)
    backend = ex.TorchBackend(Tiny(), specs, "cpu")
    pre = _FailingPreprocess("im3")
    with pytest.raises(KeyboardInterrupt):
        ex.run_extraction(backend, paths, out, LAYERS, pre, n_units=6, batch_size=2, progress=False)
    done = sorted(p.stem for p in (out / "fc").glob("*.mat"))
    assert done == ["im0", "im1"]  # the first batch was written; nothing of the failed batch
    assert not [p for p in out.rglob("*") if p.name.startswith(".")]  # no temporary files left
    (out / "pool" / "im1.mat").unlink()  # and one layer of a finished image goes missing
    s = ex.run_extraction(backend, paths, out, LAYERS, pre, n_units=6, batch_size=2, progress=False)
    assert (s.n_computed, s.n_skipped) == (4, 1)
    ex.run_extraction(backend, paths, ref, LAYERS, ex.make_preprocess("paper", 16), n_units=6, progress=False)
    for layer in LAYERS:
        np.testing.assert_array_equal(read_layer(out, layer), read_layer(ref, layer))
    s = ex.run_extraction(backend, paths, out, LAYERS, pre, n_units=6, progress=False)
    assert (s.n_computed, s.n_skipped) == (0, 5)


def test_resume_refuses_a_different_unit_count(tiny_images, tmp_path):
    out = tmp_path / "out"
    ex.extract_features(Tiny(), [next(tiny_images.iterdir())], out, ["conv"], n_units=None, device="cpu", progress=False)
    with pytest.raises(UserError, match="holds 512 units"):
        ex.extract_features(Tiny(), tiny_images, out, ["conv"], n_units=10, device="cpu", progress=False)


def test_hooks_removed_after_use_and_after_errors(tiny_images, tmp_path):
    model = Tiny()
    ex.extract_features(model, tiny_images, tmp_path / "a", LAYERS, device="cpu", progress=False)
    assert all(not m._forward_hooks for m in model.modules())
    bad = tmp_path / "bad"
    bad.mkdir()
    (bad / "broken.jpg").write_bytes(b"not an image at all")
    _two_colour(bad / "fine.png", (1, 2, 3), (4, 5, 6))
    with pytest.raises(CorruptFileError, match="broken.jpg"):
        ex.extract_features(model, bad, tmp_path / "b", LAYERS, device="cpu", progress=False)
    assert all(not m._forward_hooks for m in model.modules())


class Recurrent(nn.Module):
    """x -> step(x) three times, step = 2 * identity: the calls' outputs are 2x, 4x, 8x."""

    input_size = 2

    def __init__(self):
        super().__init__()
        self.step = nn.Conv2d(3, 3, 1, bias=False)
        with torch.no_grad():
            self.step.weight.copy_(2 * torch.eye(3).reshape(3, 3, 1, 1))

    def forward(self, x):
        for _ in range(3):
            x = self.step(x)
        return x


def test_repeated_calls_need_an_explicit_choice(tmp_path):
    img = tmp_path / "i"
    img.mkdir()
    Image.fromarray(np.full((2, 2, 3), 128, np.uint8)).save(img / "g.png")
    x = ((128 / 255 - MEAN) / STD)[:, None, None] * np.ones((3, 2, 2), np.float32)
    with pytest.raises(UserError, match=r"'step' \(3 calls\).*call='first', 'last' or 'all'"):
        ex.extract_features(Recurrent(), img, tmp_path / "o", ["step"], device="cpu", progress=False)
    want = {"first": 2 * x, "last": 8 * x, "all": np.stack([2 * x, 4 * x, 8 * x])}
    for call, expected in want.items():
        out = tmp_path / call
        ex.extract_features(Recurrent(), img, out, ["step"], call=call, n_units=None, device="cpu", progress=False)
        np.testing.assert_allclose(load_feature(out / "step" / "g.mat")[0], expected.ravel(), rtol=1e-6)
    # 'all' subsamples the stacked calls with one index
    out = tmp_path / "all5"
    ex.extract_features(Recurrent(), img, out, ["step"], call="all", n_units=5, device="cpu", progress=False)
    ix = read_feature_index(out / "index_random5.mat")["step"]
    np.testing.assert_allclose(load_feature(out / "step" / "g.mat")[0], want["all"].ravel()[ix], rtol=1e-6)


def test_unknown_layer_lists_close_names():
    with pytest.raises(UserError) as e:
        ex.resolve_layers(Tiny(), ["conv", "convv_abs", "fcc"], model_name="tiny")
    msg = str(e.value)
    assert "'convv_abs': no module 'convv'" in msg and "Close names: conv" in msg and "fc" in msg
    assert "bhscore layers" in msg


def test_list_layers_shapes_and_calls():
    infos = {i.name: i for i in ex.list_layers(Tiny(), 16)}
    assert infos["conv"].shape == (2, 16, 16) and infos["pool"].shape == (2, 2, 2) and infos["fc"].shape == (3,)
    assert infos["conv"].type == "Conv2d" and infos["conv"].calls == 1
    assert ex.list_layers(Recurrent(), 2)[0].calls == 3
    table = ex.format_layers(list(infos.values()), 16)
    assert "conv" in table and "(2, 16, 16)" in table and "512" in table


# --------------------------------------------------------------------------------------------------
# preprocessing presets
# --------------------------------------------------------------------------------------------------


def test_paper_preset_matches_torchvision_reference(tmp_path):
    import torchvision.transforms.functional as TF
    from torchvision.transforms import InterpolationMode

    rng = np.random.default_rng(0)
    img = Image.fromarray(rng.integers(0, 256, (30, 50, 3), dtype=np.uint8))
    img.save(tmp_path / "r.png")
    ours = ex.make_preprocess("paper", (12, 20))(tmp_path / "r.png")
    ref = TF.normalize(TF.to_tensor(TF.resize(img, [12, 20], InterpolationMode.BICUBIC)), ex.IMAGENET_MEAN, ex.IMAGENET_STD)
    assert ours.shape == (3, 12, 20) and ours.dtype == np.float32
    np.testing.assert_allclose(ours, ref.numpy(), atol=1e-6)
    # the whole image is resized (no crop): a left-half-red image stays left-half red
    a = np.zeros((40, 80, 3), np.uint8)
    a[:, :40, 0] = 255
    Image.fromarray(a).save(tmp_path / "half.png")
    x = ex.make_preprocess("paper", 8)(tmp_path / "half.png")
    red = x[0] * STD[0] + MEAN[0]
    assert red[:, 0].min() > 0.99 and red[:, -1].max() < 0.01


def test_caffe_preset_is_bgr_minus_mean(tmp_path):
    a = np.zeros((10, 10, 3), np.uint8)
    a[..., 2] = 255  # pure blue
    Image.fromarray(a).save(tmp_path / "blue.png")
    x = ex.make_preprocess("caffe", 10)(tmp_path / "blue.png")
    assert x.shape == (3, 10, 10)
    np.testing.assert_allclose(x[0], 255 - ex.CAFFE_BGR_MEAN[0], rtol=1e-6)  # channel 0 = B
    np.testing.assert_allclose(x[2], 0 - ex.CAFFE_BGR_MEAN[2], rtol=1e-6)


def test_greyscale_and_rgba_are_converted(tmp_path):
    Image.fromarray(np.full((6, 6), 100, np.uint8), mode="L").save(tmp_path / "grey.png")
    rgba = np.zeros((6, 6, 4), np.uint8)
    rgba[..., 0] = 255
    rgba[:3, :, 3] = 255  # top half opaque red, bottom half fully transparent
    Image.fromarray(rgba, mode="RGBA").save(tmp_path / "rgba.png")
    grey = np.asarray(ex.load_image(tmp_path / "grey.png"))
    assert grey.shape == (6, 6, 3) and (grey == 100).all()
    c = np.asarray(ex.load_image(tmp_path / "rgba.png"))
    assert c.shape == (6, 6, 3) and (c[:3] == [255, 0, 0]).all() and (c[3:] == 255).all()  # over white
    x = ex.make_preprocess("paper", 6)(tmp_path / "grey.png")
    np.testing.assert_allclose(x[:, 0, 0], (100 / 255 - MEAN) / STD, rtol=1e-6)


def test_model_preset_needs_a_transform_and_unknown_preset(tmp_path):
    with pytest.raises(UserError, match="declares none"):
        ex.make_preprocess("model", 16)
    with pytest.raises(UserError, match="paper, caffe, model"):
        ex.make_preprocess("tf", 16)


def test_image_listing_errors(tmp_path):
    with pytest.raises(MissingDataError):
        ex.list_images(tmp_path / "nope")
    (tmp_path / "notes.txt").write_text("x")
    with pytest.raises(UserError, match="no image files"):
        ex.list_images(tmp_path)
    _two_colour(tmp_path / "a.png", (0, 0, 0), (1, 1, 1))
    _two_colour(tmp_path / "a.jpg", (0, 0, 0), (1, 1, 1))
    with pytest.raises(UserError, match="share a name"):
        ex.list_images(tmp_path)
