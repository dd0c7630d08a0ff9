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
from bhscore.provenance import ParamSet, make_record
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


def _pset(settings, kind="decoding", **overrides):
    return ParamSet.from_settings(settings, kind, **overrides)


def _files(settings, job, **overrides):
    return jobs.JobFiles(Layout.from_settings(settings), settings, job, _pset(settings, job.kind, **overrides))


def _writer(settings, calls, **overrides):
    """A group runner that writes each job's accuracy file with a record (and records the groups it got)."""

    def run_group(group, done):
        calls.append(list(group))
        for job in group:
            ps = _pset(settings, job.kind, **overrides)
            record = make_record(job, settings.dnn(job.dnn).dir, ps, {}, 3, 4, 20, 10)
            formats.write_accuracy(_files(settings, job, **overrides).accuracy, np.zeros(4), 10, record)
            done(job)

    return run_group


def _run(settings, sel, runner, **kw):
    return jobs.run_jobs(settings, sel, runner, _pset(settings, sel[0].kind), progress=False, **kw)


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


def _check_shards(all_jobs, n):
    """Shards 0..n-1 of ``all_jobs`` partition it in order, never split a group, and balance job counts."""
    parts = [jobs.shard(all_jobs, i, n) for i in range(n)]
    assert [j for p in parts for j in p] == all_jobs
    owner = {}
    for i, part in enumerate(parts):
        for job in part:
            assert owner.setdefault(job.group, i) == i, f"group {job.group} split over shards"
    n_groups = len(jobs.grouped(all_jobs))
    assert sum(1 for p in parts if p) == min(n, n_groups)
    biggest = max(map(len, jobs.grouped(all_jobs)))
    assert all(abs(len(p) - len(all_jobs) / n) < biggest for p in parts)
    return parts


@pytest.mark.parametrize("kind", ["decoding", "encoding"])
def test_shards_are_whole_groups_and_partition_the_job_list(settings, kind):
    all_jobs = jobs.list_jobs(settings, kind)  # decoding: 6 groups of 7 jobs; encoding: 14 groups of 3
    n_groups = len(jobs.grouped(all_jobs))
    for n in (1, 2, 4, 5, 7, n_groups, 100):
        parts = _check_shards(all_jobs, n)
        group_counts = [len(jobs.grouped(p)) for p in parts]
        assert max(group_counts) - min(group_counts) <= 1  # equal groups: near-equal group counts


def test_shards_balance_unequal_groups(settings):
    all_jobs = jobs.list_jobs(settings, "decoding")
    # groups of 7, 3, 7, 1, 5, 7 jobs
    keep = [j for j in all_jobs if not (j.group == ("sub-01", "V2") and j.dnn == "B")]
    keep = [j for j in keep if not (j.group == ("sub-02", "V1") and j.layer != "l1")]
    keep = [j for j in keep if not (j.group == ("sub-02", "V2") and j.layer in ("c1", "c2"))]
    assert [len(g) for g in jobs.grouped(keep)] == [7, 3, 7, 1, 5, 7]
    for n in (1, 2, 3, 4, 6, 9):
        _check_shards(keep, n)
    assert jobs.shard([], 0, 3) == []


def test_parse_shard():
    assert jobs.parse_shard("2/5") == (2, 5)
    for bad in ("5/5", "a/2", "1", "-1/3", "0/0"):
        with pytest.raises(UserError):
            jobs.parse_shard(bad)
    with pytest.raises(UserError, match=r"0\.\.4"):
        jobs.parse_shard("5/5")


def test_done_jobs_are_skipped(settings):
    calls = []
    sel = jobs.list_jobs(settings, "decoding", dnns=["A"])
    rep = _run(settings, sel[:5], _writer(settings, calls))
    assert len(rep.ran) == 5
    calls.clear()
    rep = _run(settings, sel, _writer(settings, calls))
    assert rep.already_done == 5 and len(rep.ran) == len(sel) - 5
    assert sel[0] not in [j for g in calls for j in g]
    # a requested optional output that is missing makes the job pending again
    st = _files(settings, sel[0]).status(jobs.Outputs(model=True), _pset(settings))
    assert st.state == jobs.MISSING and "model" in st.reason


def test_jobs_locked_by_another_process_are_left_alone(settings):
    sel = jobs.list_jobs(settings, "encoding", dnns=["A"], layers=["l1"], subjects=["sub-01"])
    held = _files(settings, sel[1]).lock
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
        rep = _run(settings, sel, _writer(settings, calls))
        assert rep.locked == [sel[1]] and set(rep.ran) == {sel[0], sel[2]}
    finally:
        holder.kill()
        holder.wait()
    rep = _run(settings, sel, _writer(settings, []))  # the lock died with its holder
    assert rep.ran == [sel[1]]


def test_failed_group_releases_its_locks_and_writes_nothing(settings):
    sel = jobs.list_jobs(settings, "decoding", dnns=["B"], subjects=["sub-02"], rois=["V1"])

    def boom(group, done):
        raise UserError("no data")

    with pytest.raises(UserError):
        _run(settings, sel, boom)
    for job in sel:
        lock = jobs.try_lock(_files(settings, job).lock)
        assert lock is not None
        lock.release()
        assert not _files(settings, job).accuracy.exists()
    assert _run(settings, sel, _writer(settings, [])).ran == sel


def test_stale_temporaries_removed_when_the_job_is_taken(settings):
    job = jobs.list_jobs(settings, "decoding", dnns=["A"])[0]
    files = _files(settings, job)
    files.accuracy.parent.mkdir(parents=True)
    stale = files.accuracy.parent / ".accuracy.abc123.tmp.mat"
    stale.write_bytes(b"partial")
    assert files.status(jobs.Outputs(), _pset(settings)).state == jobs.MISSING
    _run(settings, [job], _writer(settings, []))
    assert not stale.exists() and files.accuracy.exists()


def test_cli_list_and_bad_shard(settings, capsys):
    from bhscore.cli import main

    path = str(settings.source)
    assert (
        main(["decode", "--settings", path, "--dnn", "A", "--subject", "sub-01", "--roi", "V2", "--list"])
        == 0
    )
    out = capsys.readouterr().out
    assert "missing  decoding A l1 sub-01 V2" in out and "0 done, 0 stale, 3 missing, 0 invalid (of 3)" in out
    assert main(["encode", "--settings", path, "--shard", "3/3"]) == 2
    assert "--shard" in capsys.readouterr().err
