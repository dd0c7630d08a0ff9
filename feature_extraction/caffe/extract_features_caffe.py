#!/usr/bin/env python3
"""Extract Caffe DNN features inside the bhscore Caffe container (see README.md in this directory).

Runs pycaffe on a rewritten copy of the network (every in-place layer gets its own output blob, so
``<layer>_abs`` can read the convolution output before its ReLU) and writes the same features tree as
``bhscore extract``, through the same driver (``bhscore.extraction.run_extraction``): seeded unit
subsampling with a feature-index file, resumable, atomic MAT v7.3 writes.

The repository is mounted at /bhscore and put on ``sys.path``; this script needs no torch. Normally it is
started by ``bhscore extract --backend caffe`` / ``make extract-caffe``, which builds the docker command.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, os.environ.get("BHSCORE_REPO", str(Path(__file__).resolve().parents[2])))

import numpy as np  # noqa: E402

from bhscore import caffe_prototxt as cp  # noqa: E402
from bhscore.errors import UserError  # noqa: E402
from bhscore.extraction import (  # noqa: E402
    CAFFE_BGR_MEAN,
    DEFAULT_N_UNITS,
    list_images,
    make_preprocess,
    run_extraction,
)


class CaffeBackend:
    """The :class:`bhscore.extraction.Backend` of a pycaffe network.

    Parameters
    ----------
    net : caffe.Net
        Built from the rewritten prototxt.
    blobs : dict of str to (str, bool)
        Layer name -> (blob name, take abs), from :func:`bhscore.caffe_prototxt.blob_for_layer`.
    data_blob : str
    """

    def __init__(self, net, blobs: dict, data_blob: str):
        self.net = net
        self.blobs = blobs
        self.data = data_blob

    def _run(self, batch: np.ndarray) -> None:
        blob = self.net.blobs[self.data]
        if tuple(blob.data.shape) != tuple(batch.shape):
            blob.reshape(*batch.shape)
            self.net.reshape()
        blob.data[...] = batch
        self.net.forward()

    def layer_shapes(self, input_shape: tuple) -> dict:
        self._run(np.zeros((1, *input_shape), dtype=np.float32))
        return {layer: tuple(self.net.blobs[b].data.shape[1:]) for layer, (b, _) in self.blobs.items()}

    def forward(self, batch: np.ndarray, index: dict) -> dict:
        self._run(batch)
        out = {}
        for layer, (b, absolute) in self.blobs.items():
            flat = self.net.blobs[b].data.reshape(batch.shape[0], -1)
            ix = index.get(layer)
            v = flat[:, ix] if ix is not None else flat.copy()  # a copy: the next forward reuses the blob
            out[layer] = np.abs(v) if absolute else v.astype(np.float32, copy=False)
        return out


def build_net(prototxt: Path, caffemodel: Path, layers: list[str], workdir: Path):
    """Rewrite the prototxt, load the network; returns (net, layer -> (blob, abs), data blob, input (H, W))."""
    import caffe

    net_def = cp.parse(prototxt.read_text())
    rewritten, versions = cp.rewrite_inplace(net_def)
    blobs = {}
    bad = []
    for layer in layers:
        try:
            blobs[layer] = cp.blob_for_layer(layer, versions)
        except KeyError as e:
            bad.append(str(e.args[0]))
    if bad:
        raise UserError("unknown layer(s):\n  " + "\n  ".join(bad))
    data_blob = cp.input_blob(net_def)
    shape = cp.input_shape(net_def)
    path = workdir / f"{prototxt.stem}.rewritten.prototxt"
    path.write_text(cp.format_message(rewritten))
    caffe.set_mode_cpu()
    net = caffe.Net(str(path), str(caffemodel), caffe.TEST)
    return net, blobs, data_blob, (int(shape[-2]), int(shape[-1]))


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--images", required=True, type=Path)
    p.add_argument("--out", required=True, type=Path)
    p.add_argument("--prototxt", required=True, type=Path)
    p.add_argument("--caffemodel", required=True, type=Path)
    p.add_argument("--layers", required=True, help="comma-separated; ':' stands for '/' in blob names")
    p.add_argument("--n-units", default=str(DEFAULT_N_UNITS), help="units kept per layer, or 'all'")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--batch-size", type=int, default=16)
    p.add_argument("--index-from", action="append", default=[], help="feature-index file to reuse")
    p.add_argument("--mean", default=",".join(map(str, CAFFE_BGR_MEAN)), help="BGR mean, 0-255")
    p.add_argument("--overwrite", action="store_true")
    args = p.parse_args(argv)

    n_units = None if args.n_units.lower() in ("all", "none", "0") else int(args.n_units)
    layers = [x.strip() for x in args.layers.split(",") if x.strip()]
    bgr_mean = tuple(float(x) for x in args.mean.split(","))
    try:
        with tempfile.TemporaryDirectory() as tmp:
            net, blobs, data_blob, size = build_net(args.prototxt, args.caffemodel, layers, Path(tmp))
            preprocess = make_preprocess("caffe", size, bgr_mean=bgr_mean)
            summary = run_extraction(
                CaffeBackend(net, blobs, data_blob),
                list_images(args.images),
                args.out,
                layers,
                preprocess,
                n_units=n_units,
                seed=args.seed,
                index_from=args.index_from,
                batch_size=args.batch_size,
                overwrite=args.overwrite,
            )
    except (UserError, cp.PrototxtError) as e:
        print(f"extract_features_caffe: error: {e}", file=sys.stderr)
        return 2
    print(summary)
    return 0


if __name__ == "__main__":
    sys.exit(main())
