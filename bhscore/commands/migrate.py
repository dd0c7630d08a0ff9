"""``bhscore migrate``: move results of the pre-0.2 layout into published/ and computed/ (see :mod:`bhscore.migrate`)."""

from __future__ import annotations

import argparse


def register(subparsers, common) -> None:
    p = subparsers.add_parser(
        "migrate",
        parents=[common],
        help="move accuracies of the old layout (<data root>/decoding_accuracy, ...) into published/ and computed/",
        description="bhscore 0.1 kept downloaded and computed accuracies together at the data root. This moves "
        "downloaded files (recognised by the download manifest) to published/ and computed ones to "
        "computed/<kind>_accuracy/unverified-<date>/ (kept, never used: their parameters were not recorded), or "
        "with --adopt into the current settings' parameter set with an 'adopted' provenance record. Nothing is "
        "overwritten or deleted.",
    )
    p.add_argument("--adopt", action="store_true",
                   help="vouch that the old computed results used the current settings' parameters")  # fmt: skip
    p.add_argument("--dry-run", action="store_true", help="only show what would move")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from bhscore.migrate import migrate
    from bhscore.paths import Layout
    from bhscore.settings import load_settings

    settings = load_settings(args.settings)
    layout = Layout.from_settings(settings)
    if not layout.legacy_trees():
        print(f"nothing to migrate: {layout.root} has no results in the pre-0.2 layout")
        return 0
    report = migrate(settings, adopt=args.adopt, dry_run=args.dry_run)
    print(("would move (dry run):\n" if args.dry_run else "") + report.summary())
    return 0
