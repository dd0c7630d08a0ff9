"""Extract Caffe DNN features into the features tree (runs in the Caffe container; see the package docstring).

Runs pycaffe on a rewritten copy of the network (every in-place layer gets its own output blob, so
``<blob>_abs`` reads the convolution output before its ReLU; :mod:`bhscore.caffe_prototxt`) and writes what
``bhscore extract`` writes: ``<out>/<layer>/<image>.mat`` (key ``feat``, float32, shape (1, n_units), MAT v7.3)
and ``<out>/index_random<n>.mat``, with the host's unit draw and index rules (:mod:`bhscore.unit_index`, the
same module), preprocessing preset ``caffe``, resumability and atomic writes. The host counterparts live in
``bhscore.extraction``; tests/test_caffe_container.py checks that both give the same files.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

import numpy as np

from bhscore import caffe_prototxt as cp
from bhscore import unit_index
from bhscore.caffe_container import matfile
from bhscore.unit_index import DEFAULT_N_UNITS, index_file_name

#: Per-channel BGR mean of the ILSVRC 2012 training images (Caffe's ``ilsvrc_2012_mean.npy``), 0-255.
CAFFE_BGR_MEAN = (104.00698793, 116.66876762, 122.67891434)
FEATURE_KEY = "feat"
INDEX_KEY = "index"
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".gif", ".tif", ".tiff", ".webp", ".ppm", ".pgm")


class ExtractionError(Exception):
    """An error the user can fix; the message is one line naming the file or item and the remedy."""


# -------------------------------------------------------------------------------------------------
# images (Pillow)
# -------------------------------------------------------------------------------------------------


def list_images(root: Path) -> list[Path]:
    """Image files of a directory sorted by stem (the stem names each feature file)."""
    if not root.is_dir():
        raise ExtractionError(f"stimulus image directory not found: {root}")
    paths = [p for p in root.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES and not p.name.startswith(".") and p.is_file()]
    if not paths:
        raise ExtractionError(f"no image files ({', '.join(IMAGE_SUFFIXES)}) in {root}")
    paths.sort(key=lambda p: p.stem)
    stems = [p.stem for p in paths]
    if len(set(stems)) != len(stems):
        dup = sorted({s for s in stems if stems.count(s) > 1})
        raise ExtractionError(f"{root}: several image files share a name (the stem names the feature file): {dup[:5]}")
    return paths


def load_image(path: Path):
    """An image as 8-bit RGB PIL image (greyscale/palette converted, transparency composited over white)."""
    from PIL import UnidentifiedImageError

    from bhscore.rgb import open_rgb

    try:
        return open_rgb(path)
    except (UnidentifiedImageError, OSError, ValueError, SyntaxError) as e:
        raise ExtractionError(f"cannot read {path}: not a readable image ({type(e).__name__}); replace or remove it") from None


def preprocess_caffe(img, size: tuple[int, int], bgr_mean: Sequence[float] = CAFFE_BGR_MEAN) -> np.ndarray:
    """The ``caffe`` preset: whole image resized (bicubic) to ``size`` = (H, W), BGR, 0-255 minus the BGR mean.

    Returns
    -------
    ndarray of shape (3, H, W), float32, channels in B, G, R order
    """
    from PIL import Image

    h, w = size
    if img.size != (w, h):
        img = img.resize((w, h), getattr(Image, "Resampling", Image).BICUBIC)  # Pillow < 9.1: no Resampling
    a = np.asarray(img, dtype=np.float32)[:, :, ::-1] - np.asarray(bgr_mean, np.float32)
    return np.ascontiguousarray(a.transpose(2, 0, 1))


# -------------------------------------------------------------------------------------------------
# unit subsampling and the feature-index file
# -------------------------------------------------------------------------------------------------


def read_feature_index(path: Path) -> dict[str, np.ndarray]:
    """Layer -> 0-based int64 unit indices of a feature-index file."""
    try:
        return {k: v.astype(np.int64) for k, v in matfile.read_struct(path, INDEX_KEY).items()}
    except (OSError, KeyError, ValueError) as e:
        raise ExtractionError(f"cannot read {path}: not a feature-index file ({e}); delete it and re-extract") from None


def write_feature_index(path: Path, index: Mapping[str, np.ndarray]) -> None:
    """Write a feature-index file (struct ``index``: layer -> 0-based unit indices), atomically."""
    matfile.write_struct(path, INDEX_KEY, index)


def resolve_unit_index(
    layer_units: Mapping[str, int],
    n_units: int | None,
    seed: int,
    index_path: Path | None,
    index_from: Sequence[Path] = (),
) -> dict[str, np.ndarray | None]:
    """Kept units per layer: :func:`bhscore.unit_index.resolve_unit_index` (the host's rules) with this
    package's index reader and writer; its errors are :class:`ExtractionError`.

    Returns
    -------
    dict of str to (ndarray of shape (k,), int64) or None
    """
    return unit_index.resolve_unit_index(
        layer_units, n_units, seed, index_path, index_from,
        read_index=read_feature_index, write_index=write_feature_index, error=ExtractionError,
    )  # fmt: skip


# -------------------------------------------------------------------------------------------------
# pycaffe
# -------------------------------------------------------------------------------------------------


class CaffeBackend:
    """Runs a pycaffe network and returns the kept units of each layer.

    Parameters
    ----------
    net : caffe.Net
        Built from the rewritten prototxt.
    blobs : dict of str to (str, bool)
        Layer name -> (blob name, take abs), from :func:`bhscore.caffe_prototxt.blob_for_layer`.
    data_blob : str
        The input blob.
    """

    def __init__(self, net, blobs: Mapping[str, tuple[str, bool]], data_blob: str):
        self.net = net
        self.blobs = dict(blobs)
        self.data_blob = data_blob

    def _run(self, batch: np.ndarray) -> None:
        blob = self.net.blobs[self.data_blob]
        if tuple(blob.data.shape) != tuple(batch.shape):
            blob.reshape(*batch.shape)
            self.net.reshape()
        blob.data[...] = batch
        self.net.forward()

    def layer_shapes(self, input_shape: tuple[int, ...]) -> dict[str, tuple[int, ...]]:
        """Per-image output shape of every layer for one input of shape (3, H, W)."""
        self._run(np.zeros((1, *input_shape), dtype=np.float32))
        return {layer: tuple(self.net.blobs[b].data.shape[1:]) for layer, (b, _) in self.blobs.items()}

    def forward(self, batch: np.ndarray, index: Mapping[str, np.ndarray | None]) -> dict[str, np.ndarray]:
        """Features of a batch (N, 3, H, W): layer -> (N, k) float32, the kept units only (copies: the next
        forward pass overwrites the blobs)."""
        self._run(batch)
        out = {}
        for layer, (b, absolute) in self.blobs.items():
            flat = self.net.blobs[b].data.reshape(batch.shape[0], -1)
            ix = index.get(layer)
            v = flat[:, ix] if ix is not None else flat.copy()
            out[layer] = np.abs(v) if absolute else v.astype(np.float32, copy=False)
        return out


def build_net(prototxt: Path, caffemodel: Path, layers: Sequence[str], workdir: Path):
    """Rewrite the prototxt (no in-place layers) and load the network with pycaffe on the CPU.

    Returns
    -------
    net : caffe.Net
    blobs : dict of str to (str, bool)
        Layer -> (blob, take abs).
    data_blob : str
    size : (int, int)
        Input (H, W) of the prototxt.
    """
    for path in (prototxt, caffemodel):
        if not path.is_file():
            raise ExtractionError(f"Caffe network file not found: {path}")
    try:
        net_def = cp.parse(prototxt.read_text())
        rewritten, versions = cp.rewrite_inplace(net_def)
        data_blob = cp.input_blob(net_def)
        shape = cp.input_shape(net_def)
    except cp.PrototxtError as e:
        raise ExtractionError(f"{prototxt}: {e}") from None
    blobs, bad = {}, []
    for layer in layers:
        try:
            blobs[layer] = cp.blob_for_layer(layer, versions)
        except KeyError as e:
            bad.append(str(e.args[0]))
    if bad:
        raise ExtractionError(f"{prototxt}: unknown layer(s): {'; '.join(bad)}")
    path = workdir / f"{prototxt.stem}.rewritten.prototxt"
    path.write_text(cp.format_message(rewritten))
    import caffe

    caffe.set_mode_cpu()
    net = caffe.Net(str(path), str(caffemodel), caffe.TEST)
    return net, blobs, data_blob, (int(shape[-2]), int(shape[-1]))


# -------------------------------------------------------------------------------------------------
# the driver
# -------------------------------------------------------------------------------------------------


def _check_layer_names(layers: Sequence[str]) -> None:
    """Layer names become directory names and struct fields: refuse what cannot be either."""
    bad = [x for x in layers if not x or x.startswith(".") or any(c in x for c in "/\\\x00")]
    if bad:
        raise ExtractionError(f"layer names {bad} cannot name a directory; write '/' in blob names as ':'")
    dup = sorted({x for x in layers if list(layers).count(x) > 1})
    if dup:
        raise ExtractionError(f"layers named twice: {dup}")


def run_extraction(
    backend: CaffeBackend,
    images: Sequence[Path],
    out_dir: Path,
    layers: Sequence[str],
    preprocess: Callable[[Path], np.ndarray],
    *,
    n_units: int | None = DEFAULT_N_UNITS,
    seed: int = 0,
    index_from: Sequence[Path] = (),
    batch_size: int = 16,
    overwrite: bool = False,
    log: Callable[[str], None] = lambda msg: print(msg, file=sys.stderr, flush=True),
) -> str:
    """Extract ``layers`` for every image into ``out_dir``, skipping images whose files all exist.

    Parameters
    ----------
    backend : CaffeBackend
    images : sequence of Path
        Stimulus files; the stem names each feature file.
    out_dir : Path
        Root of the features tree of one DNN and one stimulus set.
    layers : sequence of str
    preprocess : callable
        ``path -> ndarray (3, H, W) float32``.
    n_units : int or None
        Units kept per layer (:func:`bhscore.unit_index.subsample_indices`); None keeps all and writes no index
        file.
    seed : int
    index_from : sequence of Path
        Feature-index files to reuse (the other stimulus set's).
    batch_size : int
        Images per forward pass; bounds the memory.
    overwrite : bool
        Recompute and rewrite images already written.
    log : callable
        Receives progress lines.

    Returns
    -------
    str
        A one-line summary.
    """
    t0 = time.perf_counter()
    layers = list(layers)
    if not layers:
        raise ExtractionError("no layers to extract")
    _check_layer_names(layers)
    if batch_size < 1:
        raise ExtractionError(f"--batch-size must be >= 1, got {batch_size}")
    names = [p.stem for p in images]

    def path_of(layer: str, name: str) -> Path:
        return out_dir / layer / f"{name}.mat"

    todo = [i for i, n in enumerate(names) if overwrite or not all(path_of(x, n).exists() for x in layers)]
    if not todo:
        return f"{out_dir}: 0 image(s) extracted, {len(images)} already done"
    first = preprocess(images[todo[0]])
    shapes = backend.layer_shapes(tuple(first.shape))
    totals = {layer: int(np.prod(shapes[layer])) for layer in layers}
    index_path = out_dir / index_file_name(n_units) if n_units is not None else None
    index = resolve_unit_index(totals, n_units, seed, index_path, index_from)
    kept = {layer: totals[layer] if index[layer] is None else int(index[layer].size) for layer in layers}
    if not overwrite:  # refuse to mix runs: existing files must hold as many units as this run writes
        for layer in layers:
            existing = next((path_of(layer, n) for n in names if path_of(layer, n).exists()), None)
            if existing is not None and matfile.array_size(existing, FEATURE_KEY) != kept[layer]:
                raise ExtractionError(
                    f"{existing} holds {matfile.array_size(existing, FEATURE_KEY)} units but this run writes "
                    f"{kept[layer]} for layer {layer!r}; pass --overwrite or use another output directory"
                )
    last_log = time.perf_counter()
    for start in range(0, len(todo), batch_size):
        batch = todo[start : start + batch_size]
        arrays = [first if i == todo[0] else preprocess(images[i]) for i in batch]
        feats = backend.forward(np.stack(arrays), index)
        for j, i in enumerate(batch):
            for layer in layers:
                path = path_of(layer, names[i])
                if overwrite or not path.exists():
                    matfile.write_arrays(path, {FEATURE_KEY: np.asarray(feats[layer][j : j + 1], dtype=np.float32)})
        done = start + len(batch)
        if time.perf_counter() - last_log > 10 or done == len(todo):
            last_log = time.perf_counter()
            log(f"{done}/{len(todo)} image(s), {done / (last_log - t0):.2f} images/s")
    seconds = time.perf_counter() - t0
    return (
        f"{out_dir}: {len(todo)} image(s) extracted, {len(images) - len(todo)} already done, {len(layers)} layer(s), "
        f"{seconds:.1f} s"
    )


def main(argv: Sequence[str] | None = None) -> int:
    """Command line (``python3 -m bhscore.caffe_container``); returns the exit status (2: a user error)."""
    p = argparse.ArgumentParser(prog="python3 -m bhscore.caffe_container", description=__doc__.splitlines()[0])
    p.add_argument("--images", required=True, type=Path, help="directory of stimulus images")
    p.add_argument("--out", required=True, type=Path, help="root of the features tree (one DNN, one stimulus set)")
    p.add_argument("--prototxt", required=True, type=Path)
    p.add_argument("--caffemodel", required=True, type=Path)
    p.add_argument("--layers", required=True, help="comma-separated blob names, ':' for '/', '<blob>_abs'")
    p.add_argument("--n-units", default=str(DEFAULT_N_UNITS), help="units kept per layer, or 'all'")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--batch-size", type=int, default=16)
    p.add_argument("--index-from", action="append", default=[], type=Path, help="feature-index file to reuse")
    p.add_argument("--mean", default=",".join(map(str, CAFFE_BGR_MEAN)), help="BGR mean, 0-255, comma-separated")
    p.add_argument("--overwrite", action="store_true")
    args = p.parse_args(argv)
    try:
        n_units = None if args.n_units.lower() in ("all", "none", "0") else int(args.n_units)
        bgr_mean = tuple(float(x) for x in args.mean.split(","))
    except ValueError as e:
        p.error(str(e))
    if n_units is not None and n_units < 1:
        p.error(f"--n-units must be >= 1 or 'all', got {args.n_units!r}")
    if len(bgr_mean) != 3:
        p.error(f"--mean needs 3 values (B,G,R), got {args.mean!r}")
    layers = [x.strip() for x in args.layers.split(",") if x.strip()]
    try:
        images = list_images(args.images)
        with tempfile.TemporaryDirectory() as tmp:
            net, blobs, data_blob, size = build_net(args.prototxt, args.caffemodel, layers, Path(tmp))
            summary = run_extraction(
                CaffeBackend(net, blobs, data_blob),
                images,
                args.out,
                layers,
                lambda path: preprocess_caffe(load_image(path), size, bgr_mean),
                n_units=n_units,
                seed=args.seed,
                index_from=args.index_from,
                batch_size=args.batch_size,
                overwrite=args.overwrite,
            )
    except ExtractionError as e:
        print(f"bhscore.caffe_container: error: {e}", file=sys.stderr)
        return 2
    print(summary)
    return 0


if __name__ == "__main__":  # pragma: no cover - `python3 -m bhscore.caffe_container` is the entry
    sys.exit(main())
