import copy
import json

import pytest

from bhscore.paths import Layout, data_root
from bhscore.settings import REPO_ROOT, SettingsError, json_schema, load_settings, settings_from_dict

PAPER = json.loads((REPO_ROOT.parent / "shared" / "reference" / "paper_settings.json").read_text()) if (
    REPO_ROOT.parent / "shared" / "reference" / "paper_settings.json"
).exists() else None


@pytest.fixture(scope="module")
def raw():
    return json.loads((REPO_ROOT / "settings.json").read_text())


def test_repository_settings_load(raw):
    s = load_settings(REPO_ROOT / "settings.json")
    assert len(s.dnns) == 29
    assert sum(len(d.layers) for d in s.dnns.values()) == 705
    assert s.rois == ["V1", "V2", "V3", "V4", "HVC"]
    assert s.analysis.decoding.alpha == 100 and s.analysis.decoding.n_feat == 500
    assert s.analysis.score.p_method == "legacy"
    assert all(d.imagenet_top1 is not None for d in s.dnns.values())


@pytest.mark.skipif(PAPER is None, reason="shared/reference not beside the checkout")
def test_dnns_exactly_as_paper(raw):
    s = load_settings(REPO_ROOT / "settings.json")
    assert list(s.dnns) == list(PAPER["dnns"])
    for name, d in PAPER["dnns"].items():
        assert s.dnns[name].dir == d["dir"]
        assert s.dnns[name].layers == d["layers"]
    assert s.subjects == PAPER["subjects"]


def test_schema_file_is_current():
    on_disk = json.loads((REPO_ROOT / "settings.schema.json").read_text())
    assert on_disk == json_schema(), "run `bhscore settings --schema settings.schema.json`"


def _error(raw, mutate) -> str:
    bad = copy.deepcopy(raw)
    mutate(bad)
    with pytest.raises(SettingsError) as e:
        settings_from_dict(bad, source="settings.json")
    return str(e.value)


def test_too_few_layers_names_dnn(raw):
    msg = _error(raw, lambda d: d["dnns"]["AlexNet"].update(layers=["a", "b", "c"]))
    assert "AlexNet (3)" in msg and "layers_per_draw = 5" in msg


def test_unknown_roi_lists_allowed(raw):
    msg = _error(raw, lambda d: d.update(rois=["V1", "V2", "V5"]))
    assert "rois" in msg and "'V5'" in msg and "HVC" in msg


def test_misspelled_key_suggests(raw):
    msg = _error(raw, lambda d: d["analysis"]["decoding"].update(alhpa=1.0))
    assert "analysis.decoding.alhpa" in msg and "did you mean 'alpha'" in msg and "n_feat" in msg


def test_misspelled_key_inside_dnn(raw):
    msg = _error(raw, lambda d: d["dnns"]["VGG-F"].update(layer=["x"]))
    assert "dnns.VGG-F.layer" in msg and "'layers'" in msg


def test_bad_choice_names_value_and_choices(raw):
    msg = _error(raw, lambda d: d["analysis"]["score"].update(p_method="bonferroni"))
    assert "analysis.score.p_method" in msg and "bonferroni" in msg and "'legacy'" in msg and "'corrected'" in msg


def test_duplicate_layers_rejected(raw):
    msg = _error(raw, lambda d: d["dnns"]["AlexNet"]["layers"].append("conv2"))
    assert "repeated" in msg and "conv2" in msg


def test_every_problem_reported(raw):
    def mutate(d):
        d["analysis"]["decoding"]["alpha"] = -1
        d["subjects"] = []

    msg = _error(raw, mutate)
    assert "2 problem(s)" in msg and "alpha" in msg and "subjects" in msg


def test_not_json(tmp_path):
    p = tmp_path / "s.json"
    p.write_text("{ not json")
    with pytest.raises(SettingsError, match="not valid JSON"):
        load_settings(p)


def test_missing_file(tmp_path):
    with pytest.raises(SettingsError, match="not found"):
        load_settings(tmp_path / "nope.json")


def test_unknown_dnn_suggests(raw):
    s = settings_from_dict(raw)
    with pytest.raises(SettingsError, match="Did you mean 'AlexNet'"):
        s.dnn("Alexnet")


def test_data_root_relative_to_file_and_env_override(tmp_path, monkeypatch, raw):
    (tmp_path / "proj").mkdir()
    p = tmp_path / "proj" / "settings.json"
    p.write_text(json.dumps(raw))
    s = load_settings(p)
    assert data_root(s) == (tmp_path / "proj" / "data").resolve()
    monkeypatch.setenv("BHSCORE_DATA", str(tmp_path / "elsewhere"))
    assert data_root(s) == (tmp_path / "elsewhere").resolve()
    lay = Layout.from_settings(s)
    assert lay.fmri_file("sub-01", "ImageNetTest").name == "sub-01_perceptionNaturalImageTest_VC_v2.h5"
    acc = lay.accuracy_file(lay.published_accuracy_root("decoding"), "caffe/AlexNet", "conv2", "sub-02", "V4")
    assert acc.relative_to(tmp_path / "elsewhere").as_posix() == (
        "published/decoding_accuracy/ImageNetTest/caffe/AlexNet/conv2/sub-02/V4/accuracy.mat"
    )
    computed = lay.param_set_dir("encoding", "0123456789ab")
    assert computed.relative_to(tmp_path / "elsewhere").as_posix() == "computed/encoding_accuracy/0123456789ab"


@pytest.mark.parametrize("bad", ["", ".", "..", "../sub-01", "a/b", "a\\b", "sub\x0001"])
def test_subject_and_layer_names_are_single_path_components(raw, bad):
    msg = _error(raw, lambda d: d.update(subjects=["sub-01", bad]))
    assert "subjects = " in msg and "single path components" in msg and repr(bad) in msg
    msg = _error(raw, lambda d: d["dnns"]["AlexNet"]["layers"].append(bad))
    assert "dnns.AlexNet.layers" in msg and "single path components" in msg and repr(bad) in msg


def test_layer_names_with_colons_are_fine(raw):
    d = copy.deepcopy(raw)
    d["dnns"]["AlexNet"]["layers"][0] = "features:0"
    assert settings_from_dict(d).dnns["AlexNet"].layers[0] == "features:0"


@pytest.mark.parametrize("alpha", [float("inf"), float("nan"), 0, -1.0])
def test_alpha_finite_and_positive(raw, alpha):
    msg = _error(raw, lambda d: d["analysis"]["decoding"].update(alpha=alpha))
    assert "analysis.decoding.alpha" in msg and ("finite" in msg or "greater than 0" in msg)


def test_floats_may_be_json_integers(raw):
    d = copy.deepcopy(raw)
    d["analysis"]["decoding"]["alpha"] = 250
    d["dnns"]["AlexNet"]["imagenet_top1"] = 57
    s = settings_from_dict(json.loads(json.dumps(d)))
    assert s.analysis.decoding.alpha == 250.0 and s.dnns["AlexNet"].imagenet_top1 == 57.0


@pytest.mark.parametrize(
    ("section", "key", "value"),
    [("decoding", "n_feat", True), ("decoding", "n_feat", "40"), ("score", "n_draws", "40"),
     ("score", "seed", False), ("score", "n_bootstrap", 10.5), ("score", "encoding_voxel_subsample", True),
     ("decoding", "alpha", "100"), ("decoding", "alpha", True)],
)  # fmt: skip
def test_json_types_are_strict(raw, section, key, value):
    msg = _error(raw, lambda d: d["analysis"][section].update({key: value}))
    assert f"analysis.{section}.{key} = {json.dumps(value)}: must be a JSON" in msg


@pytest.mark.parametrize(("key", "limit"), [("n_draws", "100000"), ("n_bootstrap", "100000")])
def test_repetition_counts_are_bounded_with_their_memory(raw, key, limit):
    ok = copy.deepcopy(raw)
    ok["analysis"]["score"][key] = 100_000
    ok["analysis"]["score"]["n_bootstrap" if key == "n_draws" else "n_draws"] = 10
    assert getattr(settings_from_dict(ok).analysis.score, key) == 100_000
    msg = _error(raw, lambda d: d["analysis"]["score"].update({key: 100_001}))
    assert f"analysis.score.{key} = 100001: must be <= {limit}" in msg and " GB of memory" in msg


def test_bootstrap_memory_of_both_counts_is_bounded(raw):
    msg = _error(raw, lambda d: d["analysis"]["score"].update(n_draws=100_000, n_bootstrap=100_000))
    assert "n_bootstrap = 100000 with n_draws = 100000" in msg and "725 GB" in msg and "limit 16 GB" in msg


def test_write_settings_writes_validated_json_atomically(raw, tmp_path):
    from bhscore.settings import write_settings

    text = json.dumps(raw, indent=2) + "\n"  # the written format: the mapping's key order, indent 2
    path = write_settings(raw, tmp_path / "new" / "settings.json")
    assert path == tmp_path / "new" / "settings.json" and path.read_text() == text
    assert list(load_settings(path).dnns) == list(raw["dnns"])
    bad = copy.deepcopy(raw)
    bad["rois"] = ["V1", "V5"]
    with pytest.raises(SettingsError, match="V5"):
        write_settings(bad, tmp_path / "bad.json")
    with pytest.raises(SettingsError, match="V5"):
        write_settings(bad, path)
    assert not (tmp_path / "bad.json").exists() and path.read_text() == text  # nothing written
    assert [p.name for p in path.parent.iterdir()] == ["settings.json"]  # no temporary file left
