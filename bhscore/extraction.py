"""DNN features from images: models by name, layers by module name, the paper's conventions.

Writes the features tree the decoding step reads (``docs``: data_formats.md)::

    <out_dir>/<layer>/<image name>.mat      key 'feat', float32, shape (1, n_units), MAT v7.3
    <out_dir>/index_random<n>.mat           layer -> 0-based indices of the kept units (C-order)

Pieces
------
- Models by name (:func:`load_model`): ``torchvision:<name>``, ``timm:<name>[.<tag>]`` or a Python entry
  point ``package.module:function`` / ``path/to/file.py:function`` returning an ``nn.Module``. Weights come
  from the library's own cache or a local file, never from the network unless ``download=True``; a missing
  file raises an error naming where to put it. No weights means random weights drawn with ``seed``.
- Layers by module name (``named_modules()``): :func:`list_layers` shows them with their output shapes;
  ``<layer>_abs`` is the absolute value of the module's output (the paper's first layer, taken before the
  nonlinearity: hooks copy the output at once, so a later in-place ReLU cannot change it). A module run more
  than once per forward pass (recurrent blocks) must be told which call to keep: ``call='first'``,
  ``'last'`` or ``'all'`` (the calls' outputs stacked on a new leading axis).
- Units: ``n_units`` (default 1000) units per layer drawn at random, seeded per (seed, layer name); the
  indices go to the feature-index file and are reused from an existing one (pass the other stimulus set's
  file in ``index_from``), so training and test features hold the same units.
- Preprocessing presets (:func:`make_preprocess`): ``paper`` (the whole image resized to the input size,
  bicubic, RGB in [0, 1], normalised with the model's mean/std: ImageNet's unless the model declares its
  own, as timm's TensorFlow ports do), ``caffe`` (the same resize, BGR, 0-255 minus the BGR ImageNet mean)
  and ``model`` (the model's own transform: timm data config or torchvision weights transforms).
  Greyscale and palette images become RGB; transparent images are composited over white.
- The driver (:func:`run_extraction`) is framework-independent: batched, resumable (images whose files all
  exist are skipped), atomic writes, peak memory set by the batch. The Caffe container (Python 3.9) runs
  :mod:`bhscore.caffe_container` instead, a torch-free counterpart that writes the same files; this module
  builds its ``docker run`` command (:func:`caffe_docker_command`).

Examples
--------
>>> from bhscore.extraction import extract_features
>>> extract_features("torchvision:resnet18", "stimuli/", "features/ImageNetTest/pytorch/resnet18",
...                  ["conv1_abs", "layer1", "fc"], weights="IMAGENET1K_V1")   # doctest: +SKIP
"""

from __future__ import annotations

import contextlib
import difflib
import importlib
import importlib.util
import logging
import os
import sys
import time
import zlib
from collections import defaultdict
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

import numpy as np

from bhscore.errors import CorruptFileError, MissingDataError, UserError
from bhscore.formats import load_feature, read_feature_index, save_feature, write_feature_index


class _LazyTorch:
    """``torch``, imported on first use: importing it takes over a second, which the CLI's start-up (argument
    parsing only) and the Caffe container (no torch at all) should not pay."""

    _module = None

    def __getattr__(self, name: str) -> Any:
        if _LazyTorch._module is None:
            import torch as module

            _LazyTorch._module = module
        return getattr(_LazyTorch._module, name)


torch = _LazyTorch()

if TYPE_CHECKING:
    from PIL.Image import Image as PILImage
    from torch import nn

log = logging.getLogger(__name__)

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
#: Per-channel BGR mean of the ILSVRC 2012 training images (Caffe's ``ilsvrc_2012_mean.npy``), 0-255.
CAFFE_BGR_MEAN = (104.00698793, 116.66876762, 122.67891434)
PRESETS = ("paper", "caffe", "model")
CALLS = ("first", "last", "all")
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".gif", ".tif", ".tiff", ".webp", ".ppm", ".pgm")
WEIGHT_SUFFIXES = (".pth", ".pt", ".bin", ".safetensors", ".ckpt", ".tar")
DEFAULT_N_UNITS = 1000


def index_file_name(n_units: int) -> str:
    """Name of the feature-index file beside the layers: ``index_random<n>.mat``."""
    return f"index_random{n_units}.mat"


# =================================================================================================
# images and preprocessing (no torch)
# =================================================================================================


def image_files(root: str | os.PathLike) -> list[Path]:
    """The image files directly in a directory, sorted by stem (the image name); no other checks.

    An image file has a suffix of :data:`IMAGE_SUFFIXES` in any case and is not hidden. Shared by
    :func:`list_images` and the stimulus check (:mod:`bhscore.stimuli_check`).

    Raises
    ------
    MissingDataError
        The directory does not exist.
    """
    root = Path(root)
    if not root.is_dir():
        raise MissingDataError(root, what="stimulus image directory")
    paths = [p for p in root.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES and not p.name.startswith(".") and p.is_file()]
    return sorted(paths, key=lambda p: (p.stem, p.name))


def list_images(images: str | os.PathLike | Iterable[str | os.PathLike]) -> list[Path]:
    """Image files of a directory (or the given paths), sorted by name; the file stem is the image name.

    Raises
    ------
    MissingDataError
        The directory does not exist.
    UserError
        No image files, or two files with the same stem.
    """
    if isinstance(images, (str, os.PathLike)):
        root = Path(images)
        paths = image_files(root)
        if not paths:
            raise UserError(f"no image files ({', '.join(IMAGE_SUFFIXES)}) in {root}")
    else:
        paths = [Path(p) for p in images]
    paths.sort(key=lambda p: p.stem)
    stems = [p.stem for p in paths]
    dup = sorted({s for s in stems if stems.count(s) > 1}) if len(set(stems)) != len(stems) else []
    if dup:
        raise UserError(f"several image files share a name (the stem names the feature file): {dup[:5]}")
    return paths


def load_image(path: str | os.PathLike) -> PILImage:
    """Read an image as 8-bit RGB (greyscale/palette converted; transparency composited over white).

    Raises
    ------
    CorruptFileError
        The file is missing or not a readable image.
    """
    from PIL import Image, UnidentifiedImageError

    path = Path(path)
    try:
        with Image.open(path) as im:
            im.load()
            if im.mode in ("RGBA", "LA", "PA") or (im.mode == "P" and "transparency" in im.info):
                rgba = im.convert("RGBA")
                white = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
                return Image.alpha_composite(white, rgba).convert("RGB")
            return im.convert("RGB")
    except FileNotFoundError:
        raise MissingDataError(path, what="image") from None
    except (UnidentifiedImageError, OSError, ValueError, SyntaxError) as e:
        raise CorruptFileError(path, f"not a readable image ({type(e).__name__}: {e})") from None


def _resize(img: PILImage, size: tuple[int, int]) -> PILImage:
    from PIL import Image

    h, w = size
    bicubic = getattr(Image, "Resampling", Image).BICUBIC  # Pillow < 9.1 (the Caffe image) has no Resampling
    return img if img.size == (w, h) else img.resize((w, h), bicubic)


def preprocess_paper(
    img: PILImage, size: tuple[int, int], mean: Sequence[float] = IMAGENET_MEAN, std: Sequence[float] = IMAGENET_STD
) -> np.ndarray:
    """The paper preset: whole image resized (bicubic) to ``size``, RGB in [0, 1], ``(x - mean) / std``.

    Returns
    -------
    ndarray of shape (3, H, W), float32
    """
    a = np.asarray(_resize(img, size), dtype=np.float32) / np.float32(255.0)
    a = (a - np.asarray(mean, np.float32)) / np.asarray(std, np.float32)
    return np.ascontiguousarray(a.transpose(2, 0, 1))


def preprocess_caffe(img: PILImage, size: tuple[int, int], bgr_mean: Sequence[float] = CAFFE_BGR_MEAN) -> np.ndarray:
    """The Caffe preset: whole image resized (bicubic) to ``size``, BGR, 0-255 minus the BGR mean.

    Returns
    -------
    ndarray of shape (3, H, W), float32, channels in B, G, R order
    """
    a = np.asarray(_resize(img, size), dtype=np.float32)[:, :, ::-1] - np.asarray(bgr_mean, np.float32)
    return np.ascontiguousarray(a.transpose(2, 0, 1))


def make_preprocess(
    preset: str,
    size: int | tuple[int, int] = 224,
    *,
    mean: Sequence[float] = IMAGENET_MEAN,
    std: Sequence[float] = IMAGENET_STD,
    bgr_mean: Sequence[float] = CAFFE_BGR_MEAN,
    transform: Callable[[Any], Any] | None = None,
) -> Callable[[str | os.PathLike], np.ndarray]:
    """A function ``path -> ndarray (3, H, W) float32`` for one preset.

    Parameters
    ----------
    preset : {'paper', 'caffe', 'model'}
    size : int or (H, W)
        Network input size (``paper`` and ``caffe``).
    mean, std : sequence of 3 floats
        RGB normalisation of the ``paper`` preset.
    bgr_mean : sequence of 3 floats
        BGR mean (0-255) subtracted by the ``caffe`` preset.
    transform : callable, optional
        The model's own transform (PIL image -> tensor or array), required by ``model``.
    """
    if preset not in PRESETS:
        raise UserError(f"unknown preprocessing {preset!r}; choose one of {', '.join(PRESETS)}")
    hw = (size, size) if isinstance(size, int) else (int(size[0]), int(size[1]))
    if preset == "paper":
        return lambda p: preprocess_paper(load_image(p), hw, mean, std)
    if preset == "caffe":
        return lambda p: preprocess_caffe(load_image(p), hw, bgr_mean)
    if transform is None:
        raise UserError("preprocessing 'model' needs the model's own transform, and this model declares none")

    def apply(p: str | os.PathLike) -> np.ndarray:
        out = transform(load_image(p))
        return np.ascontiguousarray(out.numpy() if hasattr(out, "numpy") else np.asarray(out), dtype=np.float32)

    return apply


# =================================================================================================
# unit subsampling and the feature-index file (no torch)
# =================================================================================================


def subsample_indices(n_total: int, n_keep: int | None, seed: int, layer: str) -> np.ndarray:
    """Sorted 0-based indices of ``n_keep`` units out of ``n_total``, drawn without replacement.

    The draw depends only on (``seed``, ``layer``, ``n_total``, ``n_keep``): the same layer gets the same units
    in every run and in both stimulus sets, whatever other layers are extracted. All units when
    ``n_keep`` is None or >= ``n_total``.

    Returns
    -------
    ndarray of shape (min(n_keep, n_total),), int64
    """
    if n_keep is None or n_keep >= n_total:
        return np.arange(n_total, dtype=np.int64)
    rng = np.random.default_rng(np.random.SeedSequence([int(seed), zlib.crc32(layer.encode("utf-8"))]))
    return np.sort(rng.choice(n_total, size=n_keep, replace=False)).astype(np.int64)


def resolve_unit_index(
    layer_units: Mapping[str, int],
    n_units: int | None,
    seed: int,
    index_path: Path | None,
    index_from: Sequence[str | os.PathLike] = (),
) -> dict[str, np.ndarray | None]:
    """Indices of the kept units per layer, reusing existing feature-index files; writes ``index_path``.

    Parameters
    ----------
    layer_units : mapping of str to int
        Layer -> total number of units (C-order flattened output).
    n_units : int or None
        Units kept per layer; None keeps all (no index file).
    seed : int
    index_path : Path or None
        This tree's index file; read first (it describes what is on disk) and updated with new layers.
    index_from : sequence of path-like
        Other index files to reuse (the other stimulus set's); missing files are ignored.

    Returns
    -------
    dict of str to (ndarray of shape (k,), int64) or None
    """
    if n_units is None:
        return {layer: None for layer in layer_units}
    own = read_feature_index(index_path) if index_path is not None and index_path.exists() else {}
    others: dict[str, tuple[np.ndarray, Path]] = {}
    for src in index_from:
        src = Path(src)
        if src.exists() and (index_path is None or src.resolve() != index_path.resolve()):
            for layer, ix in read_feature_index(src).items():
                others.setdefault(layer, (ix, src))
    result: dict[str, np.ndarray | None] = {}
    for layer, total in layer_units.items():
        want = min(n_units, total)
        if layer in own and layer in others and not np.array_equal(own[layer], others[layer][0]):
            raise UserError(
                f"layer {layer!r}: the feature-index files {index_path} and {others[layer][1]} keep different "
                "units; training and test features must hold the same units (delete one tree and re-extract)"
            )
        ix, src = (own[layer], index_path) if layer in own else others.get(layer, (None, None))
        if ix is None:
            ix = subsample_indices(total, n_units, seed, layer)
        elif ix.size != want or (ix.size and (ix.min() < 0 or ix.max() >= total)) or np.unique(ix).size != ix.size:
            raise UserError(
                f"layer {layer!r}: {src} holds {ix.size} unit indices (max {ix.max() if ix.size else '-'}), but this "
                f"run keeps {want} of {total} units; use the same n_units and model, or another output directory"
            )
        result[layer] = ix
    if index_path is not None and any(layer not in own for layer in result):
        merged = dict(own)
        merged.update({k: v for k, v in result.items() if v is not None})
        write_feature_index(index_path, merged)
    return result


# =================================================================================================
# the driver (framework-independent)
# =================================================================================================


class Backend(Protocol):
    """What :func:`run_extraction` needs from a framework."""

    def layer_shapes(self, input_shape: tuple[int, ...]) -> dict[str, tuple[int, ...]]:
        """Per-image output shape of every layer for one input of shape (3, H, W)."""

    def forward(self, batch: np.ndarray, index: Mapping[str, np.ndarray | None]) -> dict[str, np.ndarray]:
        """Features of a batch (N, 3, H, W): layer -> (N, k) float32, the kept units only."""


@dataclass
class ExtractionSummary:
    """What :func:`run_extraction` did."""

    out_dir: Path
    layers: list[str]
    n_images: int
    n_computed: int
    n_skipped: int
    seconds: float
    index_file: Path | None
    units: dict[str, int] = field(default_factory=dict)

    @property
    def images_per_second(self) -> float:
        return self.n_computed / self.seconds if self.seconds > 0 else float("nan")

    def __str__(self) -> str:
        return (
            f"{self.out_dir}: {self.n_computed} image(s) extracted, {self.n_skipped} already done, "
            f"{len(self.layers)} layer(s), {self.seconds:.1f} s ({self.images_per_second:.1f} images/s)"
        )


def _feature_path(out_dir: Path, layer: str, name: str) -> Path:
    return out_dir / layer / f"{name}.mat"


def _check_existing(out_dir: Path, layers: Sequence[str], expected: Mapping[str, int], names: Sequence[str]) -> None:
    """Refuse to mix runs: an existing file of a layer must hold as many units as this run writes."""
    for layer in layers:
        d = out_dir / layer
        if not d.is_dir():
            continue
        first = next((d / f"{n}.mat" for n in names if (d / f"{n}.mat").exists()), None)
        if first is None:
            continue
        have = load_feature(first).size
        if have != expected[layer]:
            raise UserError(
                f"{first} holds {have} units but this run writes {expected[layer]} for layer {layer!r} "
                "(another n_units, model or call?); use overwrite=True (--overwrite) or another output directory"
            )


def run_extraction(
    backend: Backend,
    images: Sequence[Path],
    out_dir: str | os.PathLike,
    layers: Sequence[str],
    preprocess: Callable[[Path], np.ndarray],
    *,
    n_units: int | None = DEFAULT_N_UNITS,
    seed: int = 0,
    index_from: Sequence[str | os.PathLike] = (),
    batch_size: int = 32,
    overwrite: bool = False,
    workers: int = 2,
    progress: bool = True,
) -> ExtractionSummary:
    """Extract ``layers`` for every image into ``out_dir`` (skipping images already complete).

    Parameters
    ----------
    backend : Backend
        Runs the network (:class:`TorchBackend`, or the Caffe container's).
    images : sequence of Path
        Stimulus files; the stem names each feature file.
    out_dir : path-like
        Root of this DNN's features tree for one stimulus set.
    layers : sequence of str
    preprocess : callable
        ``path -> ndarray (3, H, W) float32`` (:func:`make_preprocess`).
    n_units : int or None
        Units kept per layer (seeded draw, :func:`subsample_indices`); None keeps every unit.
    seed : int
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

    Returns
    -------
    ExtractionSummary
    """
    from tqdm.auto import tqdm

    t0 = time.perf_counter()
    out_dir = Path(out_dir)
    layers = list(layers)
    if not layers:
        raise UserError("no layers to extract")
    if batch_size < 1:
        raise UserError(f"batch_size must be >= 1, got {batch_size}")
    images = [Path(p) for p in images]
    names = [p.stem for p in images]
    if overwrite:
        todo = list(range(len(images)))
    else:
        todo = [i for i, n in enumerate(names) if not all(_feature_path(out_dir, lay, n).exists() for lay in layers)]
    index_path = out_dir / index_file_name(n_units) if n_units is not None else None
    summary = ExtractionSummary(out_dir, layers, len(images), len(todo), len(images) - len(todo), 0.0, index_path)
    if not todo:
        log.info("%s: all %d images already extracted", out_dir, len(images))
        summary.seconds = time.perf_counter() - t0
        return summary

    first = preprocess(images[todo[0]])
    shapes = backend.layer_shapes(tuple(first.shape))
    totals = {layer: int(np.prod(shapes[layer])) for layer in layers}
    index = resolve_unit_index(totals, n_units, seed, index_path, index_from)
    kept = {layer: (totals[layer] if index[layer] is None else int(index[layer].size)) for layer in layers}
    summary.units = kept
    if not overwrite:
        _check_existing(out_dir, layers, kept, names)
    for layer in layers:
        (out_dir / layer).mkdir(parents=True, exist_ok=True)

    batches = [todo[i : i + batch_size] for i in range(0, len(todo), batch_size)]
    bar = tqdm(total=len(todo), unit="img", desc=f"extract {out_dir.name}", disable=not progress)

    def write(batch: list[int], feats: dict[str, np.ndarray]) -> None:
        for j, i in enumerate(batch):
            for layer in layers:
                path = _feature_path(out_dir, layer, names[i])
                if overwrite or not path.exists():
                    save_feature(path, feats[layer][j : j + 1])
        bar.update(len(batch))

    with ThreadPoolExecutor(max(1, workers)) as loaders, ThreadPoolExecutor(1) as writer:
        def submit(batch: list[int]) -> list[Future]:
            futures = []
            for i in batch:
                if i == todo[0]:  # already preprocessed for the probe
                    futures.append(Future())
                    futures[-1].set_result(first)
                else:
                    futures.append(loaders.submit(preprocess, images[i]))
            return futures

        pending = submit(batches[0])
        writing: Future | None = None
        try:
            for b, batch in enumerate(batches):
                arrays = [f.result() for f in pending]
                if b + 1 < len(batches):
                    pending = submit(batches[b + 1])
                feats = backend.forward(np.stack(arrays), index)
                if writing is not None:
                    writing.result()  # at most one batch of features waits for the disk
                writing = writer.submit(write, batch, feats)
            if writing is not None:
                writing.result()
        finally:
            for f in pending:
                f.cancel()
            bar.close()
    summary.seconds = time.perf_counter() - t0
    log.info("%s", summary)
    return summary


# =================================================================================================
# PyTorch models by name
# =================================================================================================


def _require_torch() -> None:
    if importlib.util.find_spec("torch") is None:  # pragma: no cover - only inside the Caffe image
        raise UserError("PyTorch is not installed: pip install 'bhscore[extract]'")


@dataclass
class LoadedModel:
    """A model ready for extraction and what its preprocessing needs.

    Attributes
    ----------
    model : nn.Module
        In eval mode.
    spec : str
        The model spec, or the class name of a module passed directly.
    input_size : (int, int)
        (H, W) that the ``paper`` and ``caffe`` presets resize to.
    mean, std : tuple of 3 floats
        RGB normalisation used by ``paper``.
    transform : callable or None
        The model's own preprocessing (``model`` preset).
    weights : str
        Where the weights came from, for the log.
    """

    model: nn.Module
    spec: str
    input_size: tuple[int, int] = (224, 224)
    mean: tuple[float, ...] = IMAGENET_MEAN
    std: tuple[float, ...] = IMAGENET_STD
    transform: Callable[[Any], Any] | None = None
    weights: str = "random"

    @classmethod
    def wrap(cls, model: nn.Module) -> LoadedModel:
        """Describe a module built by the caller (``input_size``/``mean``/``std`` attributes are honoured)."""
        size = getattr(model, "input_size", 224)
        return cls(
            model.eval(),
            type(model).__name__,
            (size, size) if isinstance(size, int) else tuple(size),
            tuple(getattr(model, "mean", IMAGENET_MEAN)),
            tuple(getattr(model, "std", IMAGENET_STD)),
            getattr(model, "transform", None),
            "as given",
        )


@contextlib.contextmanager
def _seeded(seed: int) -> Iterator[None]:
    """Random initialisation drawn from ``seed`` without touching the caller's global RNG state."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        yield


def is_weights_file(weights: str) -> bool:
    """Whether a ``weights`` value names a file (rather than a library's weights name)."""
    return "/" in weights or os.sep in weights or weights.lower().endswith(WEIGHT_SUFFIXES) or Path(weights).is_file()


def _no_weights(weights: str | None) -> bool:
    return weights is None or weights.lower() in ("", "none", "random")


def load_state_dict_file(model: nn.Module, path: str | os.PathLike, what: str = "model") -> None:
    """Load a checkpoint file into ``model`` (strict).

    Accepts a plain state dict or a checkpoint holding one under ``state_dict`` or ``model`` (``.pth``/
    ``.pt``/``.bin``/``.tar``), or a ``.safetensors`` file; a ``module.`` prefix (``DataParallel``) is removed.
    """
    path = Path(path)
    if not path.is_file():
        raise MissingDataError(path, what="weights file")
    try:
        if path.suffix == ".safetensors":
            from safetensors.torch import load_file

            sd = load_file(str(path))
        else:
            sd = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:
        raise CorruptFileError(path, f"not a PyTorch checkpoint ({type(e).__name__}: {e})") from None
    if isinstance(sd, dict):
        for key in ("state_dict", "model"):
            if key in sd and isinstance(sd[key], dict):
                sd = sd[key]
                break
    if not isinstance(sd, dict) or not sd:
        raise CorruptFileError(path, "holds no state dict")
    if all(k.startswith("module.") for k in sd):
        sd = {k[len("module.") :]: v for k, v in sd.items()}
    missing, unexpected = model.load_state_dict(sd, strict=False)
    if missing or unexpected:
        raise UserError(
            f"{path} does not fit {what}: {len(missing)} missing key(s) {missing[:4]}, "
            f"{len(unexpected)} unexpected key(s) {unexpected[:4]}"
        )


def _torch_hub_checkpoint(url: str) -> Path:
    return Path(torch.hub.get_dir()) / "checkpoints" / os.path.basename(url)


def _close(name: str, choices: Iterable[str], n: int = 5) -> str:
    close = difflib.get_close_matches(name, list(choices), n=n, cutoff=0.5)
    return f" Close names: {', '.join(close)}." if close else ""


def _load_torchvision(name: str, weights: str | None, download: bool, seed: int) -> LoadedModel:
    import torchvision
    from torchvision.models import get_model, get_model_weights

    available = torchvision.models.list_models()
    if name not in available:
        raise UserError(f"unknown torchvision model {name!r}.{_close(name, available)}")
    try:
        enum = get_model_weights(name)
    except (ValueError, KeyError):
        enum = None
    default = getattr(enum, "DEFAULT", None) if enum is not None else None
    chosen = None
    if _no_weights(weights):
        with _seeded(seed):
            model = get_model(name, weights=None)
        source = f"random (seed {seed})"
    elif is_weights_file(weights):
        with _seeded(seed):
            model = get_model(name, weights=None)
        load_state_dict_file(model, weights, f"torchvision:{name}")
        source = str(weights)
    else:
        member = weights.split(".")[-1]
        if enum is None or member not in enum.__members__:
            choices = list(enum.__members__) if enum is not None else []
            raise UserError(
                f"torchvision:{name} has no weights {weights!r}; choose one of {', '.join(choices) or '(none)'}, "
                "a file path, or none"
            )
        chosen = enum[member]
        cached = _torch_hub_checkpoint(chosen.url)
        if not cached.exists() and not download:
            raise MissingDataError(
                cached,
                how=f"download {chosen.url} to that path (or pass the file as weights, or allow downloads: --download)",
                what=f"weights {enum.__name__}.{member} in torchvision's cache",
            )
        model = get_model(name, weights=chosen)
        source = f"{enum.__name__}.{member}"
    ref = chosen or default
    transform = ref.transforms() if ref is not None else None
    size = tuple(getattr(transform, "crop_size", [224]))
    return LoadedModel(
        model.eval(),
        f"torchvision:{name}",
        (int(size[0]), int(size[-1])),
        tuple(getattr(transform, "mean", IMAGENET_MEAN)),
        tuple(getattr(transform, "std", IMAGENET_STD)),
        transform,
        source,
    )


def _timm_cached_file(name: str) -> tuple[str | None, str]:
    """(cached weights file or None, where to get it) for a timm model name with tag."""
    import timm

    cfg = timm.models.get_pretrained_cfg(name)
    if cfg is None:
        return None, "(timm lists no pretrained weights for it)"
    hub = getattr(cfg, "hf_hub_id", None)
    if hub:
        from huggingface_hub import try_to_load_from_cache

        for fname in ("model.safetensors", "pytorch_model.bin", getattr(cfg, "hf_hub_filename", None)):
            if fname:
                found = try_to_load_from_cache(repo_id=hub, filename=fname)
                if isinstance(found, str):
                    return found, ""
        where = f"https://huggingface.co/{hub}/resolve/main/model.safetensors"
    else:
        where = ""
    if getattr(cfg, "url", None):
        cached = _torch_hub_checkpoint(cfg.url)
        if cached.exists():
            return str(cached), ""
        where = where or cfg.url
    return None, where


def _load_timm(name: str, weights: str | None, download: bool, seed: int) -> LoadedModel:
    import timm
    from timm.data import create_transform, resolve_data_config

    base = name.split(".")[0]
    if not timm.is_model(base):
        raise UserError(f"unknown timm model {base!r}.{_close(base, timm.list_models())}")
    if _no_weights(weights):
        with _seeded(seed):
            model = timm.create_model(name, pretrained=False)
        source = f"random (seed {seed})"
    elif is_weights_file(weights):
        path = Path(weights)
        if not path.is_file():
            raise MissingDataError(path, what="weights file")
        model = timm.create_model(name, pretrained=True, pretrained_cfg_overlay={"file": str(path)})
        source = str(path)
    elif weights.lower() in ("default", "pretrained", "true"):
        found, where = _timm_cached_file(name)
        if found is not None:
            model = timm.create_model(name, pretrained=True, pretrained_cfg_overlay={"file": found})
            source = found
        elif download:
            model = timm.create_model(name, pretrained=True)
            source = f"timm pretrained {name}"
        else:
            raise UserError(
                f"the pretrained weights of timm:{name} are not in the local cache and downloads are off. "
                f"Download {where} and give that file as the weights (settings 'weights' or --weights PATH), "
                "or allow downloads (--download)"
            )
    else:
        raise UserError(f"timm:{name}: weights must be 'DEFAULT' (pretrained), a file path or none; got {weights!r}")
    model.eval()
    cfg = resolve_data_config({}, model=model)
    _, h, w = cfg["input_size"]
    return LoadedModel(
        model, f"timm:{name}", (int(h), int(w)), tuple(cfg["mean"]), tuple(cfg["std"]), create_transform(**cfg), source
    )


def _import_entry_point(spec: str) -> Callable[[], Any]:
    mod_name, _, func_name = spec.rpartition(":")
    if not mod_name or not func_name:
        raise UserError(
            f"model spec {spec!r} is not 'torchvision:<name>', 'timm:<name>' or 'module:function' / 'file.py:function'"
        )
    try:
        if mod_name.endswith(".py"):
            path = Path(mod_name)
            if not path.is_file():
                raise MissingDataError(path, what="model definition file")
            loader_spec = importlib.util.spec_from_file_location(f"_bhscore_model_{path.stem}", path)
            module = importlib.util.module_from_spec(loader_spec)
            sys.modules[loader_spec.name] = module
            loader_spec.loader.exec_module(module)
        else:
            module = importlib.import_module(mod_name)
    except ModuleNotFoundError as e:
        raise UserError(f"model spec {spec!r}: cannot import {mod_name!r} ({e})") from None
    func = getattr(module, func_name, None)
    if not callable(func):
        public = [n for n in dir(module) if not n.startswith("_") and callable(getattr(module, n))]
        raise UserError(f"model spec {spec!r}: {mod_name} has no function {func_name!r}.{_close(func_name, public)}")
    return func


def _load_entry_point(spec: str, weights: str | None, seed: int) -> LoadedModel:
    from torch import nn

    func = _import_entry_point(spec)
    with _seeded(seed):
        model = func()
    if not isinstance(model, nn.Module):
        raise UserError(f"model spec {spec!r} returned {type(model).__name__}, not a torch.nn.Module")
    loaded = LoadedModel.wrap(model)
    loaded.spec = spec
    if _no_weights(weights):
        loaded.weights = f"random (seed {seed})"
        return loaded
    if not is_weights_file(weights):
        raise UserError(f"model {spec!r} takes weights from a file; got {weights!r}")
    path = Path(weights)
    if not path.is_file():
        url = getattr(func, "weights_url", None)
        raise MissingDataError(path, how=f"download {url} to that path" if url else None, what="weights file")
    load_state_dict_file(model, path, spec)
    loaded.weights = str(path)
    return loaded


def load_model(spec: str, weights: str | None = None, *, download: bool = False, seed: int = 0) -> LoadedModel:
    """Build a model from its spec and load its weights (from local files only unless ``download``).

    Parameters
    ----------
    spec : str
        ``torchvision:<name>``, ``timm:<name>[.<tag>]``, ``package.module:function`` or ``file.py:function``.
    weights : str, optional
        None / 'none' / 'random': random weights drawn with ``seed``. A file path: a checkpoint. Otherwise a
        torchvision weights name (``IMAGENET1K_V1``, ``DEFAULT``) or, for timm, ``DEFAULT`` (the tag's
        pretrained weights), looked up in the library's local cache.
    download : bool
        Let the library fetch missing weights from the network.
    seed : int
        Seed of the random initialisation.

    Returns
    -------
    LoadedModel
    """
    _require_torch()
    kind, _, rest = spec.partition(":")
    if kind == "torchvision" and rest:
        return _load_torchvision(rest, weights, download, seed)
    if kind == "timm" and rest:
        return _load_timm(rest, weights, download, seed)
    return _load_entry_point(spec, weights, seed)


# =================================================================================================
# layers, hooks and the PyTorch backend
# =================================================================================================


@dataclass(frozen=True)
class LayerSpec:
    """A feature layer: its name in the tree, the module whose output it is, and whether to take abs."""

    name: str
    module: str
    absolute: bool = False


def parse_layer_args(items: Iterable[str]) -> tuple[list[str], dict[str, str]]:
    """Split ``['conv1_abs', 'V1_output=V1.output']`` into layer names and a layer -> module mapping."""
    layers, modules = [], {}
    for item in items:
        name, sep, module = item.partition("=")
        name = name.strip()
        if not name:
            continue
        layers.append(name)
        if sep:
            modules[name] = module.strip()
    return layers, modules


def resolve_layers(
    model: nn.Module, layers: Sequence[str], modules: Mapping[str, str] | None = None, *, model_name: str = "the model"
) -> list[LayerSpec]:
    """Map layer names to modules of ``model``.

    ``modules`` maps a layer name to a module name (``named_modules()``); by default a layer is the module
    of the same name, and ``<name>_abs`` the absolute value of module ``<name>``. An unknown module raises
    :class:`UserError` listing close names.
    """
    names = {n for n, _ in model.named_modules() if n}
    specs, bad = [], []
    for layer in layers:
        if "/" in layer:
            raise UserError(f"layer name {layer!r} contains '/'; use ':' (it names a directory)")
        absolute = layer.endswith("_abs")
        module = (modules or {}).get(layer) or (layer[: -len("_abs")] if absolute else layer)
        if module not in names:
            bad.append(f"  - layer {layer!r}: no module {module!r}.{_close(module, names)}")
        specs.append(LayerSpec(layer, module, absolute))
    if bad:
        raise UserError(
            f"unknown layer(s) of {model_name}:\n" + "\n".join(bad) + "\n  list the modules with: bhscore layers --model ..."
        )
    return specs


def _single_tensor(out: Any, module: str) -> torch.Tensor:
    if isinstance(out, torch.Tensor):
        return out
    kind = type(out).__name__
    raise UserError(
        f"module {module!r} returns a {kind}, not a tensor; choose one of its submodules (bhscore layers lists them)"
    )


@contextlib.contextmanager
def _hooks(model: nn.Module, hooks: Mapping[str, Callable]) -> Iterator[None]:
    """Register forward hooks by module name; always removed on exit."""
    modules = dict(model.named_modules())
    handles = [modules[name].register_forward_hook(fn) for name, fn in hooks.items()]
    try:
        yield
    finally:
        for h in handles:
            h.remove()


def resolve_device(device: str | None) -> str:
    """'auto'/None -> 'cuda' when available, else 'cpu'; anything else is checked."""
    _require_torch()
    if device in (None, "", "auto"):
        return "cuda" if torch.cuda.is_available() else "cpu"
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise UserError(f"device {device!r} requested but CUDA is not available here")
    return device


@dataclass
class LayerInfo:
    """One module of a model: name, class, output shape for one image (None: not run), calls per forward."""

    name: str
    type: str
    shape: tuple[int, ...] | str | None
    calls: int


def list_layers(model: nn.Module, input_size: int | tuple[int, int] = 224, device: str = "cpu") -> list[LayerInfo]:
    """Every named module with its output shape (without the batch axis) for one input image.

    Parameters
    ----------
    model : nn.Module
    input_size : int or (H, W)
    device : str

    Returns
    -------
    list of LayerInfo, in ``named_modules()`` order
    """
    _require_torch()
    h, w = (input_size, input_size) if isinstance(input_size, int) else input_size
    shapes: dict[str, Any] = {}
    calls: dict[str, int] = defaultdict(int)

    def make(name: str) -> Callable:
        def hook(_m, _i, out):
            calls[name] += 1
            if name not in shapes:
                if isinstance(out, torch.Tensor):
                    shapes[name] = tuple(out.shape[1:])
                elif isinstance(out, (tuple, list)):
                    shapes[name] = "(" + ", ".join(
                        str(tuple(o.shape[1:])) if isinstance(o, torch.Tensor) else type(o).__name__ for o in out
                    ) + ")"
                else:
                    shapes[name] = type(out).__name__
        return hook

    named = [(n, m) for n, m in model.named_modules() if n]
    model = model.eval().to(device)
    with _hooks(model, {n: make(n) for n, _ in named}), torch.inference_mode():
        model(torch.zeros(1, 3, h, w, device=device))
    return [LayerInfo(n, type(m).__name__, shapes.get(n), calls.get(n, 0)) for n, m in named]


def format_layers(infos: Sequence[LayerInfo], input_size: int | tuple[int, int] = 224, used: Mapping[str, str] | None = None) -> str:
    """A table of :func:`list_layers` output (``used``: module -> layer names that map to it)."""
    size = input_size if isinstance(input_size, int) else "x".join(map(str, input_size))
    rows = [("module", "type", f"output shape ({size} input)", "calls", "units", "layer" if used else "")]
    for info in infos:
        shape = info.shape
        units = str(int(np.prod(shape))) if isinstance(shape, tuple) else ""
        shape_s = "not run" if shape is None else (str(shape) if isinstance(shape, tuple) else shape)
        calls = "" if info.calls <= 1 else str(info.calls)
        rows.append((info.name, info.type, shape_s, calls, units, (used or {}).get(info.name, "")))
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    return "\n".join("  ".join(c.ljust(widths[i]) for i, c in enumerate(r)).rstrip() for r in rows)


class TorchBackend:
    """Runs a PyTorch model with forward hooks on the modules of the requested layers.

    Parameters
    ----------
    model : nn.Module
    specs : list of LayerSpec
    device : str
    call : {'first', 'last', 'all'} or None
        Which output to keep for a module that runs more than once per forward pass; None refuses such
        modules with an error (never a silent choice).

    Notes
    -----
    Hooks live only during one forward pass and are removed afterwards (also on error). Each hook copies the
    kept units of its module's output at once (``index_select`` or ``clone``), so in-place operations later
    in the network (``ReLU(inplace=True)``, ``x += skip``) cannot alter what is stored.
    """

    def __init__(self, model: nn.Module, specs: Sequence[LayerSpec], device: str = "cpu", call: str | None = None):
        _require_torch()
        if call is not None and call not in CALLS:
            raise UserError(f"call must be one of {', '.join(CALLS)}, got {call!r}")
        self.device = resolve_device(device)
        self.model = model.eval().to(self.device)
        self.specs = list(specs)
        self.call = call
        self.by_module: dict[str, list[LayerSpec]] = defaultdict(list)
        for s in self.specs:
            self.by_module[s.module].append(s)
        self.calls: dict[str, int] | None = None  # calls per forward pass, from the probe

    def layer_shapes(self, input_shape: tuple[int, ...]) -> dict[str, tuple[int, ...]]:
        """Per-image output shape of every layer; with ``call='all'`` a leading axis counts the calls."""
        shapes: dict[str, tuple[int, ...]] = {}
        calls: dict[str, int] = defaultdict(int)

        def make(module: str) -> Callable:
            def hook(_m, _i, out):
                calls[module] += 1
                shape = tuple(_single_tensor(out, module).shape[1:])
                if shapes.setdefault(module, shape) != shape and self.call == "all":
                    raise UserError(f"module {module!r} returns different shapes on different calls; call='all' needs one")
            return hook

        with _hooks(self.model, {m: make(m) for m in self.by_module}), torch.inference_mode():
            self.model(torch.zeros((1, *input_shape), device=self.device))
        never = [m for m in self.by_module if calls[m] == 0]
        if never:
            raise UserError(f"module(s) {never} are not run in a forward pass (eval mode); choose other layers")
        repeated = {m: c for m, c in calls.items() if c > 1}
        if repeated and self.call is None:
            desc = ", ".join(f"{m!r} ({c} calls)" for m, c in repeated.items())
            raise UserError(
                f"module(s) {desc} run more than once per forward pass (recurrent blocks); choose which output to "
                "keep: call='first', 'last' or 'all' (--call, or \"call\" in the DNN's settings)"
            )
        for m, c in repeated.items():
            log.info("module %r runs %d times per forward pass; keeping call=%s", m, c, self.call)
        self.calls = dict(calls)
        out = {}
        for m, specs in self.by_module.items():
            shape = shapes[m]
            if self.call == "all" and calls[m] > 1:
                shape = (calls[m], *shape)
            for s in specs:
                out[s.name] = shape
        return out

    def forward(self, batch: np.ndarray, index: Mapping[str, np.ndarray | None]) -> dict[str, np.ndarray]:
        """Kept units of every layer for a batch (N, 3, H, W) -> layer -> (N, k) float32."""
        if self.calls is None:
            self.layer_shapes(tuple(batch.shape[1:]))
        ix_t = {k: (torch.as_tensor(v, device=self.device) if v is not None else None) for k, v in index.items()}
        store: dict[str, list[torch.Tensor]] = {s.name: [] for s in self.specs}
        calls: dict[str, int] = defaultdict(int)
        keep_all = self.call == "all"

        def make(module: str, specs: list[LayerSpec]) -> Callable:
            def hook(_m, _i, out):
                calls[module] += 1
                if self.call == "first" and calls[module] > 1:
                    return
                t = _single_tensor(out, module).detach()
                flat = t.reshape(t.shape[0], -1)
                for s in specs:
                    ix = ix_t.get(s.name)
                    # a copy at once: later in-place operations must not reach the stored values
                    v = flat.clone() if (keep_all or ix is None) else flat.index_select(1, ix)
                    if s.absolute:
                        v.abs_()
                    v = v.to("cpu", torch.float32)
                    if keep_all:
                        store[s.name].append(v)
                    else:
                        store[s.name] = [v]
            return hook

        x = torch.from_numpy(np.ascontiguousarray(batch, dtype=np.float32)).to(self.device)
        with _hooks(self.model, {m: make(m, sp) for m, sp in self.by_module.items()}), torch.inference_mode():
            self.model(x)
        changed = {m: c for m, c in calls.items() if c != self.calls.get(m)}
        if changed:
            raise UserError(f"calls per forward pass changed between inputs: {changed} vs {self.calls}")
        result = {}
        for s in self.specs:
            v = torch.cat(store[s.name], dim=1) if len(store[s.name]) > 1 else store[s.name][0]
            ix = index.get(s.name)
            if keep_all and ix is not None:
                v = v[:, torch.as_tensor(ix)]
            result[s.name] = v.numpy()
        return result


# =================================================================================================
# one call: model + images -> features tree
# =================================================================================================


def extract_features(
    model: str | nn.Module | LoadedModel,
    images: str | os.PathLike | Sequence[str | os.PathLike],
    out_dir: str | os.PathLike,
    layers: Sequence[str],
    *,
    modules: Mapping[str, str] | None = None,
    weights: str | None = None,
    preprocessing: str = "paper",
    call: str | None = None,
    n_units: int | None = DEFAULT_N_UNITS,
    seed: int = 0,
    index_from: Sequence[str | os.PathLike] = (),
    batch_size: int = 32,
    device: str = "auto",
    input_size: int | tuple[int, int] | None = None,
    overwrite: bool = False,
    download: bool = False,
    workers: int = 2,
    progress: bool = True,
) -> ExtractionSummary:
    """Extract features of a PyTorch model for a set of images into a features tree.

    Parameters
    ----------
    model : str, nn.Module or LoadedModel
        A model spec (:func:`load_model`) or a module built by the caller.
    images : path-like or sequence of path-like
        A directory of images or the image files.
    out_dir : path-like
        The tree root (``features/<split>/<dir>``).
    layers : sequence of str
        Layer names (module names, ``<module>_abs``, or names mapped by ``modules``).
    modules : mapping, optional
        Layer name -> module name.
    weights : str, optional
        See :func:`load_model` (ignored when ``model`` is not a spec).
    preprocessing : {'paper', 'caffe', 'model'}
    call : {'first', 'last', 'all'}, optional
        For modules run more than once per forward pass (required then).
    n_units : int or None
        Units kept per layer (default 1000); None keeps all.
    seed : int
        Seed of the unit draw and of random weights.
    index_from : sequence of path-like
        Feature-index files to reuse (the other stimulus set's).
    batch_size, device, overwrite, workers, progress
        See :func:`run_extraction`; ``device='auto'`` picks CUDA when available.
    input_size : int or (H, W), optional
        Override the model's input size.
    download : bool
        Allow fetching weights from the network.

    Returns
    -------
    ExtractionSummary
    """
    _require_torch()
    if isinstance(model, LoadedModel):
        loaded = model
    elif isinstance(model, str):
        loaded = load_model(model, weights, download=download, seed=seed)
    else:
        loaded = LoadedModel.wrap(model)
    if n_units is not None and n_units < 1:
        raise UserError(f"n_units must be >= 1 (or None for all units), got {n_units}")
    paths = list_images(images)
    specs = resolve_layers(loaded.model, layers, modules, model_name=loaded.spec)
    size = input_size if input_size is not None else loaded.input_size
    preprocess = make_preprocess(preprocessing, size, mean=loaded.mean, std=loaded.std, transform=loaded.transform)
    backend = TorchBackend(loaded.model, specs, device=device, call=call)
    if loaded.weights.startswith("random"):
        log.warning("%s: no weights given, the features come from random weights (%s)", loaded.spec, loaded.weights)
    log.info(
        "extracting %d layer(s) of %s (weights: %s) on %s, preprocessing %r, %d image(s) -> %s",
        len(specs), loaded.spec, loaded.weights, backend.device, preprocessing, len(paths), out_dir,
    )
    return run_extraction(
        backend,
        paths,
        out_dir,
        [s.name for s in specs],
        preprocess,
        n_units=n_units,
        seed=seed,
        index_from=index_from,
        batch_size=batch_size,
        overwrite=overwrite,
        workers=workers,
        progress=progress,
    )


# =================================================================================================
# settings-driven extraction (``bhscore extract --dnn``)
# =================================================================================================


def settings_weights(weights: str | None, data_root: Path) -> str | None:
    """A settings ``weights`` value: relative file paths are resolved against the data root."""
    if weights is None or _no_weights(weights) or not is_weights_file(weights):
        return weights
    p = Path(weights).expanduser()
    return str(p if p.is_absolute() else data_root / p)


def dnn_feature_dirs(settings: Any, dnn: str, split: str) -> tuple[Path, list[Path]]:
    """(this split's features directory, the other splits' directories) of a DNN in the settings."""
    from bhscore.paths import SPLITS, Layout

    layout = Layout.from_settings(settings)
    d = settings.dnn(dnn)
    return layout.features_dir(split, d.dir), [layout.features_dir(s, d.dir) for s in SPLITS if s != split]


def extract_dnn(
    settings: Any,
    dnn: str,
    images: str | os.PathLike | Sequence[str | os.PathLike],
    split: str,
    *,
    out_dir: str | os.PathLike | None = None,
    layers: Sequence[str] | None = None,
    modules: Mapping[str, str] | None = None,
    weights: str | None = None,
    preprocessing: str | None = None,
    call: str | None = None,
    n_units: int | None = DEFAULT_N_UNITS,
    index_from: Sequence[str | os.PathLike] = (),
    check_stimuli: bool = False,
    allow_missing: bool = False,
    names_file: str | os.PathLike | None = None,
    **kwargs: Any,
) -> ExtractionSummary:
    """Extract a DNN of the settings file into ``features/<split>/<dir>`` (or ``out_dir``).

    Model, weights (relative files: under the data root), layer-to-module mapping, preprocessing and call
    come from the DNN's settings unless given; the other stimulus set's feature-index file is reused when it
    exists, after any ``index_from`` given. Other keyword arguments go to :func:`extract_features`.

    With ``check_stimuli`` (``bhscore extract`` sets it) the image folder is first compared with the split's
    image names (``names_file``, else the fMRI labels, else the shipped test list) and every image is opened
    (:func:`bhscore.stimuli_check.guard_extraction`): an incomplete folder is refused unless ``allow_missing``,
    which extracts the readable images there are. Off by default: callers with their own image sets (the
    demo writes its fMRI files after extracting) pass the images they mean.
    """
    from bhscore.paths import data_root

    d = settings.dnn(dnn)
    if d.model is None:
        raise UserError(
            f"DNN {dnn!r} has no 'model' in the settings: its weights are not available in PyTorch. "
            "Caffe DNNs: make extract-caffe DNN=... (see feature_extraction/caffe/README.md)"
        )
    if check_stimuli:
        from bhscore.stimuli_check import expected_names, guard_extraction

        expected = expected_names(split, settings, names_file)
        images = guard_extraction(images, expected, allow_missing=allow_missing, progress=kwargs.get("progress", True))
    default_out, others = dnn_feature_dirs(settings, dnn, split)
    w = weights if weights is not None else settings_weights(d.weights, data_root(settings))
    mapping = dict(d.modules or {})
    mapping.update(modules or {})
    if n_units is not None:
        index_from = [*index_from, *(o / index_file_name(n_units) for o in others)]
    return extract_features(
        d.model,
        images,
        out_dir if out_dir is not None else default_out,
        list(layers) if layers else d.layers,
        modules=mapping,
        weights=w,
        preprocessing=preprocessing or d.preprocessing,
        call=call or d.call,
        n_units=n_units,
        index_from=index_from,
        **kwargs,
    )


# =================================================================================================
# Caffe through Docker
# =================================================================================================

#: Default tag of the image built from feature_extraction/caffe/Dockerfile.
CAFFE_IMAGE = "bhscore-caffe:latest"
#: What the container runs: the Python-3.9 package with the pycaffe driver (its docstring states the contract).
CAFFE_MODULE = "bhscore.caffe_container"
#: The repository paths the container needs, mounted read-only under :data:`CAFFE_CODE_ROOT` (nothing else of
#: the repository: ``bhscore`` is a namespace package there, so ``bhscore/__init__.py`` never runs).
CAFFE_CODE_PATHS = ("bhscore/caffe_container", "bhscore/caffe_prototxt.py")
CAFFE_CODE_ROOT = "/opt/bhscore"


def find_caffe_model(model_dir: Path) -> tuple[Path, Path]:
    """(prototxt, caffemodel) in ``model_dir``: ``deploy.prototxt`` (or the only prototxt) and the only
    ``.caffemodel``."""
    if not model_dir.is_dir():
        raise MissingDataError(
            model_dir, how="put the network's deploy.prototxt and .caffemodel there", what="Caffe model directory"
        )
    protos = sorted(model_dir.glob("*.prototxt"))
    proto = model_dir / "deploy.prototxt" if (model_dir / "deploy.prototxt").exists() else None
    if proto is None and len(protos) == 1:
        proto = protos[0]
    models = sorted(model_dir.glob("*.caffemodel"))
    if proto is None or len(models) != 1:
        raise UserError(
            f"{model_dir} must hold deploy.prototxt (or one .prototxt) and exactly one .caffemodel; "
            f"found {[p.name for p in protos]} and {[p.name for p in models]}"
        )
    return proto, models[0]


def caffe_docker_command(
    *,
    repo_root: str | os.PathLike,
    images: str | os.PathLike,
    out_dir: str | os.PathLike,
    prototxt: str | os.PathLike,
    caffemodel: str | os.PathLike,
    layers: Sequence[str],
    n_units: int | None = DEFAULT_N_UNITS,
    seed: int = 0,
    batch_size: int = 16,
    index_from: str | os.PathLike | None = None,
    overwrite: bool = False,
    image: str = CAFFE_IMAGE,
    user: str | None = None,
    docker: str = "docker",
) -> list[str]:
    """The ``docker run`` command that extracts Caffe features into ``out_dir`` (same tree as PyTorch).

    Mounts :data:`CAFFE_CODE_PATHS` of ``repo_root`` read-only under /opt/bhscore and runs
    ``python3 -m bhscore.caffe_container`` there; mounts the images read-only at /images, the output at /out,
    the network files at /model, and an optional index file to reuse at /index. Files are written as ``user``
    (default: the caller's uid:gid).
    """
    repo_root, images, out_dir = Path(repo_root).resolve(), Path(images).resolve(), Path(out_dir).resolve()
    prototxt, caffemodel = Path(prototxt).resolve(), Path(caffemodel).resolve()
    if user is None and hasattr(os, "getuid"):
        user = f"{os.getuid()}:{os.getgid()}"
    cmd = [docker, "run", "--rm"]
    if user:
        cmd += ["--user", user]
    for code in CAFFE_CODE_PATHS:
        cmd += ["-v", f"{repo_root / code}:{CAFFE_CODE_ROOT}/{code}:ro"]
    cmd += [
        "-e", f"PYTHONPATH={CAFFE_CODE_ROOT}",
        "-v", f"{images}:/images:ro",
        "-v", f"{out_dir}:/out",
        "-v", f"{prototxt}:/model/{prototxt.name}:ro",
        "-v", f"{caffemodel}:/model/{caffemodel.name}:ro",
    ]
    extra = []
    if index_from is not None:
        index_from = Path(index_from).resolve()
        cmd += ["-v", f"{index_from}:/index/{index_from.name}:ro"]
        extra = ["--index-from", f"/index/{index_from.name}"]
    cmd += [
        image,
        "python3", "-m", CAFFE_MODULE,
        "--images", "/images",
        "--out", "/out",
        "--prototxt", f"/model/{prototxt.name}",
        "--caffemodel", f"/model/{caffemodel.name}",
        "--layers", ",".join(layers),
        "--n-units", "all" if n_units is None else str(n_units),
        "--seed", str(seed),
        "--batch-size", str(batch_size),
        *extra,
    ]
    if overwrite:
        cmd.append("--overwrite")
    return cmd
