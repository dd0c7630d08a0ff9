"""Stimulus images: listing a folder, reading an image as RGB, and the preprocessing presets (no torch).

Presets (:func:`make_preprocess`): ``paper`` (the whole image resized to the input size, bicubic, RGB in
[0, 1], normalised with the model's mean/std: ImageNet's unless the model declares its own, as timm's
TensorFlow ports do), ``caffe`` (the same resize, BGR, 0-255 minus the BGR ImageNet mean) and ``model`` (the
model's own transform: timm data config or torchvision weights transforms). Greyscale and palette images
become RGB; transparent images are composited over white.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from bhscore.errors import CorruptFileError, MissingDataError, UserError

if TYPE_CHECKING:
    from PIL.Image import Image as PILImage

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
#: Per-channel BGR mean of the ILSVRC 2012 training images (Caffe's ``ilsvrc_2012_mean.npy``), 0-255.
CAFFE_BGR_MEAN = (104.00698793, 116.66876762, 122.67891434)
PRESETS = ("paper", "caffe", "model")
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".gif", ".tif", ".tiff", ".webp", ".ppm", ".pgm")


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
    from PIL import UnidentifiedImageError

    from bhscore.rgb import open_rgb

    path = Path(path)
    try:
        return open_rgb(path)
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
