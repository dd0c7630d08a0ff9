"""The demo, end to end at its --quick size: the ground truth scores highest, the control near zero."""

import shlex
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
import torch

from bhscore import cli, demo
from bhscore.score import score_table
from bhscore.settings import load_settings

REPO = Path(__file__).resolve().parents[1]


def _bhscore_demo(root: Path) -> None:
    """``bhscore demo --quick`` without figures, in this process."""
    assert cli.main(["demo", "--root", str(root), "--no-figures", "--quick", "--no-progress"]) == 0


@pytest.fixture(scope="module")
def quick_demo(tmp_path_factory):
    root = tmp_path_factory.mktemp("demo")
    _bhscore_demo(root)
    return root


def test_ground_truth_highest_and_control_near_zero(quick_demo):
    root = quick_demo
    settings = load_settings(root / "settings.json")
    table = score_table(settings, progress=False, n_bootstrap=0).set_index("dnn")
    assert table["averaged"].idxmax() == demo.GROUND_TRUTH
    assert table.loc[demo.GROUND_TRUTH, "averaged"] > 0.25
    assert abs(table.loc[demo.CONTROL, "averaged"]) < 0.1
    text = demo.summary(root / "settings.json")
    assert "as expected" in text and demo.GROUND_TRUTH in text


def test_rerun_skips_finished_steps(quick_demo):
    root = quick_demo
    before = {p: p.stat().st_mtime_ns for p in root.rglob("*.mat")}
    before |= {p: p.stat().st_mtime_ns for p in root.rglob("*.h5")}
    _bhscore_demo(root)
    after = {p: p.stat().st_mtime_ns for p in before}
    assert after == before  # nothing recomputed


def _figure_commands_as_make_figures(commands: list[list[str]]) -> list[list[str]]:
    """``bhscore demo``'s figure commands (tables, figures, report) collapsed into one ``figures`` step."""
    steps: list[list[str]] = []
    for argv in commands:
        if argv[0] in ("figure-tables", "figure", "report"):
            if steps[-1] != ["figures"]:
                steps.append(["figures"])
        else:
            steps.append(argv)
    return steps


def test_bhscore_demo_runs_the_commands_of_make_demo(tmp_path):
    """One pipeline: ``bhscore demo`` (demo.pipeline) and the recipe of ``make demo`` (mk/demo.mk) agree."""
    make = shutil.which("make")
    if make is None:
        pytest.skip("make is not installed")
    root, figures = tmp_path / "root", tmp_path / "figures"
    out = subprocess.run(
        [make, "-n", "--no-print-directory", "demo", "MAKE=echo", f"DEMO_ROOT={root}", f"DEMO_FIGURES={figures}",
         "DEMO_FLAGS=--quick"],
        cwd=REPO, capture_output=True, text=True, timeout=120, check=True,
    )  # fmt: skip
    recipe = []
    for line in out.stdout.splitlines():
        words = shlex.split(line)
        if words and words[0].endswith("/bhscore"):
            recipe.append(words[1:])
        elif words[:2] == ["--no-print-directory", "figures"]:  # the echoed `$(MAKE) figures ...`
            assert f"SETTINGS={root}/settings.json" in words and f"FIGURES={figures}" in words
            recipe.append(["figures"])
    commands = demo.pipeline(root, figures, quick=True)
    assert recipe == _figure_commands_as_make_figures(commands)
    assert all("--out" in c and str(figures) in c for c in commands if c[0].startswith("figure"))
    assert demo.pipeline(root, None, quick=True)[-1][-1] == "--no-figures"


def test_demo_is_real_formats(quick_demo):
    """The demo's trees are the real layout: bdpy reads them like the published data."""
    from bdpy import BData
    from bdpy.dataform import Features

    from bhscore.paths import TEST, Layout

    root = quick_demo
    settings = load_settings(root / "settings.json")
    lay = Layout.from_settings(settings)
    bd = BData(str(lay.fmri_file("sub-02", TEST)))
    assert bd.select("ROI_HVC = 1").shape[0] == demo.SIZES["quick"].n_test * demo.SIZES["quick"].test_repeats
    feats = Features(str(lay.features_dir(TEST, settings.dnns["ResNet-18"].dir)))
    assert feats.get_features("layer3").shape == (demo.SIZES["quick"].n_test, demo.SIZES["quick"].n_units)


def test_control_mixes_every_depth_equally():
    from torchvision.models import alexnet

    torch.manual_seed(3)
    reference = alexnet(weights=None).eval()
    torch.manual_seed(3)
    control = demo.mixed_alexnet(units_per_depth=8, n_layers=3).eval()
    # same random AlexNet as the ground truth built under the same seed
    for (n1, p1), (n2, p2) in zip(reference.named_parameters(), control.alexnet.named_parameters(), strict=True):
        assert n1 == n2 and torch.equal(p1, p2)
    outs = {}
    hooks = [getattr(control, f"mix{i}").register_forward_hook(lambda m, i, o, k=i: outs.__setitem__(k, o)) for i in (1, 2, 3)]
    with torch.no_grad():
        control(torch.rand(2, 3, 96, 96))
    for h in hooks:
        h.remove()
    assert all(outs[i].shape == (2, 5 * 8) for i in (1, 2, 3))
    assert not torch.equal(outs[1], outs[2])  # different units per layer
    # each layer holds 8 units from each of the 5 depths
    assert [len(p) for p in control._picks[0]] == [8] * 5


def test_demo_settings_valid_for_both_sizes(tmp_path):
    for name, size in demo.SIZES.items():
        s = load_settings(demo.write_demo_settings(tmp_path / name, size))
        assert demo.GROUND_TRUTH in s.dnns and demo.CONTROL in s.dnns
        assert set(demo.ROI_DRIVERS) == set(s.rois)
        assert all(layer in s.dnns[demo.GROUND_TRUTH].layers for layer in demo.ROI_DRIVERS.values())
        assert np.all([len(d.layers) >= 5 for d in s.dnns.values()])
