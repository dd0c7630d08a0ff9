"""Reading one DNN's accuracy trees into levels: the source the settings choose, records and counts checked."""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from bhscore.errors import UserError
from bhscore.kinds import DECODING, ENCODING, kind_of
from bhscore.score.hierarchy import legacy_voxel_subsample


class MixedResultsError(UserError):
    """The accuracy files of one DNN do not all come from one parameter set and one version of the inputs."""


class AccuracyTree:
    """The accuracy files of one DNN, read once, from the source the settings choose.

    Computed files must carry a provenance record of the current parameter set; their input fingerprints must
    agree between files (one version of each subject's fMRI and of each layer's features). Every file's
    item count is checked against the others of its layer (decoding: units) or subject and ROI (encoding:
    voxels).

    Parameters
    ----------
    settings : bhscore.settings.Settings
    dnn : str
        A DNN name of ``settings.dnns``.
    allow_mixed : bool
        Accept computed files of other parameter sets or inputs (they are counted in :attr:`mixed`).
    """

    def __init__(self, settings, dnn: str, allow_mixed: bool = False):
        from bhscore.paths import KINDS, Layout
        from bhscore.sources import accuracy_source

        self.settings = settings
        self.name = dnn
        self.dnn = settings.dnn(dnn)
        self.layout = Layout.from_settings(settings)
        self.sources = {kind: accuracy_source(settings, dnn, kind, self.layout) for kind in KINDS}
        self.allow_mixed = allow_mixed
        self.files: dict[str, list[Path]] = {kind: [] for kind in KINDS}
        self.mixed: list[str] = []
        self._n_seen: set[int] = set()
        self._inputs_seen: dict[tuple, tuple[str, Path]] = {}

    def path(self, kind: str, layer: str, subject: str, roi: str) -> Path:
        return self.layout.accuracy_file(self.sources[kind].root, self.dnn.dir, layer, subject, roi)

    def read(self, kind: str, layer: str, subject: str, roi: str) -> np.ndarray:
        """One accuracy vector, shape (n_items,)."""
        from bhscore.errors import MissingDataError
        from bhscore.formats import read_accuracy_file

        src = self.sources[kind]
        path = self.path(kind, layer, subject, roi)
        if not path.exists():
            what = f"{src.source} {kind} accuracy of {self.name} (tree {src.root})"
            legacy = self.layout.legacy_trees()
            how = src.how_to_make(self.name)
            if legacy:
                how += f"; accuracies in the pre-0.2 layout ({legacy[0]}) move with `bhscore migrate`"
            raise MissingDataError(path, how=how, what=what)
        content = read_accuracy_file(path)
        if src.param_set is not None:
            self._check_record(path, content.provenance, src)
        if content.n_samples is not None:
            self._n_seen.add(content.n_samples)
        self.files[kind].append(path)
        return content.accuracy

    def _check_record(self, path: Path, record: dict | None, src) -> None:
        """A computed file must be of the current parameter set and of the same inputs as the others."""
        if record is None:
            raise UserError(
                f"{path} has no provenance record (written by bhscore 0.1 or another tool), so it is not "
                f"known to be of parameter set {src.label}: recompute it ({src.how_to_make(self.name)}), "
                "or adopt the old results with `bhscore migrate --adopt`"
            )
        problems = []
        if record.get("param_set") != src.label:
            problems.append(f"parameter set {record.get('param_set')}, not {src.label} "
                            f"({src.param_set.changes_from(record.get('params', {}))})")  # fmt: skip
        for name, fp in record.get("inputs", {}).items():
            key = (name, fp.get("file") or fp.get("dir"))
            seen = self._inputs_seen.setdefault(key, (fp.get("sha256"), path))
            if seen[0] != fp.get("sha256"):
                problems.append(f"made from another version of {key[1]} than {seen[1]}")
        if problems:
            if not self.allow_mixed:
                raise MixedResultsError(
                    f"{path}: {'; '.join(problems)}. Recompute the stale jobs ({src.how_to_make(self.name)}), "
                    "or score anyway with --allow-mixed"
                )
            self.mixed.append(f"{path}: {'; '.join(problems)}")

    def source_record(self) -> dict:
        """What the score of this DNN used, per kind: source, parameter set, files read and their digest.

        Call after reading the levels. The digest is a SHA-256 over the sorted (relative path, content SHA-256)
        of every file read.
        """
        out: dict = {}
        for kind, src in self.sources.items():
            h = hashlib.sha256()
            for path in sorted(self.files[kind]):
                rel = path.relative_to(self.layout.root).as_posix()
                h.update(f"{rel}\0{hashlib.sha256(path.read_bytes()).hexdigest()}\n".encode())
            out[kind] = {
                "source": src.source,
                "param_set": src.label,
                "params": None if src.param_set is None else src.param_set.params,
                "tree": src.root.relative_to(self.layout.root).as_posix(),
                "n_files": len(self.files[kind]),
                "files_sha256": h.hexdigest(),
            }
        if self.mixed:
            out["mixed"] = list(self.mixed)
        return out

    @property
    def n_samples(self) -> int:
        """Test images behind the accuracies: recorded in the files, else ``analysis.score.n_test_images``."""
        if len(self._n_seen) > 1:
            raise ValueError(f"{self.name}: accuracy files disagree on the number of test images: {self._n_seen}")
        if self._n_seen:
            return next(iter(self._n_seen))
        return self.settings.analysis.score.n_test_images

    def _read_checked(self, kind: str, cells: Sequence[tuple[str, str, str]], what: str) -> dict[tuple, np.ndarray]:
        """Read the files of ``cells`` (layer, subject, roi); they must all hold the same number of items."""
        arrays = {cell: self.read(kind, *cell) for cell in cells}
        sizes = [a.size for a in arrays.values()]
        if len(set(sizes)) > 1:
            common = max(set(sizes), key=sizes.count)
            cell, a = next((c, a) for c, a in arrays.items() if a.size != common)
            raise UserError(
                f"{self.path(kind, *cell)} holds {a.size} accuracies, but the other {what} have {common}: "
                "a file of another layer, ROI or data version; recompute or re-download it"
            )
        return arrays

    def decoding_levels(self) -> list[np.ndarray]:
        """Per layer (hierarchy order): ndarray (n_rois, n_units x n_subjects), subjects side by side.

        Every (subject, ROI) file of a layer must hold the same units.
        """
        levels = []
        subjects, rois = self.settings.subjects, self.settings.rois
        for layer in self.dnn.layers:
            cells = [(layer, s, r) for r in rois for s in subjects]
            arrays = self._read_checked("decoding", cells, f"decoding files of layer {layer}")
            levels.append(np.vstack([np.concatenate([arrays[(layer, s, r)] for s in subjects]) for r in rois]))
        return levels

    def encoding_levels(self, subsample: int | None = None) -> list[np.ndarray]:
        """Per ROI (hierarchy order): ndarray (n_layers, n_voxels x n_subjects).

        Every layer's file of one (subject, ROI) must hold the same voxels.

        Parameters
        ----------
        subsample : int, optional
            Keep this many voxels of each (subject, ROI, layer) file with the paper's seed-0 draw
            (:func:`legacy_voxel_subsample`); None keeps all.
        """
        levels = []
        for roi in self.settings.rois:
            per_subject = {}
            for s in self.settings.subjects:
                cells = [(layer, s, roi) for layer in self.dnn.layers]
                arrays = self._read_checked("encoding", cells, f"encoding files of {s} {roi}")
                per_subject[s] = [
                    legacy_voxel_subsample(arrays[c], subsample) if subsample else arrays[c] for c in cells
                ]
            rows = [np.concatenate([per_subject[s][i] for s in self.settings.subjects])
                    for i in range(len(self.dnn.layers))]  # fmt: skip
            levels.append(np.vstack(rows))
        return levels

    def levels_by_subject(self, kind: str, subsample: int | None = None) -> dict[str, list[np.ndarray]]:
        """Each subject's levels alone, the same files read and checked once (for :mod:`bhscore.stats`).

        ``bhscore.stats.pool_subjects`` of the result equals :meth:`decoding_levels` (kind 'decoding') or
        :meth:`encoding_levels` with the same ``subsample`` (kind 'encoding'); read one or the other, not both.
        Items keep their file positions: a unit lines up across subjects, a voxel across DNNs.

        Returns
        -------
        dict
            subject -> list of ndarray: decoding: per layer (n_rois, n_units); encoding: per ROI
            (n_layers, n_voxels), each file reduced by the paper's seed-0 draw when ``subsample`` is given.
        """
        read = {DECODING: self._decoding_by_subject, ENCODING: self._encoding_by_subject}[kind_of(kind).name]
        return read(subsample)

    def _decoding_by_subject(self, subsample: int | None) -> dict[str, list[np.ndarray]]:
        """Per subject, per layer: (n_rois, n_units) (``subsample`` does not apply to units)."""
        subjects, rois = self.settings.subjects, self.settings.rois
        out: dict[str, list[np.ndarray]] = {s: [] for s in subjects}
        for layer in self.dnn.layers:
            cells = [(layer, s, r) for r in rois for s in subjects]
            arrays = self._read_checked("decoding", cells, f"decoding files of layer {layer}")
            for s in subjects:
                out[s].append(np.vstack([arrays[(layer, s, r)] for r in rois]))
        return out

    def _encoding_by_subject(self, subsample: int | None) -> dict[str, list[np.ndarray]]:
        """Per subject, per ROI: (n_layers, n_voxels), each file reduced by the seed-0 draw if ``subsample``."""
        subjects, layers = self.settings.subjects, self.dnn.layers
        out: dict[str, list[np.ndarray]] = {s: [] for s in subjects}
        for roi in self.settings.rois:
            for s in subjects:
                cells = [(layer, s, roi) for layer in layers]
                arrays = self._read_checked("encoding", cells, f"encoding files of {s} {roi}")
                out[s].append(np.vstack([legacy_voxel_subsample(arrays[c], subsample) if subsample else arrays[c]
                                         for c in cells]))  # fmt: skip
        return out
