"""``bhscore stimuli check`` and the extraction guard, on folders of generated images and tiny BData files."""

from __future__ import annotations

import json

import numpy as np
import pytest
from PIL import Image

from bhscore import stimuli_check as sc
from bhscore.cli import main
from bhscore.errors import MissingDataError, UserError
from bhscore.formats import feature_labels, read_fmri, write_fmri
from bhscore.paths import TEST, TRAINING, Layout
from bhscore.settings import load_settings
from bhscore.simulate import stimulus_names

TINY_SPEC = "tests.test_extraction:tiny"


def _settings(root, with_model: bool = False):
    """A settings file whose data root is ``root`` (one DNN: the tiny hand-weighted model)."""
    dnn = {"dir": "pytorch/tiny", "layers": ["conv_abs", "conv", "relu", "pool", "fc"]}
    if with_model:
        dnn["model"] = TINY_SPEC
    raw = {"data_root": str(root), "subjects": ["sub-01", "sub-02", "sub-03"], "rois": ["V1", "V2", "V3", "V4", "HVC"],
           "dnns": {"Tiny": dnn}}  # fmt: skip
    path = root / "settings.json"
    path.write_text(json.dumps(raw))
    return path


def _write_fmri(settings_path, subject, split, names, repeats=2):
    """A tiny BData file of ``split`` showing every name ``repeats`` times."""
    labels = [n for _ in range(repeats) for n in names]
    rng = np.random.default_rng(0)
    rois = {roi: rng.standard_normal((len(labels), 3)) for roi in ("V1", "V2", "V3", "V4", "HVC")}
    path = Layout.from_settings(load_settings(settings_path)).fmri_file(subject, split)
    path.parent.mkdir(parents=True, exist_ok=True)
    return write_fmri(path, rois, labels)


def _image(path, mode="RGB", size=16, fmt=None, seed=0):
    pixels = (np.random.default_rng(seed).random((size, size, 3)) * 255).astype(np.uint8)
    img = Image.fromarray(pixels)
    img = img.convert("I;16") if mode == "I;16" else img.convert(mode)
    img.save(path, format=fmt)
    return path


@pytest.fixture
def names():
    return stimulus_names(12, np.random.default_rng(3))


@pytest.fixture
def complete(tmp_path, names):
    """Settings with a test-set fMRI file of sub-02 only, and a folder holding every name as a JPEG."""
    from bhscore.stimuli import write_stimuli

    sp = _settings(tmp_path, with_model=True)
    _write_fmri(sp, "sub-02", TEST, names)
    folder = tmp_path / "stimuli"
    write_stimuli(folder, len(names), seed=0, size=32, names=names)  # the demo's image writer
    return sp, folder


# --------------------------------------------------------------------------------------------------
# expected names
# --------------------------------------------------------------------------------------------------


def test_fast_label_reader_matches_read_fmri(tmp_path, names):
    sp = _settings(tmp_path)
    path = _write_fmri(sp, "sub-01", TRAINING, names[::-1], repeats=3)
    assert sc.fmri_stimulus_names(path) == sorted(set(read_fmri(path, ["V1"]).labels)) == sorted(names)
    bad = tmp_path / "bad.h5"
    bad.write_bytes(b"not hdf5")
    with pytest.raises(UserError, match=str(bad)):
        sc.fmri_stimulus_names(bad)


def test_names_come_from_any_subjects_fmri_then_the_shipped_list(tmp_path, names):
    sp = _settings(tmp_path)
    settings = load_settings(sp)
    # no fMRI: the test set falls back to the shipped list, the training set to nothing
    shipped = sc.expected_names(TEST, settings)
    assert len(shipped.names) == 50 and "n01443537_22563" in shipped.names and "shipped" in shipped.source
    none = sc.expected_names(TRAINING, settings)
    assert none.names is None and "make download-fmri" in none.source and "--names" in none.source
    path = _write_fmri(sp, "sub-03", TEST, names)  # only the last subject has one
    fmri = sc.expected_names(TEST, settings)
    assert fmri.names == sorted(names) and str(path) in fmri.source
    listed = tmp_path / "names.txt"
    listed.write_text(f"# my subset\n{names[0]}.JPEG\n\n  {names[1]}  # second\n{names[0]}\n")
    from_file = sc.expected_names(TEST, settings, listed)
    assert from_file.names == sorted(names[:2]) and str(listed) in from_file.source
    empty = tmp_path / "empty.txt"
    empty.write_text("# nothing\n")
    with pytest.raises(UserError, match="lists no image names"):
        sc.read_names_file(empty)
    with pytest.raises(MissingDataError):
        sc.read_names_file(tmp_path / "nope.txt")


# --------------------------------------------------------------------------------------------------
# the check
# --------------------------------------------------------------------------------------------------


def test_complete_folder_passes(complete, names, capsys):
    sp, folder = complete
    report = sc.check_stimuli(folder, sc.expected_names(TEST, load_settings(sp)), progress=False)
    assert report.complete and report.files and not (report.missing or report.extra or report.modes)
    assert report.usable == report.files and [p.stem for p in report.files] == sorted(names)
    assert main(["stimuli", "check", str(folder), "--split", TEST, "--settings", str(sp), "--no-progress"]) == 0
    out = capsys.readouterr().out
    assert f"OK: all {len(names)} expected images present and readable" in out and "sub-02" in out


def test_every_problem_is_reported(tmp_path, names, capsys):
    folder = tmp_path / "stimuli"
    folder.mkdir()
    modes = {names[0]: "L", names[1]: "CMYK", names[2]: "RGBA", names[3]: "P", names[4]: "I;16"}
    for i, name in enumerate(names[:9]):
        mode = modes.get(name, "RGB")
        fmt, suffix = ("JPEG", ".JPEG") if mode in ("RGB", "L", "CMYK") else ("PNG", ".png")
        _image(folder / f"{name}{suffix}", mode, fmt=fmt, seed=i)
    _image(folder / f"{names[5]}.jpg", seed=99)  # ambiguous with names[5].JPEG
    data = (folder / f"{names[6]}.JPEG").read_bytes()
    big = _image(tmp_path / "big.jpg", size=64)
    (folder / f"{names[6]}.JPEG").write_bytes(big.read_bytes()[: int(big.stat().st_size * 0.7)])  # truncated
    assert len(data) > 0
    (folder / f"{names[7]}.JPEG").write_bytes(b"")  # empty
    _image(folder / "n09999999_1.JPEG")  # extra
    (folder / "notes.txt").write_text("x")
    (folder / ".DS_Store").write_text("x")  # hidden: ignored silently
    (folder / "n01443537").mkdir()

    report = sc.check_stimuli(folder, names, progress=False, workers=3)
    assert report.missing == sorted(names[9:])
    assert report.extra == ["n09999999_1.JPEG"]
    assert report.ambiguous == {names[5]: [f"{names[5]}.JPEG", f"{names[5]}.jpg"]}
    assert sorted(report.unreadable) == sorted([f"{names[6]}.JPEG", f"{names[7]}.JPEG"])
    assert "truncated" in report.unreadable[f"{names[6]}.JPEG"] and report.unreadable[f"{names[7]}.JPEG"] == "empty file"
    assert report.modes == {"CMYK": [f"{names[1]}.JPEG"], "I;16": [f"{names[4]}.png"], "L": [f"{names[0]}.JPEG"],
                            "P": [f"{names[3]}.png"], "RGBA": [f"{names[2]}.png"]}  # fmt: skip
    assert report.ignored == ["notes.txt"] and report.subdirectories == ["n01443537"]
    assert not report.complete and report.problems() == "3 missing, 1 ambiguous, 2 unreadable"
    usable = {p.name for p in report.usable}
    assert f"{names[6]}.JPEG" not in usable and not any(p.startswith(names[5]) for p in usable) and len(usable) == 7
    text = report.summary(max_listed=2)
    assert "MISSING: 3" in text and "... and 1 more" in text and "converted to RGB" in text
    assert text.splitlines()[-1].startswith(f"INCOMPLETE: 3 missing, 1 ambiguous, 2 unreadable in {folder}")
    # names only: no image is opened
    quick = sc.check_stimuli(folder, names, read_images=False)
    assert not quick.unreadable and not quick.modes and quick.missing == report.missing

    listed = tmp_path / "names.txt"
    listed.write_text("\n".join(names) + "\n")
    assert main(["stimuli", "check", str(folder), "--names", str(listed), "--json", "--no-progress"]) == 2
    data = json.loads(capsys.readouterr().out)
    assert data["complete"] is False and data["n_expected"] == len(names) and data["missing"] == report.missing
    assert data["modes"]["CMYK"] == [f"{names[1]}.JPEG"]


def test_without_expected_names_only_consistency(tmp_path, names, capsys):
    sp = _settings(tmp_path)
    folder = tmp_path / "train"
    folder.mkdir()
    for i, n in enumerate([*names[:3], "cat"]):
        _image(folder / f"{n}.JPEG", seed=i)
    rc = main(["stimuli", "check", str(folder), "--split", TRAINING, "--settings", str(sp), "--no-progress"])
    out = capsys.readouterr().out
    assert rc == 0 and "only the folder's consistency" in out and "has 1200 images" in out
    assert "names not of the form" in out and "cat" in out
    assert main(["stimuli", "check", str(folder)]) == 2
    assert "--split" in capsys.readouterr().err
    empty = tmp_path / "empty"
    empty.mkdir()
    assert main(["stimuli", "check", str(empty), "--split", TEST, "--settings", str(sp)]) == 2
    assert "MISSING: 50" in capsys.readouterr().out  # the shipped test list


# --------------------------------------------------------------------------------------------------
# the guard in bhscore extract
# --------------------------------------------------------------------------------------------------


def test_extract_refuses_an_incomplete_folder_unless_allowed(complete, names, capsys):
    sp, folder = complete
    (folder / f"{names[0]}.JPEG").unlink()  # missing
    (folder / f"{names[1]}.JPEG").write_bytes(b"\xff\xd8\xff")  # unreadable
    args = ["extract", "--settings", str(sp), "--dnn", "Tiny", "--images", str(folder), "--split", TEST,
            "--device", "cpu", "--no-progress"]  # fmt: skip
    out_dir = sp.parent / "features" / TEST / "pytorch" / "tiny"
    assert main(args) == 2
    err = capsys.readouterr().err
    assert f"{folder}: 1 missing, 1 unreadable of the {len(names)} ImageNetTest images" in err
    assert names[0] in err and names[1] in err and "--allow-missing" in err and "Traceback" not in err
    assert len(err.strip().splitlines()) == 1 and not out_dir.exists()  # one line; nothing extracted

    assert main([*args, "--allow-missing"]) == 0
    assert feature_labels(out_dir, "fc") == sorted(names[2:])
    # a complete folder passes without the flag
    (folder / f"{names[1]}.JPEG").unlink()
    listed = sp.parent / "names.txt"
    listed.write_text("\n".join(names[2:]))
    assert main([*args, "--names", str(listed)]) == 0


def test_extract_with_a_model_spec_checks_consistency(tmp_path, names, capsys):
    folder = tmp_path / "stimuli"
    folder.mkdir()
    for i, n in enumerate(names[:3]):
        _image(folder / f"{n}.JPEG", seed=i)
    _image(folder / f"{names[0]}.png")
    out = tmp_path / "o"
    args = ["extract", "--model", TINY_SPEC, "--images", str(folder), "--out", str(out), "--layers", "fc",
            "--device", "cpu", "--no-progress"]  # fmt: skip
    assert main(args) == 2
    assert "1 ambiguous" in capsys.readouterr().err and not out.exists()
    assert main([*args, "--allow-missing"]) == 0
    assert feature_labels(out, "fc") == sorted(names[1:3])


def test_extract_dnn_checks_only_when_asked(complete, names):
    """The Python API (the demo) extracts the images it is given; the CLI turns the check on."""
    from bhscore.extraction import extract_dnn

    sp, folder = complete
    settings = load_settings(sp)
    (folder / f"{names[0]}.JPEG").unlink()
    with pytest.raises(UserError, match="1 missing"):
        extract_dnn(settings, "Tiny", folder, TEST, device="cpu", progress=False, check_stimuli=True)
    summary = extract_dnn(settings, "Tiny", folder, TEST, device="cpu", progress=False)
    assert feature_labels(sp.parent / "features" / TEST / "pytorch" / "tiny", "fc") == sorted(names[1:])
    assert summary is not None
