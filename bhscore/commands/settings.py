"""``bhscore settings``: check a settings file, list its DNNs, export the JSON schema."""

from __future__ import annotations

import argparse
import json
from pathlib import Path


def register(subparsers, common) -> None:
    p = subparsers.add_parser(
        "settings",
        parents=[common],
        help="validate the settings file and list its DNNs; --schema writes settings.schema.json",
    )
    p.add_argument("--schema", type=Path, metavar="PATH", help="write the JSON schema of settings files to PATH")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from bhscore.atomic import atomic_write_text
    from bhscore.paths import data_root
    from bhscore.settings import json_schema, load_settings

    if args.schema:
        atomic_write_text(args.schema, json.dumps(json_schema(), indent=2) + "\n")
        print(f"wrote {args.schema}")
        return 0
    s = load_settings(args.settings)
    print(f"{s.source}: valid")
    print(f"data root: {data_root(s)}")
    print(f"subjects: {', '.join(s.subjects)}; ROIs (hierarchy order): {', '.join(s.rois)}")
    print(f"{len(s.dnns)} DNNs, {sum(len(d.layers) for d in s.dnns.values())} layers:")
    for name, d in s.dnns.items():
        print(f"  {name:<24} {d.dir:<34} {len(d.layers):>3} layers")
    return 0
