"""`make figures` on a simulated accuracy tree: builds everything, a second run does nothing, the right things
rebuild, missing accuracies are fetched through $(ACCURACY_TARGET) and an offline fetch stops the build."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time

import pytest

from bhscore import figures
from bhscore.settings import REPO_ROOT, load_settings
from bhscore.simulate import simulate_accuracies

pytestmark = pytest.mark.skipif(shutil.which("make") is None, reason="needs GNU make")


def settings_dict(root) -> dict:
    return {
        "data_root": str(root),
        "subjects": ["sub-01", "sub-02", "sub-03"],
        "rois": ["V1", "V2", "V3", "V4", "HVC"],
        "analysis": {"score": {"n_bootstrap": 50, "n_draws": 20}},
        "dnns": {
            "Deep": {
                "dir": "m/Deep",
                "layers": ["conv1_abs", "a", "b", "c", "d", "e"],
                "imagenet_top1": 70.0,
            },
            "Shallow": {
                "dir": "m/Shallow",
                "layers": ["conv1_abs", "a", "b", "c", "d"],
                "imagenet_top1": 60.0,
            },
            "Flat": {
                "dir": "m/Flat",
                "layers": ["conv1_abs", "a", "b", "c", "d", "e", "f"],
                "imagenet_top1": 65.0,
            },
        },
    }


@pytest.fixture
def env(tmp_path):
    """The environment of the make runs: no parent make's flags, no user home, and a fake-fetch target."""
    e = {k: v for k, v in os.environ.items() if k not in ("MAKEFLAGS", "MFLAGS", "MAKELEVEL", "MAKEFILES")}
    for var in (
        "HOME",
        "JUPYTER_RUNTIME_DIR",
        "JUPYTER_DATA_DIR",
        "JUPYTER_CONFIG_DIR",
        "IPYTHONDIR",
        "MPLCONFIGDIR",
    ):
        (tmp_path / "env" / var).mkdir(parents=True)
        e[var] = str(tmp_path / "env" / var)
    for var in ("BHSCORE_DATA", "BHSCORE_RESULTS", "BHSCORE_FIGURES", "BHSCORE_SETTINGS"):
        e.pop(var, None)
    # read by every make, sub-makes included: an "offline download" for the missing-accuracy case
    fake = tmp_path / "fake.mk"
    fake.write_text("fake-fetch:\n\t@echo 'offline: cannot reach figshare (fake)' >&2; exit 1\n")
    e["MAKEFILES"] = str(fake)
    e["TQDM_DISABLE"] = "1"
    return e


def make(tmp_path, env, *args, settings, figs, check=False):
    stamp = tmp_path / "installed.stamp"  # stands for $(INSTALLED); -o: never remade from pyproject.toml
    stamp.touch(exist_ok=True)
    cmd = [
        "make",
        "-C",
        str(REPO_ROOT),
        f"SETTINGS={settings}",
        f"FIGURES={figs}",
        f"INSTALLED={stamp}",
        "-o",
        str(stamp),
    ]
    cmd += [f"PY={sys.executable}", *args]
    res = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)
    if check and res.returncode != 0:
        raise AssertionError(f"{' '.join(cmd)} failed:\n{res.stdout}\n{res.stderr}")
    return res


def later(path, seconds=2.0):
    """Set ``path``'s mtime into the future (robust to coarse timestamps)."""
    t = time.time() + seconds
    os.utime(path, (t, t))


def outputs(figs):
    names = figures.figure_names()
    files = [figs / "bhscores.csv", *(figs / rel for rel in figures.TABLE_FILES.values())]
    for n in names:
        files += [figs / f"{n}.pdf", figs / f"{n}.png", figs / "notebooks" / f"{n}.ipynb"]
    return files


def test_make_figures_builds_once_and_rebuilds_what_changed(tmp_path, env):
    data = tmp_path / "data"
    data.mkdir()
    settings = tmp_path / "settings.json"
    settings.write_text(json.dumps(settings_dict(data)))
    simulate_accuracies(load_settings(settings), seed=1, n_units=40, n_voxels=60)
    figs = tmp_path / "figs"

    t0 = time.perf_counter()
    make(tmp_path, env, "-j2", "figures", settings=settings, figs=figs, check=True)
    build_s = time.perf_counter() - t0
    files = outputs(figs)
    assert all(p.is_file() and p.stat().st_size > 0 for p in files), [
        str(p) for p in files if not p.is_file()
    ]
    assert not [p for p in figs.rglob(".*")], "temporary files left behind"
    print(f"make -j2 figures on {len(settings_dict(data)['dnns'])} simulated DNNs: {build_s:.1f} s")

    # a second run does nothing
    mtimes = {p: p.stat().st_mtime_ns for p in files}
    res = make(tmp_path, env, "figures", settings=settings, figs=figs, check=True)
    assert "Nothing to be done for 'figures'" in res.stdout
    assert make(tmp_path, env, "-q", "figures", settings=settings, figs=figs).returncode == 0
    assert {p: p.stat().st_mtime_ns for p in files} == mtimes

    # a changed accuracy file makes the table (and so every figure) out of date
    acc = next(data.rglob("accuracy.mat"))
    later(acc)
    assert make(tmp_path, env, "-q", "figures", settings=settings, figs=figs).returncode == 1
    dry = make(tmp_path, env, "-n", "figures", settings=settings, figs=figs).stdout
    assert "figure-tables --settings" in dry and all(f"figure {n} " in dry for n in figures.figure_names())

    # touching the settings rebuilds: here the table and one figure; the other figures stay as they were
    later(settings, 4)
    one = figs / "fig3b_imagenet.pdf"
    make(tmp_path, env, str(one), settings=settings, figs=figs, check=True)
    assert (figs / "bhscores.csv").stat().st_mtime_ns > mtimes[figs / "bhscores.csv"]
    assert one.stat().st_mtime_ns > mtimes[one]
    assert (figs / "notebooks" / "fig3b_imagenet.ipynb").stat().st_mtime_ns > mtimes[
        figs / "notebooks" / "fig3b_imagenet.ipynb"
    ]
    assert (figs / "fig3a_ranking.pdf").stat().st_mtime_ns == mtimes[figs / "fig3a_ranking.pdf"]


def test_missing_accuracies_are_fetched_and_offline_stops(tmp_path, env):
    data = tmp_path / "empty"
    data.mkdir()
    settings = tmp_path / "settings.json"
    settings.write_text(json.dumps(settings_dict(data)))
    figs = tmp_path / "figs"

    res = make(tmp_path, env, "figures", "ACCURACY_TARGET=fake-fetch", settings=settings, figs=figs)
    assert res.returncode != 0
    assert "accuracy file(s) missing" in res.stderr and "fetching them: make fake-fetch" in res.stderr
    assert "offline: cannot reach figshare (fake)" in res.stderr
    assert not (figs / "bhscores.csv").exists()

    # no fetch target: stop with the list of missing files
    res = make(tmp_path, env, "figures", "ACCURACY_TARGET=", settings=settings, figs=figs)
    assert res.returncode != 0 and "accuracy file(s) missing" in res.stderr and "fetching" not in res.stderr
    assert not (figs / "bhscores.csv").exists()


def test_make_help_lists_the_targets(tmp_path, env):
    res = subprocess.run(
        ["make", "-C", str(REPO_ROOT), "help"], env=env, capture_output=True, text=True, timeout=60
    )
    for target in ("figures", "figure-tables", "verify", "clean-figures"):
        assert target in res.stdout
