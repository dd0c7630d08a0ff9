"""DNN features from images: models by name, layers by module name, the paper's conventions.

Writes the features tree the decoding step reads (``docs``: data_formats.md)::

    <out_dir>/<layer>/<image name>.mat      key 'feat', float32, shape (1, n_units), MAT v7.3
    <out_dir>/index_random<n>.mat           layer -> 0-based indices of the kept units (C-order)

Modules, one job each
---------------------
- :mod:`~bhscore.extraction.images`: listing and reading stimulus images, the preprocessing presets
  (``paper``, ``caffe``, ``model``).
- :mod:`~bhscore.extraction.units`: the kept units per layer and the feature-index file (the rules themselves
  are :mod:`bhscore.unit_index`, shared with the Caffe container).
- :mod:`~bhscore.extraction.options`: :class:`ExtractionOptions`, the options of one extraction.
- :mod:`~bhscore.extraction.driver`: :func:`run_extraction`, the framework-independent, batched, resumable
  driver with atomic writes.
- :mod:`~bhscore.extraction.models`: :func:`load_model`, models by spec (``torchvision:<name>``,
  ``timm:<name>[.<tag>]``, ``module:function``) with weights from local files only unless ``download``.
- :mod:`~bhscore.extraction.torch_backend`: layers by module name (``<module>_abs``, ``call`` for modules
  run several times), forward hooks, :class:`TorchBackend`, :func:`list_layers`.
- :mod:`~bhscore.extraction.api`: :func:`extract_features`, one call from a model and images to a tree.
- :mod:`~bhscore.extraction.from_settings`: :func:`extract_dnn`, a DNN of the settings file
  (``bhscore extract --dnn``).
- :mod:`~bhscore.extraction.stimulus_guard`: the stimulus check before an extraction (imported on use: it
  needs :mod:`bhscore.stimuli_check`, which needs this package).
- :mod:`~bhscore.extraction.caffe`: the ``docker run`` command of the Caffe route, whose container runs
  :mod:`bhscore.caffe_container` (Python 3.9, no torch) and writes the same files.

Importing this package is cheap: torch is imported on first use (:mod:`~bhscore.extraction.lazy_torch`).

Examples
--------
>>> from bhscore.extraction import extract_features
>>> extract_features("torchvision:resnet18", "stimuli/", "features/ImageNetTest/pytorch/resnet18",
...                  ["conv1_abs", "layer1", "fc"], weights="IMAGENET1K_V1")   # doctest: +SKIP
"""

from bhscore.extraction.api import extract_features
from bhscore.extraction.caffe import (
    CAFFE_CODE_PATHS,
    CAFFE_CODE_ROOT,
    CAFFE_IMAGE,
    CAFFE_MODULE,
    caffe_docker_command,
    find_caffe_model,
)
from bhscore.extraction.driver import Backend, ExtractionSummary, run_extraction
from bhscore.extraction.from_settings import dnn_feature_dirs, extract_dnn, settings_weights
from bhscore.extraction.images import (
    CAFFE_BGR_MEAN,
    IMAGE_SUFFIXES,
    IMAGENET_MEAN,
    IMAGENET_STD,
    PRESETS,
    image_files,
    list_images,
    load_image,
    make_preprocess,
    preprocess_caffe,
    preprocess_paper,
)
from bhscore.extraction.models import (
    WEIGHT_SUFFIXES,
    LoadedModel,
    is_weights_file,
    load_model,
    load_state_dict_file,
)
from bhscore.extraction.options import ExtractionOptions
from bhscore.extraction.torch_backend import (
    CALLS,
    LayerInfo,
    LayerSpec,
    TorchBackend,
    format_layers,
    list_layers,
    parse_layer_args,
    resolve_layers,
)
from bhscore.extraction.units import DEFAULT_N_UNITS, index_file_name, resolve_unit_index, subsample_indices

__all__ = [
    "CAFFE_BGR_MEAN",
    "CAFFE_CODE_PATHS",
    "CAFFE_CODE_ROOT",
    "CAFFE_IMAGE",
    "CAFFE_MODULE",
    "CALLS",
    "DEFAULT_N_UNITS",
    "IMAGENET_MEAN",
    "IMAGENET_STD",
    "IMAGE_SUFFIXES",
    "PRESETS",
    "WEIGHT_SUFFIXES",
    "Backend",
    "ExtractionOptions",
    "ExtractionSummary",
    "LayerInfo",
    "LayerSpec",
    "LoadedModel",
    "TorchBackend",
    "caffe_docker_command",
    "dnn_feature_dirs",
    "extract_dnn",
    "extract_features",
    "find_caffe_model",
    "format_layers",
    "image_files",
    "index_file_name",
    "is_weights_file",
    "list_images",
    "list_layers",
    "load_image",
    "load_model",
    "load_state_dict_file",
    "make_preprocess",
    "parse_layer_args",
    "preprocess_caffe",
    "preprocess_paper",
    "resolve_layers",
    "resolve_unit_index",
    "run_extraction",
    "settings_weights",
    "subsample_indices",
]
