"""A stand-in for pycaffe (``import caffe``) that runs the tiny networks of the Caffe tests with numpy.

Behaves like Caffe where the container module depends on it: ``Net(prototxt, caffemodel, TEST)`` reads the
definition (TRAIN-only layers skipped) and refuses a missing weights file, ``net.blobs`` maps blob names to
blobs whose ``data`` is rewritten by every ``forward()``, the input blob can be reshaped, and a layer whose top
is its bottom runs *in place*, overwriting the blob (so a raw convolution output read after its ReLU is gone,
unless the prototxt was rewritten). Layer types: Convolution (channel mean - 20 - c for output c), Pooling
(stride 2), ReLU, Dropout (identity at test time), InnerProduct ([sum, -sum]), Concat (channels).
Runs under Python >= 3.9 (tests/test_caffe_container.py puts this directory on the 3.9 interpreter's path).
"""

from __future__ import annotations

import os

import numpy as np

from bhscore import caffe_prototxt as cp

TRAIN, TEST = 0, 1


def set_mode_cpu() -> None:
    """Nothing to do: the stub always runs on the CPU."""


def _conv(bottoms: list, layer: cp.Message) -> np.ndarray:
    x = bottoms[0]
    param = layer.get("convolution_param")
    n_out = int(param.get("num_output")) if param is not None else 1
    mean = x.mean(axis=1, keepdims=True)
    return np.concatenate([mean - 20.0 - c for c in range(n_out)], axis=1)


def _inner_product(bottoms: list, layer: cp.Message) -> np.ndarray:
    s = bottoms[0].reshape(len(bottoms[0]), -1).sum(1)
    return np.stack([s, -s], axis=1)


OPS = {
    "Convolution": _conv,
    "Pooling": lambda b, _: b[0][:, :, ::2, ::2],
    "ReLU": lambda b, _: np.maximum(b[0], 0),
    "Dropout": lambda b, _: b[0],
    "InnerProduct": _inner_product,
    "Concat": lambda b, _: np.concatenate(b, axis=1),
}


class Blob:
    """A blob: ``data`` is a float32 array, reallocated by :meth:`reshape`."""

    def __init__(self, shape: tuple) -> None:
        self.data = np.zeros(shape, np.float32)

    def reshape(self, *shape: int) -> None:
        self.data = np.zeros(shape, np.float32)


class Net:
    """The network of a deploy prototxt; see the module docstring."""

    def __init__(self, prototxt: str, caffemodel: str, phase: int) -> None:
        if phase != TEST:
            raise ValueError("the stub runs TEST networks only")
        if not os.path.isfile(caffemodel):
            raise RuntimeError(f"Check failed: cannot open {caffemodel}")  # Caffe aborts here
        with open(prototxt) as f:
            definition = cp.parse(f.read())
        self.layers = [
            layer
            for layer in definition.all("layer")
            if not any(inc.get("phase") == "TRAIN" for inc in layer.all("include"))
        ]
        self.input = cp.input_blob(definition)
        self.blobs = {self.input: Blob(cp.input_shape(definition))}
        self.forward()

    def reshape(self) -> None:
        """Shapes follow the input at the next forward pass."""

    def forward(self) -> dict:
        for layer in self.layers:
            bottoms = [self.blobs[b].data for b in layer.all("bottom")]
            out = OPS[layer.get("type")](bottoms, layer).astype(np.float32)
            (top,) = layer.all("top")
            if top in layer.all("bottom"):
                self.blobs[top].data[...] = out  # in place: the bottom's values are gone
            else:
                self.blobs.setdefault(top, Blob(out.shape)).data = out
        return {self.layers[-1].get("top"): self.blobs[self.layers[-1].get("top")].data}
