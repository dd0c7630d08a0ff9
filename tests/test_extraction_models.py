"""Models by name, weights from local files only, CORnet, the CLI and settings-driven extraction."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from bhscore import extraction as ex
from bhscore.cli import main
from bhscore.errors import MissingDataError, UserError
from bhscore.formats import read_feature_index, read_layer

TINY_SPEC = "tests.test_extraction:tiny"


@pytest.fixture(autouse=True)
def _no_home_caches(tmp_path, monkeypatch):
    """torch hub and Hugging Face caches point into tmp_path (never the home directory)."""
    import huggingface_hub.constants as hc

    monkeypatch.setattr(torch.hub, "_hub_dir", str(tmp_path / "torch_hub"))
    monkeypatch.setattr(hc, "HF_HUB_CACHE", str(tmp_path / "hf"))


@pytest.fixture(scope="module")
def stimuli(tmp_path_factory):
    """Four procedural 64 px JPEG stimuli (test set) and two more (training set)."""
    from bhscore.stimuli import write_stimuli

    root = tmp_path_factory.mktemp("stim")
    write_stimuli(root / "test", 4, seed=0, size=64)
    write_stimuli(root / "train", 2, seed=1, size=64)
    return root


# --------------------------------------------------------------------------------------------------
# model specs and weights
# --------------------------------------------------------------------------------------------------


def test_unknown_models_are_clear_errors():
    with pytest.raises(UserError, match=r"unknown torchvision model 'resnet1800'.*resnet18"):
        ex.load_model("torchvision:resnet1800")
    with pytest.raises(UserError, match="cannot import 'no_such_pkg.models'"):
        ex.load_model("no_such_pkg.models:net")
    with pytest.raises(UserError, match=r"no function 'cornet_q'.*cornet_"):
        ex.load_model("bhscore.models.cornet:cornet_q")
    with pytest.raises(UserError, match="is not 'torchvision:<name>'"):
        ex.load_model("resnet18")


def test_torchvision_random_weights_are_seeded():
    a = ex.load_model("torchvision:resnet18", None, seed=1)
    b = ex.load_model("torchvision:resnet18", "none", seed=1)
    c = ex.load_model("torchvision:resnet18", None, seed=2)
    assert torch.equal(a.model.conv1.weight, b.model.conv1.weight)
    assert not torch.equal(a.model.conv1.weight, c.model.conv1.weight)
    assert a.input_size == (224, 224) and a.mean == ex.IMAGENET_MEAN and a.weights.startswith("random")


def test_torchvision_weights_come_from_the_cache_only(tmp_path):
    with pytest.raises(MissingDataError) as e:
        ex.load_model("torchvision:resnet18", "IMAGENET1K_V1")
    msg = str(e.value)
    assert "https://download.pytorch.org/models/resnet18-f37072fd.pth" in msg
    assert str(tmp_path / "torch_hub" / "checkpoints" / "resnet18-f37072fd.pth") in msg
    # put a (random) checkpoint where the message says: it loads without any network access
    ref = ex.load_model("torchvision:resnet18", None, seed=5).model
    target = tmp_path / "torch_hub" / "checkpoints" / "resnet18-f37072fd.pth"
    target.parent.mkdir(parents=True)
    torch.save(ref.state_dict(), target)
    loaded = ex.load_model("torchvision:resnet18", "IMAGENET1K_V1")
    assert torch.equal(loaded.model.fc.weight, ref.fc.weight) and loaded.weights == "ResNet18_Weights.IMAGENET1K_V1"
    with pytest.raises(UserError, match="IMAGENET1K_V1"):
        ex.load_model("torchvision:resnet18", "IMAGENET9K")


def test_weights_file_for_torchvision_and_mismatch(tmp_path):
    ref = ex.load_model("torchvision:resnet18", None, seed=7).model
    path = tmp_path / "r18.pth"
    torch.save({"state_dict": {f"module.{k}": v for k, v in ref.state_dict().items()}}, path)
    loaded = ex.load_model("torchvision:resnet18", str(path))
    assert torch.equal(loaded.model.layer4[1].conv2.weight, ref.layer4[1].conv2.weight)
    with pytest.raises(UserError, match="does not fit"):
        ex.load_model("torchvision:resnet34", str(path))
    with pytest.raises(MissingDataError, match="weights file not found"):
        ex.load_model("torchvision:resnet18", str(tmp_path / "missing.pth"))


def test_timm_models_file_weights_and_missing_cache(tmp_path):
    ref = ex.load_model("timm:resnet18", None, seed=3)
    assert ref.transform is not None and ref.spec == "timm:resnet18"
    path = tmp_path / "timm_r18.pth"
    torch.save(ref.model.state_dict(), path)
    loaded = ex.load_model("timm:resnet18.a1_in1k", str(path))
    assert torch.equal(loaded.model.fc.weight, ref.model.fc.weight)
    with pytest.raises(UserError, match=r"not in the local cache.*huggingface.co/timm/resnet18.a1_in1k"):
        ex.load_model("timm:resnet18.a1_in1k", "DEFAULT")
    with pytest.raises(UserError, match="unknown timm model"):
        ex.load_model("timm:resnet_eighteen")


def test_timm_tf_port_declares_its_own_normalisation():
    # the paper preset normalises with the model's mean/std: [-1, 1] for the TensorFlow ports
    cfg = ex.load_model("timm:inception_v3.tf_in1k", None)
    assert cfg.input_size == (299, 299) and cfg.mean == (0.5, 0.5, 0.5) and cfg.std == (0.5, 0.5, 0.5)


def test_entry_point_from_a_file(tmp_path):
    src = tmp_path / "mynet.py"
    src.write_text("import torch.nn as nn\n\ndef net():\n    m = nn.Sequential(nn.Conv2d(3, 4, 3), nn.ReLU())\n"
                   "    m.input_size = 32\n    return m\n\ndef not_a_module():\n    return 3\n")  # fmt: skip
    loaded = ex.load_model(f"{src}:net")
    assert loaded.input_size == (32, 32) and isinstance(loaded.model[0], torch.nn.Conv2d)
    with pytest.raises(UserError, match="returned int, not a torch.nn.Module"):
        ex.load_model(f"{src}:not_a_module")


# --------------------------------------------------------------------------------------------------
# CORnet
# --------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("letter", ["z", "r", "s"])
def test_cornet_architectures(letter):
    from bhscore.models import cornet

    model = getattr(cornet, f"cornet_{letter}")().eval()
    infos = {i.name: i for i in ex.list_layers(model, 64)}
    assert infos["decoder.linear"].shape == (1000,)
    assert infos["IT.output"].shape[0] == 512 and infos["V1.output"].shape[0] == 64
    calls = {"z": (1, 1, 1), "r": (5, 5, 5), "s": (1, 2, 4)}[letter]
    assert (infos["V1.output"].calls, infos["V2.output"].calls, infos["V4.output"].calls) == calls


def test_cornet_r_spatial_sizes_at_224():
    from bhscore.models.cornet import cornet_r

    infos = {i.name: i for i in ex.list_layers(cornet_r(), 224)}
    assert [infos[f"{a}.output"].shape[1] for a in ("V1", "V2", "V4", "IT")] == [56, 28, 14, 7]


def test_cornet_weights_file_in_the_authors_format(tmp_path):
    from bhscore.models.cornet import cornet_z

    ref = cornet_z()
    path = tmp_path / "cornet_z-5c427c9c.pth"
    torch.save({"epoch": 1, "arch": "CORnet_Z", "state_dict": {f"module.{k}": v for k, v in ref.state_dict().items()}},
               path)  # fmt: skip
    loaded = ex.load_model("bhscore.models.cornet:cornet_z", str(path))
    assert torch.equal(loaded.model.V2.conv.weight, ref.V2.conv.weight)
    with pytest.raises(MissingDataError, match=r"s3.amazonaws.com/cornet-models/cornet_z-5c427c9c.pth"):
        ex.load_model("bhscore.models.cornet:cornet_z", str(tmp_path / "absent" / "cornet_z-5c427c9c.pth"))


# --------------------------------------------------------------------------------------------------
# settings-driven extraction, CLI
# --------------------------------------------------------------------------------------------------


def _settings_with_repo_dnns(tmp_path, names):
    from bhscore.settings import REPO_ROOT

    repo = json.loads((REPO_ROOT / "settings.json").read_text())
    repo["data_root"] = str(tmp_path / "data")
    repo["dnns"] = {n: repo["dnns"][n] for n in names}
    repo.pop("$schema", None)
    p = tmp_path / "settings.json"
    p.write_text(json.dumps(repo))
    return p


def test_resnet18_end_to_end_through_the_settings(tmp_path, stimuli, capsys):
    """ResNet-18 of settings.json, random weights, 4 + 2 images: both trees readable, same units."""
    sp = _settings_with_repo_dnns(tmp_path, ["ResNet-18"])
    # 4 + 2 procedural images, not the 50 test names of the shipped list: --allow-missing
    args = ["extract", "--settings", str(sp), "--dnn", "ResNet-18", "--device", "cpu", "--no-progress", "--allow-missing"]
    # the paper's weights are not in the (empty) cache: a clear error naming the file and where it goes
    assert main([*args, "--images", str(stimuli / "test"), "--split", "ImageNetTest"]) == 2
    err = capsys.readouterr().err
    assert "resnet18-f37072fd.pth" in err and "download" in err and "Traceback" not in err
    for split, sub in (("ImageNetTest", "test"), ("ImageNetTraining", "train")):
        assert main([*args, "--weights", "none", "--images", str(stimuli / sub), "--split", split,
                     "--batch-size", "3"]) == 0  # fmt: skip
    test_dir = tmp_path / "data" / "features" / "ImageNetTest" / "pytorch" / "resnet18"
    train_dir = tmp_path / "data" / "features" / "ImageNetTraining" / "pytorch" / "resnet18"
    layers = ["conv1_abs", "layer1", "layer2", "layer3", "layer4", "fc"]
    for d, n in ((test_dir, 4), (train_dir, 2)):
        for layer in layers:
            x = read_layer(d, layer)
            assert x.shape == (n, 1000) and np.isfinite(x).all()
        assert (read_layer(d, "conv1_abs") >= 0).all() and (read_layer(d, "layer4") >= 0).all()
        assert (read_layer(d, "fc") < 0).any()  # logits, no ReLU
    ia, ib = read_feature_index(test_dir / "index_random1000.mat"), read_feature_index(train_dir / "index_random1000.mat")
    assert sorted(ia) == sorted(layers) and all(np.array_equal(ia[k], ib[k]) for k in layers)
    assert ia["conv1_abs"].max() < 64 * 112 * 112
    # a second run has nothing to do
    assert main([*args, "--weights", "none", "--images", str(stimuli / "test"), "--split", "ImageNetTest"]) == 0
    assert "0 image(s) extracted, 4 already done" in capsys.readouterr().out


def test_model_preset_with_torchvision_transforms(tmp_path, stimuli):
    out = tmp_path / "f"
    s = ex.extract_features("torchvision:resnet18", stimuli / "test", out, ["layer4"], preprocessing="model",
                            device="cpu", progress=False)  # fmt: skip
    assert s.units == {"layer4": 1000} and read_layer(out, "layer4").shape == (4, 1000)


def test_cli_layers_lists_modules(capsys):
    assert main(["layers", "--model", TINY_SPEC, "--input-size", "16"]) == 0
    out = capsys.readouterr().out
    assert "conv" in out and "(2, 16, 16)" in out and "Conv2d" in out
    assert main(["layers", "--model", "torchvision:resnet18"]) == 0
    out = capsys.readouterr().out
    assert "layer4" in out and "(512, 7, 7)" in out and "(64, 112, 112)" in out


def test_cli_layers_marks_the_settings_layers(tmp_path, capsys):
    sp = _settings_with_repo_dnns(tmp_path, ["CORnet-Z"])
    assert main(["layers", "--settings", str(sp), "--dnn", "CORnet-Z"]) == 0
    out = capsys.readouterr().out
    line = next(x for x in out.splitlines() if x.startswith("V1.conv "))
    assert "V1_conv_abs" in line


def test_cli_extract_with_a_model_spec_and_errors(tmp_path, stimuli, capsys):
    out = tmp_path / "o"
    base = ["extract", "--model", TINY_SPEC, "--images", str(stimuli / "test"), "--out", str(out), "--device", "cpu"]
    assert main([*base, "--layers", "conv_abs,readout=fc", "--n-units", "all", "--no-progress"]) == 0
    assert read_layer(out, "conv_abs").shape == (4, 512) and read_layer(out, "readout").shape == (4, 3)
    assert main([*base, "--layers", "conv,fcc"]) == 2
    err = capsys.readouterr().err
    assert "no module 'fcc'" in err and "Close names: fc" in err
    assert main(["extract", "--model", TINY_SPEC, "--images", str(stimuli / "test")]) == 2
    assert "--model needs --out DIR and --layers" in capsys.readouterr().err
    assert main(["extract", "--dnn", "AlexNet", "--images", str(stimuli / "test"), "--split", "ImageNetTest"]) == 2
    assert "no 'model'" in capsys.readouterr().err


def test_thin_script_forwards_to_the_cli(tmp_path, stimuli):
    import subprocess
    import sys

    from bhscore.settings import REPO_ROOT

    out = tmp_path / "o"
    spec = f"{REPO_ROOT / 'tests' / 'test_extraction.py'}:tiny"  # the file form of a module:function spec
    r = subprocess.run(
        [sys.executable, str(REPO_ROOT / "feature_extraction" / "extract_features_pytorch.py"), "--model", spec,
         "--images", str(stimuli / "test"), "--out", str(out), "--layers", "fc", "--device", "cpu", "--no-progress"],
        capture_output=True, text=True, cwd=REPO_ROOT, timeout=120,
    )  # fmt: skip
    assert r.returncode == 0, r.stderr
    assert read_layer(out, "fc").shape == (4, 3)
