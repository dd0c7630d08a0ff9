"""Decoding and encoding: the one description of what differs between the two directions of the method.

Both fit the same ridge regression (:mod:`bhscore.fitting`) per (DNN, layer, subject, ROI) and store one
accuracy file per job; they differ in what is predicted from what, which jobs share their inputs, which
settings section holds their parameters, and which optional outputs they write. Everything that depends on
the direction reads it here, through the :class:`Kind` named by a job's ``kind`` string (``"decoding"`` or
``"encoding"``: the names used in paths, provenance records, the CLI and the settings), so no other module
branches on that string.

This module imports nothing heavy: paths, settings and job lists use it.
"""

from __future__ import annotations

import importlib
import itertools
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import Any

DECODING = "decoding"
ENCODING = "encoding"


@dataclass(frozen=True)
class Kind:
    """One direction of the analysis.

    Attributes
    ----------
    name : str
        ``"decoding"`` or ``"encoding"``: settings section ``analysis.<name>``, trees ``<name>_accuracy``.
    command : str
        The CLI verb that computes it (``bhscore decode`` / ``bhscore encode``).
    group_fields : tuple of str
        The job fields that jobs sharing their inputs have in common (a group is prepared once): decoding
        shares one (subject, ROI)'s voxels across every layer of every DNN; encoding one (DNN, layer,
        subject)'s units across every ROI.
    nesting : tuple of str
        The loop order of the job list, outermost first (``"layer"`` stands for every (DNN, layer) pair);
        the group fields come first, so each group's jobs are consecutive.
    inputs : str
        What the fit's inputs are, ``"voxels"`` or ``"units"``; the outputs, predicted from them, are the other
        (decoding predicts DNN units from fMRI voxels; an accuracy file holds one value per output).
    saves_predictions : bool
        Whether ``--save-features`` applies (decoded DNN features, one file per test image).
    whole_file_nan : bool
        Whether the original scripts can leave a whole accuracy file NaN: in encoding a unit that is
        constant over the training images z-scores to NaN, which every voxel then selects
        (docs/method.md, ``constant_inputs``); ``bhscore verify --accuracies`` counts such published files.
    group_runner : str
        ``"module:function"`` computing one group of jobs (imported lazily: torch is heavy).
    """

    name: str
    command: str
    group_fields: tuple[str, ...]
    nesting: tuple[str, ...]
    inputs: str
    saves_predictions: bool
    whole_file_nan: bool
    group_runner: str

    def __str__(self) -> str:
        return self.name

    @property
    def accuracy_dir(self) -> str:
        """Directory name of its accuracy trees (``decoding_accuracy``)."""
        return f"{self.name}_accuracy"

    @property
    def models_dir(self) -> str:
        """Directory name of its saved models (``decoding_models``)."""
        return f"{self.name}_models"

    def ridge_settings(self, settings) -> Any:
        """Its settings section, ``settings.analysis.<name>`` (a :class:`bhscore.settings.RidgeSettings`)."""
        return getattr(settings.analysis, self.name)

    def reads_all_units(self, settings) -> bool:
        """Whether its inputs are every unit of a layer (``features_all/``) rather than the 1000-unit subset.

        Only the encoding section has ``inputs``; decoding predicts the 1000-unit subset.
        """
        return getattr(self.ridge_settings(settings), "inputs", "subset") == "all_units"

    def unit_order(self, settings) -> str:
        """The column order of DNN units as inputs: ``analysis.encoding.unit_order`` (the original flattens
        encoding features in Fortran order); units as outputs (decoding) keep the files' C order."""
        return getattr(self.ridge_settings(settings), "unit_order", "c")

    def inputs_outputs(self, voxels, units) -> tuple:
        """``(inputs, outputs)`` of the fit from the brain's and the DNN's arrays (see :attr:`inputs`)."""
        return (voxels, units) if self.inputs == "voxels" else (units, voxels)

    def group_key(self, job) -> tuple[str, ...]:
        """The values of :attr:`group_fields` of ``job``."""
        return tuple(getattr(job, f) for f in self.group_fields)

    def job_fields(self, pairs: Iterable[tuple[str, str]], subjects, rois) -> Iterator[tuple[str, str, str, str]]:
        """(dnn, layer, subject, roi) of every job, in :attr:`nesting` order.

        Parameters
        ----------
        pairs : iterable of (str, str)
            The (DNN, layer) pairs.
        subjects, rois : sequence of str
        """
        axes = {"layer": list(pairs), "subject": list(subjects), "roi": list(rois)}
        for combo in itertools.product(*(axes[name] for name in self.nesting)):
            value = dict(zip(self.nesting, combo, strict=True))
            yield (*value["layer"], value["subject"], value["roi"])

    def runner(self) -> Callable:
        """The function that computes one group of jobs (signature of :func:`bhscore.decoding.run_decoding_group`)."""
        module, function = self.group_runner.split(":")
        return getattr(importlib.import_module(module), function)


KINDS: dict[str, Kind] = {
    DECODING: Kind(
        name=DECODING,
        command="decode",
        group_fields=("subject", "roi"),
        nesting=("subject", "roi", "layer"),
        inputs="voxels",
        saves_predictions=True,
        whole_file_nan=False,
        group_runner="bhscore.decoding:run_decoding_group",
    ),
    ENCODING: Kind(
        name=ENCODING,
        command="encode",
        group_fields=("dnn", "layer", "subject"),
        nesting=("layer", "subject", "roi"),
        inputs="units",
        saves_predictions=False,
        whole_file_nan=True,
        group_runner="bhscore.encoding:run_encoding_group",
    ),
}

#: The kind names in the order of the method (decoding first).
KIND_NAMES = tuple(KINDS)

#: The BH score's components: one score per kind and their mean (the order of the score table).
SCORE_COMPONENTS = (*KIND_NAMES, "averaged")


def kind_of(name: str | Kind) -> Kind:
    """The :class:`Kind` named ``name`` (a Kind passes through).

    Raises
    ------
    ValueError
        Not a kind name (the message lists the valid ones).
    """
    if isinstance(name, Kind):
        return name
    try:
        return KINDS[name]
    except (KeyError, TypeError):
        raise ValueError(f"kind must be one of {KIND_NAMES}, got {name!r}") from None
