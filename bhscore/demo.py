"""The demo: the whole BH score pipeline on a simulated experiment, in minutes, with nothing to download.

Steps (each through the same code as the real data; the demo is only a settings file and a data root):

1. procedural stimulus images (:mod:`bhscore.stimuli`), training and test sets;
2. features of three small CNNs with seeded random weights (torchvision AlexNet, ResNet-18, SqueezeNet 1.1)
   and of a control network without hierarchy, with the real extraction code (:mod:`bhscore.extraction`);
3. a simulated brain: V1, V2, V3, V4 and HVC driven by increasingly deep layers of the ground-truth network
   (AlexNet), with trial noise, repeats and per-subject voxel counts, written as BData files;
4. decoding and encoding jobs, the score table, and every figure of ``make figures``.

Steps 1-3 are :func:`prepare` (``bhscore demo --step prepare``); step 4 is the ordinary commands on the demo's
settings file. :func:`pipeline` lists the whole sequence as ``bhscore`` command lines: ``bhscore demo`` runs
them, ``make demo`` (mk/demo.mk) runs the same ones, with ``make figures`` for the figure commands.

The control (``Mixed``) is AlexNet itself with its layers scrambled: each of its "layers" mixes equal numbers
of units from every depth, so no layer is more V1- or HVC-like than another; it scores near zero.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from pathlib import Path

from bhscore.paths import TEST, TRAINING

GROUND_TRUTH = "AlexNet"
CONTROL = "Mixed"

#: The ground-truth network's layers that drive each simulated area.
ROI_DRIVERS = {"V1": "pool1", "V2": "pool2", "V3": "conv4", "V4": "pool5", "HVC": "fc7"}

_DEMO_DNNS = {
    "AlexNet": {
        "dir": "pytorch/alexnet",
        "model": "torchvision:alexnet",
        "layers": ["conv1_abs", "pool1", "pool2", "conv3", "conv4", "pool5", "fc6", "fc7", "fc8"],
        "modules": {
            "conv1_abs": "features.0", "pool1": "features.2", "pool2": "features.5", "conv3": "features.7",
            "conv4": "features.9", "pool5": "features.12", "fc6": "classifier.2", "fc7": "classifier.5",
            "fc8": "classifier.6",
        },
    },
    "ResNet-18": {
        "dir": "pytorch/resnet18",
        "model": "torchvision:resnet18",
        "layers": ["conv1_abs", "layer1", "layer2", "layer3", "layer4", "fc"],
        "modules": {"conv1_abs": "conv1"},
    },
    "SqueezeNet-1.1": {
        "dir": "pytorch/squeezenet1_1",
        "model": "torchvision:squeezenet1_1",
        "layers": ["conv1_abs", "fire3", "fire5", "fire7", "fire9", "pool10"],
        "modules": {
            "conv1_abs": "features.0", "fire3": "features.4", "fire5": "features.7", "fire7": "features.10",
            "fire9": "features.12", "pool10": "classifier.3",
        },
    },
    "Mixed": {
        "dir": "pytorch/mixed_alexnet",
        "model": "bhscore.demo:mixed_alexnet",
        "layers": [f"mix{i}" for i in range(1, 8)],
    },
}  # fmt: skip


@dataclass(frozen=True)
class DemoSize:
    """How big the simulated experiment is."""

    n_train: int
    n_test: int
    image_size: int
    input_size: int
    n_units: int
    train_repeats: int = 2
    test_repeats: int = 8
    voxels_per_roi: tuple[int, int] = (80, 160)


SIZES = {
    "full": DemoSize(n_train=300, n_test=50, image_size=128, input_size=128, n_units=300),
    "quick": DemoSize(n_train=100, n_test=40, image_size=96, input_size=96, n_units=120, voxels_per_roi=(40, 70)),
}


def demo_settings(size: DemoSize) -> dict:
    """The demo's settings mapping (data root: the directory of the settings file)."""
    return {
        "data_root": ".",
        "subjects": ["sub-01", "sub-02", "sub-03"],
        "rois": ["V1", "V2", "V3", "V4", "HVC"],
        "analysis": {
            "decoding": {"alpha": 100.0, "n_feat": 50, "dtype": "float32"},
            # random-weight CNNs have dead units (constant over every image): the original scripts would
            # make each such layer's whole encoding file NaN (constant_inputs: original); the demo uses 'zero'
            "encoding": {"alpha": 100.0, "n_feat": min(100, size.n_units), "dtype": "float32", "inputs": "subset",
                         "constant_inputs": "zero"},
            "score": {"n_test_images": size.n_test, "n_draws": 100, "n_bootstrap": 200, "accuracy_source": "computed"},
        },
        "dnns": {name: {**spec, "weights": None, "preprocessing": "paper"} for name, spec in _DEMO_DNNS.items()},
    }


def mixed_alexnet(units_per_depth: int = 64, n_layers: int = 7):
    """A control network without hierarchy: AlexNet whose "layers" mix units of every depth equally.

    Built right after ``torchvision.models.alexnet()`` under the same seed, its AlexNet has the same random
    weights as the ground truth. Layer ``mix<i>`` outputs ``units_per_depth`` units drawn (fixed per layer)
    from each of pool1, pool2, conv4, pool5 and fc7.

    Returns
    -------
    torch.nn.Module
    """
    import torch
    import torchvision
    from torch import nn

    class MixedAlexNet(nn.Module):
        taps = {"features": (2, 5, 9, 12), "classifier": (5,)}

        def __init__(self) -> None:
            super().__init__()
            self.alexnet = torchvision.models.alexnet(weights=None)
            for i in range(1, n_layers + 1):
                self.add_module(f"mix{i}", nn.Identity())
            self._picks: list[list[torch.Tensor]] | None = None

        def _depth_outputs(self, x: torch.Tensor) -> list[torch.Tensor]:
            outs = []
            for i, m in enumerate(self.alexnet.features):
                x = m(x)
                if i in self.taps["features"]:
                    outs.append(x.flatten(1))
            x = torch.flatten(self.alexnet.avgpool(x), 1)
            for i, m in enumerate(self.alexnet.classifier):
                x = m(x)
                if i in self.taps["classifier"]:
                    outs.append(x.flatten(1))
            return outs

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            outs = self._depth_outputs(x)
            if self._picks is None:  # fixed unit choice (same for every batch and both image sets)
                g = torch.Generator().manual_seed(12345)
                self._picks = [
                    [torch.randperm(o.shape[1], generator=g)[:units_per_depth] for o in outs] for _ in range(n_layers)
                ]
            mixes = []
            for i, picks in enumerate(self._picks, start=1):
                mixed = torch.cat([o[:, p] for o, p in zip(outs, picks, strict=True)], dim=1)
                mixes.append(getattr(self, f"mix{i}")(mixed))
            return mixes[-1]

    return MixedAlexNet()


def write_demo_settings(root: str | os.PathLike, size: DemoSize) -> Path:
    """Write ``<root>/settings.json`` for the demo (validated, atomically) and return its path."""
    from bhscore.settings import write_settings

    return write_settings(demo_settings(size), Path(root) / "settings.json")


class StepLog:
    """Prints ``[demo   12.3 s] message`` lines, the time counted from this log's creation (one per run)."""

    def __init__(self) -> None:
        self._t0 = time.perf_counter()

    def __call__(self, message: str) -> None:
        print(f"[demo {time.perf_counter() - self._t0:6.1f} s] {message}", flush=True)


def prepare(
    root: str | os.PathLike, size: DemoSize, seed: int = 0, progress: bool = True, log: StepLog | None = None
) -> Path:
    """Steps 1-3: stimuli, features and the simulated brain under ``root``; returns the settings path.

    Every step skips what already exists (images, feature files, fMRI files), so a rerun is quick.

    Parameters
    ----------
    root : path-like
        The demo's data root; ``<root>/settings.json`` is (re)written first.
    size : DemoSize
    seed : int
    progress : bool
        Progress bars of the feature extraction.
    log : StepLog, optional
        Where the step messages go (default: a new one).
    """
    from bhscore.extraction import extract_dnn
    from bhscore.settings import load_settings

    log = log or StepLog()
    settings_path = write_demo_settings(root, size)
    settings = load_settings(settings_path)
    log("stimulus images")
    image_dirs = _write_demo_stimuli(Path(root), size, seed)
    for name in settings.dnns:
        for split in (TRAINING, TEST):
            log(f"features: {name}, {split}")
            extract_dnn(
                settings, name, image_dirs[split], split, n_units=size.n_units, seed=seed,
                input_size=size.input_size, device="cpu", progress=progress, batch_size=50,
            )  # fmt: skip
    _simulate_demo_brain(settings, size, seed, log)
    return settings_path


def _write_demo_stimuli(root: Path, size: DemoSize, seed: int) -> dict[str, Path]:
    """Step 1: the procedural training and test images under ``<root>/stimuli/<set>``; returns those folders."""
    import numpy as np

    from bhscore.simulate import split_stimuli, stimulus_names
    from bhscore.stimuli import write_stimuli

    names = stimulus_names(size.n_train + size.n_test, np.random.default_rng([seed, 7]))
    split_names = split_stimuli(names, np.random.default_rng([seed, 8]).permutation(len(names)), size.n_train)
    image_dirs = {split: root / "stimuli" / split for split in (TRAINING, TEST)}
    for split, names_of_split in split_names.items():
        write_stimuli(image_dirs[split], len(names_of_split), seed=seed, size=size.image_size, names=names_of_split)
    return image_dirs


def _simulate_demo_brain(settings, size: DemoSize, seed: int, log: StepLog) -> None:
    """Step 3: the fMRI files of the brain driven by the ground truth's layers (skipped when all exist)."""
    from bhscore.paths import Layout
    from bhscore.simulate import simulate_fmri_from_features

    layout = Layout.from_settings(settings)
    if all(layout.fmri_file(s, split).exists() for s in settings.subjects for split in (TRAINING, TEST)):
        return
    log(f"simulated brain driven by {GROUND_TRUTH}: " + ", ".join(f"{roi}<-{layer}" for roi, layer in ROI_DRIVERS.items()))
    simulate_fmri_from_features(
        settings, GROUND_TRUTH, ROI_DRIVERS, seed=seed, train_repeats=size.train_repeats,
        test_repeats=size.test_repeats, voxels_per_roi=size.voxels_per_roi,
    )  # fmt: skip


def pipeline(
    root: str | os.PathLike,
    figures_dir: str | os.PathLike | None,
    quick: bool = False,
    seed: int = 0,
    progress: bool = True,
) -> list[list[str]]:
    """The whole demo as ``bhscore`` command lines, in order: the steps of ``make demo`` (mk/demo.mk).

    ``bhscore demo`` runs them; ``make demo`` runs the same commands, with ``make figures`` for the three
    figure commands (which adds incremental rebuilds). The steps: prepare (stimuli, features, the simulated
    brain and the settings file), decode, encode, the figures (the score and figure tables, every figure, the
    report page) and the summary.

    Parameters
    ----------
    root : path-like
        The demo's data root.
    figures_dir : path-like or None
        Where the figures go; None: no figure commands (the summary computes the scores in memory).
    quick : bool
        The smaller experiment (``SIZES['quick']``).
    seed : int
    progress : bool
        Progress bars (else ``--no-progress``).

    Returns
    -------
    list of list of str
        One argument list per command, without the ``bhscore`` itself.
    """
    settings = str(Path(root) / "settings.json")
    size = ["--quick"] if quick else []
    seed_option = ["--seed", str(seed)] if seed else []
    no_progress = [] if progress else ["--no-progress"]
    commands = [
        ["demo", "--step", "prepare", "--root", str(root), *size, *seed_option, *no_progress],
        ["decode", "--settings", settings, "--device", "cpu", *no_progress],
        ["encode", "--settings", settings, "--device", "cpu", *no_progress],
    ]
    summary = ["demo", "--step", "summary", "--root", str(root)]
    if figures_dir is None:
        return [*commands, [*summary, "--no-figures"]]
    out = str(figures_dir)
    figures = [
        ["figure-tables", "--settings", settings, "--out", out, *no_progress],
        ["figure", "--settings", settings, "--out", out],
        ["report", "--settings", settings, "--figures", out],
    ]
    return [*commands, *figures, [*summary, "--figures", out]]


def summary(settings_path: Path, figures_dir: Path | None = None) -> str:
    """The closing summary: score table, ground truth and control, where the figures are.

    Reads ``<figures_dir>/bhscores.csv`` when it exists, else computes the table (without bootstrap).
    """
    import pandas as pd

    from bhscore.score import score_table
    from bhscore.settings import load_settings

    table_path = figures_dir / "bhscores.csv" if figures_dir is not None else None
    if table_path is not None and table_path.exists():
        table = pd.read_csv(table_path)
    else:
        table = score_table(load_settings(settings_path), progress=False, n_bootstrap=0)
    table = table.sort_values("averaged", ascending=False)
    cols = ["dnn", "averaged", "decoding", "encoding"]
    if table["averaged_ci_low"].notna().all():
        table["95% CI"] = [f"[{lo:.3f}, {hi:.3f}]" for lo, hi in zip(table.averaged_ci_low, table.averaged_ci_high, strict=True)]
        cols.append("95% CI")
    lines = ["", "BH scores of the simulated experiment (highest first):", table[cols].to_string(index=False, float_format="%.3f"), ""]
    best = table.iloc[0]["dnn"]
    control = float(table.set_index("dnn").loc[CONTROL, "averaged"])
    lines.append(
        f"The simulated brain was driven by {GROUND_TRUTH} (" + ", ".join(f"{roi} <- {layer}" for roi, layer in ROI_DRIVERS.items()) + ")."
    )
    verdict = "as expected" if best == GROUND_TRUTH else f"UNEXPECTED: {best} scored highest"
    lines.append(f"Highest BH score: {best} ({verdict}); the control without hierarchy ({CONTROL}): {control:+.3f}.")
    lines += results_locations(load_settings(settings_path))
    if figures_dir is not None:
        lines.append(f"Figures: {figures_dir}/ (PDF and PNG), table: {table_path}")
    return "\n".join(lines)


def results_locations(settings) -> list[str]:
    """One line per kind: where the computed accuracies live and their parameter set."""
    from bhscore.paths import KINDS, Layout
    from bhscore.provenance import ParamSet

    layout = Layout.from_settings(settings)
    lines = []
    for kind in KINDS:
        ps = ParamSet.from_settings(settings, kind)
        lines.append(f"{kind.capitalize()} results: {ps.directory(layout)}/ (parameter set {ps.id}: {ps.summary()}; "
                     "params.json there)")  # fmt: skip
    return lines
