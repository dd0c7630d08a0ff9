"""Job lists, sharding, locks and skip-if-done (a fake job runner: no fitting here)."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap

import numpy as np
import pytest

from bhscore import formats, jobs
from bhscore.errors import UserError
from bhscore.paths import Layout
from bhscore.settings import SettingsError, load_settings


@pytest.fixture
def settings(tmp_path):
    raw = {
        "data_root": str(tmp_path / "data"),
        "subjects": ["sub-01", "sub-02"],
        "rois": ["V1", "V2", "V3"],
        "analysis": {"score": {"layers_per_draw": 3}},
        "dnns": {
            "A": {"dir": "fw/A", "layers": ["l1", "l2", "l3"]},
            "B": {"dir": "fw/B", "layers": ["c1", "c2", "c3", "c4"]},
        },
    }
    (tmp_path / "settings.json").write_text(json.dumps(raw))
    return load_settings(tmp_path / "settings.json")


def _writer(settings, calls):
    """A group runner that writes each job's accuracy file (and records the groups it was given)."""
    lay = Layout.from_settings(settings)

    def run_group(group, done):
        calls.append(list(group))
        for job in group:
            path = lay.accuracy_file(job.kind, settings.dnn(job.dnn).dir, job.layer, job.subject, job.roi)
            formats.write_accuracy(path, np.zeros(4), n_samples=10)
            done(job)

    return run_group


def test_job_lists_are_grouped_by_shared_inputs(settings):
    dec = jobs.list_jobs(settings, "decoding")
    assert len(dec) == (3 + 4) * 2 * 3 and len(set(dec)) == len(dec)
    groups = jobs.grouped(dec)
    assert [g[0].group for g in groups] == [(s, r) for s in ("sub-01", "sub-02") for r in ("V1", "V2", "V3")]
    assert all(len(g) == 7 for g in groups)
    enc = jobs.list_jobs(settings, "encoding", dnns=["B"], layers=["c2"])
    assert [(j.subject, j.roi) for j in enc] == [
        (s, r) for s in ("sub-01", "sub-02") for r in ("V1", "V2", "V3")
    ]
    assert len(jobs.grouped(enc)) == 2


def test_job_list_errors_name_valid_choices(settings):
    with pytest.raises(SettingsError, match="Valid choices: A, B"):
        jobs.list_jobs(settings, "decoding", dnns=["C"])
    with pytest.raises(SettingsError, match="sub-01"):
        jobs.list_jobs(settings, "decoding", subjects=["sub-9"])
    with pytest.raises(UserError, match="valid: l1, l2, l3"):
        jobs.list_jobs(settings, "decoding", dnns=["A"], layers=["c1"])


def test_shards_partition_the_job_list(settings):
    all_jobs = jobs.list_jobs(settings, "decoding")
    for n in (1, 4, 7, 100):
        parts = [jobs.shard(all_jobs, i, n) for i in range(n)]
        assert [j for p in parts for j in p] == all_jobs
        assert max(map(len, parts)) - min(map(len, parts)) <= 1
    assert jobs.parse_shard("2/5") == (2, 5)
    for bad in ("5/5", "a/2", "1", "-1/3"):
        with pytest.raises(UserError):
            jobs.parse_shard(bad)


def test_done_jobs_are_skipped(settings):
    calls = []
    sel = jobs.list_jobs(settings, "decoding", dnns=["A"])
    rep = jobs.run_jobs(settings, sel[:5], _writer(settings, calls), progress=False)
    assert len(rep.ran) == 5
    calls.clear()
    rep = jobs.run_jobs(settings, sel, _writer(settings, calls), progress=False)
    assert rep.already_done == 5 and len(rep.ran) == len(sel) - 5
    assert sel[0] not in [j for g in calls for j in g]
    # a requested optional output that is missing makes the job pending again
    assert not jobs.JobFiles(Layout.from_settings(settings), settings, sel[0]).done(jobs.Outputs(model=True))


def test_jobs_locked_by_another_process_are_left_alone(settings):
    sel = jobs.list_jobs(settings, "encoding", dnns=["A"], layers=["l1"], subjects=["sub-01"])
    held = jobs.JobFiles(Layout.from_settings(settings), settings, sel[1]).lock
    held.parent.mkdir(parents=True, exist_ok=True)
    holder = subprocess.Popen(
        [sys.executable, "-c", textwrap.dedent(f"""
            import sys, time
            from filelock import FileLock
            lock = FileLock({str(held)!r}); lock.acquire(); print("locked", flush=True); time.sleep(60)
        """)],
        stdout=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        assert holder.stdout.readline().strip() == "locked"
        calls = []
        rep = jobs.run_jobs(settings, sel, _writer(settings, calls), progress=False)
        assert rep.locked == [sel[1]] and set(rep.ran) == {sel[0], sel[2]}
    finally:
        holder.kill()
        holder.wait()
    rep = jobs.run_jobs(settings, sel, _writer(settings, []), progress=False)  # the lock died with its holder
    assert rep.ran == [sel[1]]


def test_failed_group_releases_its_locks_and_writes_nothing(settings):
    sel = jobs.list_jobs(settings, "decoding", dnns=["B"], subjects=["sub-02"], rois=["V1"])

    def boom(group, done):
        raise UserError("no data")

    with pytest.raises(UserError):
        jobs.run_jobs(settings, sel, boom, progress=False)
    lay = Layout.from_settings(settings)
    for job in sel:
        lock = jobs.try_lock(jobs.JobFiles(lay, settings, job).lock)
        assert lock is not None
        lock.release()
    assert jobs.run_jobs(settings, sel, _writer(settings, []), progress=False).ran == sel


def test_stale_temporaries_removed_when_the_job_is_taken(settings):
    lay = Layout.from_settings(settings)
    job = jobs.list_jobs(settings, "decoding", dnns=["A"])[0]
    files = jobs.JobFiles(lay, settings, job)
    files.accuracy.parent.mkdir(parents=True)
    stale = files.accuracy.parent / ".accuracy.abc123.tmp.mat"
    stale.write_bytes(b"partial")
    assert not files.done(jobs.Outputs())
    jobs.run_jobs(settings, [job], _writer(settings, []), progress=False)
    assert not stale.exists() and files.accuracy.exists()


def test_cli_list_and_bad_shard(settings, capsys):
    from bhscore.cli import main

    path = str(settings.source)
    assert (
        main(["decode", "--settings", path, "--dnn", "A", "--subject", "sub-01", "--roi", "V2", "--list"])
        == 0
    )
    out = capsys.readouterr().out
    assert "pending  decoding A l1 sub-01 V2" in out and "0/3 done" in out
    assert main(["encode", "--settings", path, "--shard", "3/3"]) == 2
    assert "--shard" in capsys.readouterr().err
