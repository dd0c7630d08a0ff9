"""One call: a PyTorch model and a folder of images in, a features tree out (:func:`extract_features`)."""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from bhscore.errors import UserError
from bhscore.extraction.driver import ExtractionSummary, run_extraction
from bhscore.extraction.images import list_images, make_preprocess
from bhscore.extraction.lazy_torch import require_torch
from bhscore.extraction.models import LoadedModel, load_model
from bhscore.extraction.options import ExtractionOptions
from bhscore.extraction.torch_backend import TorchBackend, resolve_layers

if TYPE_CHECKING:
    from torch import nn

log = logging.getLogger(__name__)


def _loaded(model: str | nn.Module | LoadedModel, options: ExtractionOptions) -> LoadedModel:
    """The model as a :class:`LoadedModel`: a spec is loaded with ``options.weights``; a module is wrapped."""
    if isinstance(model, LoadedModel):
        return model
    if isinstance(model, str):
        return load_model(model, options.weights, download=options.download, seed=options.seed)
    return LoadedModel.wrap(model)


def extract_features(
    model: str | nn.Module | LoadedModel,
    images: str | os.PathLike | Sequence[str | os.PathLike],
    out_dir: str | os.PathLike,
    layers: Sequence[str],
    options: ExtractionOptions | None = None,
    **overrides: Any,
) -> ExtractionSummary:
    """Extract features of a PyTorch model for a set of images into a features tree.

    Parameters
    ----------
    model : str, nn.Module or LoadedModel
        A model spec (:func:`~bhscore.extraction.models.load_model`) or a module built by the caller.
    images : path-like or sequence of path-like
        A directory of images or the image files.
    out_dir : path-like
        The tree root (``features/<split>/<dir>``).
    layers : sequence of str
        Layer names (module names, ``<module>_abs``, or names mapped by ``options.modules``).
    options : ExtractionOptions, optional
        Every field applies; ``preprocessing`` None means ``'paper'``.
    **overrides
        Fields of :class:`ExtractionOptions` replacing those of ``options`` (``n_units=None``,
        ``weights='IMAGENET1K_V1'``, ``device='cpu'``, ...).

    Returns
    -------
    ExtractionSummary
    """
    opts = ExtractionOptions.with_overrides(options, overrides)
    require_torch()
    loaded = _loaded(model, opts)
    if opts.n_units is not None and opts.n_units < 1:
        raise UserError(f"n_units must be >= 1 (or None for all units), got {opts.n_units}")
    paths = list_images(images)
    specs = resolve_layers(loaded.model, layers, opts.modules, model_name=loaded.spec)
    size = opts.input_size if opts.input_size is not None else loaded.input_size
    preprocessing = "paper" if opts.preprocessing is None else opts.preprocessing
    preprocess = make_preprocess(preprocessing, size, mean=loaded.mean, std=loaded.std, transform=loaded.transform)
    backend = TorchBackend(loaded.model, specs, device=opts.device, call=opts.call)
    if loaded.weights.startswith("random"):
        log.warning("%s: no weights given, the features come from random weights (%s)", loaded.spec, loaded.weights)
    log.info(
        "extracting %d layer(s) of %s (weights: %s) on %s, preprocessing %r, %d image(s) -> %s",
        len(specs), loaded.spec, loaded.weights, backend.device, preprocessing, len(paths), out_dir,
    )  # fmt: skip
    return run_extraction(backend, paths, out_dir, [s.name for s in specs], preprocess, opts)
