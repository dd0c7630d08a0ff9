"""``bhscore extract``: DNN features of a directory of images, written as the features tree.

Two ways to name the network:

- ``--dnn NAME --split ImageNetTraining|ImageNetTest``: a DNN of the settings file (its ``model``, ``weights``,
  ``modules``, ``preprocessing``, ``call``); output ``<data root>/features/<split>/<dir>``; the other split's
  feature-index file is reused so both hold the same units.
- ``--model SPEC --layers ... --out DIR``: any model (``torchvision:<name>``, ``timm:<name>``,
  ``module:function``).

``--backend caffe`` runs the Caffe DNNs in Docker (``feature_extraction/caffe``).

The image folder is checked first, as ``bhscore stimuli check`` does: with ``--split`` against the split's
image names (``--names FILE``, else the fMRI labels, else the shipped test list), and every image is
opened. An incomplete folder (missing, ambiguous or unreadable images) is refused unless
``--allow-missing``, which extracts the readable images there are.
"""

from __future__ import annotations

import argparse
import logging
import shlex
import shutil
import subprocess
from pathlib import Path

log = logging.getLogger(__name__)


def _n_units(value: str) -> int | None:
    if value.lower() in ("all", "none", "0"):
        return None
    try:
        n = int(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive integer or 'all', got {value!r}") from None
    if n < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer or 'all', got {value!r}")
    return n


def register(subparsers: argparse._SubParsersAction, common: argparse.ArgumentParser) -> None:
    from bhscore.extraction import CAFFE_IMAGE, CALLS, DEFAULT_N_UNITS, PRESETS
    from bhscore.paths import SPLITS

    p = subparsers.add_parser(
        "extract",
        parents=[common],
        help="extract DNN features of a directory of images into the features tree",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument("--dnn", help="a DNN of the settings file")
    src.add_argument("--model", help="model spec: torchvision:<name>, timm:<name>[.<tag>], module:function")
    p.add_argument("--images", required=True, help="directory of stimulus images (file stem = image name)")
    p.add_argument("--split", choices=SPLITS, help="stimulus set (with --dnn): where the tree goes")
    p.add_argument("--out", help="output tree root (with --model; overrides the settings path with --dnn)")
    p.add_argument(
        "--layers",
        help="comma-separated layers; 'name=module' maps a layer to a module (default with --dnn: its layers)",
    )
    p.add_argument("--weights", help="weights name (IMAGENET1K_V1, DEFAULT), a file, or 'none' (random)")
    p.add_argument("--download", action="store_true", help="let torchvision/timm download missing weights")
    p.add_argument("--preprocessing", choices=PRESETS, help="image preprocessing preset (default: paper)")
    p.add_argument("--call", choices=CALLS, help="modules run several times per forward pass: which call to keep")
    p.add_argument(
        "--n-units",
        type=_n_units,
        default=DEFAULT_N_UNITS,
        metavar="N|all",
        help=f"units kept per layer, drawn at random (default {DEFAULT_N_UNITS}; 'all' keeps every unit)",
    )
    p.add_argument("--seed", type=int, default=0, help="seed of the unit draw and of random weights (default 0)")
    p.add_argument("--index", action="append", default=[], metavar="FILE", help="feature-index file to reuse")
    p.add_argument("--batch-size", type=int, default=32, help="images per forward pass (default 32)")
    p.add_argument("--device", default="auto", help="auto (CUDA when available), cpu, cuda, cuda:1, ...")
    p.add_argument("--input-size", type=int, help="override the model's input size (pixels)")
    p.add_argument("--workers", type=int, default=2, help="image-loading threads (default 2)")
    p.add_argument("--overwrite", action="store_true", help="recompute images already written")
    p.add_argument(
        "--allow-missing",
        action="store_true",
        help="extract an incomplete folder (missing, ambiguous or unreadable images) instead of refusing it",
    )
    p.add_argument("--names", metavar="FILE", help="the image names the folder must hold, one per line "
                   "(default: the split's fMRI labels, else the shipped test list)")  # fmt: skip
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    c = p.add_argument_group("Caffe (Docker)")
    c.add_argument("--backend", choices=("pytorch", "caffe"), default="pytorch", help="framework (default pytorch)")
    c.add_argument("--caffe-model-dir", help="directory with deploy.prototxt and the .caffemodel "
                   "(default <data root>/caffe_models/<network>)")
    c.add_argument("--docker-image", default=CAFFE_IMAGE, help=f"image built from feature_extraction/caffe (default {CAFFE_IMAGE})")
    c.add_argument("--dry-run", action="store_true", help="print the docker command instead of running it")
    p.set_defaults(func=handler)


def handler(args: argparse.Namespace) -> int:
    from bhscore.errors import UserError
    from bhscore.extraction import parse_layer_args

    layers, modules = parse_layer_args((args.layers or "").split(","))
    if args.dnn and not args.split:
        raise UserError("--dnn needs --split ImageNetTraining or ImageNetTest")
    if args.model and not (args.out and layers):
        raise UserError("--model needs --out DIR and --layers (list the modules with: bhscore layers --model ...)")
    if args.backend == "caffe":
        return _caffe(args, layers)

    from bhscore.extraction import ExtractionOptions, extract_dnn, extract_features

    options = ExtractionOptions(
        modules=modules,
        weights=args.weights,
        preprocessing=args.preprocessing,
        call=args.call,
        input_size=args.input_size,
        download=args.download,
        device=args.device,
        n_units=args.n_units,
        seed=args.seed,
        index_from=args.index,
        batch_size=args.batch_size,
        overwrite=args.overwrite,
        workers=args.workers,
        progress=not args.no_progress,
    )
    if args.dnn:
        from bhscore.settings import load_settings

        summary = extract_dnn(
            load_settings(args.settings),
            args.dnn,
            args.images,
            args.split,
            options,
            out_dir=args.out,
            layers=layers or None,
            check_stimuli=True,
            allow_missing=args.allow_missing,
            names_file=args.names,
        )
    else:
        summary = extract_features(args.model, _checked_images(args), args.out, layers, options)
    print(summary)
    return 0


def _checked_images(args: argparse.Namespace) -> list[Path]:
    """The stimulus check before extraction (:func:`bhscore.extraction.stimulus_guard.guard_extraction`): the
    image files to extract. Without ``--split`` or ``--names`` only the folder's consistency is checked."""
    from bhscore.extraction.stimulus_guard import guard_extraction
    from bhscore.settings import load_settings
    from bhscore.stimuli_check import expected_names

    settings = load_settings(args.settings) if args.split and not args.names else None
    expected = expected_names(args.split, settings, args.names)
    return guard_extraction(args.images, expected, allow_missing=args.allow_missing, progress=not args.no_progress)


def _caffe(args: argparse.Namespace, layers: list[str]) -> int:
    from bhscore.errors import UserError
    from bhscore.extraction import (
        caffe_docker_command,
        dnn_feature_dirs,
        find_caffe_model,
        image_files,
        index_file_name,
    )
    from bhscore.paths import data_root
    from bhscore.settings import REPO_ROOT, load_settings

    if not args.dnn:
        if not args.caffe_model_dir:
            raise UserError("--backend caffe with --model needs --caffe-model-dir")
        out, others, model_dir = Path(args.out), [], Path(args.caffe_model_dir)
    else:
        settings = load_settings(args.settings)
        d = settings.dnn(args.dnn)
        out, others = dnn_feature_dirs(settings, args.dnn, args.split)
        if args.out:
            out = Path(args.out)
        layers = layers or d.layers
        model_dir = Path(args.caffe_model_dir or data_root(settings) / "caffe_models" / Path(d.dir).name)
    prototxt, caffemodel = find_caffe_model(model_dir)
    if not args.dry_run:  # a dry run extracts nothing: no check
        # the container extracts every image of the folder: with --allow-missing, files the check leaves
        # out (unreadable, ambiguous) must leave the folder
        if len(_checked_images(args)) != len(image_files(args.images)):
            raise UserError(
                f"{args.images}: the Caffe container extracts every image of the folder; move the unreadable "
                "and ambiguous files out of it (list them with: bhscore stimuli check)"
            )
    # the first index file that exists: given ones, then the other stimulus set's
    candidates = [Path(p) for p in args.index]
    if args.n_units is not None:
        candidates += [o / index_file_name(args.n_units) for o in others]
    index_from = next((c for c in candidates if c.exists()), None)
    out.mkdir(parents=True, exist_ok=True)
    cmd = caffe_docker_command(
        repo_root=REPO_ROOT,
        images=args.images,
        out_dir=out,
        prototxt=prototxt,
        caffemodel=caffemodel,
        layers=layers,
        n_units=args.n_units,
        seed=args.seed,
        batch_size=args.batch_size,
        index_from=index_from,
        overwrite=args.overwrite,
        image=args.docker_image,
    )
    print(shlex.join(cmd))
    if args.dry_run:
        return 0
    if shutil.which(cmd[0]) is None:
        raise UserError("docker is not installed or not on PATH; run the printed command where Docker is available")
    return subprocess.run(cmd, check=False).returncode
