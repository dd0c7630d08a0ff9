"""The Caffe route without Docker: prototxt rewrite and the docker command (the in-container module itself:
tests/test_caffe_container.py)."""

from __future__ import annotations

import json

import pytest

from bhscore import caffe_prototxt as cp
from bhscore import extraction as ex
from bhscore.cli import main
from bhscore.settings import REPO_ROOT

# An AlexNet-like deploy prototxt: comments, legacy and new syntax, in-place ReLU and Dropout chains,
# a branch reading conv1 *before* its ReLU, a blob name with '/'.
PROTOTXT = """\
name: "TinyNet"   # a comment
input: "data"
input_shape { dim: 1 dim: 3 dim: 8 dim: 8 }
layer {
  name: "conv1"
  type: "Convolution"
  bottom: "data"
  top: "conv1"
  convolution_param { num_output: 1 kernel_size: 1 }
}
layer { name: "peek" type: "Pooling" bottom: "conv1" top: "peek" }
layer { name: "relu1" type: "ReLU" bottom: "conv1" top: "conv1" }
layer { name: "pool1" type: "Pooling" bottom: "conv1" top: "fire2/concat" }
layer { name: "fc6" type: "InnerProduct" bottom: "fire2/concat" top: "fc6" }
layer { name: "relu6" type: "ReLU" bottom: "fc6" top: "fc6" }
layer { name: "drop6" type: "Dropout" bottom: "fc6" top: "fc6" dropout_param { dropout_ratio: 0.5 } }
layer { name: "fc7" type: "InnerProduct" bottom: "fc6" top: "fc7" }
layer {
  name: "train_only" type: "Accuracy" bottom: "fc7" bottom: "label" top: "acc"
  include { phase: TRAIN }
}
"""


def test_parse_and_format_round_trip():
    net = cp.parse(PROTOTXT)
    assert net.get("name") == "TinyNet" and net.all("input") == ["data"]
    layers = net.all("layer")
    assert len(layers) == 9 and layers[0].get("convolution_param").get("num_output") == "1"
    again = cp.parse(cp.format_message(net))
    assert again == net
    assert cp.parse('a: "x\\"y" b: [1, 2] c < d: 1 >') == cp.Message(
        [cp.Field("a", 'x"y', True), cp.Field("b", "1"), cp.Field("b", "2"), cp.Field("c", cp.Message([cp.Field("d", "1")]))]
    )
    with pytest.raises(cp.PrototxtError, match="line 3: expected a field name"):
        cp.parse('layer {\n name: "x" }\n }')


def test_rewrite_gives_every_inplace_layer_its_own_blob():
    new, versions = cp.rewrite_inplace(cp.parse(PROTOTXT))
    by_name = {lay.get("name"): lay for lay in new.all("layer")}
    assert versions["conv1"] == ["conv1", "conv1/relu1"]
    assert versions["fc6"] == ["fc6", "fc6/relu6", "fc6/drop6"]
    assert versions["fire2/concat"] == ["fire2/concat"]
    assert by_name["peek"].all("bottom") == ["conv1"]  # read before the ReLU: the raw version
    assert by_name["relu1"].all("bottom") == ["conv1"] and by_name["relu1"].all("top") == ["conv1/relu1"]
    assert by_name["pool1"].all("bottom") == ["conv1/relu1"]
    assert by_name["drop6"].all("bottom") == ["fc6/relu6"] and by_name["fc7"].all("bottom") == ["fc6/drop6"]
    assert by_name["train_only"].all("bottom") == ["fc7", "label"]  # TRAIN-only layers untouched
    tops = [t for lay in new.all("layer") for t in lay.all("top")]
    assert len(tops) == len(set(tops))  # no blob is written twice: nothing in place any more
    # weights bind to layer names, which are unchanged; the original is not modified
    assert [lay.get("name") for lay in new.all("layer")] == [lay.get("name") for lay in cp.parse(PROTOTXT).all("layer")]
    assert cp.format_message(cp.parse(PROTOTXT)) != cp.format_message(new)


def test_rewrite_of_legacy_layers_syntax_and_name_clash():
    text = 'input: "data"\nlayers { name: "c" type: CONVOLUTION bottom: "data" top: "x" }\n' \
           'layers { name: "r" type: RELU bottom: "x" top: "x" }\nlayers { name: "other" bottom: "x" top: "x/r" }\n'
    new, versions = cp.rewrite_inplace(cp.parse(text))
    assert versions["x"][0] == "x" and versions["x"][1] not in ("x", "x/r")  # 'x/r' is taken: a suffix
    assert new.all("layers")[1].get("type") == "RELU"


def test_blob_for_layer_and_input_shape():
    _, versions = cp.rewrite_inplace(cp.parse(PROTOTXT))
    assert cp.blob_for_layer("conv1_abs", versions) == ("conv1", True)
    assert cp.blob_for_layer("conv1", versions) == ("conv1/relu1", False)
    assert cp.blob_for_layer("fire2:concat", versions) == ("fire2/concat", False)
    assert cp.blob_for_layer("fc6", versions) == ("fc6/drop6", False)
    with pytest.raises(KeyError, match="close names: fc6"):
        cp.blob_for_layer("fc66", versions)
    net = cp.parse(PROTOTXT)
    assert cp.input_blob(net) == "data" and cp.input_shape(net) == (1, 3, 8, 8)
    assert cp.input_shape(cp.parse('input: "d" input_dim: 10 input_dim: 3 input_dim: 227 input_dim: 227')) == (10, 3, 227, 227)
    layer_form = cp.parse('layer { name: "d" type: "Input" top: "img" input_param { shape { dim: 1 dim: 3 dim: 224 dim: 224 } } }')
    assert cp.input_blob(layer_form) == "img" and cp.input_shape(layer_form) == (1, 3, 224, 224)


# --------------------------------------------------------------------------------------------------
# the docker command
# --------------------------------------------------------------------------------------------------


def test_docker_command_line(tmp_path):
    proto, model = tmp_path / "m" / "deploy.prototxt", tmp_path / "m" / "net.caffemodel"
    cmd = ex.caffe_docker_command(
        repo_root=tmp_path / "repo", images=tmp_path / "imgs", out_dir=tmp_path / "out", prototxt=proto,
        caffemodel=model, layers=["conv1_abs", "fire2:concat"], n_units=1000, seed=0, batch_size=8,
        index_from=tmp_path / "train" / "index_random1000.mat", user="1000:1000",
    )  # fmt: skip
    assert cmd[:5] == ["docker", "run", "--rm", "--user", "1000:1000"]
    mounts = [cmd[i + 1] for i, c in enumerate(cmd) if c == "-v"]
    assert mounts == [  # of the repository only the container package and the four modules it shares
        f"{tmp_path / 'repo' / 'bhscore' / 'caffe_container'}:/opt/bhscore/bhscore/caffe_container:ro",
        f"{tmp_path / 'repo' / 'bhscore' / 'caffe_prototxt.py'}:/opt/bhscore/bhscore/caffe_prototxt.py:ro",
        f"{tmp_path / 'repo' / 'bhscore' / 'unit_index.py'}:/opt/bhscore/bhscore/unit_index.py:ro",
        f"{tmp_path / 'repo' / 'bhscore' / 'rgb.py'}:/opt/bhscore/bhscore/rgb.py:ro",
        f"{tmp_path / 'repo' / 'bhscore' / 'atomic.py'}:/opt/bhscore/bhscore/atomic.py:ro",
        f"{tmp_path / 'imgs'}:/images:ro",
        f"{tmp_path / 'out'}:/out",
        f"{proto}:/model/deploy.prototxt:ro",
        f"{model}:/model/net.caffemodel:ro",
        f"{tmp_path / 'train' / 'index_random1000.mat'}:/index/index_random1000.mat:ro",
    ]
    assert cmd[cmd.index("-e") + 1] == "PYTHONPATH=/opt/bhscore"
    rest = cmd[cmd.index(ex.CAFFE_IMAGE) :]
    assert rest[:4] == [ex.CAFFE_IMAGE, "python3", "-m", "bhscore.caffe_container"]
    opts = dict(zip(rest[4::2], rest[5::2], strict=True))
    assert opts == {
        "--images": "/images", "--out": "/out", "--prototxt": "/model/deploy.prototxt",
        "--caffemodel": "/model/net.caffemodel", "--layers": "conv1_abs,fire2:concat", "--n-units": "1000",
        "--seed": "0", "--batch-size": "8", "--index-from": "/index/index_random1000.mat",
    }  # fmt: skip
    assert all((REPO_ROOT / p).exists() for p in ex.CAFFE_CODE_PATHS)


def test_cli_caffe_dry_run_uses_settings_paths(tmp_path, capsys):
    repo = json.loads((REPO_ROOT / "settings.json").read_text())
    repo.pop("$schema", None)
    repo["data_root"] = str(tmp_path / "data")
    repo["dnns"] = {"AlexNet": repo["dnns"]["AlexNet"]}
    sp = tmp_path / "s.json"
    sp.write_text(json.dumps(repo))
    args = ["extract", "--settings", str(sp), "--backend", "caffe", "--dnn", "AlexNet", "--images", str(tmp_path),
            "--split", "ImageNetTest", "--dry-run"]  # fmt: skip
    assert main(args) == 2
    assert "caffe_models/AlexNet" in capsys.readouterr().err  # says where the network files go
    mdir = tmp_path / "data" / "caffe_models" / "AlexNet"
    mdir.mkdir(parents=True)
    (mdir / "deploy.prototxt").write_text(PROTOTXT)
    (mdir / "bvlc_alexnet.caffemodel").write_bytes(b"")
    train_index = tmp_path / "data" / "features" / "ImageNetTraining" / "caffe" / "AlexNet" / "index_random1000.mat"
    train_index.parent.mkdir(parents=True)
    train_index.write_bytes(b"")
    assert main(args) == 0
    printed = capsys.readouterr().out
    assert f"{tmp_path}/data/features/ImageNetTest/caffe/AlexNet:/out" in printed
    assert f"{train_index}:/index/index_random1000.mat:ro" in printed
    assert "--layers conv1_abs,conv2,conv3,conv4,conv5,fc6,fc7,fc8" in printed
