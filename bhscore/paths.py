"""Where every file of an analysis lives: the one module that knows paths.

Roots
-----
- data root: ``settings.data_root`` resolved against the settings file's directory, overridden by the
  ``BHSCORE_DATA`` environment variable. It holds the inputs in the layout of the original repository
  (``fmri/``, ``features/``), and two separate result trees:

  - ``published/{decoding,encoding}_accuracy/ImageNetTest/<dir>/...``: the downloaded published accuracies,
    written only by ``bhscore download``;
  - ``computed/<kind>_accuracy/<set>/ImageNetTest/<dir>/...``: this machine's results, one folder per
    parameter set (``<set>`` is a short digest of the parameters; ``params.json`` beside ``ImageNetTest``
    spells them out), written only by ``bhscore decode``/``encode``; likewise ``computed/decoded_features/<set>``
    and ``computed/<kind>_models/<set>``. Results replaced by a recomputation are moved to
    ``computed/superseded/<time>/``, never deleted.
- results root: ``BHSCORE_RESULTS`` or ``<data root>/results`` (score tables, caches).
- figures root: ``BHSCORE_FIGURES`` or ``<repository>/figures``.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from bhscore.kinds import KIND_NAMES, kind_of
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


#: The two directions of the analysis (described in :mod:`bhscore.kinds`).
KINDS = KIND_NAMES


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

    def features_all_dir(self, split: str, dnn_dir: str) -> Path:
        """``features_all/<split>/<framework>/<network>``: every unit of each layer (the paper's encoding
        inputs; ``bhscore download features-all``), one sub-directory per layer."""
        return self.root / "features_all" / _check_split(split) / dnn_dir

    def input_features(self, settings: Settings, kind: str, split: str, dnn: str) -> tuple[Path, Path]:
        """The features tree that ``kind`` reads for DNN ``dnn``, and its cache folder.

        Encoding with ``analysis.encoding.inputs = 'all_units'`` reads :meth:`features_all_dir`; everything
        else :meth:`features_dir`.

        Raises
        ------
        bhscore.errors.MissingDataError
            All-units inputs asked for and their tree is absent (names the download command and 'subset').
        """
        dnn_dir = settings.dnn(dnn).dir
        if kind_of(kind).reads_all_units(settings):
            path = self.features_all_dir(split, dnn_dir)
            if not path.is_dir():
                from bhscore.errors import MissingDataError

                raise MissingDataError(
                    path, what="all-units features tree (analysis.encoding.inputs = 'all_units')",
                    how=f"bhscore download features-all --dnn '{dnn}' (or set analysis.encoding.inputs to "
                    "'subset': the 1000-unit features/, not the paper's analysis)",
                )
            return path, self.root / "cache" / "features_all" / split / dnn_dir
        return self.features_dir(split, dnn_dir), self.feature_cache_dir(split, dnn_dir)

    # accuracies ------------------------------------------------------------------------------------
    @property
    def published_root(self) -> Path:
        """Downloaded published results (written only by ``bhscore download``)."""
        return self.root / "published"

    @property
    def computed_root(self) -> Path:
        """This machine's results (written only by ``bhscore decode``/``encode``)."""
        return self.root / "computed"

    def published_accuracy_root(self, kind: str) -> Path:
        """``published/<kind>_accuracy``: the published tree of ``kind``."""
        return self.published_root / kind_of(kind).accuracy_dir

    def param_set_dir(self, kind: str, set_id: str) -> Path:
        """``computed/<kind>_accuracy/<set>``: one parameter set's accuracy tree and its ``params.json``."""
        return self.computed_root / kind_of(kind).accuracy_dir / set_id

    def accuracy_file(self, tree: Path, dnn_dir: str, layer: str, subject: str, roi: str) -> Path:
        """``<tree>/ImageNetTest/<dir>/<layer>/<subject>/<roi>/accuracy.mat`` (``tree``: a published or
        parameter-set accuracy root)."""
        if not Path(tree).is_absolute():  # e.g. a kind name passed by mistake: never write relative to cwd
            raise ValueError(f"tree must be an absolute accuracy root, got {tree!r}")
        return accuracy_dnn_dir(tree, dnn_dir) / layer / subject / roi / "accuracy.mat"

    def decoded_features_dir(self, set_id: str, dnn_dir: str, layer: str, subject: str, roi: str) -> Path:
        """Predicted test features, one ``<image>.mat`` each (optional decoding output)."""
        return self.computed_root / "decoded_features" / set_id / TEST / dnn_dir / layer / subject / roi

    def model_dir(self, kind: str, set_id: str, dnn_dir: str, layer: str, subject: str, roi: str) -> Path:
        """A trained model in bdpy's bdmodel layout (optional output)."""
        base = self.computed_root / kind_of(kind).models_dir / set_id
        return base / TRAINING / dnn_dir / layer / subject / roi / "model"

    def superseded_dir(self, stamp: str) -> Path:
        """Where results replaced by a recomputation are moved (same relative paths as under computed/)."""
        return self.computed_root / "superseded" / stamp

    def legacy_trees(self) -> list[Path]:
        """Result folders of the pre-provenance layout (bhscore 0.1) at the data root; see ``bhscore migrate``."""
        kinds = [kind_of(k) for k in KINDS]
        names = (*(k.accuracy_dir for k in kinds), "decoded_features", *(k.models_dir for k in kinds))
        return [self.root / n for n in names if (self.root / n).is_dir()]

    # locks and caches ------------------------------------------------------------------------------
    @property
    def lock_dir(self) -> Path:
        return self.root / "locks"

    @property
    def digest_cache(self) -> Path:
        """Content digests of input files, keyed by path, size and modification time."""
        return self.root / "cache" / "digests.json"


def accuracy_dnn_dir(tree: Path, dnn_dir: str) -> Path:
    """``<tree>/ImageNetTest/<dir>``: one DNN's part of an accuracy tree."""
    return Path(tree) / TEST / dnn_dir
