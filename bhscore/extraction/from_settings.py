"""Extraction of a DNN of the settings file (``bhscore extract --dnn``): :func:`extract_dnn`.

The DNN's settings entry gives the model spec, weights (relative files: under the data root), the
layer-to-module mapping, the preprocessing and the call; the output is ``<data root>/features/<split>/<dir>``
and the other stimulus set's feature-index file is reused, so both splits hold the same units.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from bhscore.errors import UserError
from bhscore.extraction.api import extract_features
from bhscore.extraction.driver import ExtractionSummary
from bhscore.extraction.models import is_weights_file, no_weights
from bhscore.extraction.options import ExtractionOptions
from bhscore.extraction.units import index_file_name


def settings_weights(weights: str | None, data_root: Path) -> str | None:
    """A settings ``weights`` value: relative file paths are resolved against the data root."""
    if weights is None or no_weights(weights) or not is_weights_file(weights):
        return weights
    p = Path(weights).expanduser()
    return str(p if p.is_absolute() else data_root / p)


def dnn_feature_dirs(settings: Any, dnn: str, split: str) -> tuple[Path, list[Path]]:
    """(this split's features directory, the other splits' directories) of a DNN in the settings."""
    from bhscore.paths import SPLITS, Layout

    layout = Layout.from_settings(settings)
    d = settings.dnn(dnn)
    return layout.features_dir(split, d.dir), [layout.features_dir(s, d.dir) for s in SPLITS if s != split]


def _dnn_options(settings: Any, d: Any, others: Sequence[Path], options: ExtractionOptions) -> ExtractionOptions:
    """``options`` completed from the DNN's settings ``d``: weights, modules (the given ones win),
    preprocessing and call where not given, and the index files of the other splits' directories ``others``
    after the given ones."""
    from bhscore.paths import data_root

    modules = dict(d.modules or {})
    modules.update(options.modules or {})
    index_from = list(options.index_from)
    if options.n_units is not None:
        index_from += [o / index_file_name(options.n_units) for o in others]
    return dataclasses.replace(
        options,
        weights=options.weights if options.weights is not None else settings_weights(d.weights, data_root(settings)),
        modules=modules,
        preprocessing=options.preprocessing or d.preprocessing,
        call=options.call or d.call,
        index_from=index_from,
    )


def extract_dnn(
    settings: Any,
    dnn: str,
    images: str | os.PathLike | Sequence[str | os.PathLike],
    split: str,
    options: ExtractionOptions | None = None,
    *,
    out_dir: str | os.PathLike | None = None,
    layers: Sequence[str] | None = None,
    check_stimuli: bool = False,
    allow_missing: bool = False,
    names_file: str | os.PathLike | None = None,
    **overrides: Any,
) -> ExtractionSummary:
    """Extract a DNN of the settings file into ``features/<split>/<dir>`` (or ``out_dir``).

    Model, weights (relative files: under the data root), layer-to-module mapping, preprocessing and call
    come from the DNN's settings unless given in the options; the other stimulus set's feature-index file is
    reused when it exists, after any ``index_from`` given.

    With ``check_stimuli`` (``bhscore extract`` sets it) the image folder is first compared with the split's
    image names (``names_file``, else the fMRI labels, else the shipped test list) and every image is opened
    (:func:`~bhscore.extraction.stimulus_guard.guard_extraction`): an incomplete folder is refused unless
    ``allow_missing``, which extracts the readable images there are. Off by default: callers with their own
    image sets (the demo writes its fMRI files after extracting) pass the images they mean.

    Parameters
    ----------
    settings : Settings
    dnn : str
        A DNN of the settings (with a ``model``).
    images : path-like or sequence of path-like
        A directory of images or the image files.
    split : str
        The stimulus set (``ImageNetTraining`` or ``ImageNetTest``).
    options : ExtractionOptions, optional
        None fields of the model part (``weights``, ``preprocessing``, ``call``) come from the settings;
        ``modules`` are added to the DNN's.
    out_dir : path-like, optional
        Instead of the settings' features directory.
    layers : sequence of str, optional
        Instead of the DNN's layers.
    check_stimuli, allow_missing, names_file
        The stimulus check, as described above.
    **overrides
        Fields of :class:`ExtractionOptions` replacing those of ``options``.

    Returns
    -------
    ExtractionSummary
    """
    opts = ExtractionOptions.with_overrides(options, overrides)
    d = settings.dnn(dnn)
    if d.model is None:
        raise UserError(
            f"DNN {dnn!r} has no 'model' in the settings: its weights are not available in PyTorch. "
            "Caffe DNNs: make extract-caffe DNN=... (see feature_extraction/caffe/README.md)"
        )
    if check_stimuli:
        from bhscore.extraction.stimulus_guard import guard_extraction
        from bhscore.stimuli_check import expected_names

        expected = expected_names(split, settings, names_file)
        images = guard_extraction(images, expected, allow_missing=allow_missing, progress=opts.progress)
    default_out, others = dnn_feature_dirs(settings, dnn, split)
    return extract_features(
        d.model,
        images,
        out_dir if out_dir is not None else default_out,
        list(layers) if layers else d.layers,
        _dnn_options(settings, d, others, opts),
    )
