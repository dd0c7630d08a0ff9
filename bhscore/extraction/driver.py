"""The resumable extraction driver, independent of the framework that runs the network.

Writes the features tree the decoding step reads (``docs``: data_formats.md)::

    <out_dir>/<layer>/<image name>.mat      key 'feat', float32, shape (1, n_units), MAT v7.3
    <out_dir>/index_random<n>.mat           layer -> 0-based indices of the kept units (C-order)

Batched, resumable (images whose files all exist are skipped), atomic writes, peak memory set by the batch;
images are read by a thread pool while the network runs, and one batch of features at most waits for the disk.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from bhscore.errors import UserError
from bhscore.extraction.options import ExtractionOptions
from bhscore.extraction.units import index_file_name, resolve_unit_index
from bhscore.formats import load_feature, save_feature

log = logging.getLogger(__name__)


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


@dataclass
class _TreeExtraction:
    """One extraction into one tree: its images, layers and options, and the images still to do."""

    backend: Backend
    images: list[Path]
    out_dir: Path
    layers: list[str]
    preprocess: Callable[[Path], np.ndarray]
    options: ExtractionOptions
    names: list[str] = field(init=False)
    todo: list[int] = field(init=False)

    def __post_init__(self) -> None:
        self.names = [p.stem for p in self.images]
        if self.options.overwrite:
            self.todo = list(range(len(self.images)))
        else:
            self.todo = [
                i for i, n in enumerate(self.names)
                if not all(_feature_path(self.out_dir, lay, n).exists() for lay in self.layers)
            ]  # fmt: skip

    @property
    def index_path(self) -> Path | None:
        n_units = self.options.n_units
        return self.out_dir / index_file_name(n_units) if n_units is not None else None

    def prepare_tree(self, first: np.ndarray) -> tuple[dict[str, np.ndarray | None], dict[str, int]]:
        """Probe the layer shapes with the first image, settle the unit index, check and create the layer
        folders; returns (layer -> kept indices or None, layer -> units written)."""
        opts = self.options
        shapes = self.backend.layer_shapes(tuple(first.shape))
        totals = {layer: int(np.prod(shapes[layer])) for layer in self.layers}
        index = resolve_unit_index(totals, opts.n_units, opts.seed, self.index_path, opts.index_from)
        kept = {layer: (totals[layer] if index[layer] is None else int(index[layer].size)) for layer in self.layers}
        if not opts.overwrite:
            _check_existing(self.out_dir, self.layers, kept, self.names)
        for layer in self.layers:
            (self.out_dir / layer).mkdir(parents=True, exist_ok=True)
        return index, kept

    def write(self, batch: list[int], feats: dict[str, np.ndarray]) -> None:
        """Save the features of a batch, one file per image and layer."""
        for j, i in enumerate(batch):
            for layer in self.layers:
                path = _feature_path(self.out_dir, layer, self.names[i])
                if self.options.overwrite or not path.exists():
                    save_feature(path, feats[layer][j : j + 1])

    def compute(self, first: np.ndarray, index: Mapping[str, np.ndarray | None]) -> None:
        """Run every batch of :attr:`todo`: images preprocessed by a thread pool one batch ahead, features
        written by one thread while the next batch runs."""
        from tqdm.auto import tqdm

        opts = self.options
        batches = [self.todo[i : i + opts.batch_size] for i in range(0, len(self.todo), opts.batch_size)]
        bar = tqdm(total=len(self.todo), unit="img", desc=f"extract {self.out_dir.name}", disable=not opts.progress)

        def write(batch: list[int], feats: dict[str, np.ndarray]) -> None:
            self.write(batch, feats)
            bar.update(len(batch))

        with ThreadPoolExecutor(max(1, opts.workers)) as loaders, ThreadPoolExecutor(1) as writer:
            def submit(batch: list[int]) -> list[Future]:
                return [_done(first) if i == self.todo[0] else loaders.submit(self.preprocess, self.images[i]) for i in batch]

            pending = submit(batches[0])
            writing: Future | None = None
            try:
                for b, batch in enumerate(batches):
                    arrays = [f.result() for f in pending]
                    if b + 1 < len(batches):
                        pending = submit(batches[b + 1])
                    feats = self.backend.forward(np.stack(arrays), index)
                    if writing is not None:
                        writing.result()  # at most one batch of features waits for the disk
                    writing = writer.submit(write, batch, feats)
                if writing is not None:
                    writing.result()
            finally:
                for f in pending:
                    f.cancel()
                bar.close()


def _done(value: Any) -> Future:
    """A future that already holds ``value`` (the first image, preprocessed for the probe)."""
    future: Future = Future()
    future.set_result(value)
    return future


def run_extraction(
    backend: Backend,
    images: Sequence[Path],
    out_dir: str | os.PathLike,
    layers: Sequence[str],
    preprocess: Callable[[Path], np.ndarray],
    options: ExtractionOptions | None = None,
    **overrides: Any,
) -> ExtractionSummary:
    """Extract ``layers`` for every image into ``out_dir`` (skipping images already complete).

    Parameters
    ----------
    backend : Backend
        Runs the network (:class:`~bhscore.extraction.torch_backend.TorchBackend`, or the Caffe container's).
    images : sequence of Path
        Stimulus files; the stem names each feature file.
    out_dir : path-like
        Root of this DNN's features tree for one stimulus set.
    layers : sequence of str
    preprocess : callable
        ``path -> ndarray (3, H, W) float32`` (:func:`~bhscore.extraction.images.make_preprocess`).
    options : ExtractionOptions, optional
        Read here: ``n_units``, ``seed``, ``index_from``, ``batch_size``, ``overwrite``, ``workers``,
        ``progress``.
    **overrides
        Fields of :class:`ExtractionOptions` replacing those of ``options`` (``n_units=None``, ...).

    Returns
    -------
    ExtractionSummary
    """
    opts = ExtractionOptions.with_overrides(options, overrides)
    t0 = time.perf_counter()
    out_dir = Path(out_dir)
    layers = list(layers)
    if not layers:
        raise UserError("no layers to extract")
    if opts.batch_size < 1:
        raise UserError(f"batch_size must be >= 1, got {opts.batch_size}")
    run = _TreeExtraction(backend, [Path(p) for p in images], out_dir, layers, preprocess, opts)
    n_images, n_todo = len(run.images), len(run.todo)
    summary = ExtractionSummary(out_dir, layers, n_images, n_todo, n_images - n_todo, 0.0, run.index_path)
    if not run.todo:
        log.info("%s: all %d images already extracted", out_dir, n_images)
        summary.seconds = time.perf_counter() - t0
        return summary
    first = preprocess(run.images[run.todo[0]])
    index, summary.units = run.prepare_tree(first)
    run.compute(first, index)
    summary.seconds = time.perf_counter() - t0
    log.info("%s", summary)
    return summary
