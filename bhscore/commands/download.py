"""``bhscore download {fmri,features,accuracy,all,features-all}``: verified downloads from figshare (see bhscore.download)."""

from __future__ import annotations

import sys

from bhscore.download import (
    APPROX_SIZE,
    FEATURES_ALL,
    GROUPS,
    STALL_MIN_BYTES,
    TIMEOUT_ENV,
    DownloadOptions,
    download,
    preflight,
    select,
    status,
)
from bhscore.errors import UserError
from bhscore.paths import data_root
from bhscore.settings import load_settings


def register(subparsers, common) -> None:
    sizes = ", ".join(f"{g} ~{APPROX_SIZE[g]}" for g in GROUPS)
    p = subparsers.add_parser(
        "download",
        parents=[common],
        help="download the published data from figshare (verified, resumable, idempotent)",
        description=(
            "Download the paper's data from figshare into the data root (settings.json 'data_root' or "
            f"$BHSCORE_DATA), checked against figshare's MD5 ({sizes}). Complete files are not fetched "
            "again; interrupted downloads resume. 'features-all' (opt-in, not part of 'all'; "
            f"{APPROX_SIZE[FEATURES_ALL]}): every unit of each layer, the paper's encoding inputs, per DNN "
            "(--dnn); its size and the free disk space are checked before it starts."
        ),
    )
    p.add_argument("what", choices=[*GROUPS, "all", FEATURES_ALL], help="what to download")
    p.add_argument("--dnn", nargs="+", default=None, metavar="NAME",
                   help="features-all: these DNNs (settings names; default: all 29, ~800 GB)")  # fmt: skip
    p.add_argument("--subject", nargs="+", default=None, metavar="SUBJECT",
                   help="fMRI of these subjects only (default: sub-01 sub-02 sub-03)")  # fmt: skip
    p.add_argument("--only", nargs="+", default=None, metavar="NAME",
                   help="only these registry entries (names as printed by --list)")  # fmt: skip
    p.add_argument("--list", action="store_true",
                   help="print each file's name, state and destination (no network), then exit")  # fmt: skip
    p.add_argument("--check", action="store_true",
                   help="exit 0 when everything selected is complete, 1 otherwise (no network)")  # fmt: skip
    p.add_argument("--verify", action="store_true",
                   help="also re-check complete files: re-hash them, check unpacked trees file by file")  # fmt: skip
    p.add_argument("--keep-archives", action="store_true", help="keep the zips after unpacking")
    p.add_argument("--timeout", type=float, default=None, metavar="SECONDS",
                   help="bounds connecting, each read, and stalls: a download that receives less than "
                        f"{STALL_MIN_BYTES // 1024} KiB in this many seconds is abandoned and retried "
                        f"(resuming); a slow but steady one is never cut (default: ${TIMEOUT_ENV} or 5)")  # fmt: skip
    p.add_argument("--retries", type=int, default=5, help="retries after a dropped connection (default: 5)")
    p.add_argument("--no-progress", action="store_true", help="no progress bars")
    p.set_defaults(func=handler)


def handler(args) -> int:
    settings = load_settings(args.settings)
    root = data_root(settings)
    dnn_dirs = None
    if args.dnn:
        if args.what != FEATURES_ALL:
            raise UserError(f"--dnn applies to '{FEATURES_ALL}' only, not {args.what!r}")
        dnn_dirs = [settings.dnn(name).dir for name in args.dnn]
    entries = select(args.what, args.subject, args.only, dnn_dirs)
    if args.list or args.check:
        states = status(root, entries)
        if args.list:
            for entry, state in states:
                print(f"{entry.name:34s} {state:10s} {entry.destination(root)}")
        return 0 if all(state == "complete" for _, state in states) or args.list else 1
    options = DownloadOptions(
        connect_timeout=args.timeout,
        retries=args.retries,
        progress=not args.no_progress and sys.stderr.isatty(),
        verify=args.verify,
        keep_archives=args.keep_archives,
    )
    if args.what == FEATURES_ALL:
        plan = preflight(root, entries, options)
        print(plan.describe(), flush=True)
        if not plan.fits:
            raise UserError(plan.refusal())
    outcomes = download(root, args.what, subjects=args.subject, names=args.only, options=options,
                        dnn_dirs=dnn_dirs)  # fmt: skip
    for o in outcomes:
        print(f"{o.entry.name:34s} {o.status:10s} {o.path}")
    return 0
