"""``bhscore encode``: encoding jobs (voxels from DNN units) -> ``encoding_accuracy/`` (see :mod:`bhscore.jobs`)."""

from __future__ import annotations

from bhscore.commands.decode import add_job_arguments, run_kind


def register(subparsers, common) -> None:
    p = subparsers.add_parser(
        "encode",
        parents=[common],
        help="predict fMRI voxels from DNN units (FastL2LiR) and write encoding accuracy trees",
        description="Run the encoding jobs (DNN x layer x subject x ROI) of the settings that are not done yet: "
        "train on the training samples, predict the image-averaged test responses, write "
        "computed/encoding_accuracy/<parameter set>/ImageNetTest/<dir>/<layer>/<subject>/<roi>/accuracy.mat "
        "with its provenance. Jobs whose inputs or parameters changed are recomputed. Safe to run in several "
        "processes or machines at once (one lock per job) and to interrupt (rerun to finish).",
    )
    add_job_arguments(p, "encoding")
    p.set_defaults(func=lambda args: run_kind(args, "encoding"))
