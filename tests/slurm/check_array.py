"""The decoding SLURM array (decoding/slurm_array.sh) against a running SLURM; started by run_slurm_test.sh.

On copies of the quick demo (``bhscore demo --step prepare --quick``):

1. serial: ``bhscore decode`` in one process, the reference results;
2. array A (``--array=0-3``, all DNNs, submitted from outside the repository with ``SETTINGS=...``): every
   job done, and run exactly once: all jobs were missing, the tasks' summaries add up to the number of jobs
   (``N job(s) run``), each task ran exactly its shard, and none found a job held by another;
3. the same array again: nothing runs, no accuracy file changes;
4. array C (``--array=0-1%1``): task 0 is cancelled (scancel) after its first job, while it computes; the
   task alone is rerun as documented (``SHARDS=2 sbatch --array=0``): it runs exactly the jobs that were
   not done, the files already there stay untouched, and every job is done;
5. arrays that do not give the shard count (``--array=1,3``, no ``--array``) fail at once with the message;
6. A's and C's accuracies equal the serial run's, file by file (``**/accuracy.mat`` under each data root).

Jobs are counted with ``bhscore decode --list`` (one line per job starting with its state) and results
compared by relative path, so the test does not depend on where accuracy files live.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

from bhscore.formats import read_accuracy

REPO = Path(__file__).resolve().parents[2]
BHSCORE = REPO / ".venv" / "bin" / "bhscore"
SCRIPT = REPO / "decoding" / "slurm_array.sh"
STATES = ("done", "missing", "pending", "stale", "invalid")
RUN = re.compile(r"(\d+) job\(s\) run\b")
HELD = re.compile(r"(\d+) held by other workers")
N_CHECKS = 6  # the numbered checks of the module docstring


class CheckFailed(AssertionError):
    pass


def check(condition: bool, message: str) -> None:
    if not condition:
        raise CheckFailed(message)


def log(message: str) -> None:
    print(f"[check_array {time.strftime('%H:%M:%S')}] {message}", flush=True)


def bhscore(*args: str) -> str:
    out = subprocess.run([str(BHSCORE), *args], capture_output=True, text=True, timeout=300)
    check(out.returncode == 0, f"bhscore {' '.join(args)} failed ({out.returncode}):\n{out.stderr}")
    return out.stdout


def job_states(settings: Path, *extra: str) -> list[tuple[str, str]]:
    """(state, job) of every decoding job, from ``bhscore decode --list``."""
    rows = []
    for line in bhscore("decode", "--settings", str(settings), "--list", *extra).splitlines():
        word, _, rest = line.partition(" ")
        if word in STATES:
            rows.append(("done" if word == "done" else word, rest.strip()))
    check(bool(rows), f"bhscore decode --list printed no jobs for {settings}")
    return rows


def n_done(settings: Path) -> tuple[int, int]:
    states = job_states(settings)
    return sum(s == "done" for s, _ in states), len(states)


def accuracy_files(root: Path) -> dict[str, tuple[int, int, int]]:
    """Relative path -> (inode, mtime_ns, size) of every accuracy.mat under ``root``."""
    return {
        str(p.relative_to(root)): (st.st_ino, st.st_mtime_ns, st.st_size)
        for p in root.glob("**/accuracy.mat")
        for st in [p.stat()]
    }


def submit(work: Path, name: str, array: str | None, settings: Path, env: dict, *extra: str, wait=True):
    """sbatch the decoding array from ``work`` (not the repository), with ``SETTINGS=settings``.

    Returns (job id, exit status): with ``wait``, the largest exit status of the tasks once all ended (own
    polling: ``sbatch --wait`` sleeps up to 32 s between checks); else that of sbatch.
    """
    output = work / "logs" / (f"{name}_%a.out" if array is not None else f"{name}.out")
    args = ["sbatch", "--parsable", f"--output={output}", f"--job-name=bhscore-{name}"]
    if array is not None:
        args.append(f"--array={array}")
    args += [*extra, str(SCRIPT), "--device", "cpu"]
    out = subprocess.run(
        args, cwd=work, env={**env, "SETTINGS": str(settings)}, capture_output=True, text=True, timeout=60
    )
    check(out.returncode == 0, f"sbatch {name} failed ({out.returncode}): {out.stderr}")
    job_id = out.stdout.strip().split(";")[0]
    if not wait:
        return job_id, 0
    wait_gone(job_id)
    show = subprocess.run(
        ["scontrol", "-o", "show", "job", job_id], capture_output=True, text=True, check=True
    )
    codes = [int(c) for c in re.findall(r"\bExitCode=(\d+):\d+", show.stdout)]
    check(bool(codes), f"no exit status for job {job_id}:\n{show.stdout}")
    return job_id, max(codes)


def wait_gone(job_id: str, timeout: float = 240) -> None:
    """Wait until no task of ``job_id`` is pending, running or completing."""
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        out = subprocess.run(["squeue", "-h", "-j", job_id, "-o", "%i"], capture_output=True, text=True)
        if out.returncode == 0 and not out.stdout.strip():
            return
        time.sleep(0.3)
    raise CheckFailed(f"job {job_id} still queued after {timeout} s")


def task_log(work: Path, name: str, task: int | None = None) -> str:
    path = work / "logs" / (f"{name}_{task}.out" if task is not None else f"{name}.out")
    check(path.exists(), f"no log {path}")
    return path.read_text()


def runs(text: str) -> tuple[int, int] | None:
    """(jobs run, jobs held by others) from a task's log, None without a summary (killed)."""
    ran, held = RUN.findall(text), HELD.findall(text)
    if not ran:
        return None
    check(len(ran) == 1, f"more than one run summary in a task log:\n{text}")
    return int(ran[0]), int(held[0]) if held else 0


def compare(reference: Path, other: Path) -> int:
    ref, got = accuracy_files(reference), accuracy_files(other)
    check(set(ref) == set(got), f"accuracy files differ: {sorted(set(ref) ^ set(got))[:5]}")
    for rel in ref:
        a, _ = read_accuracy(reference / rel)
        b, _ = read_accuracy(other / rel)
        check(np.array_equal(a, b, equal_nan=True), f"{rel}: accuracies differ from the serial run")
    return len(ref)


def main() -> int:
    p = argparse.ArgumentParser()
    p.add_argument("--work", type=Path, required=True)
    work = p.parse_args().work
    (work / "logs").mkdir(exist_ok=True)
    env = {k: v for k, v in os.environ.items() if k not in ("BHSCORE_SETTINGS", "SHARDS", "REPO", "BHSCORE")}
    t0 = time.monotonic()

    roots = {name: work / name for name in ("serial", "A", "C")}
    bhscore("demo", "--step", "prepare", "--root", str(roots["serial"]), "--quick")
    for name in ("A", "C"):
        shutil.copytree(roots["serial"], roots[name], symlinks=True)
    settings = {name: root / "settings.json" for name, root in roots.items()}
    mem = subprocess.run(
        [str(REPO / ".venv" / "bin" / "python"), "-m", "bhscore.resources", "decoding", "--mem-only",
         "--settings", str(settings["A"])],
        capture_output=True, text=True, check=True,
    ).stdout.strip()  # fmt: skip
    sbatch_sizes = ("--cpus-per-task=1", f"--mem={mem}")
    log(f"demo prepared in {time.monotonic() - t0:.0f} s; sbatch {' '.join(sbatch_sizes)}")

    t = time.monotonic()
    bhscore(
        "decode", "--settings", str(settings["serial"]), "--device", "cpu", "--threads", "1", "--no-progress"
    )
    done, total = n_done(settings["serial"])
    check(done == total, f"serial run: {done}/{total} done")
    log(f"serial: {total} jobs in {time.monotonic() - t:.0f} s")

    # 2. one array over all DNNs: every job exactly once
    states = job_states(settings["A"])
    check(all(s != "done" for s, _ in states), "array A: jobs done before the array ran")
    t = time.monotonic()
    job, rc = submit(work, "A", "0-3", settings["A"], env, *sbatch_sizes)
    check(rc == 0, f"array A failed (exit status {rc})")
    done, total = n_done(settings["A"])
    check(done == total, f"array A: {done}/{total} jobs done")
    per_task = []
    for task in range(4):
        text = task_log(work, "A", task)
        check(f"shard {task}/4" in text, f"task {task} did not run shard {task}/4:\n{text}")
        counts = runs(text)
        check(counts is not None, f"task {task} printed no run summary:\n{text}")
        shard_size = len(job_states(settings["A"], "--shard", f"{task}/4"))
        check(counts == (shard_size, 0), f"task {task}: ran/held {counts}, its shard has {shard_size} jobs")
        per_task.append(counts[0])
    check(sum(per_task) == total, f"array A ran {sum(per_task)} jobs for {total}")
    log(
        f"array A (job {job}): {total} jobs, each run once ({per_task} per task), {time.monotonic() - t:.0f} s"
    )

    # 3. resubmitted: nothing runs, nothing changes
    before = accuracy_files(roots["A"])
    check(len(before) == total, f"{len(before)} accuracy files for {total} jobs")
    t = time.monotonic()
    job, rc = submit(work, "A2", "0-3", settings["A"], env, *sbatch_sizes)
    check(rc == 0, f"array A resubmitted failed ({rc})")
    for task in range(4):
        counts = runs(task_log(work, "A2", task))
        check(counts == (0, 0), f"resubmitted task {task} ran/held {counts}")
    check(accuracy_files(roots["A"]) == before, "the resubmitted array changed accuracy files")
    log(f"array A resubmitted (job {job}): all skipped, {time.monotonic() - t:.0f} s")

    # 4. cancel a task mid-run, rerun that task alone. %1: one task at a time, so the first accuracy file
    # is task 0's and the cancel lands while it computes
    t = time.monotonic()
    shard0 = len(job_states(settings["C"], "--shard", "0/2"))
    job, rc = submit(work, "C", "0-1%1", settings["C"], env, *sbatch_sizes, wait=False)
    check(rc == 0 and job, f"array C not submitted ({rc})")
    end = time.monotonic() + 120
    while not accuracy_files(roots["C"]) and time.monotonic() < end:
        time.sleep(0.05)
    check(bool(accuracy_files(roots["C"])), "array C wrote nothing within 120 s")
    subprocess.run(["scancel", f"{job}_0"], check=True)
    wait_gone(job)
    check(
        runs(task_log(work, "C", 0)) is None, "task 0 finished before scancel reached it; nothing to resume"
    )
    states = job_states(settings["C"])
    missing = sum(s != "done" for s, _ in states)
    check(0 < missing < shard0, f"after scancel: {missing} jobs not done; task 0's shard has {shard0}")
    kept = accuracy_files(roots["C"])
    env_rerun = {**env, "SHARDS": "2"}
    job2, rc = submit(work, "C2", "0", settings["C"], env_rerun, *sbatch_sizes)
    check(rc == 0, f"rerun of task 0 failed ({rc})")
    counts = runs(task_log(work, "C2", 0))
    check(counts == (missing, 0), f"rerun of task 0 ran/held {counts}; {missing} jobs were not done")
    done, total = n_done(settings["C"])
    check(done == total, f"after the rerun: {done}/{total} done")
    now = accuracy_files(roots["C"])
    check(all(now.get(rel) == stat for rel, stat in kept.items()), "the rerun rewrote finished jobs")
    log(f"array C (job {job}): task 0 cancelled with {missing} of its {shard0} jobs left; rerun (job {job2}) ran exactly "
        f"those, {time.monotonic() - t:.0f} s")  # fmt: skip

    # 5. arrays without a shard count fail at once, with the message
    _, rc = submit(work, "bad", "1,3", settings["C"], env, *sbatch_sizes)
    check(rc != 0, "--array=1,3 without SHARDS did not fail")
    for task in (1, 3):
        text = task_log(work, "bad", task)
        check("SHARDS=16 sbatch --array=" in text and "Traceback" not in text, f"task {task}:\n{text}")
    _, rc = submit(work, "noarray", None, settings["C"], env, *sbatch_sizes)
    text = task_log(work, "noarray")
    check(rc != 0 and "sbatch --array" in text and "unbound" not in text, f"no --array:\n{text}")
    log("--array=1,3 and no --array fail with the message")

    # 6. identical to the serial run
    n = compare(roots["serial"], roots["A"])
    compare(roots["serial"], roots["C"])
    log(f"arrays A and C equal the serial run ({n} accuracy files each); total {time.monotonic() - t0:.0f} s")
    print(f"check_array: {N_CHECKS} passed, 0 failed")
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except CheckFailed as e:
        print(f"check_array: FAILED: {e}", file=sys.stderr)
        sys.exit(1)
