"""Where every file of an analysis lives: the one module that knows paths.

Roots
-----
- data root: ``settings.data_root`` resolved against the settings file's directory, overridden by the
  ``BHSCORE_DATA`` environment variable. It holds the downloads and everything computed from them, in the
  layout of the original repository (``fmri/``, ``features/``, ``decoding_accuracy/``, ...).
- results root: ``BHSCORE_RESULTS`` or ``<data root>/results`` (score tables, caches).
- figures root: ``BHSCORE_FIGURES`` or ``<repository>/figures``.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from bhscore.settings import REPO_ROOT, Settings

DATA_ENV = "BHSCORE_DATA"
RESULTS_ENV = "BHSCORE_RESULTS"
FIGURES_ENV = "BHSCORE_FIGURES"

#: The two stimulus sets and their names in the original trees.
TRAINING = "ImageNetTraining"
TEST = "ImageNetTest"
SPLITS = (TRAINING, TEST)
_FMRI_SPLIT = {TRAINING: "perceptionNaturalImageTraining", TEST: "perceptionNaturalImageTest"}


def data_root(settings: Settings) -> Path:
    """The data root: ``$BHSCORE_DATA`` or ``settings.data_root`` relative to the settings file."""
    env = os.environ.get(DATA_ENV)
    if env:
        return Path(env).expanduser().resolve()
    root = Path(settings.data_root).expanduser()
    return (root if root.is_absolute() else settings.base_dir / root).resolve()


def results_root(settings: Settings) -> Path:
    """Score tables and caches: ``$BHSCORE_RESULTS`` or ``<data root>/results``."""
    env = os.environ.get(RESULTS_ENV)
    return Path(env).expanduser().resolve() if env else data_root(settings) / "results"


def figures_root() -> Path:
    """Generated figures: ``$BHSCORE_FIGURES`` or ``<repository>/figures``."""
    env = os.environ.get(FIGURES_ENV)
    return Path(env).expanduser().resolve() if env else REPO_ROOT / "figures"


def _check_split(split: str) -> str:
    if split not in SPLITS:
        raise ValueError(f"unknown stimulus set {split!r}; valid: {', '.join(SPLITS)}")
    return split


@dataclass(frozen=True)
class Layout:
    """Canonical paths of one analysis (one data root).

    Parameters
    ----------
    root : Path
        The data root.
    """

    root: Path

    @classmethod
    def from_settings(cls, settings: Settings) -> Layout:
        return cls(data_root(settings))

    # fMRI ------------------------------------------------------------------------------------------
    @property
    def fmri_dir(self) -> Path:
        return self.root / "fmri"

    def fmri_file(self, subject: str, split: str) -> Path:
        """``fmri/<subject>_perceptionNaturalImage{Training,Test}_VC_v2.h5``."""
        return self.fmri_dir / f"{subject}_{_FMRI_SPLIT[_check_split(split)]}_VC_v2.h5"

    # features --------------------------------------------------------------------------------------
    def features_dir(self, split: str, dnn_dir: str) -> Path:
        """``features/<split>/<framework>/<network>``: one sub-directory per layer."""
        return self.root / "features" / _check_split(split) / dnn_dir

    def feature_cache_dir(self, split: str, dnn_dir: str) -> Path:
        """Per-layer array caches of a features tree."""
        return self.root / "cache" / "features" / _check_split(split) / dnn_dir

    # accuracies ------------------------------------------------------------------------------------
    def accuracy_file(self, kind: str, dnn_dir: str, layer: str, subject: str, roi: str) -> Path:
        """``<kind>_accuracy/ImageNetTest/<dir>/<layer>/<subject>/<roi>/accuracy.mat``."""
        return self.accuracy_dir(kind, dnn_dir) / layer / subject / roi / "accuracy.mat"

    def accuracy_dir(self, kind: str, dnn_dir: str) -> Path:
        if kind not in ("decoding", "encoding"):
            raise ValueError(f"kind must be 'decoding' or 'encoding', got {kind!r}")
        return self.root / f"{kind}_accuracy" / TEST / dnn_dir

    def decoded_features_dir(self, dnn_dir: str, layer: str, subject: str, roi: str) -> Path:
        """Predicted test features, one ``<image>.mat`` each (optional decoding output)."""
        return self.root / "decoded_features" / TEST / dnn_dir / layer / subject / roi

    def model_dir(self, kind: str, dnn_dir: str, layer: str, subject: str, roi: str) -> Path:
        """A trained model in bdpy's bdmodel layout (optional output)."""
        return self.root / f"{kind}_models" / TRAINING / dnn_dir / layer / subject / roi / "model"

    # locks and results -----------------------------------------------------------------------------
    @property
    def lock_dir(self) -> Path:
        return self.root / "locks"
