"""``bhscore decode``: decoding jobs (DNN units from fMRI) -> ``decoding_accuracy/`` (see :mod:`bhscore.jobs`)."""

from __future__ import annotations

from bhscore.commands._jobs import register_kind
from bhscore.kinds import DECODING


def register(subparsers, common) -> None:
    register_kind(
        subparsers,
        common,
        DECODING,
        help="decode DNN units from fMRI (FastL2LiR) and write decoding accuracy trees",
        description="Run the decoding jobs (DNN x layer x subject x ROI) of the settings that are not done yet: "
        "train on the training samples, predict the image-averaged test set, write "
        "computed/decoding_accuracy/<parameter set>/ImageNetTest/<dir>/<layer>/<subject>/<roi>/accuracy.mat "
        "with its provenance. Jobs whose inputs or parameters changed are recomputed. Safe to run in several "
        "processes or machines at once (one lock per job) and to interrupt (rerun to finish).",
    )
