"""The statistics in the figure tables, `bhscore compare`, the notebooks with their defaults, `make lab`."""

from __future__ import annotations

import concurrent.futures
import json
import os
import shutil
import signal
import socket
import subprocess
import time
import urllib.request

import nbformat
import numpy as np
import pandas as pd
import pytest

from bhscore import figures, stats
from bhscore.cli import main as cli_main
from bhscore.score import ScoreOptions
from bhscore.settings import REPO_ROOT


@pytest.fixture(scope="module")
def tables_env(accuracy_settings, tmp_path_factory):
    """The figure tables of the 3 simulated DNNs of conftest, written once."""
    out = tmp_path_factory.mktemp("cmp") / "figures"
    tables = figures.compute_tables(accuracy_settings, progress=False)
    figures.write_tables(tables, out)
    return {"settings": accuracy_settings, "tables": tables, "out": out}


def test_figure_tables_hold_the_statistics(tables_env):
    t, s = tables_env["tables"], tables_env["settings"]
    names = list(s.dnns)
    assert list(t.dnn_stats.dnn) == names and list(t.dnn_stats.columns) == stats.dnn_stats_columns(s.subjects)
    for c in stats.COMPONENTS:  # the statistics are about the very scores of the table
        np.testing.assert_array_equal(t.dnn_stats[c].to_numpy(), t.scores[c].to_numpy())
    assert len(t.pairwise) == 3 * len(names) * (len(names) - 1)
    assert set(t.pairwise.n_boot) == {s.analysis.score.n_bootstrap}
    again = figures.read_tables(tables_env["out"])
    pd.testing.assert_frame_equal(again.dnn_stats, t.dnn_stats, check_dtype=False)
    pd.testing.assert_frame_equal(again.pairwise, t.pairwise, check_dtype=False)
    # conftest's DNNs have hierarchy strengths 1, 0.5, 0: the first two beat the null, all three differ
    p = t.dnn_stats.set_index("dnn")["averaged_null_p"]
    assert p.iloc[0] < 0.01 and p.iloc[1] < 0.01 and p.iloc[2] > 0.01
    assert t.pairwise[t.pairwise.component == "averaged"].significant.all()
    assert list(t.dnn_stats.averaged_letters) == ["a", "b", "c"]


def _csv(path) -> pd.DataFrame:
    return pd.read_csv(path, keep_default_na=False, na_values=[""])


def test_cli_compare_pair_reproduces_the_all_pairs_row(tables_env, tmp_path, capsys):
    s = tables_env["settings"]
    a, b = list(s.dnns)[:2]
    out = tmp_path / "pair.csv"
    assert cli_main(["compare", a, b, "--settings", str(s.source), "-o", str(out)]) == 0
    text = capsys.readouterr().out
    assert f"{a} vs {b}" in text and "averaged" in text and "null p" in text and "paired resamples" in text
    pair = _csv(out).set_index(["component", "dnn_a", "dnn_b"])
    table = tables_env["tables"].pairwise.set_index(["component", "dnn_a", "dnn_b"])
    for c in stats.COMPONENTS:
        got, want = pair.loc[(c, a, b)], table.loc[(c, a, b)]
        for col in ("diff", "ci_low", "ci_high", "p_value", "se"):
            assert got[col] == pytest.approx(want[col], rel=1e-12, abs=1e-15), (c, col)

    every = tmp_path / "all.csv"
    assert cli_main(["compare", "--all", "--settings", str(s.source), "-o", str(every)]) == 0
    assert "pairs differ" in capsys.readouterr().out
    pd.testing.assert_frame_equal(_csv(every), table.reset_index()[_csv(every).columns], check_dtype=False)


def test_cli_compare_errors(tables_env, capsys):
    s = str(tables_env["settings"].source)
    assert cli_main(["compare", "D0", "--settings", s]) == 2
    assert "give two DNNs" in capsys.readouterr().err
    assert cli_main(["compare", "D0", "Nope", "--settings", s]) == 2
    assert "Nope" in capsys.readouterr().err


def test_new_notebooks_are_listed():
    assert {"fig_pairwise", "fig_subject_scores"} <= set(figures.figure_names())
    for name in figures.figure_names():
        first = nbformat.read(figures.notebook_path(name), as_version=4).cells[0]
        assert (
            first.cell_type == "markdown"
            and "make lab" in first.source
            and "make figure-tables" in first.source
        )


# -------------------------------------------------------------------------------------------------
# interactive use: every notebook runs top to bottom with its default parameters
# -------------------------------------------------------------------------------------------------


def _isolated_env(base) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("BHSCORE_")}
    for var in (
        "HOME",
        "JUPYTER_RUNTIME_DIR",
        "JUPYTER_DATA_DIR",
        "JUPYTER_CONFIG_DIR",
        "IPYTHONDIR",
        "MPLCONFIGDIR",
    ):
        (base / var).mkdir(parents=True, exist_ok=True)
        env[var] = str(base / var)
    env.update(figures.kernel_env(), TQDM_DISABLE="1")
    return env


def test_every_notebook_runs_with_its_defaults(tables_env, tmp_path, monkeypatch):
    """As in `make lab` after `make figure-tables`: ../settings.json, tables in ../figures, Run All."""
    from nbclient import NotebookClient

    shutil.copy(tables_env["settings"].source, tmp_path / "settings.json")
    shutil.copytree(tables_env["out"], tmp_path / "figures")
    shutil.copytree(REPO_ROOT / "analysis", tmp_path / "analysis", ignore=shutil.ignore_patterns("*.md"))
    for var, value in _isolated_env(tmp_path / "env").items():
        monkeypatch.setenv(var, value)

    def run(name: str) -> str | None:
        nb = nbformat.read(tmp_path / "analysis" / f"{name}.ipynb", as_version=4)
        client = NotebookClient(nb, kernel_name="python3", timeout=300,
                                resources={"metadata": {"path": str(tmp_path / "analysis")}})  # fmt: skip
        try:
            client.execute()
        except Exception as e:  # noqa: BLE001 - reported with the notebook's name
            return f"{name}: {type(e).__name__}: {str(e)[-800:]}"
        return None

    names = figures.figure_names()
    with concurrent.futures.ThreadPoolExecutor(2) as pool:
        failures = [f for f in pool.map(run, names) if f]
    assert not failures, "\n".join(failures)
    for name in names:
        assert (tmp_path / "figures" / f"{name}.png").stat().st_size > 2000


# -------------------------------------------------------------------------------------------------
# make lab
# -------------------------------------------------------------------------------------------------


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.skipif(shutil.which("make") is None, reason="needs GNU make")
def test_make_lab_serves_analysis_with_the_project_kernel(tmp_path):
    venv = REPO_ROOT / ".venv"
    if not (venv / "bin" / "jupyter-lab").exists() and not shutil.which("jupyter-lab"):
        pytest.skip("jupyterlab is not installed (the figures extra: make install)")
    port, token = _free_port(), "bhscore-test"
    env = _isolated_env(tmp_path / "env")
    env.pop("JUPYTER_PATH", None)
    env = {k: v for k, v in env.items() if k not in ("MAKEFLAGS", "MFLAGS", "MAKELEVEL")}
    stamp = tmp_path / "installed.stamp"
    stamp.touch()
    flags = f"--no-browser --ip=127.0.0.1 --port={port} --IdentityProvider.token={token} --ServerApp.open_browser=False"
    proc = subprocess.Popen(
        ["make", "-C", str(REPO_ROOT), "lab", f"VENV={venv}", f"INSTALLED={stamp}", "-o", str(stamp),
         f"LAB_FLAGS={flags}"],  # fmt: skip
        env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True,
    )  # fmt: skip
    try:
        base = f"http://127.0.0.1:{port}"
        deadline, specs = time.monotonic() + 120, None
        while time.monotonic() < deadline and proc.poll() is None:
            try:
                with urllib.request.urlopen(f"{base}/api/kernelspecs?token={token}", timeout=5) as r:
                    specs = json.load(r)
                break
            except OSError:
                time.sleep(0.5)
        if specs is None:
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGTERM)
            pytest.fail(
                f"JupyterLab did not answer (exit {proc.poll()}):\n{proc.communicate(timeout=30)[0][-2000:]}"
            )
        spec = specs["kernelspecs"][specs["default"]]["spec"]
        assert specs["default"] == "python3" and spec["argv"][0].startswith(str(venv)), spec["argv"]
        with urllib.request.urlopen(f"{base}/api/contents?token={token}", timeout=10) as r:
            listed = {item["name"] for item in json.load(r)["content"]}
        assert {f"{n}.ipynb" for n in figures.figure_names()} <= listed  # the server's root is analysis/
        with urllib.request.urlopen(f"{base}/lab?token={token}", timeout=10) as r:
            assert r.status == 200 and b"JupyterLab" in r.read()
    finally:
        if proc.poll() is None:  # make and the server it started: their own process group
            os.killpg(proc.pid, signal.SIGTERM)
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
        proc.stdout.close()


def test_stats_options_follow_the_settings(tables_env):
    s = tables_env["settings"]
    assert ScoreOptions.from_settings(s).n_bootstrap == int(tables_env["tables"].dnn_stats.n_boot.iloc[0])
