"""Caffe DNNs through Docker: the network files of a model directory and the ``docker run`` command.

The container (``feature_extraction/caffe/Dockerfile``, Python 3.9) runs :mod:`bhscore.caffe_container`, a
torch-free counterpart of the PyTorch route that writes the same features tree with the same unit draw
(:mod:`bhscore.unit_index`) and atomic writes (:mod:`bhscore.atomic`).
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

from bhscore.errors import MissingDataError, UserError
from bhscore.unit_index import DEFAULT_N_UNITS

#: Default tag of the image built from feature_extraction/caffe/Dockerfile.
CAFFE_IMAGE = "bhscore-caffe:latest"
#: What the container runs: the Python-3.9 package with the pycaffe driver (its docstring states the contract).
CAFFE_MODULE = "bhscore.caffe_container"
#: The repository paths the container needs, mounted read-only under :data:`CAFFE_CODE_ROOT` (nothing else of
#: the repository: ``bhscore`` is a namespace package there, so ``bhscore/__init__.py`` never runs). Each runs
#: under Python 3.9 with numpy, h5py and Pillow only (``make lint`` checks them as Python 3.9).
CAFFE_CODE_PATHS = (
    "bhscore/caffe_container",
    "bhscore/caffe_prototxt.py",
    "bhscore/unit_index.py",
    "bhscore/rgb.py",
    "bhscore/atomic.py",
)
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


def _mounts(repo_root: Path, images: Path, out_dir: Path, prototxt: Path, caffemodel: Path) -> list[str]:
    """``-v``/``-e`` arguments: the code read-only under :data:`CAFFE_CODE_ROOT` (on the ``PYTHONPATH``), the
    images at /images (read-only), the output at /out, the network files at /model (read-only)."""
    args = []
    for code in CAFFE_CODE_PATHS:
        args += ["-v", f"{repo_root / code}:{CAFFE_CODE_ROOT}/{code}:ro"]
    return [
        *args,
        "-e", f"PYTHONPATH={CAFFE_CODE_ROOT}",
        "-v", f"{images}:/images:ro",
        "-v", f"{out_dir}:/out",
        "-v", f"{prototxt}:/model/{prototxt.name}:ro",
        "-v", f"{caffemodel}:/model/{caffemodel.name}:ro",
    ]  # fmt: skip


def _module_args(
    prototxt: Path, caffemodel: Path, layers: Sequence[str], n_units: int | None, seed: int, batch_size: int
) -> list[str]:
    """``python3 -m bhscore.caffe_container`` and its options, with the paths inside the container."""
    return [
        "python3", "-m", CAFFE_MODULE,
        "--images", "/images",
        "--out", "/out",
        "--prototxt", f"/model/{prototxt.name}",
        "--caffemodel", f"/model/{caffemodel.name}",
        "--layers", ",".join(layers),
        "--n-units", "all" if n_units is None else str(n_units),
        "--seed", str(seed),
        "--batch-size", str(batch_size),
    ]  # fmt: skip


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

    Returns
    -------
    list of str
        The command's arguments.
    """
    prototxt, caffemodel = Path(prototxt).resolve(), Path(caffemodel).resolve()
    if user is None and hasattr(os, "getuid"):
        user = f"{os.getuid()}:{os.getgid()}"
    cmd = [docker, "run", "--rm", *(["--user", user] if user else [])]
    cmd += _mounts(Path(repo_root).resolve(), Path(images).resolve(), Path(out_dir).resolve(), prototxt, caffemodel)
    index_args = []
    if index_from is not None:
        index_from = Path(index_from).resolve()
        cmd += ["-v", f"{index_from}:/index/{index_from.name}:ro"]
        index_args = ["--index-from", f"/index/{index_from.name}"]
    cmd += [image, *_module_args(prototxt, caffemodel, layers, n_units, seed, batch_size), *index_args]
    return [*cmd, "--overwrite"] if overwrite else cmd
