"""The ``bhscore`` command: one subcommand per pipeline step.

Subcommands live in :mod:`bhscore.commands`; every module there defines ``register(subparsers)`` which adds
its parser(s) and sets ``func`` (called with the parsed arguments, returns an exit code or None).
Every subcommand takes ``--settings PATH`` (default: ``$BHSCORE_SETTINGS`` or the repository's settings.json).
"""

from __future__ import annotations

import argparse
import importlib
import logging
import pkgutil
import sys

from bhscore import commands
from bhscore.errors import UserError
from bhscore.settings import SettingsError, default_settings_path


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="bhscore",
        description="Brain Hierarchy score (Nonaka et al. 2021): decode, encode, score, plot.",
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="log debug messages")
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument(
        "--settings",
        default=None,
        metavar="PATH",
        help=f"settings file (default: $BHSCORE_SETTINGS or {default_settings_path()})",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for info in sorted(pkgutil.iter_modules(commands.__path__), key=lambda m: m.name):
        module = importlib.import_module(f"{commands.__name__}.{info.name}")
        module.register(sub, common)
    return parser


def main(argv: list[str] | None = None) -> int:
    return dispatch(build_parser(), argv)


def dispatch(parser: argparse.ArgumentParser, argv: list[str] | None = None) -> int:
    """Parse ``argv`` and run the chosen subcommand; errors users can fix are printed without a traceback."""
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO, format="%(levelname)s %(name)s: %(message)s"
    )
    try:
        return int(args.func(args) or 0)
    except (UserError, SettingsError, FileNotFoundError) as e:
        print(f"bhscore {args.command}: error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"bhscore {args.command}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
