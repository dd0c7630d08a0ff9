"""Procedural stimulus images with natural-image-like statistics, for the demo and tests.

The real stimuli (ImageNet photographs) cannot be redistributed. These images share the properties that
matter to CNN features and to a simulated visual cortex: a 1/f amplitude spectrum (natural images'
hallmark), oriented gratings, and textured shapes with edges, occlusion and colour. Every image is a pure
function of the seed and its index.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from bhscore.simulate import stimulus_names


def pink_noise(size: int, rng: np.random.Generator, exponent: float = 1.0) -> np.ndarray:
    """Colour noise with a 1/f^exponent amplitude spectrum.

    Returns
    -------
    ndarray of shape (size, size, 3), values in [0, 1]
    """
    fy = np.fft.fftfreq(size)[:, None]
    fx = np.fft.rfftfreq(size)[None, :]
    f = np.sqrt(fx**2 + fy**2)
    f[0, 0] = 1.0
    amp = 1.0 / f**exponent
    amp[0, 0] = 0.0
    out = np.empty((size, size, 3))
    base = rng.standard_normal(amp.shape) + 1j * rng.standard_normal(amp.shape)
    for c in range(3):  # correlated colour channels, as in natural scenes
        spec = amp * (base + 0.5 * (rng.standard_normal(amp.shape) + 1j * rng.standard_normal(amp.shape)))
        out[..., c] = np.fft.irfft2(spec, s=(size, size))
    out -= out.min()
    return out / max(out.max(), 1e-12)


def grating(size: int, rng: np.random.Generator) -> np.ndarray:
    """A coloured sinusoidal grating (random orientation, frequency, phase), shape (size, size, 3) in [0, 1]."""
    y, x = np.mgrid[0:size, 0:size] / size
    theta = rng.uniform(0, np.pi)
    freq = rng.uniform(2, 12)
    wave = np.sin(2 * np.pi * freq * (x * np.cos(theta) + y * np.sin(theta)) + rng.uniform(0, 2 * np.pi))
    colour_a, colour_b = rng.random(3), rng.random(3)
    t = (wave[..., None] + 1) / 2
    return t * colour_a + (1 - t) * colour_b


def _shape_mask(size: int, rng: np.random.Generator) -> np.ndarray:
    y, x = np.mgrid[0:size, 0:size] / size
    cx, cy = rng.uniform(0.2, 0.8, size=2)
    kind = rng.integers(3)
    if kind == 0:  # ellipse
        a, b = rng.uniform(0.08, 0.35, size=2)
        rot = rng.uniform(0, np.pi)
        xr = (x - cx) * np.cos(rot) + (y - cy) * np.sin(rot)
        yr = -(x - cx) * np.sin(rot) + (y - cy) * np.cos(rot)
        return (xr / a) ** 2 + (yr / b) ** 2 <= 1
    if kind == 1:  # rectangle
        w, h = rng.uniform(0.1, 0.5, size=2)
        return (np.abs(x - cx) <= w / 2) & (np.abs(y - cy) <= h / 2)
    # star-like polygon in polar form
    r = np.hypot(x - cx, y - cy)
    phi = np.arctan2(y - cy, x - cx)
    k = rng.integers(3, 8)
    radius = rng.uniform(0.12, 0.3) * (1 + 0.4 * np.cos(k * phi + rng.uniform(0, 2 * np.pi)))
    return r <= radius


def procedural_image(size: int, rng: np.random.Generator) -> np.ndarray:
    """One image: a 1/f or grating background with 1-4 textured shapes on top.

    Returns
    -------
    ndarray of shape (size, size, 3), uint8
    """
    img = pink_noise(size, rng) if rng.random() < 0.6 else grating(size, rng)
    for _ in range(rng.integers(1, 5)):
        texture = grating(size, rng) if rng.random() < 0.5 else pink_noise(size, rng, exponent=rng.uniform(0.5, 2))
        mask = _shape_mask(size, rng)[..., None]
        img = np.where(mask, 0.7 * texture + 0.3 * rng.random(3), img)
    return np.clip(img * 255, 0, 255).astype(np.uint8)


def write_stimuli(
    out_dir: str | os.PathLike, n_images: int, seed: int = 0, size: int = 128, names: list[str] | None = None
) -> list[str]:
    """Write ``n_images`` procedural images as ``<out_dir>/<name>.JPEG`` (names of the real form).

    Existing images are kept (the set is a pure function of seed and index), so a rerun writes nothing.

    Parameters
    ----------
    out_dir : path-like
    n_images : int
    seed : int
    size : int
        Side length in pixels.
    names : list of str, optional
        Names to use (default: :func:`bhscore.simulate.stimulus_names` from the seed).

    Returns
    -------
    list of str
        The image names (file stems), sorted.
    """
    from PIL import Image

    from bhscore.atomic import atomic_path

    out_dir = Path(out_dir)
    names = sorted(names) if names is not None else stimulus_names(n_images, np.random.default_rng([seed, 0]))
    for i, name in enumerate(names):
        path = out_dir / f"{name}.JPEG"
        if path.exists():
            continue
        pixels = procedural_image(size, np.random.default_rng([seed, 1, i]))
        with atomic_path(path) as tmp:
            Image.fromarray(pixels).save(tmp, format="JPEG", quality=92)
    return names
