"""Results that know where they came from (issue #9): parameter sets, job states, published vs computed,
bad inputs, the score's provenance, migration. Each of the five failures of the issue is reproduced here on a
small simulated experiment (and the local figshare imitation) and shown fixed."""

from __future__ import annotations

import hashlib
import json
import logging
import shutil
from pathlib import Path

import h5py
import numpy as np
import pytest

from bhscore import formats, jobs
from bhscore.cli import main
from bhscore.errors import UserError
from bhscore.paths import TEST, TRAINING, Layout
from bhscore.provenance import ParamSet, known_param_sets
from bhscore.settings import load_settings
from bhscore.sources import accuracy_file

pytestmark = [pytest.mark.filterwarnings("ignore::DeprecationWarning:fastl2lir")]

SUBJECTS = ["sub-01", "sub-02"]


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    """A small simulated experiment (2 subjects, 2 DNNs x 5 layers, 5 ROIs); returns its settings path."""
    from bhscore.simulate import SimulatedDNN, simulate_dataset

    dnns = (
        SimulatedDNN("Planted", "simulated/Planted", 5, hierarchical=True),
        SimulatedDNN("Control", "simulated/Control", 5, hierarchical=False),
    )
    path = simulate_dataset(
        tmp_path_factory.mktemp("prov") / "data", seed=2, n_train=60, train_repeats=2, n_test=20,
        test_repeats=2, n_units=16, voxels_per_roi=(12, 18), dnns=dnns, n_feat=8,
    )  # fmt: skip
    raw = json.loads(path.read_text())
    raw["subjects"] = SUBJECTS
    raw["analysis"]["score"]["n_bootstrap"] = 0
    path.write_text(json.dumps(raw))
    return path


def fresh(dataset: Path, dst: Path, **edit) -> Path:
    """A copy of the inputs (fMRI, features, settings) under ``dst``; ``edit``: analysis section overrides."""
    for sub in ("fmri", "features"):
        shutil.copytree(dataset.parent / sub, dst / sub)
    raw = json.loads(dataset.read_text())
    for section, values in edit.items():
        raw["analysis"].setdefault(section, {}).update(values)
    (dst / "settings.json").write_text(json.dumps(raw))
    return dst / "settings.json"


def digests(tree: Path) -> dict[str, str]:
    return {p.relative_to(tree).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(tree.rglob("*")) if p.is_file()}  # fmt: skip


def states(settings, kind="decoding", **sel) -> dict[str, int]:
    sts = jobs.job_statuses(settings, jobs.list_jobs(settings, kind, **sel), ParamSet.from_settings(settings, kind))
    return {s: sum(v.state == s for v in sts.values()) for s in jobs.STATES}


def set_settings(path: Path, section: str, **values) -> None:
    raw = json.loads(path.read_text())
    raw["analysis"].setdefault(section, {}).update(values)
    path.write_text(json.dumps(raw))


N_DEC = 2 * 5 * len(SUBJECTS) * 5  # DNNs x layers x subjects x ROIs


# -------------------------------------------------------------------------------------------------
# parameter sets, records, states
# -------------------------------------------------------------------------------------------------


def test_every_result_records_what_made_it(dataset, tmp_path):
    s = load_settings(fresh(dataset, tmp_path))
    rep = jobs.run(s, "decoding", dnns=["Planted"], layers=["layer2"], progress=False)
    assert len(rep.ran) == 10
    path = accuracy_file(s, "decoding", "Planted", "layer2", "sub-02", "V3")
    content = formats.read_accuracy_file(path)
    rec = content.provenance
    ps = ParamSet.from_settings(s, "decoding")
    assert path.is_relative_to(Layout.from_settings(s).param_set_dir("decoding", ps.id))
    assert rec["param_set"] == ps.id and rec["params"] == ps.params
    assert rec["params"]["alpha"] == 100.0 and rec["params"]["n_feat"] == 8 and rec["params"]["solver"] == "batched"
    assert rec["job"] == {"kind": "decoding", "dnn": "Planted", "dnn_dir": "simulated/Planted", "layer": "layer2",
                          "subject": "sub-02", "roi": "V3"}  # fmt: skip
    fm = rec["inputs"]["fmri_training"]
    fmri = Layout.from_settings(s).fmri_file("sub-02", TRAINING)
    assert fm["file"] == "fmri/sub-02_perceptionNaturalImageTraining_VC_v2.h5" and fm["size"] == fmri.stat().st_size
    assert fm["sha256"] == hashlib.sha256(fmri.read_bytes()).hexdigest()
    assert rec["inputs"]["features_test"]["n_files"] == 20
    assert rec["n_outputs"] == content.accuracy.size == 16 and rec["n_test_images"] == content.n_samples == 20
    assert rec["packages"]["bhscore"] and rec["created"].endswith("+00:00")
    # bdpy and hdf5storage read the file as before
    from bdpy.dataform import load_array

    np.testing.assert_array_equal(load_array(str(path), key="accuracy").ravel(), content.accuracy.astype(np.float32))
    params = json.loads((path.parents[6] / "params.json").read_text())
    assert params["param_set"] == ps.id and params["params"] == ps.params


def test_alpha_change_is_a_new_parameter_set_and_old_results_stay(dataset, tmp_path):
    """Failure 3: changing alpha reused the old accuracies ('210 already done')."""
    path = fresh(dataset, tmp_path)
    s = load_settings(path)
    jobs.run(s, "decoding", progress=False)
    old_tree = ParamSet.from_settings(s, "decoding").directory(Layout.from_settings(s))
    before = digests(old_tree)
    set_settings(path, "decoding", alpha=1e6)
    s2 = load_settings(path)
    assert states(s2) == {"done": 0, "stale": 0, "missing": N_DEC, "invalid": 0}
    rep = jobs.run(s2, "decoding", progress=False)
    assert len(rep.ran) == N_DEC and rep.already_done == 0
    assert digests(old_tree) == before, "the old parameter set was touched"
    sets = known_param_sets(Layout.from_settings(s2), "decoding")
    assert len(sets) == 2 and {p["alpha"] for p in sets.values()} == {100.0, 1e6}
    a = formats.read_accuracy(accuracy_file(s, "decoding", "Planted", "layer3", "sub-01", "V2"))[0]
    b = formats.read_accuracy(accuracy_file(s2, "decoding", "Planted", "layer3", "sub-01", "V2"))[0]
    assert not np.allclose(a, b)
    # --list names the other set and how it differs
    assert main(["decode", "--settings", str(path), "--list"]) == 0


def test_list_explains_missing_and_stale(dataset, tmp_path, capsys):
    path = fresh(dataset, tmp_path)
    s = load_settings(path)
    jobs.run(s, "decoding", dnns=["Control"], progress=False)
    set_settings(path, "decoding", n_feat=5)
    assert main(["decode", "--settings", str(path), "--dnn", "Control", "--subject", "sub-01", "--list"]) == 0
    out = capsys.readouterr().out
    assert "missing  decoding Control layer1 sub-01 V1  (in parameter set" in out and "n_feat 8 -> 5" in out
    assert "0 done, 0 stale, 25 missing, 0 invalid (of 25)" in out
    set_settings(path, "decoding", n_feat=8)
    with h5py.File(Layout.from_settings(s).fmri_file("sub-01", TEST), "r+") as f:  # a changed input
        f["dataset"][0, 0] += 1.0
    assert main(["decode", "--settings", str(path), "--dnn", "Control", "--subject", "sub-01", "--list"]) == 0
    out = capsys.readouterr().out
    assert "stale    decoding Control layer1 sub-01 V1  (test fMRI file changed (fmri/sub-01_" in out
    assert "0 done, 25 stale, 0 missing, 0 invalid (of 25)" in out


def test_changed_input_is_recomputed_and_the_old_file_kept(dataset, tmp_path, capsys):
    path = fresh(dataset, tmp_path)
    s = load_settings(path)
    lay = Layout.from_settings(s)
    sel = dict(dnns=["Planted"], subjects=["sub-01"], rois=["V1", "V2"])
    jobs.run(s, "decoding", progress=False, **sel)
    victim = accuracy_file(s, "decoding", "Planted", "layer1", "sub-01", "V1")
    old = victim.read_bytes()
    mtime_only = lay.features_dir(TEST, "simulated/Planted") / "layer1"
    for f in mtime_only.iterdir():  # touching files without changing them is no change
        f.touch()
    assert states(s, **sel)["done"] == 10
    feat = sorted((lay.features_dir(TRAINING, "simulated/Planted") / "layer1").glob("*.mat"))[0]
    a = formats.load_feature(feat)
    formats.save_feature(feat, a + 1.0)
    assert states(s, **sel) == {"done": 8, "stale": 2, "missing": 0, "invalid": 0}
    rep = jobs.run(s, "decoding", progress=False, **sel)
    assert len(rep.ran) == 2 and len(rep.recomputed) == 2 and rep.already_done == 8
    moved = rep.superseded_dir / victim.relative_to(lay.computed_root)
    assert moved.read_bytes() == old and victim.read_bytes() != old
    assert "moved to" in rep.summary("decoding")
    assert states(s, **sel)["done"] == 10


def test_invalid_results_are_named_and_recomputed(dataset, tmp_path):
    """Failure 5 (part): a 0-byte accuracy.mat was listed 'done'."""
    path = fresh(dataset, tmp_path)
    s = load_settings(path)
    sel = dict(dnns=["Control"], layers=["layer1"], subjects=["sub-02"])
    jobs.run(s, "decoding", progress=False, **sel)
    files = {roi: accuracy_file(s, "decoding", "Control", "layer1", "sub-02", roi) for roi in s.rois}
    files["V1"].write_bytes(b"")  # 0 bytes
    formats.write_accuracy(files["V2"], np.zeros(16), 20)  # no provenance record (bhscore 0.1 or another tool)
    content = formats.read_accuracy_file(files["V3"])  # another job's record
    formats.write_accuracy(files["V4"], content.accuracy, 20, content.provenance)
    rec = dict(content.provenance, n_outputs=99)
    formats.write_accuracy(files["V3"], content.accuracy, 20, rec)  # wrong size for its record
    sts = jobs.job_statuses(s, jobs.list_jobs(s, "decoding", **sel), ParamSet.from_settings(s, "decoding"))
    by_roi = {j.roi: st for j, st in sts.items()}
    assert by_roi["HVC"].state == "done"
    assert all(by_roi[r].state == "invalid" for r in ("V1", "V2", "V3", "V4")), by_roi
    assert "cannot read" in by_roi["V1"].reason and "no provenance record" in by_roi["V2"].reason
    assert "another job" in by_roi["V4"].reason and "record says 99" in by_roi["V3"].reason
    rep = jobs.run(s, "decoding", progress=False, **sel)
    assert len(rep.ran) == 4 and rep.already_done == 1
    assert states(s, **sel)["done"] == 5


def test_force_recomputes_each_job_once(dataset, tmp_path):
    s = load_settings(fresh(dataset, tmp_path))
    sel = dict(dnns=["Planted"], layers=["layer4"], subjects=["sub-01"])
    jobs.run(s, "encoding", progress=False, **sel)
    first = jobs.run(s, "encoding", force=True, progress=False, **sel)
    assert len(first.ran) == 5 and len(first.recomputed) == 5
    assert sum(1 for _ in first.superseded_dir.rglob("accuracy.mat")) == 5


def test_lock_names_of_similar_jobs_differ(dataset, tmp_path):
    s = load_settings(fresh(dataset, tmp_path))
    lay = Layout.from_settings(s)
    ps = ParamSet.from_settings(s, "decoding")
    a = jobs.JobFiles(lay, s, jobs.Job("decoding", "Planted", "a__b", "sub-01", "V1"), ps)
    b = jobs.JobFiles(lay, s, jobs.Job("decoding", "Planted", "a", "sub-01", "V1"), ps)
    c = jobs.JobFiles(lay, s, jobs.Job("decoding", "Planted", "a:b", "sub-01", "V1"), ps)
    assert len({a.lock, b.lock, c.lock}) == 3


# -------------------------------------------------------------------------------------------------
# published and computed apart (failures 1 and 2)
# -------------------------------------------------------------------------------------------------


def _published_members(s) -> dict[str, bytes]:
    """A published accuracy archive of the settings' DNNs (real accuracy files, no records)."""
    tmp = Path(s.source).parent / "pub_tmp"
    out = {}
    for layer in s.dnns["Planted"].layers:
        for subject in s.subjects:
            for roi in s.rois:
                rel = f"decoding_accuracy/ImageNetTest/simulated/Planted/{layer}/{subject}/{roi}/accuracy.mat"
                p = formats.write_accuracy(tmp / rel, np.full(16, 0.25))
                out[rel] = p.read_bytes()
    shutil.rmtree(tmp)
    return out


def test_download_never_touches_computed_results_nor_counts_as_them(dataset, tmp_path):
    from bhscore.download import REGISTRY, download
    from tests.figshare_server import FakeFigshare, ServedFile, make_zip

    path = fresh(dataset, tmp_path)
    s = load_settings(path)
    jobs.run(s, "decoding", dnns=["Planted"], progress=False)
    computed = Layout.from_settings(s).computed_root
    before = digests(computed)
    members = _published_members(s)
    entry = next(e for e in REGISTRY if e.name == "decoding_accuracy")
    with FakeFigshare(max_requests=50) as fake:
        fake.add(ServedFile(entry.file_id, entry.article, "decoding_accuracy.zip", make_zip(members)))
        download(s.source.parent, "accuracy", names=["decoding_accuracy"], progress=False, backoff=0,
                 api_base=fake.api_base, files_base=fake.files_base)  # fmt: skip
    assert digests(computed) == before  # failure 1: every computed file kept, bit for bit
    pub = accuracy_file(s, "decoding", "Planted", "layer1", "sub-01", "V1", source="published")
    assert pub.read_bytes() == members["decoding_accuracy/ImageNetTest/simulated/Planted/layer1/sub-01/V1/accuracy.mat"]
    assert states(s, dnns=["Planted"])["done"] == 50

    # failure 2: a data root with only the published accuracies has every job still to compute
    other = tmp_path / "other"
    p2 = fresh(dataset, other)
    s2 = load_settings(p2)
    for rel, data in members.items():
        (other / "published" / rel).parent.mkdir(parents=True, exist_ok=True)
        (other / "published" / rel).write_bytes(data)
    assert states(s2, dnns=["Planted"])["missing"] == 50
    rep = jobs.run(s2, "decoding", dnns=["Planted"], progress=False)
    assert len(rep.ran) == 50 and rep.already_done == 0


def test_figure_tables_fetch_only_what_the_source_needs(dataset, tmp_path, capsys):
    path = fresh(dataset, tmp_path)  # accuracy_source: computed (simulated experiments)
    s = load_settings(path)
    assert main(["figure-tables", "--settings", str(path), "--check"]) == 2  # computed missing: no download
    err = capsys.readouterr().err
    assert "computed accuracy file(s) missing" in err and "bhscore decode" in err and "download" not in err
    raw = json.loads(path.read_text())
    raw["analysis"]["score"]["accuracy_source"] = "published"
    raw["dnns"]["Control"]["accuracy_source"] = "computed"
    path.write_text(json.dumps(raw))
    assert main(["figure-tables", "--settings", str(path), "--check"]) == 2
    jobs.run(load_settings(path), "decoding", dnns=["Control"], progress=False)
    jobs.run(load_settings(path), "encoding", dnns=["Control"], progress=False)
    assert main(["figure-tables", "--settings", str(path), "--check"]) == 3  # only published missing: fetch
    assert s.accuracy_source("Planted") == "computed"


# -------------------------------------------------------------------------------------------------
# bad inputs (failures 4 and 5)
# -------------------------------------------------------------------------------------------------


def _poke(fmri: Path, row: int, col: int, value: float) -> None:
    with h5py.File(fmri, "r+") as f:
        f["dataset"][row, col] = value


def test_nan_in_test_fmri_stops_with_the_file_sample_and_voxel(dataset, tmp_path, capsys, caplog):
    """Failure 4: one NaN in a test fMRI file gave exit 0 and NaN accuracies marked finished."""
    path = fresh(dataset, tmp_path)
    s = load_settings(path)
    fmri = Layout.from_settings(s).fmri_file("sub-01", TEST)
    _poke(fmri, 3, 0, np.nan)
    rc = main(["decode", "--settings", str(path), "--subject", "sub-01", "--no-progress"])
    err = capsys.readouterr().err
    assert rc == 2 and str(fmri) in err and "sample 3" in err and "ROI V1 voxel 0" in err
    assert "non_finite" in err and len(err.strip().splitlines()) == 1
    assert not list(Layout.from_settings(s).computed_root.rglob("accuracy.mat"))

    # the original scripts' behaviour, explicitly: warned, recorded, NaN accuracies for that ROI only
    set_settings(path, "decoding", non_finite="propagate")
    s2 = load_settings(path)
    with caplog.at_level(logging.WARNING, logger="bhscore"):
        rep = jobs.run(s2, "decoding", subjects=["sub-01"], dnns=["Planted"], layers=["layer1"], progress=False)
    assert len(rep.ran) == 5 and "non-finite" in caplog.text and "propagate" in caplog.text
    v1 = formats.read_accuracy_file(accuracy_file(s2, "decoding", "Planted", "layer1", "sub-01", "V1"))
    v2 = formats.read_accuracy_file(accuracy_file(s2, "decoding", "Planted", "layer1", "sub-01", "V2"))
    assert np.isnan(v1.accuracy).all() and v1.provenance["non_finite"] == {"fmri_test": 1}
    assert np.isfinite(v2.accuracy).any() and "non_finite" not in v2.provenance
    assert v1.provenance["params"]["non_finite"] == "propagate"


def test_nan_in_training_data_is_always_an_error(dataset, tmp_path):
    path = fresh(dataset, tmp_path, decoding={"non_finite": "propagate"})
    s = load_settings(path)
    lay = Layout.from_settings(s)
    _poke(lay.fmri_file("sub-02", TRAINING), 7, 2, np.inf)
    with pytest.raises(UserError, match=r"sub-02_perceptionNaturalImageTraining.*sample 7 .*ROI V1 voxel 2.*must be finite"):
        jobs.run(s, "decoding", subjects=["sub-02"], progress=False)
    feat = sorted((lay.features_dir(TRAINING, "simulated/Control") / "layer2").glob("*.mat"))[4]
    a = formats.load_feature(feat)
    a.ravel()[5] = np.nan
    formats.save_feature(feat, a)
    with pytest.raises(UserError, match=rf"{feat.stem}.*unit 5"):
        jobs.run(s, "encoding", subjects=["sub-01"], dnns=["Control"], layers=["layer2"], progress=False)
    assert not list(lay.computed_root.rglob("accuracy.mat"))


def _rewrite_fmri(path: Path, drop_roi: str | None = None, drop_voxels: int = 0) -> None:
    """Rewrite a BData file with one ROI emptied (``drop_roi``) or ``drop_voxels`` fewer voxels in V1."""
    data = formats.read_fmri(path, ["V1", "V2", "V3", "V4", "HVC"])
    rois = dict(data.rois)
    if drop_roi:
        rois[drop_roi] = rois[drop_roi][:, :0]
    if drop_voxels:
        rois["V1"] = rois["V1"][:, drop_voxels:]
    formats.write_fmri(path, rois, data.labels)


def test_empty_roi_and_voxel_mismatch_are_named_errors(dataset, tmp_path):
    """Failure 5: an empty ROI gave all-NaN decoding files and a fake r = 1 encoding voxel."""
    s = load_settings(fresh(dataset, tmp_path))
    lay = Layout.from_settings(s)
    for split in (TRAINING, TEST):
        _rewrite_fmri(lay.fmri_file("sub-01", split), drop_roi="V4")
    for kind in ("decoding", "encoding"):
        with pytest.raises(UserError, match=r"V4.*(no voxels|no columns)"):
            jobs.run(s, kind, subjects=["sub-01"], rois=["V4"], dnns=["Planted"], layers=["layer1"], progress=False)
    assert not list(lay.computed_root.rglob("accuracy.mat"))
    _rewrite_fmri(lay.fmri_file("sub-02", TEST), drop_voxels=2)
    with pytest.raises(UserError, match=r"ROI 'V1' of sub-02 has \d+ voxels in .*Training.* but \d+ in .*Test"):
        jobs.run(s, "encoding", subjects=["sub-02"], dnns=["Planted"], layers=["layer1"], progress=False)


# -------------------------------------------------------------------------------------------------
# the score says what it used
# -------------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def computed(dataset, tmp_path_factory):
    """A copy of the dataset with every decoding and encoding job computed."""
    path = fresh(dataset, tmp_path_factory.mktemp("computed"))
    s = load_settings(path)
    jobs.run(s, "decoding", progress=False)
    jobs.run(s, "encoding", progress=False)
    return path


def test_score_table_records_sources_and_provenance(computed, tmp_path, capsys):
    out = tmp_path / "scores.csv"
    assert main(["score", "--settings", str(computed), "-o", str(out)]) == 0
    import pandas as pd

    table = pd.read_csv(out).set_index("dnn")
    s = load_settings(computed)
    dec, enc = (ParamSet.from_settings(s, k).id for k in ("decoding", "encoding"))
    assert (table.decoding_source == "computed").all() and (table.decoding_params == dec).all()
    assert (table.encoding_params == enc).all() and (table.decoding_n_files == 5 * 2 * 5).all()
    assert table.loc["Planted", "averaged"] > table.loc["Control", "averaged"]
    meta = json.loads(out.with_name("scores.provenance.json").read_text())
    assert meta["dnns"]["Planted"]["decoding"]["param_set"] == dec and meta["packages"]["bhscore"]
    assert meta["dnns"]["Control"]["encoding"]["n_files"] == 50 and len(meta["accuracy_files_sha256"]) == 64
    assert meta["settings_sha256"] and meta["dnns"]["Planted"]["encoding"]["params"]["dtype"] == "float32"


def test_score_refuses_mixed_or_unrecorded_files(computed, tmp_path):
    from bhscore.score import MixedResultsError, score_dnn

    root = tmp_path / "c"
    shutil.copytree(computed.parent, root, ignore=shutil.ignore_patterns("locks"))
    s = load_settings(root / "settings.json")
    target = accuracy_file(s, "decoding", "Planted", "layer2", "sub-01", "V1")
    # a file of another parameter set copied in
    src = formats.read_accuracy_file(target)
    formats.write_accuracy(target, src.accuracy, 20, dict(src.provenance, param_set="0123456789ab"))
    with pytest.raises(MixedResultsError, match="parameter set 0123456789ab"):
        score_dnn(s, "Planted", n_bootstrap=0)
    result = score_dnn(s, "Planted", n_bootstrap=0, allow_mixed=True)
    assert result.sources["mixed"] and np.isfinite(result.averaged)
    # a file without a record
    formats.write_accuracy(target, src.accuracy, 20)
    with pytest.raises(UserError, match="no provenance record"):
        score_dnn(s, "Planted", n_bootstrap=0)


def test_score_checks_item_counts_per_file(computed, tmp_path):
    """Per-subject sizes that cancel out (15 + 17 units instead of 16 + 16) are caught and named."""
    from bhscore.score import score_dnn

    root = tmp_path / "c"
    shutil.copytree(computed.parent, root, ignore=shutil.ignore_patterns("locks"))
    raw = json.loads((root / "settings.json").read_text())
    raw["analysis"]["score"]["accuracy_source"] = "published"
    (root / "settings.json").write_text(json.dumps(raw))
    s = load_settings(root / "settings.json")
    for layer in s.dnns["Planted"].layers:
        for subject in s.subjects:
            for roi in s.rois:
                for kind in ("decoding", "encoding"):
                    c = formats.read_accuracy_file(accuracy_file(s, kind, "Planted", layer, subject, roi, "computed"))
                    formats.write_accuracy(accuracy_file(s, kind, "Planted", layer, subject, roi), c.accuracy, 20)
    score_dnn(s, "Planted", n_bootstrap=0)
    a = accuracy_file(s, "decoding", "Planted", "layer3", "sub-01", "V2")
    b = accuracy_file(s, "decoding", "Planted", "layer3", "sub-02", "V2")
    formats.write_accuracy(a, np.zeros(15), 20)
    formats.write_accuracy(b, np.zeros(17), 20)
    with pytest.raises(UserError, match=r"accuracy\.mat holds 1[57] accuracies, but the other decoding files of layer layer3 have 16"):
        score_dnn(s, "Planted", n_bootstrap=0)


# -------------------------------------------------------------------------------------------------
# migration of the pre-0.2 layout
# -------------------------------------------------------------------------------------------------


def test_migrate_separates_published_and_computed(computed, tmp_path, capsys):
    import gzip

    root = tmp_path / "old"
    shutil.copytree(computed.parent, root, ignore=shutil.ignore_patterns("locks", "computed"))
    s = load_settings(root / "settings.json")
    lay = Layout.from_settings(s)
    # the old layout: published files (in a download manifest) and bhscore 0.1 results side by side
    old = root / "decoding_accuracy" / "ImageNetTest" / "simulated"
    manifest = []
    for layer in s.dnns["Planted"].layers:
        for subject in s.subjects:
            for roi in s.rois:
                rel = f"decoding_accuracy/ImageNetTest/simulated/Planted/{layer}/{subject}/{roi}/accuracy.mat"
                p = formats.write_accuracy(root / rel, np.full(16, 0.1))
                manifest.append(f"{rel}\t{p.stat().st_size}\n")
                c = formats.read_accuracy_file(accuracy_file(load_settings(computed), "decoding", "Control",
                                                             layer, subject, roi))  # fmt: skip
                formats.write_accuracy(old / "Control" / layer / subject / roi / "accuracy.mat", c.accuracy, 20)
    (root / "downloads").mkdir()
    with gzip.open(root / "downloads" / "decoding_accuracy.manifest.tsv.gz", "wt") as f:
        f.writelines(manifest)
    assert main(["decode", "--settings", str(root / "settings.json"), "--dnn", "Control", "--list"]) == 0
    assert "bhscore migrate" in capsys.readouterr().err
    assert main(["migrate", "--settings", str(root / "settings.json"), "--dry-run"]) == 0
    assert (root / "decoding_accuracy").is_dir()
    assert main(["migrate", "--settings", str(root / "settings.json")]) == 0
    out = capsys.readouterr().out
    assert "50 published file(s) -> published/" in out and "50 computed file(s) -> computed/" in out
    assert not (root / "decoding_accuracy").exists()
    assert accuracy_file(s, "decoding", "Planted", "layer1", "sub-01", "V1", "published").is_file()
    with gzip.open(root / "downloads" / "decoding_accuracy.manifest.tsv.gz", "rt") as f:
        assert f.readline().startswith("published/decoding_accuracy/")
    unverified = [d for d in (lay.computed_root / "decoding_accuracy").iterdir() if d.name.startswith("unverified-")]
    assert len(unverified) == 1 and json.loads((unverified[0] / "params.json").read_text())["params"] is None
    assert states(s, dnns=["Control"])["missing"] == 50  # never taken for current results
    # vouching for them: they join the current parameter set and count as done
    shutil.move(unverified[0] / "ImageNetTest", root / "decoding_accuracy" / "ImageNetTest")
    assert main(["migrate", "--settings", str(root / "settings.json"), "--adopt"]) == 0
    assert states(s, dnns=["Control"])["done"] == 50
    rec = formats.read_accuracy_file(accuracy_file(s, "decoding", "Control", "layer2", "sub-02", "V3")).provenance
    assert "adopted" in rec and rec["inputs"]["fmri_test"]["sha256"]


# -------------------------------------------------------------------------------------------------
# interruptions, concurrent workers and shards give the uninterrupted results, with provenance
# -------------------------------------------------------------------------------------------------


def _accuracies(settings, kind="decoding") -> dict[str, np.ndarray]:
    """Every computed accuracy file of ``kind`` in the current set: job path -> array (records checked)."""
    tree = ParamSet.from_settings(settings, kind).directory(Layout.from_settings(settings))
    out = {}
    for p in sorted(tree.rglob("accuracy.mat")):
        content = formats.read_accuracy_file(p)
        assert content.provenance is not None and content.provenance["n_outputs"] == content.accuracy.size
        out[p.relative_to(tree).as_posix()] = content.accuracy
    return out


def _decode_cmd(path: Path, *extra: str) -> list[str]:
    import sys

    return [sys.executable, "-m", "bhscore.cli", "decode", "--settings", str(path), "--no-progress",
            "--device", "cpu", "--threads", "1", *extra]  # fmt: skip


@pytest.fixture(scope="module")
def reference(computed):
    return _accuracies(load_settings(computed))


def test_concurrent_workers_and_shards_equal_a_serial_run(dataset, reference, tmp_path):
    import os
    import subprocess

    env = {**os.environ, "TQDM_DISABLE": "1"}
    path = fresh(dataset, tmp_path / "workers")
    procs = [subprocess.Popen(_decode_cmd(path), env=env, stdout=subprocess.PIPE, text=True) for _ in range(2)]
    outs = [p.communicate(timeout=600)[0] for p in procs]
    assert all(p.returncode == 0 for p in procs), outs
    ran = [int(o.split(" job(s) run")[0].rsplit(" ", 1)[-1]) for o in outs]
    assert sum(ran) == N_DEC, outs  # every job exactly once
    got = _accuracies(load_settings(path))
    assert got.keys() == reference.keys()
    for k in got:
        np.testing.assert_array_equal(got[k], reference[k])

    path = fresh(dataset, tmp_path / "shards")
    for i in range(3):
        subprocess.run(_decode_cmd(path, "--shard", f"{i}/3"), env=env, check=True, capture_output=True)
    got = _accuracies(load_settings(path))
    assert got.keys() == reference.keys() and all(np.array_equal(got[k], reference[k]) for k in got)


@pytest.mark.slow
def test_kill_9_at_random_points_then_resume_equals_uninterrupted(dataset, reference, tmp_path):
    """20 SIGKILLs at random moments of a decoding run; every resumed run ends with the uninterrupted results."""
    import os
    import random
    import signal
    import subprocess
    import time

    env = {**os.environ, "TQDM_DISABLE": "1"}
    rng = random.Random(0)
    path = fresh(dataset, tmp_path)
    s = load_settings(path)
    kills = 0
    while kills < 20:
        proc = subprocess.Popen(_decode_cmd(path), env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        time.sleep(rng.uniform(0.3, 4.0))
        if proc.poll() is None:
            proc.send_signal(signal.SIGKILL)
            kills += 1
        proc.wait()
        if states(s)["done"] == N_DEC:  # finished before the kill: start again from scratch
            shutil.rmtree(Layout.from_settings(s).computed_root)
        for p in Layout.from_settings(s).computed_root.rglob("accuracy.mat"):  # visible files are complete
            assert formats.read_accuracy_file(p).provenance is not None
    final = subprocess.run(_decode_cmd(path), env=env, check=True, capture_output=True, text=True)
    got = _accuracies(s)
    assert got.keys() == reference.keys(), final.stdout[-2000:] + final.stderr[-2000:]
    assert all(np.array_equal(got[k], reference[k]) for k in got)
    assert states(s)["done"] == N_DEC
