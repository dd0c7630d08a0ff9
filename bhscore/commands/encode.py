"""``bhscore encode``: encoding jobs (voxels from DNN units) -> ``encoding_accuracy/`` (see :mod:`bhscore.jobs`)."""

from __future__ import annotations

from bhscore.commands._jobs import register_kind
from bhscore.kinds import ENCODING


def register(subparsers, common) -> None:
    register_kind(
        subparsers,
        common,
        ENCODING,
        help="predict fMRI voxels from DNN units (FastL2LiR) and write encoding accuracy trees",
        description="Run the encoding jobs (DNN x layer x subject x ROI) of the settings that are not done yet: "
        "train on the training samples, predict the image-averaged test responses, write "
        "computed/encoding_accuracy/<parameter set>/ImageNetTest/<dir>/<layer>/<subject>/<roi>/accuracy.mat "
        "with its provenance. Jobs whose inputs or parameters changed are recomputed. Safe to run in several "
        "processes or machines at once (one lock per job) and to interrupt (rerun to finish).",
    )
