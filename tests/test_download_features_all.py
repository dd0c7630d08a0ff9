"""The opt-in all-units features download (``bhscore download features-all``) and the encoding inputs setting."""

from __future__ import annotations

import json
import random
from collections import namedtuple
from pathlib import Path

import numpy as np
import pytest

import bhscore.download as dl
import bhscore.download.plan as dl_plan
from bhscore.cli import main
from bhscore.download import FEATURES_ALL_REGISTRY, DownloadError, download, select
from bhscore.errors import MissingDataError, UserError
from bhscore.paths import TEST, TRAINING, Layout
from bhscore.settings import REPO_ROOT, load_settings
from tests.figshare_server import ServedFile, make_zip


@pytest.fixture(autouse=True)
def _isolated(offline_download_env):
    """Every test here runs offline from the user's environment (tests/conftest.py)."""


def opts(server, **kw) -> dict:
    base = dict(progress=False, backoff=0, chunk_size=4096, connect_timeout=2.0, read_timeout=5.0,
                api_base=server.api_base, files_base=server.files_base)  # fmt: skip
    return {**base, **kw}


def layer_members(split: str, remote_dir: str, seed: int) -> dict[str, bytes]:
    rng = random.Random(seed)
    return {f"features_all/{split}/{remote_dir}/{layer}/n0{k}.mat": rng.randbytes(3000)
            for layer in ("conv1", "fc8") for k in range(3)}  # fmt: skip


def serve(server, entry, members: dict[str, bytes], **faults) -> None:
    """Serve ``entry``'s zip of ``members`` (split into its pieces when the entry has several file ids)."""
    data = make_zip(members)
    n = len(entry.file_ids)
    cuts = [len(data) * i // n for i in range(n + 1)]
    for i, file_id in enumerate(entry.file_ids):
        server.add(ServedFile(file_id, entry.article, f"{entry.name}.zip.{i:02d}", data[cuts[i]:cuts[i + 1]],
                              **(faults if i == n - 1 else {})))  # fmt: skip


def test_registry_covers_the_settings_dnns_and_is_opt_in():
    paper = load_settings(REPO_ROOT / "settings.json")
    dirs = {d.dir for d in paper.dnns.values()}
    assert len(FEATURES_ALL_REGISTRY) == 58 == 2 * len(dirs)
    assert {e.anchor.split("/", 2)[2] for e in FEATURES_ALL_REGISTRY} == dirs
    ids = [i for e in FEATURES_ALL_REGISTRY for i in e.file_ids]
    assert len(ids) == len(set(ids)) == 82  # 58 zips, 11 training zips published in 2-5 pieces
    assert not set(ids) & {e.file_id for e in dl.REGISTRY}
    assert all(e.group == dl.FEATURES_ALL for e in FEATURES_ALL_REGISTRY)
    assert not [e for e in select("all") if e.group == dl.FEATURES_ALL]  # 800 GB never comes with 'all'
    renamed = {e.anchor: e.source_anchor for e in FEATURES_ALL_REGISTRY if e.source_anchor}
    assert renamed[f"features_all/{TEST}/caffe/VGG-F"] == f"features_all/{TEST}/caffe/VGG/F"
    assert renamed[f"features_all/{TRAINING}/caffe/InceptionResNet-v2"].endswith("caffe/InceptionResNet/v2")
    with pytest.raises(UserError, match="no published all-units features for fw/Mine"):
        select(dl.FEATURES_ALL, dnn_dirs=["fw/Mine"])


def test_renamed_directory_lands_under_the_settings_name_and_is_idempotent(fake, root):
    entries = select(dl.FEATURES_ALL, dnn_dirs=["caffe/VGG-F"])
    members = {}
    for i, e in enumerate(entries):
        m = layer_members(e.anchor.split("/")[1], "caffe/VGG/F", i)
        serve(fake, e, m)
        members.update(m)
    out = download(root, dl.FEATURES_ALL, dnn_dirs=["caffe/VGG-F"], **opts(fake))
    assert [o.status for o in out] == ["downloaded", "downloaded"]
    layout = Layout(root)
    for name, data in members.items():
        split, layer, file = name.split("/")[1], name.split("/")[-2], name.split("/")[-1]
        assert (layout.features_all_dir(split, "caffe/VGG-F") / layer / file).read_bytes() == data
    assert not (root / "features_all" / TEST / "caffe" / "VGG").exists()
    n = len(fake.requests)
    assert {o.status for o in download(root, dl.FEATURES_ALL, dnn_dirs=["caffe/VGG-F"], **opts(fake))} == {"present"}
    assert len(fake.requests) == n  # complete: no request at all


def test_zip_in_pieces_is_verified_piece_by_piece_resumed_and_joined(fake, root):
    (entry,) = [e for e in select(dl.FEATURES_ALL, dnn_dirs=["caffe/DenseNet_121"]) if e.anchor.split("/")[1] == TRAINING]
    assert len(entry.file_ids) == 3
    members = layer_members(TRAINING, "caffe/DenseNet_121", 7)
    serve(fake, entry, members, drop_after=1000, drop_times=1)  # the last piece's connection drops once
    (out,) = download(root, dl.FEATURES_ALL, names=[entry.name], dnn_dirs=["caffe/DenseNet_121"], **opts(fake))
    assert out.status == "downloaded"
    for name, data in members.items():
        assert (root / name).read_bytes() == data
    marker = json.loads(entry.marker_path(root).read_text())
    assert marker["verified"] and marker["n_files"] == 6 and marker["md5"].count("+") == 2
    lock = json.loads((root / dl.LOCK_FILE).read_text())["files"]
    assert {f"{entry.name}-part{i:02d}" for i in range(3)} <= set(lock)
    assert not [p for p in (root / "downloads").iterdir() if p.name.endswith((".zip", ".part"))]
    assert any(r.range for r in fake.downloads(entry.file_ids[-1]))  # resumed, not restarted


def test_corrupt_piece_is_refused_and_nothing_unpacked(fake, root):
    (entry,) = [e for e in select(dl.FEATURES_ALL, dnn_dirs=["tensorflow/resnet_v2_50"]) if TRAINING in e.anchor]
    serve(fake, entry, layer_members(TRAINING, "tensorflow/resnet_v2_50", 3), reported_md5="0" * 32)
    with pytest.raises(dl.ChecksumError, match="piece 2 of 2"):
        download(root, dl.FEATURES_ALL, names=[entry.name], dnn_dirs=["tensorflow/resnet_v2_50"], **opts(fake))
    assert not (root / "features_all").exists() and not entry.marker_path(root).exists()


def test_free_disk_is_checked_before_any_byte_is_fetched(fake, root, monkeypatch):
    entries = select(dl.FEATURES_ALL, dnn_dirs=["caffe/AlexNet"])
    for i, e in enumerate(entries):
        serve(fake, e, layer_members(e.anchor.split("/")[1], "caffe/AlexNet", i))
    plan = dl.preflight(root, entries, dl.DownloadOptions(**opts(fake)))
    assert plan.n_pending == 2 and plan.n_bytes == sum(len(f.data) for f in fake.files.values())
    assert plan.need_bytes == plan.n_bytes + max(len(f.data) for f in fake.files.values())
    usage = namedtuple("usage", "total used free")
    monkeypatch.setattr(dl_plan.shutil, "disk_usage", lambda p: usage(10**9, 10**9 - 100, 100))
    with pytest.raises(DownloadError, match="not enough disk space.*--dnn"):
        download(root, dl.FEATURES_ALL, dnn_dirs=["caffe/AlexNet"], **opts(fake))
    assert not fake.downloads() and not (root / "features_all").exists()


def test_cli_shows_the_size_then_downloads_by_settings_name(fake, root, monkeypatch, capsys):
    monkeypatch.setenv("BHSCORE_DATA", str(root))
    monkeypatch.setenv(dl.API_ENV, fake.api_base)
    monkeypatch.setenv(dl.FILES_ENV, fake.files_base)
    for i, e in enumerate(select(dl.FEATURES_ALL, dnn_dirs=["caffe/InceptionResNet-v2"])):
        serve(fake, e, layer_members(e.anchor.split("/")[1], "caffe/InceptionResNet/v2", i))
    settings = str(REPO_ROOT / "settings.json")
    assert main(["download", "features-all", "--dnn", "Inception-ResNet-v2", "--settings", settings,
                 "--no-progress"]) == 0  # fmt: skip
    out = capsys.readouterr().out
    assert out.index("to download, needs") < out.index("downloaded")
    assert (Layout(root).features_all_dir(TEST, "caffe/InceptionResNet-v2") / "fc8" / "n01.mat").is_file()
    assert main(["download", "features-all", "--dnn", "Inception-ResNet-v2", "--check", "--settings", settings]) == 0
    assert main(["download", "fmri", "--dnn", "AlexNet", "--settings", settings]) == 2


# -------------------------------------------------------------------------------------------------
# analysis.encoding.inputs
# -------------------------------------------------------------------------------------------------


@pytest.fixture
def small_experiment(tmp_path):
    from bhscore.simulate import SimulatedDNN, simulate_dataset

    return simulate_dataset(tmp_path / "sim", seed=1, n_train=24, n_test=8, n_units=16, voxels_per_roi=(6, 8),
                            dnns=(SimulatedDNN("Net", "fw/Net", 5, True),), n_feat=4)  # fmt: skip


def _with_inputs(path: Path, inputs: str):
    raw = json.loads(path.read_text())
    raw["analysis"]["encoding"]["inputs"] = inputs
    out = path.with_name(f"settings_{inputs}.json")
    out.write_text(json.dumps(raw))
    return load_settings(out)


def test_all_units_inputs_read_features_all_and_name_the_download_when_absent(small_experiment):
    import shutil

    from bhscore import jobs
    from bhscore.formats import read_accuracy, read_accuracy_file
    from bhscore.provenance import ParamSet
    from bhscore.sources import accuracy_file

    subset, full = _with_inputs(small_experiment, "subset"), _with_inputs(small_experiment, "all_units")
    assert "inputs" not in ParamSet.from_settings(subset, "encoding").params  # earlier results stay valid
    assert ParamSet.from_settings(full, "encoding").params["inputs"] == "all_units"
    assert "inputs" not in ParamSet.from_settings(full, "decoding").params
    sel = dict(progress=False, layers=["layer1"], subjects=["sub-01"])
    with pytest.raises(MissingDataError, match=r"bhscore download features-all --dnn 'Net'.*'subset'"):
        jobs.run(full, "encoding", **sel)
    jobs.run(full, "decoding", **sel)  # decoding never reads the all-units tree
    jobs.run(subset, "encoding", **sel)

    layout = Layout.from_settings(full)
    for split in (TRAINING, TEST):  # the all-units tree replaces the subset one: encoding must read it
        shutil.copytree(layout.features_dir(split, "fw/Net"), layout.features_all_dir(split, "fw/Net"))
        shutil.move(layout.features_dir(split, "fw/Net"), layout.root / f"moved-{split}")
    jobs.run(full, "encoding", **sel)
    a_path = accuracy_file(subset, "encoding", "Net", "layer1", "sub-01", "V1", source="computed")
    b_path = accuracy_file(full, "encoding", "Net", "layer1", "sub-01", "V1", source="computed")
    assert a_path != b_path and a_path.is_file()
    np.testing.assert_array_equal(read_accuracy(a_path)[0], read_accuracy(b_path)[0])  # same units, same numbers
    record = read_accuracy_file(b_path).provenance
    assert record["inputs"]["features_training"]["dir"].startswith("features_all/")
