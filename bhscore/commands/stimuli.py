"""``bhscore stimuli check DIR --split ImageNetTraining|ImageNetTest``: is a folder of stimulus images complete?

Compares the folder with the image names of the data (a ``--names`` file, else the split's fMRI file, else,
for the test set, the shipped list of the 50 test images) and opens every image. Reports missing, extra
and ambiguous files (one name, several files), unreadable images and non-RGB modes (converted at
extraction). Exit status 0 when complete, 2 when images are missing, ambiguous or unreadable.
``bhscore extract`` runs the same check first.
"""

from __future__ import annotations

import argparse
import json


def register(subparsers: argparse._SubParsersAction, common: argparse.ArgumentParser) -> None:
    from bhscore.paths import SPLITS

    p = subparsers.add_parser(
        "stimuli",
        help="check a folder of stimulus images before extraction (stimuli check DIR --split ...)",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    sub = p.add_subparsers(dest="action", metavar="ACTION", required=True)
    c = sub.add_parser(
        "check",
        parents=[common],
        help="compare a folder with the image names of the data; open every image",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    c.add_argument("folder", metavar="DIR", help="folder of stimulus images (<name>.JPEG)")
    c.add_argument("--split", choices=SPLITS, help="stimulus set whose names the folder must hold")
    c.add_argument("--names", metavar="FILE", help="text file of the expected names, one per line (overrides the fMRI names)")
    c.add_argument("--names-only", action="store_true", help="compare names only; do not open the images")
    c.add_argument("--json", action="store_true", help="print the report as JSON")
    c.add_argument("--workers", type=int, default=None, help="image-reading threads (default min(8, CPUs))")
    c.add_argument("--no-progress", action="store_true", help="no progress bar")
    c.set_defaults(func=check)


def check(args: argparse.Namespace) -> int:
    from bhscore.errors import UserError
    from bhscore.settings import load_settings
    from bhscore.stimuli_check import check_stimuli, expected_names

    if args.split is None and args.names is None:
        raise UserError("stimuli check needs --split ImageNetTraining|ImageNetTest or --names FILE")
    settings = load_settings(args.settings) if args.names is None else None
    expected = expected_names(args.split, settings, args.names)
    report = check_stimuli(
        args.folder, expected, read_images=not args.names_only, workers=args.workers, progress=not args.no_progress
    )
    print(json.dumps(report.as_dict(), indent=2) if args.json else report.summary())
    return 0 if report.complete else 2
