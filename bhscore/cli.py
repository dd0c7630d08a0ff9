"""The ``bhscore`` command: one subcommand per pipeline step.

Subcommands live in :mod:`bhscore.commands`; every public module there defines ``register(subparsers)`` which adds
its parser(s) and sets ``func`` (called with the parsed arguments, returns an exit code or None).
Every subcommand takes ``--settings PATH`` (default: ``$BHSCORE_SETTINGS`` or the repository's settings.json).

Failures end in one line on stderr, ``bhscore <command>: error: ...``, naming the file and the remedy, and exit
status 2: errors the user can fix (:class:`bhscore.errors.UserError`, a bad settings file), a full disk
(ENOSPC, EDQUOT), a read-only file system or a missing permission (EROFS, EACCES, EPERM), other system
errors on a named file, and running out of memory. Anything else is a bug: ``bhscore <command>: internal
error: <type>: <message> (rerun with --debug for the traceback)``, exit status 1. ``bhscore --debug``
lets every exception through with its traceback. Output piped into a reader that stops early
(``bhscore decode --list | head -1``) ends quietly with status 141 (128 + SIGPIPE), as a shell tool does.
"""

from __future__ import annotations

import argparse
import errno
import importlib
import logging
import os
import pkgutil
import re
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
    parser.add_argument(
        "--debug", action="store_true", help="show the traceback of any error instead of a one-line message"
    )
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument(
        "--settings",
        default=None,
        metavar="PATH",
        help=f"settings file (default: $BHSCORE_SETTINGS or {default_settings_path()})",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for info in sorted(pkgutil.iter_modules(commands.__path__), key=lambda m: m.name):
        if info.name.startswith("_"):  # shared code of several commands, not a command
            continue
        module = importlib.import_module(f"{commands.__name__}.{info.name}")
        module.register(sub, common)
    return parser


def main(argv: list[str] | None = None) -> int:
    return dispatch(build_parser(), argv)


#: Exit status after the reader of our standard output went away (128 + SIGPIPE, as a killed shell tool).
EXIT_BROKEN_PIPE = 141
_NO_SPACE = {errno.ENOSPC, errno.EDQUOT}
_NOT_WRITABLE = {errno.EACCES, errno.EPERM}


def dispatch(parser: argparse.ArgumentParser, argv: list[str] | None = None) -> int:
    """Parse ``argv`` and run the chosen subcommand; failures become one line on stderr (see the module doc)."""
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO, format="%(levelname)s %(name)s: %(message)s"
    )
    command = args.command
    debug = getattr(args, "debug", False)  # parsers built elsewhere (commands/figures.py) may lack --debug
    try:
        try:
            status = int(args.func(args) or 0)
            sys.stdout.flush()  # a closed pipe shows here, not at interpreter exit
            return status
        except BrokenPipeError:
            raise
        except Exception as e:
            if debug:
                raise
            return _report(args, e)
        except KeyboardInterrupt:
            if debug:
                raise
            print(f"bhscore {command}: interrupted", file=sys.stderr)
            return 130
    except BrokenPipeError:
        return _stdout_gone()


def _stdout_gone() -> int:
    """The reader of stdout has exited: send further output to devnull (the Python docs' recipe for SIGPIPE)."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    except (OSError, ValueError):  # stdout is not a real file (replaced by a test harness)
        pass
    return EXIT_BROKEN_PIPE


def _report(args: argparse.Namespace, e: Exception) -> int:
    """Print the one-line message of ``e`` on stderr; return the exit status."""
    command = args.command
    msg = _user_message(args, e)
    if msg is None:
        print(
            f"bhscore {command}: internal error: {type(e).__name__}: {e} (rerun with --debug for the traceback)",
            file=sys.stderr,
        )
        return 1
    print(f"bhscore {command}: error: {msg}", file=sys.stderr)
    return 2


def _user_message(args: argparse.Namespace, e: Exception) -> str | None:
    """What to tell the user about ``e``, or None when it is a bug (an internal error)."""
    if isinstance(e, (UserError, SettingsError)):
        return str(e)
    if isinstance(e, MemoryError):
        detail = f" ({e})" if str(e) else ""
        return (
            f"out of memory in {args.command}{detail}; lower analysis.score.n_bootstrap in the settings file or "
            "use fewer workers"
        )
    if isinstance(e, OSError):
        return _os_message(e, args)
    return None


def _os_message(e: OSError, args: argparse.Namespace) -> str | None:
    """One line naming the path and the remedy for a system error, or None for one we cannot explain."""
    where = _os_paths(e)
    code = e.errno
    text = str(e)
    if code in _NO_SPACE or "No space left on device" in text or "Disk quota exceeded" in text:
        place = where or _data_root_of(args)
        return (
            f"disk full (or quota exceeded) writing {place}; free space or set BHSCORE_DATA "
            "(and BHSCORE_RESULTS) to another disk"
        )
    if code == errno.EROFS or "Read-only file system" in text:
        return (
            f"read-only file system: cannot write {where or 'the output'}; set BHSCORE_DATA / BHSCORE_RESULTS "
            "to a writable disk"
        )
    if code in _NOT_WRITABLE or "Permission denied" in text or "Operation not permitted" in text:
        return (
            f"permission denied: {where or 'a file or directory'}; fix its permissions (or set BHSCORE_DATA / "
            "BHSCORE_RESULTS to a directory you can write)"
        )
    if isinstance(e, FileNotFoundError):
        return f"no such file or directory: {where}" if where else str(e)
    if where and e.strerror:
        return f"{e.strerror}: {where}"
    return None


def _data_root_of(args: argparse.Namespace) -> str:
    """Best effort, for a disk-full error that names no file: where outputs go."""
    try:
        from bhscore.paths import data_root
        from bhscore.settings import load_settings

        return f"under the data root {data_root(load_settings(getattr(args, 'settings', None)))}"
    except Exception:  # noqa: BLE001 - only words a message
        return "the output files"


def _os_paths(e: OSError) -> str:
    """The path(s) of a system error; h5py puts the file name only into its message."""
    names = [os.fsdecode(n) for n in (e.filename, e.filename2) if isinstance(n, (str, bytes, os.PathLike))]
    if not names and (m := re.search(r"filename = '([^']+)'", str(e))):
        names = [m.group(1)]
    return " -> ".join(names)


if __name__ == "__main__":
    sys.exit(main())
