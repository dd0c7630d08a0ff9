import csv
import errno
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from bhscore.cli import EXIT_BROKEN_PIPE, main

REPO = Path(__file__).resolve().parent.parent


def test_score_prints_and_writes_table(accuracy_settings, tmp_path, capsys):
    out = tmp_path / "t.csv"
    rc = main(["score", "--settings", str(accuracy_settings.source), "--n-bootstrap", "20", "-o", str(out)])
    assert rc == 0
    printed = capsys.readouterr().out
    assert "D0" in printed and "averaged" in printed and str(out) in printed
    rows = list(csv.DictReader(out.open()))
    assert [r["dnn"] for r in rows] == ["D0", "D1", "D2"]
    assert float(rows[0]["averaged"]) > float(rows[2]["averaged"])


def test_score_default_output_in_results_root(accuracy_settings, tmp_path, monkeypatch):
    monkeypatch.setenv("BHSCORE_RESULTS", str(tmp_path / "res"))
    assert main(["score", "--settings", str(accuracy_settings.source), "--dnn", "D1", "--n-bootstrap", "0"]) == 0
    assert (tmp_path / "res" / "bhscores.csv").exists()
    assert main(["score", "--settings", str(accuracy_settings.source), "--dnn", "D1", "--n-bootstrap", "0",
                 "--p-method", "corrected"]) == 0  # fmt: skip
    assert (tmp_path / "res" / "bhscores_corrected.csv").exists()


def test_score_missing_tree_is_a_clear_error(tmp_path, capsys):
    from .conftest import small_settings_dict

    p = tmp_path / "settings.json"
    p.write_text(json.dumps(small_settings_dict(tmp_path / "nodata", n_dnns=1)))
    assert main(["score", "--settings", str(p)]) == 2
    err = capsys.readouterr().err
    assert "not found" in err and "accuracy.mat" in err and "make download-accuracy" in err
    assert "Traceback" not in err


def test_unknown_dnn_lists_choices(accuracy_settings, capsys):
    assert main(["score", "--settings", str(accuracy_settings.source), "--dnn", "D9"]) == 2
    assert "Valid choices: D0, D1, D2" in capsys.readouterr().err


def test_settings_command_reports_errors(tmp_path, capsys):
    p = tmp_path / "s.json"
    p.write_text(json.dumps({"subjects": ["s"], "rois": ["V1", "V9"], "dnns": {}}))
    assert main(["settings", "--settings", str(p)]) == 2
    err = capsys.readouterr().err
    assert "rois" in err and "V9" in err and "dnns" in err


def test_simulate_command(tmp_path, capsys):
    assert main(["simulate"]) == 2
    assert "give the data root" in capsys.readouterr().err


@pytest.mark.parametrize("cmd", ["score", "settings", "simulate"])
def test_help(cmd, capsys):
    with pytest.raises(SystemExit) as e:
        main([cmd, "--help"])
    assert e.value.code == 0
    assert "--settings" in capsys.readouterr().out


# -------------------------------------------------------------------------------------------------
# failures: one line, the file and the remedy; exit 2 for anticipated ones, 1 for bugs
# -------------------------------------------------------------------------------------------------


def _failing_settings_command(monkeypatch, exc: BaseException) -> None:
    """Make ``bhscore settings`` raise ``exc`` (register() reads the handler when the parser is built)."""

    def run(args):
        raise exc

    monkeypatch.setattr("bhscore.commands.settings.run", run)


def _one_line(err: str) -> str:
    lines = err.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in err, err
    return lines[0]


def test_disk_full_names_the_file_and_the_remedy(monkeypatch, capsys, tmp_path):
    target = tmp_path / "results" / "bhscores.csv"
    _failing_settings_command(monkeypatch, OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(target)))
    assert main(["settings"]) == 2
    line = _one_line(capsys.readouterr().err)
    assert line.startswith("bhscore settings: error: disk full") and str(target) in line
    assert "free space or set BHSCORE_DATA" in line


def test_disk_full_without_a_file_name_names_the_data_root(monkeypatch, capsys, tmp_path):
    monkeypatch.setenv("BHSCORE_DATA", str(tmp_path / "data"))
    _failing_settings_command(monkeypatch, OSError(errno.ENOSPC, os.strerror(errno.ENOSPC)))
    assert main(["settings"]) == 2
    line = _one_line(capsys.readouterr().err)
    assert f"under the data root {tmp_path / 'data'}" in line and "free space" in line


@pytest.mark.parametrize(
    ("code", "words"),
    [(errno.EROFS, "read-only file system"), (errno.EACCES, "permission denied"), (errno.EPERM, "permission denied")],
)
def test_unwritable_path_is_named(monkeypatch, capsys, tmp_path, code, words):
    target = tmp_path / "out" / "accuracy.mat"
    _failing_settings_command(monkeypatch, OSError(code, os.strerror(code), str(target)))
    assert main(["settings"]) == 2
    line = _one_line(capsys.readouterr().err)
    assert words in line and str(target) in line and "BHSCORE_DATA" in line


@pytest.mark.skipif(hasattr(os, "geteuid") and os.geteuid() == 0, reason="root writes into read-only folders")
def test_read_only_directory(capsys, tmp_path):
    folder = tmp_path / "ro"
    folder.mkdir()
    folder.chmod(0o555)
    try:
        assert main(["settings", "--schema", str(folder / "schema.json")]) == 2
    finally:
        folder.chmod(0o755)
    line = _one_line(capsys.readouterr().err)
    assert "permission denied" in line and str(folder) in line


def test_out_of_memory(monkeypatch, capsys):
    _failing_settings_command(monkeypatch, MemoryError("Unable to allocate 80.0 GiB for an array"))
    assert main(["settings"]) == 2
    line = _one_line(capsys.readouterr().err)
    assert "out of memory in settings" in line and "80.0 GiB" in line and "analysis.score.n_bootstrap" in line


def test_unexpected_error_is_one_line_and_debug_shows_it(monkeypatch, capsys):
    _failing_settings_command(monkeypatch, ZeroDivisionError("division by zero"))
    assert main(["settings"]) == 1
    line = _one_line(capsys.readouterr().err)
    assert line == (
        "bhscore settings: internal error: ZeroDivisionError: division by zero (rerun with --debug for the traceback)"
    )
    with pytest.raises(ZeroDivisionError):
        main(["--debug", "settings"])


def test_debug_lets_user_errors_through(monkeypatch):
    from bhscore.errors import UserError

    _failing_settings_command(monkeypatch, UserError("bad input"))
    with pytest.raises(UserError, match="bad input"):
        main(["--debug", "settings"])


def _pipe_into_head(cmd: list[str], env: dict) -> tuple[int, str, str]:
    """Run ``cmd | head -1``; returns (status of cmd, what head printed, cmd's stderr)."""
    producer = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env, cwd=REPO)
    head = subprocess.run(["head", "-1"], stdin=producer.stdout, capture_output=True, text=True, timeout=60)
    producer.stdout.close()  # only head reads the pipe: when head exits, the producer's writes fail
    err = producer.stderr.read().decode()
    return producer.wait(timeout=60), head.stdout, err


def test_broken_pipe_is_quiet(tmp_path):
    """``bhscore ... | head -1``: no BrokenPipeError traceback, status 141 (128 + SIGPIPE)."""
    script = (
        "import argparse, sys\n"
        "from bhscore.cli import dispatch\n"
        "p = argparse.ArgumentParser()\n"
        "p.add_argument('--debug', action='store_true')\n"
        "p.add_argument('-v', '--verbose', action='store_true')\n"
        "sub = p.add_subparsers(dest='command')\n"
        "def many(args):\n"
        "    for i in range(200000):\n"
        "        print(f'line {i}')\n"
        "sub.add_parser('many').set_defaults(func=many)\n"
        "sys.exit(dispatch(p, ['many']))\n"
    )
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    status, out, err = _pipe_into_head([sys.executable, "-c", script], env)
    assert out == "line 0\n"
    assert status == EXIT_BROKEN_PIPE and err == ""


def test_decode_list_into_head_is_quiet(tmp_path):
    env = {**os.environ, "BHSCORE_DATA": str(tmp_path / "data"), "PYTHONPATH": str(REPO)}
    env.pop("BHSCORE_SETTINGS", None)
    status, out, err = _pipe_into_head([sys.executable, "-m", "bhscore.cli", "decode", "--list"], env)
    assert out.strip() and "Traceback" not in err and "BrokenPipeError" not in err
    assert status in (0, EXIT_BROKEN_PIPE)
