"""bhscore.download against a local imitation of figshare (tests/figshare_server.py); no real network."""

from __future__ import annotations

import gzip
import hashlib
import json
import os
import random
import re
import subprocess
import time
from pathlib import Path, PurePosixPath

import pytest

import bhscore.download as dl
import bhscore.download.archive as dl_archive
import bhscore.download.client as dl_client
from bhscore.cli import main
from bhscore.download import (
    REGISTRY,
    ChecksumError,
    DownloadError,
    NetworkError,
    download,
    plan_unpack,
    select,
    status,
)
from bhscore.errors import UserError
from bhscore.paths import TEST, TRAINING, Layout
from tests.figshare_server import ServedFile, SilentServer, closed_port, make_zip

REPO = Path(__file__).resolve().parent.parent
BY_NAME = {e.name: e for e in REGISTRY}


# -------------------------------------------------------------------------------------------------
# fixtures and helpers
# -------------------------------------------------------------------------------------------------


@pytest.fixture(autouse=True)
def _isolated(offline_download_env):
    """Every test here runs offline from the user's environment (tests/conftest.py)."""


def blob(seed: int, n: int = 50_000) -> bytes:
    return random.Random(seed).randbytes(n)


def opts(server, **kw) -> dict:
    """Download options for tests: the fake server's endpoints, no bars, no back-off, small chunks."""
    base = dict(progress=False, backoff=0, chunk_size=4096, connect_timeout=2.0, read_timeout=5.0)
    if server is not None:
        base.update(api_base=server.api_base, files_base=server.files_base)
    base.update(kw)
    return base


def offline_opts(**kw) -> dict:
    """Endpoints on a localhost port where nothing listens (connection refused at once)."""
    port = closed_port()
    return opts(
        None, api_base=f"http://127.0.0.1:{port}/v2", files_base=f"http://127.0.0.1:{port}/files", **kw
    )


def serve_fmri(server, **faults) -> dict[str, bytes]:
    """Serve the six fMRI files; ``faults`` maps a registry name to ServedFile keyword arguments."""
    out = {}
    for i, entry in enumerate(e for e in REGISTRY if e.group == "fmri"):
        data = blob(i)
        server.add(
            ServedFile(entry.file_id, entry.article, f"{entry.name}.h5", data, **faults.get(entry.name, {}))
        )
        out[entry.name] = data
    return out


def accuracy_members(kind: str, prefix: str = "") -> dict[str, bytes]:
    """A small accuracy tree, member name (with ``prefix``) -> bytes."""
    out = {}
    for j, (net, layer, subject, roi) in enumerate(
        [("caffe/AlexNet", "conv1", "sub-01", "V1"), ("caffe/AlexNet", "fc8", "sub-02", "HVC"),
         ("pytorch/resnet18", "layer4", "sub-03", "V4")]
    ):  # fmt: skip
        out[f"{prefix}{kind}_accuracy/ImageNetTest/{net}/{layer}/{subject}/{roi}/accuracy.mat"] = blob(
            100 + j, 3000
        )
    return out


def serve_zip(server, name: str, members: dict[str, bytes], **faults) -> bytes:
    entry = BY_NAME[name]
    data = make_zip(members)
    server.add(ServedFile(entry.file_id, entry.article, f"{name}.zip", data, **faults))
    return data


def all_files(root: Path) -> list[str]:
    """Every file under root except the lock folder (locks are not data)."""
    return sorted(p.relative_to(root).as_posix() for p in root.rglob("*") if p.is_file()
                  and p.relative_to(root).parts[0] != "locks")  # fmt: skip


def md5(data: bytes) -> str:
    return hashlib.md5(data).hexdigest()


# -------------------------------------------------------------------------------------------------
# registry
# -------------------------------------------------------------------------------------------------


def test_registry_matches_method_md(root):
    fmri = {
        33900890: ("sub-01", TEST), 33900893: ("sub-01", TRAINING), 33900896: ("sub-02", TEST),
        33900899: ("sub-02", TRAINING), 33900902: ("sub-03", TEST), 33900908: ("sub-03", TRAINING),
    }  # fmt: skip
    features = {
        24172706: (TRAINING, "caffe"), 24172862: (TRAINING, "pytorch"), 24172895: (TRAINING, "tensorflow"),
        24172679: (TEST, "caffe"), 24172691: (TEST, "pytorch"), 24172697: (TEST, "tensorflow"),
    }  # fmt: skip
    assert len(REGISTRY) == 14
    assert len({e.name for e in REGISTRY}) == len({e.file_id for e in REGISTRY}) == 14
    layout = Layout(root)
    for e in select("fmri"):
        assert e.article == 7033577 and not e.archive
        assert e.destination(root) == layout.fmri_file(*fmri[e.file_id])
    for e in select("features"):
        split, framework = features[e.file_id]
        assert e.article == 12401168 and e.archive
        assert e.destination(root) == root / "features" / split / framework
    acc = {e.file_id: e for e in select("accuracy")}
    assert set(acc) == {24132263, 32116400}
    # the published accuracies have a tree of their own, apart from computed results
    assert acc[24132263].destination(root) == root / "published" / "decoding_accuracy" / "ImageNetTest"
    assert acc[32116400].destination(root) == root / "published" / "encoding_accuracy" / "ImageNetTest"
    assert all(e.article == 12401168 for e in acc.values())
    assert [e.subject for e in select("fmri", subjects=["sub-02"])] == ["sub-02", "sub-02"]
    assert len(select("all", subjects=["sub-02"])) == 2 + 6 + 2
    with pytest.raises(UserError, match="sub-09"):
        select("fmri", subjects=["sub-09"])


# -------------------------------------------------------------------------------------------------
# the normal path
# -------------------------------------------------------------------------------------------------


def test_fmri_download_records_lock_and_reads_all_pages(fake, root, monkeypatch):
    monkeypatch.setattr(dl_client, "_PAGE_SIZE", 4)
    for k in range(5):  # other files of the article, listed first: the wanted ones span three pages
        fake.add(ServedFile(1000 + k, 7033577, f"other{k}.txt", b"x"))
    data = serve_fmri(fake)
    out = download(root, "fmri", **opts(fake))
    assert [o.status for o in out] == ["downloaded"] * 6
    lock = json.loads((root / "downloads.lock.json").read_text())["files"]
    for o in out:
        assert o.path.read_bytes() == data[o.entry.name]
        assert lock[o.entry.name]["md5"] == md5(data[o.entry.name])
        assert lock[o.entry.name]["size"] == len(data[o.entry.name])
        assert lock[o.entry.name]["file_id"] == o.entry.file_id
        assert len(fake.downloads(o.entry.file_id)) == 1
    assert len(fake.api_calls()) == 3
    assert all("page_size=4" in r.path for r in fake.api_calls())
    assert not list(root.rglob("*.part"))
    assert {s for _, s in status(root, select("fmri"))} == {"complete"}


def test_second_run_makes_no_requests_even_offline(fake, root):
    serve_fmri(fake)
    serve_zip(fake, "decoding_accuracy", accuracy_members("decoding"))
    serve_zip(fake, "encoding_accuracy", accuracy_members("encoding"))
    first = download(root, "all", names=[e.name for e in REGISTRY if e.group != "features"], **opts(fake))
    assert {o.status for o in first} == {"downloaded"}
    before, files = len(fake.requests), all_files(root)
    again = download(root, "all", names=[e.name for e in REGISTRY if e.group != "features"], **opts(fake))
    assert {o.status for o in again} == {"present"}
    assert len(fake.requests) == before
    assert all_files(root) == files
    offline = download(root, "accuracy", **offline_opts())
    assert {o.status for o in offline} == {"present"}


# -------------------------------------------------------------------------------------------------
# failures: checksum, dropped connections, offline, hung server
# -------------------------------------------------------------------------------------------------


def test_wrong_checksum_is_rejected_and_nothing_left(fake, root):
    serve_fmri(fake, **{"fmri-sub-01-test": {"reported_md5": "0" * 32}})
    serve_zip(fake, "decoding_accuracy", accuracy_members("decoding"), reported_md5="f" * 32)
    entry = BY_NAME["fmri-sub-01-test"]
    with pytest.raises(ChecksumError) as err:
        download(root, "fmri", subjects=["sub-01"], **opts(fake))
    msg = str(err.value)
    assert "checksum mismatch" in msg and "0" * 32 in msg and entry.url(fake.files_base) in msg
    assert not entry.destination(root).exists() and not entry.part_path(root).exists()
    assert not entry.marker_path(root).exists()
    assert len(fake.downloads(entry.file_id)) == 1  # not resumed: no second attempt
    with pytest.raises(ChecksumError):
        download(root, "accuracy", names=["decoding_accuracy"], **opts(fake))
    assert not (root / "decoding_accuracy").exists()
    assert [f for f in all_files(root) if f != "downloads.lock.json"] == []


def test_dropped_connection_is_resumed_and_verified(fake, root):
    data = serve_fmri(fake, **{"fmri-sub-02-training": {"drop_after": 20_000, "drop_times": 2}})
    entry = BY_NAME["fmri-sub-02-training"]
    (out,) = download(root, "fmri", names=[entry.name], **opts(fake))
    assert out.status == "downloaded" and out.path.read_bytes() == data[entry.name]
    ranges = [r.range for r in fake.downloads(entry.file_id)]
    assert ranges[0] is None and len(ranges) == 3
    starts = [int(r.removeprefix("bytes=").rstrip("-")) for r in ranges[1:]]
    assert 0 < starts[0] < starts[1] < len(data[entry.name])


def test_interrupted_run_resumes_on_the_next_run(fake, root):
    data = serve_fmri(fake, **{"fmri-sub-03-test": {"drop_after": 30_000, "drop_times": 1}})
    entry = BY_NAME["fmri-sub-03-test"]
    with pytest.raises(DownloadError, match="run `make download-fmri` again to resume"):
        download(root, "fmri", names=[entry.name], **opts(fake, retries=0))
    part = entry.part_path(root)
    kept = part.stat().st_size
    assert 0 < kept < len(data[entry.name]) and not entry.destination(root).exists()
    (out,) = download(root, "fmri", names=[entry.name], **opts(fake))
    assert out.status == "downloaded" and out.path.read_bytes() == data[entry.name]
    assert fake.downloads(entry.file_id)[-1].range == f"bytes={kept}-"
    assert not part.exists()


def test_server_that_ignores_range_restarts_cleanly(fake, root):
    entry = BY_NAME["fmri-sub-01-training"]
    data = serve_fmri(fake, **{entry.name: {"drop_after": 20_000, "drop_times": 1, "ignore_range": True}})
    (out,) = download(root, "fmri", names=[entry.name], **opts(fake))
    assert out.path.read_bytes() == data[entry.name]
    assert fake.downloads(entry.file_id)[1].range is not None  # asked to resume, got the whole file


def test_garbage_partial_file_is_discarded(fake, root):
    entry = BY_NAME["fmri-sub-01-test"]
    data = serve_fmri(fake)
    part = entry.part_path(root)
    part.parent.mkdir(parents=True)
    part.write_bytes(b"not the file" * 100)
    (out,) = download(root, "fmri", names=[entry.name], **opts(fake))
    assert out.path.read_bytes() == data[entry.name]
    assert [r.range for r in fake.downloads(entry.file_id)] == ["bytes=1200-", None]


def test_offline_fails_fast_with_instructions_and_writes_nothing(root):
    t0 = time.monotonic()
    with pytest.raises(NetworkError) as err:
        download(root, "fmri", **offline_opts())
    assert time.monotonic() - t0 < 3
    msg = str(err.value)
    entry = BY_NAME["fmri-sub-01-test"]
    assert "network unreachable" in msg and "/v2/articles/7033577/files" in msg
    assert "place the file by hand" in msg and str(entry.destination(root)) in msg
    assert "https://ndownloader.figshare.com/files/33900890" in msg and "make download-fmri" in msg
    with pytest.raises(NetworkError) as err:
        download(root, "accuracy", **offline_opts())
    assert str(BY_NAME["decoding_accuracy"].download_path(root)) in str(err.value)
    assert all_files(root) == []


def test_hung_server_times_out_fast(root):
    with SilentServer() as silent:
        t0 = time.monotonic()
        with pytest.raises(NetworkError, match="no answer within 0.5 s"):
            download(root, "accuracy", api_base=silent.base, files_base=silent.base, progress=False,
                     connect_timeout=0.5, read_timeout=0.5)  # fmt: skip
        assert time.monotonic() - t0 < 3
    assert all_files(root) == []


def test_trickling_server_is_abandoned_after_the_timeout(fake, root):
    """A server that sends a byte every 0.05 s forever: each read returns, but the download stalls."""
    entry = BY_NAME["fmri-sub-01-test"]
    serve_fmri(fake, **{entry.name: {"pace": (1, 0.05)}})
    t0 = time.monotonic()
    with pytest.raises(DownloadError) as err:
        download(root, "fmri", names=[entry.name], **opts(fake, connect_timeout=0.5, read_timeout=None, retries=1))
    elapsed = time.monotonic() - t0
    msg = str(err.value)
    assert 1.0 <= elapsed < 4, elapsed  # two attempts, each abandoned after 0.5 to 1 s
    assert f"{fake.files_base}/{entry.file_id}" in msg and "stalled" in msg and "--timeout" in msg
    assert "run `make download-fmri` again to resume" in msg
    assert len(fake.downloads(entry.file_id)) == 2  # retried once, then given up
    part = entry.part_path(root)
    assert 0 < part.stat().st_size < dl.STALL_MIN_BYTES and not entry.destination(root).exists()


def test_slow_steady_download_is_not_killed(fake, root):
    """2 KiB every 0.04 s: the whole file (50 kB) takes about 1 s, several timeouts, but it never stalls."""
    entry = BY_NAME["fmri-sub-02-test"]
    data = serve_fmri(fake, **{entry.name: {"pace": (2048, 0.04)}})
    t0 = time.monotonic()
    (out,) = download(root, "fmri", names=[entry.name], **opts(fake, connect_timeout=0.3, read_timeout=None))
    assert time.monotonic() - t0 > 2 * 0.3
    assert out.status == "downloaded" and out.path.read_bytes() == data[entry.name]
    assert len(fake.downloads(entry.file_id)) == 1


def test_timeout_bounds_connect_read_and_stall(monkeypatch):
    o = dl.DownloadOptions(connect_timeout=7).resolved()
    assert (o.connect_timeout, o.read_timeout, o.stall_timeout) == (7, 7, 7)
    monkeypatch.setenv(dl.TIMEOUT_ENV, "3")
    o = dl.DownloadOptions(stall_timeout=30).resolved()
    assert (o.connect_timeout, o.read_timeout, o.stall_timeout) == (3, 3, 30)
    for bad in (0, -1, float("inf")):
        with pytest.raises(UserError, match="positive number of seconds"):
            dl.DownloadOptions(connect_timeout=bad).resolved()


def test_cli_help_explains_the_timeout(capsys):
    with pytest.raises(SystemExit):
        main(["download", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    assert "--timeout" in text and "each read" in text and "1 KiB" in text


# -------------------------------------------------------------------------------------------------
# the lock file: offline verification, hand-placed files
# -------------------------------------------------------------------------------------------------


def test_lock_file_verifies_offline(fake, root):
    data = serve_fmri(fake)
    download(root, "fmri", subjects=["sub-01"], **opts(fake))
    good, bad = BY_NAME["fmri-sub-01-test"], BY_NAME["fmri-sub-01-training"]
    for e in (good, bad):  # files copied in from elsewhere: markers gone, new modification times
        e.marker_path(root).unlink()
        os.utime(e.destination(root))
    corrupt = bytearray(data[bad.name])
    corrupt[100] ^= 0xFF
    bad.destination(root).write_bytes(bytes(corrupt))
    (ok,) = download(root, "fmri", names=[good.name], **offline_opts())
    assert ok.status == "verified" and good.marker_path(root).exists()  # checked against the lock, offline
    with pytest.raises(NetworkError):
        download(root, "fmri", names=[bad.name], **offline_opts())
    assert not bad.destination(root).exists()  # the corrupt file no longer looks complete
    assert bad.destination(root).with_name(bad.destination(root).name + ".corrupt").exists()


def test_verify_rehashes_complete_files(fake, root):
    data = serve_fmri(fake)
    entry = BY_NAME["fmri-sub-02-test"]
    download(root, "fmri", names=[entry.name], **opts(fake))
    path = entry.destination(root)
    st = path.stat()
    flipped = bytearray(data[entry.name])
    flipped[7] ^= 1
    path.write_bytes(bytes(flipped))
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns))  # same size and time: only a hash can tell
    (quick,) = download(root, "fmri", names=[entry.name], **opts(fake))
    assert quick.status == "present"
    (deep,) = download(root, "fmri", names=[entry.name], **opts(fake, verify=True))
    assert deep.status == "downloaded" and path.read_bytes() == data[entry.name]


def test_hand_placed_file_is_used_offline_and_verified_later(fake, root):
    data = serve_fmri(fake)
    entry = BY_NAME["fmri-sub-03-training"]
    entry.destination(root).parent.mkdir(parents=True)
    entry.destination(root).write_bytes(data[entry.name])
    (off,) = download(root, "fmri", names=[entry.name], **offline_opts())
    assert off.status == "unverified" and not entry.marker_path(root).exists()
    assert status(root, [entry])[0][1] == "unverified"
    (on,) = download(root, "fmri", names=[entry.name], **opts(fake))
    assert on.status == "verified" and fake.downloads() == []
    assert status(root, [entry])[0][1] == "complete"


# -------------------------------------------------------------------------------------------------
# archives
# -------------------------------------------------------------------------------------------------

ANCHOR = "published/decoding_accuracy/ImageNetTest"


@pytest.mark.parametrize(
    "prefix, strip",
    [
        ("", ""),  # as the original scripts assume: unzip in data/
        ("BHscore_data/", "BHscore_data/"),  # one wrapping folder
        ("a/b/", "a/b/"),  # two wrapping folders
        ("", "decoding_accuracy/"),  # starts one level lower: ImageNetTest/...
    ],
)
def test_plan_unpack_accepts_known_layouts(prefix, strip):
    expected = sorted(accuracy_members("decoding"))
    names = [prefix + n.removeprefix(strip) for n in expected]
    names += ["__MACOSX/._x", prefix + "README.txt" if prefix else "README.txt", ".DS_Store"]
    plan = plan_unpack(names, ANCHOR)
    assert [p.as_posix() for p in plan if p is not None] == [f"published/{n}" for n in expected]
    assert plan[-3:] == [None, None, None]


@pytest.mark.parametrize(
    "names, match",
    [
        (["foo/x/1", "bar/y/2"], "unexpected layout"),
        (["decoding_accuracy/ImageNetTest/a/1", "encoding_accuracy/ImageNetTest/b/2"], "unexpected layout"),
        (["decoding_accuracy/ImageNetTest/a/../../../../evil"], "unsafe"),
        (["/etc/x/y"], "unsafe"),
        (["README"], "no folders"),
        (["caffe/AlexNet/conv1/1", "pytorch/x/y/2"], "unexpected layout"),  # which tree? not guessed
    ],
)
def test_plan_unpack_refuses_other_layouts(names, match):
    with pytest.raises(DownloadError, match=match):
        plan_unpack(names, ANCHOR)


def test_accuracy_archives_unpack_into_the_layout(fake, root):
    dec = accuracy_members("decoding", prefix="wrapper/")
    enc = {k.removeprefix("encoding_accuracy/"): v for k, v in accuracy_members("encoding").items()}
    serve_zip(fake, "decoding_accuracy", {**dec, "__MACOSX/wrapper/._junk": b"junk"})
    serve_zip(fake, "encoding_accuracy", enc)
    out = download(root, "accuracy", **opts(fake))
    assert [o.status for o in out] == ["downloaded", "downloaded"]
    layout = Layout(root)
    path = layout.accuracy_file(layout.published_accuracy_root("decoding"), "caffe/AlexNet", "fc8", "sub-02", "HVC")
    assert (
        path.read_bytes()
        == dec["wrapper/decoding_accuracy/ImageNetTest/caffe/AlexNet/fc8/sub-02/HVC/accuracy.mat"]
    )
    path = layout.accuracy_file(layout.published_accuracy_root("encoding"), "pytorch/resnet18", "layer4", "sub-03", "V4")
    assert path.read_bytes() == enc["ImageNetTest/pytorch/resnet18/layer4/sub-03/V4/accuracy.mat"]
    for o in out:
        marker = json.loads(o.entry.marker_path(root).read_text())
        assert marker["verified"] and marker["n_files"] == 3
        with gzip.open(o.entry.manifest_path(root), "rt") as f:
            assert len(f.read().splitlines()) == 3
        assert not o.entry.download_path(root).exists()  # zip deleted after the marker
    assert not [p for p in (root / "downloads").iterdir() if p.name.endswith((".unpacking", ".part", ".zip"))]


def test_unexpected_archive_layout_keeps_the_verified_zip(fake, root):
    serve_zip(fake, "decoding_accuracy", {"foo/a/1.mat": b"1", "bar/b/2.mat": b"2"})
    entry = BY_NAME["decoding_accuracy"]
    with pytest.raises(DownloadError, match="unexpected layout") as err:
        download(root, "accuracy", names=[entry.name], **opts(fake))
    assert "foo" in str(err.value) and "bar" in str(err.value)
    assert entry.download_path(root).exists() and not entry.marker_path(root).exists()
    assert not (root / "decoding_accuracy").exists() and not (root / "foo").exists()


def test_features_merge_into_a_shared_tree_and_verify_uses_the_manifest(fake, root):
    own = root / "features/ImageNetTest/pytorch/MyNet/conv1/img.mat"  # a user's own network
    own.parent.mkdir(parents=True)
    own.write_bytes(b"mine")
    members = {}
    for fw in ("caffe", "pytorch"):
        m = {f"features/ImageNetTest/{fw}/Net{fw}/conv1/n0{k}.mat": blob(k + len(fw), 500) for k in range(3)}
        serve_zip(fake, f"features-ImageNetTest-{fw}", m)
        members.update(m)
    names = ["features-ImageNetTest-caffe", "features-ImageNetTest-pytorch"]
    download(root, "features", names=names, **opts(fake))
    for name, data in members.items():
        assert (root / name).read_bytes() == data
    assert own.read_bytes() == b"mine"
    n = len(fake.requests)
    assert {o.status for o in download(root, "features", names=names, **opts(fake, verify=True))} == {
        "present"
    }
    assert len(fake.requests) == n
    lost = root / "features/ImageNetTest/caffe/Netcaffe/conv1/n01.mat"
    lost.unlink()
    out = download(root, "features", names=names, **opts(fake, verify=True))
    assert [o.status for o in out] == ["downloaded", "present"]
    assert lost.read_bytes() == members["features/ImageNetTest/caffe/Netcaffe/conv1/n01.mat"]


def test_interrupted_unpack_is_redone_without_downloading_again(fake, root, monkeypatch):
    data = accuracy_members("encoding")
    serve_zip(fake, "encoding_accuracy", data)
    entry = BY_NAME["encoding_accuracy"]
    real_merge = dl_archive._merge_tree

    def crash(src, dst):
        raise OSError("disk full (simulated)")

    monkeypatch.setattr(dl_archive, "_merge_tree", crash)
    with pytest.raises(OSError, match="simulated"):
        download(root, "accuracy", names=[entry.name], **opts(fake))
    assert not entry.marker_path(root).exists() and entry.download_path(root).exists()
    assert status(root, [entry])[0][1] != "complete"
    monkeypatch.setattr(dl_archive, "_merge_tree", real_merge)
    n_downloads = len(fake.downloads())
    (out,) = download(root, "accuracy", names=[entry.name], **opts(fake))
    assert out.status == "verified" and len(fake.downloads()) == n_downloads
    for name, blob_ in data.items():
        assert (root / "published" / PurePosixPath(name)).read_bytes() == blob_


# -------------------------------------------------------------------------------------------------
# CLI and Make
# -------------------------------------------------------------------------------------------------


def test_cli_download_list_check_and_offline(fake, root, monkeypatch, capsys):
    serve_zip(fake, "decoding_accuracy", accuracy_members("decoding"))
    serve_zip(fake, "encoding_accuracy", accuracy_members("encoding"))
    monkeypatch.setenv("BHSCORE_DATA", str(root))
    monkeypatch.setenv(dl.API_ENV, fake.api_base)
    monkeypatch.setenv(dl.FILES_ENV, fake.files_base)
    assert main(["download", "accuracy", "--check"]) == 1
    assert main(["download", "accuracy", "--no-progress"]) == 0
    assert "downloaded" in capsys.readouterr().out
    assert main(["download", "accuracy", "--check"]) == 0
    assert main(["download", "all", "--list"]) == 0
    listing = capsys.readouterr().out
    assert "decoding_accuracy" in listing and "complete" in listing and "missing" in listing
    port = closed_port()
    monkeypatch.setenv(dl.API_ENV, f"http://127.0.0.1:{port}/v2")
    monkeypatch.setenv(dl.FILES_ENV, f"http://127.0.0.1:{port}/files")
    assert main(["download", "fmri", "--subject", "sub-01", "--timeout", "1"]) == 2
    err = capsys.readouterr().err
    assert "place the file by hand" in err and "sub-01_perceptionNaturalImageTest_VC_v2.h5" in err
    assert main(["download", "fmri", "--subject", "sub-07"]) == 2


def test_make_fragment_targets_are_documented_and_call_the_cli():
    fragment = REPO / "mk" / "download.mk"
    helped = re.findall(r"^([a-zA-Z0-9_%/.-]+):.*## ", fragment.read_text(), flags=re.M)  # `make help`'s rule
    assert {"download-fmri", "download-features", "download-accuracy"} <= set(helped)
    for group in ("fmri", "features", "accuracy"):
        dry = subprocess.run(
            ["make", "-s", "-n", "-f", str(fragment), f"download-{group}", "BHSCORE=bhscore", "SETTINGS=s.json",
             "INSTALLED="],
            capture_output=True, text=True, timeout=30, cwd=REPO,
        )  # fmt: skip
        assert dry.returncode == 0, dry.stderr
        assert dry.stdout.split() == ["bhscore", "download", group, "--settings", "s.json"]


def test_hand_placed_archive_offline_is_unpacked_then_verified_later(fake, root):
    data = accuracy_members("decoding")
    raw = serve_zip(fake, "decoding_accuracy", data)
    entry = BY_NAME["decoding_accuracy"]
    entry.download_path(root).parent.mkdir(parents=True)
    entry.download_path(root).write_bytes(raw)
    (off,) = download(root, "accuracy", names=[entry.name], **offline_opts())
    assert off.status == "unverified" and entry.download_path(root).exists()  # kept until verified
    assert all((root / "published" / name).read_bytes() == b for name, b in data.items())
    (on,) = download(root, "accuracy", names=[entry.name], **opts(fake))
    assert on.status == "verified" and fake.downloads() == [] and not entry.download_path(root).exists()
    assert json.loads(entry.marker_path(root).read_text())["verified"] is True
    (again,) = download(root, "accuracy", names=[entry.name], **offline_opts())
    assert again.status == "present"
