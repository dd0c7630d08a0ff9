"""The SLURM array scripts and batch scripts, run with SLURM's environment variables and a stub bhscore.

Each kind's entry scripts (decoding/, encoding/) run the shared ones in scripts/ with their kind; every test
goes through the entry scripts, as a user does.

Checks the shell logic (shard index and count, DNN arguments, --settings, finding the repository, early
failures) without a scheduler; `make test-slurm` (tests/slurm/run_slurm_test.sh) runs the real thing.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
#: The scripts behind decoding/ and encoding/'s wrappers, parameterised by kind.
SHARED_ARRAY = REPO / "scripts" / "slurm_array.sh"
SHARED_BATCH = REPO / "scripts" / "feature_batch.sh"
STUB = '#!/bin/sh\nprintf "%s\\n" "$0" "$@"\n'  # prints its path and one argument per line


def _stub(path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(STUB)
    path.chmod(0o755)
    return path


def _array_env(task: int, ids: list[int] | None, **extra: str) -> dict[str, str]:
    """The variables SLURM sets in an array task (ids: the array's task ids; None: not an array)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SLURM_", "SHARDS", "SETTINGS", "REPO"))}
    env.pop("BHSCORE", None)
    if ids is not None:
        env.update(
            SLURM_ARRAY_TASK_ID=str(task),
            SLURM_ARRAY_TASK_MIN=str(min(ids)),
            SLURM_ARRAY_TASK_MAX=str(max(ids)),
            SLURM_ARRAY_TASK_COUNT=str(len(ids)),
        )
    env.update(extra)
    return env


def _run(script: Path, env: dict[str, str], *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(["bash", str(script), *args], env=env, capture_output=True, text=True, timeout=30)


@pytest.fixture(params=["decoding", "encoding"])
def route(request, tmp_path):
    """(script, subcommand, stub bhscore)."""
    command = "decode" if request.param == "decoding" else "encode"
    return REPO / request.param / "slurm_array.sh", command, _stub(tmp_path / "bin" / "bhscore")


def test_contiguous_array_gives_shard_and_settings_only_when_given(route):
    script, command, stub = route
    env = _array_env(2, [0, 1, 2, 3], BHSCORE=str(stub), BHSCORE_SETTINGS="/elsewhere/settings.json")
    out = _run(script, env, "AlexNet", "VGG-19", "--device", "cpu")
    assert out.returncode == 0, out.stderr
    assert out.stdout.split("\n")[1:-1] == [
        command, "--dnn", "AlexNet", "--dnn", "VGG-19", "--shard", "2/4", "--threads", "1", "--no-progress",
        "--device", "cpu",
    ]  # fmt: skip
    env.update(SETTINGS="demo/settings.json", SLURM_CPUS_PER_TASK="3")
    out = _run(script, env)  # no DNN: every DNN of the settings in one array
    assert out.stdout.split("\n")[1:-1] == [
        command, "--settings", "demo/settings.json", "--shard", "2/4", "--threads", "3", "--no-progress",
    ]  # fmt: skip


@pytest.mark.parametrize("ids", [[0, 2, 4, 6], [1, 3], [5], [1, 2, 3]], ids=["0-7:2", "1,3", "5", "1-3"])
def test_other_arrays_need_shards(route, ids):
    script, _, stub = route
    out = _run(script, _array_env(ids[-1], ids, BHSCORE=str(stub)))
    assert out.returncode == 2 and out.stdout == ""
    assert "SHARDS=16 sbatch --array=" in out.stderr and "unbound" not in out.stderr
    out = _run(script, _array_env(ids[-1], ids, BHSCORE=str(stub), SHARDS="8"))
    assert out.returncode == 0, out.stderr
    assert f"{ids[-1]}/8" in out.stdout.split()


@pytest.mark.parametrize("shards", ["5", "0", "x", "-3"])
def test_task_outside_the_shards_fails_early(route, shards):
    script, _, stub = route
    out = _run(script, _array_env(5, [5], BHSCORE=str(stub), SHARDS=shards))
    assert out.returncode == 2 and out.stdout == "" and "SHARDS" in out.stderr


def test_without_array_a_clear_message(route):
    script, _, stub = route
    out = _run(script, _array_env(0, None, BHSCORE=str(stub)))
    assert out.returncode == 2
    assert "sbatch --array" in out.stderr and "unbound" not in out.stderr


def test_repository_found_from_the_submitted_script(route, tmp_path):
    """Under sbatch the script runs as a spool copy: the repository comes from scontrol's Command=."""
    script, command, _ = route
    repo = tmp_path / "repo"
    submitted = repo / script.parent.name / script.name
    for path in (script, SHARED_ARRAY):  # the submitted wrapper and the shared script it runs
        (repo / path.relative_to(REPO)).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(path, repo / path.relative_to(REPO))
    bhscore = _stub(repo / ".venv" / "bin" / "bhscore")
    spool = tmp_path / "spool" / "job42" / "slurm_script"
    spool.parent.mkdir(parents=True)
    shutil.copy(script, spool)
    fake_bin = tmp_path / "fakebin"
    fake_bin.mkdir()
    (fake_bin / "scontrol").write_text(
        f"#!/bin/sh\necho 'JobId=42 JobName=x'\necho '   Command={submitted} A'\n"
    )
    (fake_bin / "scontrol").chmod(0o755)
    env = _array_env(0, [0, 1], SLURM_JOB_ID="42", PATH=f"{fake_bin}:{os.environ['PATH']}")
    out = _run(spool, env)
    assert out.returncode == 0, out.stderr
    assert out.stdout.split("\n")[:2] == [str(bhscore), command]
    # a relative Command= is relative to the submission directory
    (fake_bin / "scontrol").write_text(f"#!/bin/sh\necho '   Command={script.parent.name}/{script.name}'\n")
    out = _run(spool, {**env, "SLURM_SUBMIT_DIR": str(repo)})
    assert out.stdout.split("\n")[0] == str(bhscore)
    # REPO wins; a repository without the environment is named in the error
    out = _run(spool, {**env, "REPO": str(tmp_path / "nowhere")})
    assert out.returncode == 2 and "REPO=" in out.stderr and str(tmp_path / "nowhere") in out.stderr
    # when scontrol cannot tell, the spool copy cannot find the shared script: REPO names it, else a clear error
    (fake_bin / "scontrol").write_text("#!/bin/sh\necho 'slurm_load_jobs error' >&2\nexit 1\n")
    out = _run(spool, {**env, "REPO": str(repo)})
    assert out.returncode == 0, out.stderr
    assert out.stdout.split("\n")[:2] == [str(bhscore), command]
    out = _run(spool, {**env, "REPO": str(tmp_path / "nowhere")})
    assert out.returncode == 2 and "REPO=" in out.stderr and "scripts/slurm_array.sh" in out.stderr


def test_shared_scripts_need_a_kind(tmp_path):
    stub = _stub(tmp_path / "bin" / "bhscore")
    for script in (SHARED_ARRAY, SHARED_BATCH):
        out = _run(script, _array_env(0, [0, 1], BHSCORE=str(stub), PY=str(stub)), "AlexNet")
        assert out.returncode == 2 and out.stdout == "" and "decoding or encoding" in out.stderr


@pytest.mark.parametrize("kind", ["decoding", "encoding"])
def test_batch_scripts_pass_settings_only_when_given(kind, tmp_path):
    script = REPO / kind / f"feature_{kind}_batch.sh"
    py = _stub(tmp_path / "python")
    env = _array_env(0, None, PY=str(py), BHSCORE_SETTINGS="/elsewhere/settings.json")
    out = _run(script, env, "AlexNet")
    assert out.returncode == 0, out.stderr
    assert "--settings" not in out.stdout and "--net\nAlexNet" in out.stdout
    assert out.stdout.split("\n")[2] == str(REPO / kind / f"feature_{kind}_predict.py")  # after "== AlexNet", PY
    out = _run(script, {**env, "SETTINGS": "s.json"})
    assert "--settings\ns.json" in out.stdout
