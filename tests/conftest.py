"""Shared fixtures: small simulated data in the real formats, and an environment without user overrides."""

from __future__ import annotations

import os

import matplotlib
import pytest

matplotlib.use("Agg")

_ENV_VARS = ("BHSCORE_DATA", "BHSCORE_RESULTS", "BHSCORE_FIGURES", "BHSCORE_SETTINGS")


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch):
    """Tests never see the user's data/figure overrides."""
    for var in _ENV_VARS:
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("MPLBACKEND", "Agg")
    yield


def small_settings_dict(root, n_dnns: int = 3, n_layers=(6, 8, 7, 9)) -> dict:
    """A settings mapping with ``n_dnns`` DNNs named D0.. whose data root is ``root``."""
    return {
        "data_root": str(root),
        "subjects": ["sub-01", "sub-02", "sub-03"],
        "rois": ["V1", "V2", "V3", "V4", "HVC"],
        "analysis": {"score": {"n_bootstrap": 100}},
        "dnns": {
            f"D{i}": {
                "dir": f"sim/D{i}",
                "layers": [f"conv{j}" if j else "conv1_abs" for j in range(n_layers[i % len(n_layers)])],
                "imagenet_top1": 60.0 + 5 * i,
            }
            for i in range(n_dnns)
        },
    }


@pytest.fixture(scope="session")
def accuracy_settings(tmp_path_factory):
    """Settings of 3 DNNs with simulated accuracy trees (hierarchy strength 1, 0.5, 0)."""
    import json

    from bhscore.settings import load_settings
    from bhscore.simulate import simulate_accuracies

    root = tmp_path_factory.mktemp("acc")
    (root / "settings.json").write_text(json.dumps(small_settings_dict(root)))
    s = load_settings(root / "settings.json")
    simulate_accuracies(s, seed=0, n_units=60, n_voxels=80)
    return s


@pytest.fixture(scope="session")
def simulated_dataset(tmp_path_factory):
    """Path of the settings file of a small simulated experiment (fMRI + features)."""
    from bhscore.simulate import simulate_dataset

    return simulate_dataset(tmp_path_factory.mktemp("sim") / "data", seed=0)


@pytest.fixture
def offline_download_env(monkeypatch, tmp_path):
    """Downloads see no proxy, no home directory and no inherited endpoint or data-root overrides."""
    import bhscore.download as dl

    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    for var in ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "http_proxy", "https_proxy", "all_proxy"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("NO_PROXY", "127.0.0.1,localhost")
    monkeypatch.setenv("no_proxy", "127.0.0.1,localhost")
    for var in (dl.API_ENV, dl.FILES_ENV, dl.TIMEOUT_ENV, "BHSCORE_DATA", "BHSCORE_SETTINGS"):
        monkeypatch.delenv(var, raising=False)


@pytest.fixture
def fake():
    """A local imitation of figshare (tests/figshare_server.py) that fails the test on runaway requests."""
    from tests.figshare_server import FakeFigshare

    with FakeFigshare(max_requests=300) as server:
        yield server
    assert not server.overflow, "the client sent more requests than any correct run needs"


@pytest.fixture
def root(tmp_path):
    """An empty data root."""
    path = tmp_path / "data"
    path.mkdir()
    return path


os.environ.setdefault("TQDM_DISABLE", "1")
