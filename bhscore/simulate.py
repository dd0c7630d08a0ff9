"""A simulated experiment in the real file formats, with a planted hierarchy.

The simulated world has five latent "hierarchy levels": each image carries an independent random vector per
level. Simulated visual area k (V1, V2, V3, V4, HVC) responds to level k, plus measurement noise that is new
on every presentation. DNN layers are mixtures of the levels:

- ``Planted``: layer j mixes the levels around depth ``4 j / (L - 1)`` (a Gaussian weighting), so early
  layers resemble V1 and late layers HVC: its BH score is clearly positive.
- ``Control``: every layer mixes all levels equally, so no area is systematically best for any layer: its
  score is near zero.

:func:`simulate_dataset` writes BData fMRI files, features trees and a ``settings.json`` for them;
:func:`simulate_accuracies` writes accuracy trees directly (for the score and the figures, without decoding).
Everything is seeded.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from bhscore import formats
from bhscore.paths import TEST, TRAINING, Layout, data_root
from bhscore.settings import write_settings

ROIS = ("V1", "V2", "V3", "V4", "HVC")
SUBJECTS = ("sub-01", "sub-02", "sub-03")


def stimulus_names(n: int, rng: np.random.Generator, per_synset: int = 8) -> list[str]:
    """``n`` distinct names of the real form ``n<8-digit synset>_<number>``, sorted."""
    n_syn = -(-n // per_synset)
    synsets = rng.choice(np.arange(1_000_000, 15_000_000), size=n_syn, replace=False)
    names = [
        f"n{syn:08d}_{num}"
        for syn in synsets
        for num in rng.choice(np.arange(1, 99_999), size=per_synset, replace=False)
    ]
    return sorted(names[:n])


def split_stimuli(names: list[str], order: np.ndarray, n_train: int) -> dict[str, list[str]]:
    """The training and test stimulus names: ``names`` taken in ``order``, the first ``n_train`` for training.

    Parameters
    ----------
    names : list of str
    order : ndarray (n_names,)
        A permutation of ``range(len(names))``.
    n_train : int

    Returns
    -------
    dict
        ``{TRAINING: [...], TEST: [...]}``, each list sorted.
    """
    return {TRAINING: sorted(names[i] for i in order[:n_train]), TEST: sorted(names[i] for i in order[n_train:])}


def presentation_order(rng: np.random.Generator, n_images: int, repeats: int) -> np.ndarray:
    """ndarray (n_images * repeats,): the image index of every presentation, each image ``repeats`` times, shuffled."""
    shown = np.tile(np.arange(n_images), repeats)
    rng.shuffle(shown)
    return shown


@dataclass(frozen=True)
class SimulatedDNN:
    """A simulated DNN: its name, directory, layers and how its layers weigh the latent levels."""

    name: str
    dir: str
    n_layers: int
    hierarchical: bool
    flavour: str = "v7.3"

    @property
    def layers(self) -> list[str]:
        return ["conv1_abs"] + [f"layer{j}" for j in range(1, self.n_layers)]

    def level_weights(self, n_levels: int) -> np.ndarray:
        """ndarray (n_layers, n_levels): how much each layer carries each latent level (rows sum to 1)."""
        if not self.hierarchical:
            return np.full((self.n_layers, n_levels), 1.0 / n_levels)
        depth = np.linspace(0, n_levels - 1, self.n_layers)[:, None]
        w = np.exp(-((np.arange(n_levels)[None, :] - depth) ** 2) / (2 * 0.6**2))
        return w / w.sum(axis=1, keepdims=True)


DEFAULT_DNNS = (
    SimulatedDNN("Planted", "simulated/Planted", 7, hierarchical=True, flavour="v7.3"),
    SimulatedDNN("Control", "simulated/Control", 7, hierarchical=False, flavour="v5"),
)


def simulate_dataset(
    root: str | os.PathLike,
    seed: int = 0,
    n_train: int = 120,
    train_repeats: int = 2,
    n_test: int = 50,
    test_repeats: int = 4,
    n_latent: int = 6,
    n_units: int = 64,
    voxels_per_roi: tuple[int, int] = (60, 90),
    noise: float = 1.0,
    dnns: tuple[SimulatedDNN, ...] = DEFAULT_DNNS,
    n_feat: int = 40,
) -> Path:
    """Write a simulated experiment under ``root`` in the real formats.

    Parameters
    ----------
    root : path-like
        The data root to create: ``fmri/``, ``features/`` and ``settings.json`` (data_root ".").
    seed : int
    n_train, train_repeats : int
        Training images and presentations per image (the real data: 1200 x 5).
    n_test, test_repeats : int
        Test images and presentations per image (the real data: 50 x 24; averaged before prediction).
    n_latent : int
        Dimension of each latent level.
    n_units : int
        Units per layer (the first layer is stored as (1, 4, 4, n_units // 16)).
    voxels_per_roi : (int, int)
        Range of voxel counts per (subject, ROI).
    noise : float
        Standard deviation of the measurement noise (signal variance is about 1).
    dnns : tuple of SimulatedDNN
    n_feat : int
        Inputs selected per output in the simulated settings (fewer than the voxels of an ROI).

    Returns
    -------
    Path
        The written settings file (written last, validated).
    """
    if n_test < 3:
        raise ValueError(f"n_test (the settings' n_test_images) must be at least 3, got {n_test}")
    root = Path(root)
    rng = np.random.default_rng(seed)
    names = stimulus_names(n_train + n_test, rng)
    split_names = split_stimuli(names, rng.permutation(len(names)), n_train)
    latents = {
        split: rng.standard_normal((len(ns), len(ROIS), n_latent)) for split, ns in split_names.items()
    }  # (n_images, n_levels, n_latent)
    layout = Layout(root)
    for dnn in dnns:
        _write_simulated_features(layout, dnn, split_names, latents, n_units, rng)
    repeats = {TRAINING: train_repeats, TEST: test_repeats}
    for s_i, subject in enumerate(SUBJECTS):
        subject_rng = np.random.default_rng([seed, s_i])
        _write_simulated_fmri(layout, subject, split_names, latents, repeats, voxels_per_roi, noise, subject_rng)
    return write_settings(_simulated_settings(dnns, n_feat, n_test), root / "settings.json")


def _write_simulated_features(
    layout: Layout,
    dnn: SimulatedDNN,
    split_names: dict[str, list[str]],
    latents: dict[str, np.ndarray],
    n_units: int,
    rng: np.random.Generator,
) -> None:
    """Write the features trees of ``dnn``: each layer a fixed random projection of its weighted latent levels.

    Parameters
    ----------
    layout : Layout
    dnn : SimulatedDNN
    split_names : dict
        Stimulus set -> image names (sorted).
    latents : dict
        Stimulus set -> ndarray (n_images, n_levels, n_latent).
    n_units : int
        Units per layer.
    rng : numpy.random.Generator
        Draws the projections, then the feature noise (set by set, layer by layer).
    """
    n_levels, n_latent = latents[TRAINING].shape[1:]
    weights = dnn.level_weights(n_levels)
    projections = rng.standard_normal((dnn.n_layers, n_levels, n_latent, n_units)) / np.sqrt(n_latent)
    for split, ns in split_names.items():
        z = latents[split]
        for j, layer in enumerate(dnn.layers):
            feats = np.einsum("ikd,kdu->iu", z * np.sqrt(weights[j])[None, :, None], projections[j])
            feats += 0.1 * rng.standard_normal(feats.shape)
            if j == 0:
                feats = np.abs(feats + 1.5)  # an "_abs" layer (offset: abs keeps most of the linear signal)
            out_dir = layout.features_dir(split, dnn.dir) / layer
            for i, name in enumerate(ns):
                a = feats[i].reshape(1, 4, 4, -1) if j == 0 else feats[i][None, :]
                formats.save_feature(out_dir / f"{name}.mat", a, flavour=dnn.flavour)


def _write_simulated_fmri(
    layout: Layout,
    subject: str,
    split_names: dict[str, list[str]],
    latents: dict[str, np.ndarray],
    repeats: dict[str, int],
    voxels_per_roi: tuple[int, int],
    noise: float,
    rng: np.random.Generator,
) -> None:
    """Write one subject's fMRI files: area k = a random projection of latent level k, plus fresh noise.

    Parameters
    ----------
    layout : Layout
    subject : str
    split_names : dict
        Stimulus set -> image names (sorted).
    latents : dict
        Stimulus set -> ndarray (n_images, n_levels, n_latent); level k drives ``ROIS[k]``.
    repeats : dict
        Stimulus set -> presentations per image, in the order the sets are written.
    voxels_per_roi : (int, int)
        Range of voxel counts per ROI.
    noise : float
        Measurement noise s.d., new on every presentation.
    rng : numpy.random.Generator
        The subject's own generator.
    """
    n_levels, n_latent = latents[TRAINING].shape[1:]
    n_vox = rng.integers(voxels_per_roi[0], voxels_per_roi[1] + 1, size=n_levels)
    maps = [rng.standard_normal((n_latent, n_vox[k])) / np.sqrt(n_latent) for k in range(n_levels)]
    for split, n_repeats in repeats.items():
        ns = split_names[split]
        shown = presentation_order(rng, len(ns), n_repeats)
        z = latents[split][shown]  # (n_samples, n_levels, n_latent)
        rois = {
            roi: z[:, k, :] @ maps[k] + noise * rng.standard_normal((len(shown), n_vox[k])) + 5.0
            for k, roi in enumerate(ROIS)
        }
        formats.write_fmri(layout.fmri_file(subject, split), rois, [ns[i] for i in shown], names=ns)


def _simulated_settings(dnns: tuple[SimulatedDNN, ...], n_feat: int, n_test: int) -> dict:
    """The settings mapping of a simulated experiment (data root: the directory of the settings file)."""
    return {
        "data_root": ".",
        "subjects": list(SUBJECTS),
        "rois": list(ROIS),
        "analysis": {
            "decoding": {"alpha": 100.0, "n_feat": n_feat, "dtype": "float64"},
            "encoding": {"alpha": 100.0, "n_feat": n_feat, "dtype": "float32", "inputs": "subset"},
            "score": {"n_test_images": n_test, "n_draws": 100, "n_bootstrap": 200, "accuracy_source": "computed"},
        },
        "dnns": {d.name: {"dir": d.dir, "layers": d.layers} for d in dnns},
    }


def simulate_accuracies(
    settings,
    seed: int = 0,
    n_units: int = 100,
    n_voxels: int = 120,
    n_samples: int = 50,
    strengths: dict[str, float] | None = None,
) -> Path:
    """Write decoding and encoding accuracy trees with a planted hierarchy for every DNN of ``settings``.

    They stand in for the published accuracies (figure and score tests at the paper's size), so they go to
    the published tree (``published/<kind>_accuracy``) and carry no provenance record, like the real ones.

    Each unit of layer j is best decoded near ROI ``(R - 1) j / (L - 1)`` with a strength that decreases
    through the DNN list (first DNN: strength 1, last: 0, i.e. no hierarchy), so the DNNs get distinct scores.
    A few accuracies are NaN (constant units), as in real trees.

    Parameters
    ----------
    settings : bhscore.settings.Settings
        DNNs, subjects and ROIs to write; files go under its data root.
    seed : int
    n_units, n_voxels : int
        Items per (layer, subject, ROI) file.
    n_samples : int
        Test images recorded in the files.
    strengths : dict, optional
        DNN name -> hierarchy strength in [0, 1], overriding the default ramp.

    Returns
    -------
    Path
        The data root.
    """
    layout = Layout.from_settings(settings)
    rng = np.random.default_rng(seed)
    names = list(settings.dnns)
    ramp = np.linspace(1.0, 0.0, len(names)) if len(names) > 1 else np.ones(1)
    for i, name in enumerate(names):
        dnn = settings.dnns[name]
        strength = (strengths or {}).get(name, float(ramp[i]))
        affinity = _planted_affinity(strength, len(dnn.layers), len(settings.rois))

        def _write(kind, layer, subject, roi, acc, dnn_dir=dnn.dir):
            tree = layout.published_accuracy_root(kind)
            formats.write_accuracy(layout.accuracy_file(tree, dnn_dir, layer, subject, roi), acc, n_samples)

        for subject in settings.subjects:
            for j, layer in enumerate(dnn.layers):  # decoding: units of layer j, shared across ROIs
                acc = _noisy(rng, affinity[j][:, None], n_units)
                for r, roi in enumerate(settings.rois):
                    _write("decoding", layer, subject, roi, acc[r])
            for r, roi in enumerate(settings.rois):  # encoding: voxels of ROI r, shared across layers
                acc = _noisy(rng, affinity[:, r][:, None], n_voxels)
                for j, layer in enumerate(dnn.layers):
                    _write("encoding", layer, subject, roi, acc[j])
    return data_root(settings)


def _planted_affinity(strength: float, n_layers: int, n_rois: int) -> np.ndarray:
    """ndarray (n_layers, n_rois): a Gaussian ridge along the layer-ROI diagonal, flattened by ``1 - strength``."""
    centre = np.linspace(0, n_rois - 1, n_layers)[:, None]
    affinity = np.exp(-((np.arange(n_rois)[None, :] - centre) ** 2) / (2 * 0.9**2))
    return strength * affinity + (1 - strength) * affinity.mean(axis=1, keepdims=True)


def _noisy(rng: np.random.Generator, profile: np.ndarray, n_items: int) -> np.ndarray:
    """Accuracies (n_rows, n_items): item decodability x row profile + noise, about 1% NaN items."""
    base = 0.15 + 0.5 * rng.random(n_items)
    acc = np.clip(base[None, :] * profile + 0.15 * rng.standard_normal((len(profile), n_items)), -0.99, 0.99)
    acc[:, rng.random(n_items) < 0.01] = np.nan
    return acc


def simulate_fmri_from_features(
    settings,
    driver: str,
    roi_layers: dict[str, str],
    seed: int = 0,
    train_repeats: int = 2,
    test_repeats: int = 8,
    voxels_per_roi: tuple[int, int] = (80, 160),
    units_per_voxel: int = 40,
    noise: float = 1.5,
) -> None:
    """Write BData fMRI files of a simulated brain whose areas are driven by layers of a DNN's features.

    Each voxel of area ``roi`` pools a random subset of the (training-z-scored) units of layer
    ``roi_layers[roi]`` of DNN ``driver`` with random weights, scaled to unit variance over the training
    images; every presentation adds fresh Gaussian noise of s.d. ``noise``. Voxel counts differ across
    subjects. The features trees of ``driver`` (both stimulus sets) must exist under the data root.

    Parameters
    ----------
    settings : bhscore.settings.Settings
        Subjects, ROIs and the data root (files go to ``Layout.fmri_file``).
    driver : str
        The DNN whose features drive the simulated brain.
    roi_layers : dict of str -> str
        ROI -> driving layer of ``driver``.
    seed : int
    train_repeats, test_repeats : int
        Presentations per image (the real data: 5 and 24).
    voxels_per_roi : (int, int)
        Range of voxel counts per (subject, ROI).
    units_per_voxel : int
        Units pooled by each voxel.
    noise : float
        Trial noise s.d. (the noise-free signal has unit variance).
    """
    layout = Layout.from_settings(settings)
    names, zscored = _zscored_driver_features(layout, settings.dnn(driver), set(roi_layers.values()))
    for s_i, subject in enumerate(settings.subjects):
        rng = np.random.default_rng([seed, 100 + s_i])
        weights = {
            roi: _voxel_weights(rng, zscored[TRAINING][roi_layers[roi]], voxels_per_roi, units_per_voxel)
            for roi in settings.rois
        }
        for split, repeats in ((TRAINING, train_repeats), (TEST, test_repeats)):
            shown = presentation_order(rng, len(names[split]), repeats)
            rois = {}
            for roi in settings.rois:
                signal = zscored[split][roi_layers[roi]] @ weights[roi]
                rois[roi] = signal[shown] + noise * rng.standard_normal((len(shown), signal.shape[1])) + 10.0
            formats.write_fmri(
                layout.fmri_file(subject, split), rois, [names[split][i] for i in shown], names=names[split]
            )


def _zscored_driver_features(
    layout: Layout, dnn, layers: set[str]
) -> tuple[dict[str, list[str]], dict[str, dict[str, np.ndarray]]]:
    """The image names and the ``layers`` of a DNN per stimulus set, z-scored with the training statistics.

    Parameters
    ----------
    layout : Layout
    dnn : bhscore.settings.DNNSettings
    layers : set of str

    Returns
    -------
    names : dict
        Stimulus set -> image names, in the order of the feature rows.
    zscored : dict
        Stimulus set -> layer -> ndarray (n_images, n_units), float64; a unit constant over the training
        images is only centred.
    """
    feats: dict[str, dict[str, np.ndarray]] = {}
    names: dict[str, list[str]] = {}
    for split in (TRAINING, TEST):
        fdir = layout.features_dir(split, dnn.dir)
        names[split] = formats.feature_labels(fdir, dnn.layers[0])
        feats[split] = {layer: formats.read_layer(fdir, layer).astype(np.float64) for layer in layers}
    zscored: dict[str, dict[str, np.ndarray]] = {split: {} for split in feats}
    for layer, train in feats[TRAINING].items():
        sd = train.std(axis=0)
        mean, sd = train.mean(axis=0), np.where(sd > 0, sd, 1.0)
        for split in feats:
            zscored[split][layer] = (feats[split][layer] - mean) / sd
    return names, zscored


def _voxel_weights(
    rng: np.random.Generator, train: np.ndarray, voxels_per_roi: tuple[int, int], units_per_voxel: int
) -> np.ndarray:
    """ndarray (n_units, n_voxels): each voxel pools ``units_per_voxel`` random units with random weights.

    Parameters
    ----------
    rng : numpy.random.Generator
        Draws the voxel count, then each voxel's units and weights.
    train : ndarray (n_train_images, n_units)
        The z-scored training features; each voxel's weights are scaled to unit variance over them.
    voxels_per_roi : (int, int)
        Range of the voxel count.
    units_per_voxel : int
    """
    n_units = train.shape[1]
    n_vox = int(rng.integers(voxels_per_roi[0], voxels_per_roi[1] + 1))
    w = np.zeros((n_units, n_vox))
    for v in range(n_vox):  # a handful of voxels: a loop is clearer than fancy indexing
        pool = rng.choice(n_units, size=min(units_per_voxel, n_units), replace=False)
        w[pool, v] = rng.standard_normal(len(pool))
    scale = (train @ w).std(axis=0)
    return w / np.where(scale > 0, scale, 1.0)
