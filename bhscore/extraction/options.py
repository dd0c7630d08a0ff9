"""The options of one extraction, in one value shared by every entry point.

:func:`~bhscore.extraction.api.extract_features`, :func:`~bhscore.extraction.from_settings.extract_dnn`,
:func:`~bhscore.extraction.driver.run_extraction` and ``bhscore extract`` take an :class:`ExtractionOptions`
(``options=``) and, for convenience, any of its fields as keyword arguments, which override it::

    extract_features(model, images, out, layers, n_units=None, device="cpu")
    extract_features(model, images, out, layers, ExtractionOptions(n_units=None, device="cpu"))
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from bhscore.unit_index import DEFAULT_N_UNITS


@dataclass(frozen=True)
class ExtractionOptions:
    """How to extract: which model variant (weights, modules, preprocessing, call), which units, and how to run.

    The model fields apply to :func:`~bhscore.extraction.api.extract_features` (and ``extract_dnn``, where
    None means "from the DNN's settings"); :func:`~bhscore.extraction.driver.run_extraction` reads the unit
    and run fields only.

    Attributes
    ----------
    modules : mapping of str to str, optional
        Layer name -> module name (``named_modules()``); by default a layer is the module of its name.
    weights : str, optional
        See :func:`~bhscore.extraction.models.load_model` (ignored when the model is not a spec).
    preprocessing : {'paper', 'caffe', 'model'}, optional
        None: ``paper`` (``extract_features``), the DNN's setting (``extract_dnn``).
    call : {'first', 'last', 'all'}, optional
        Which output to keep of a module run more than once per forward pass (required then).
    input_size : int or (H, W), optional
        Override the model's input size.
    download : bool
        Allow fetching weights from the network.
    device : str
        ``'auto'`` picks CUDA when available (:func:`bhscore.devices.resolve_device`).
    n_units : int or None
        Units kept per layer (default 1000, a seeded draw: :func:`bhscore.unit_index.subsample_indices`);
        None keeps every unit and writes no index file.
    seed : int
        Seed of the unit draw and of random weights.
    index_from : sequence of path-like
        Feature-index files to reuse (the other stimulus set's ``index_random<n>.mat``).
    batch_size : int
        Images per forward pass; bounds the memory.
    overwrite : bool
        Recompute and rewrite images already written.
    workers : int
        Threads that read and preprocess images while the network runs.
    progress : bool
        Show a tqdm bar.
    """

    modules: Mapping[str, str] | None = None
    weights: str | None = None
    preprocessing: str | None = None
    call: str | None = None
    input_size: int | tuple[int, int] | None = None
    download: bool = False
    device: str = "auto"
    n_units: int | None = DEFAULT_N_UNITS
    seed: int = 0
    index_from: Sequence[str | os.PathLike] = ()
    batch_size: int = 32
    overwrite: bool = False
    workers: int = 2
    progress: bool = True

    @classmethod
    def with_overrides(cls, options: ExtractionOptions | None, overrides: Mapping[str, Any]) -> ExtractionOptions:
        """``options`` (default: all defaults) with the fields named in ``overrides`` replaced.

        Raises
        ------
        TypeError
            An override names no field (as an unknown keyword argument would).
        """
        base = cls() if options is None else options
        return dataclasses.replace(base, **overrides) if overrides else base
