"""What ``bhscore decode`` and ``bhscore encode`` share: job options, ``--list``, the run, the original entry scripts.

The two commands differ only by their :class:`bhscore.kinds.Kind` (see :mod:`bhscore.jobs`).
"""

from __future__ import annotations

import argparse
import sys

from bhscore.kinds import kind_of


def add_job_arguments(p: argparse.ArgumentParser, kind: str) -> None:
    """Arguments shared by ``bhscore decode`` and ``bhscore encode``."""
    p.add_argument(
        "--dnn", action="append", metavar="NAME", help="a DNN of the settings (repeatable; default: all)"
    )
    p.add_argument("--layer", action="append", metavar="L", help="only this layer (repeatable)")
    p.add_argument("--subject", action="append", metavar="S", help="only this subject (repeatable)")
    p.add_argument("--roi", action="append", metavar="R", help="only this ROI (repeatable)")
    p.add_argument(
        "--solver",
        choices=("batched", "fastl2lir", "ours"),
        default=None,
        help="override analysis.<kind>.solver: 'batched' (bhscore's FastL2LiR, CPU/CUDA) or 'fastl2lir' (the "
        "reference package); another solver is another parameter set ('ours' = 'batched')",
    )
    p.add_argument(
        "--device", default="auto", help="'auto' (CUDA when available), 'cpu', 'cuda', 'cuda:1', ..."
    )
    p.add_argument(
        "--shard",
        metavar="I/N",
        help="run only the I-th (0-based) of N slices of the job list (batch arrays)",
    )
    p.add_argument("--threads", type=int, metavar="N", help="CPU threads for torch (default: torch's choice)")
    p.add_argument("--save-model", action="store_true", help="also write the trained models (bdmodel layout)")
    if kind_of(kind).saves_predictions:
        p.add_argument(
            "--save-features",
            action="store_true",
            help="also write the decoded test features (one .mat per image)",
        )
    p.add_argument(
        "--list",
        action="store_true",
        help="list the selected jobs and their state (done / stale and why / missing / invalid); run nothing",
    )
    p.add_argument(
        "--force",
        action="store_true",
        help="recompute every selected job, even those done (their files are moved to computed/superseded/)",
    )
    p.add_argument("--no-progress", action="store_true", help="no progress bar; one log line per finished job")


def register_kind(subparsers, common, kind: str, help: str, description: str) -> None:
    """Add the ``bhscore decode`` or ``bhscore encode`` subcommand (the verb of ``kind``)."""
    p = subparsers.add_parser(kind_of(kind).command, parents=[common], help=help, description=description)
    add_job_arguments(p, kind)
    p.set_defaults(func=lambda args: run_kind(args, kind))


def _list_jobs(args: argparse.Namespace, settings, kind: str, selected, solver) -> int:
    """``--list``: one line per job (state first), then the counts per state."""
    from bhscore import jobs
    from bhscore.paths import Layout
    from bhscore.provenance import ParamSet, known_param_sets

    layout = Layout.from_settings(settings)
    param_set = ParamSet.from_settings(settings, kind, solver=solver)
    outputs = jobs.Outputs(predictions=getattr(args, "save_features", False), model=args.save_model)
    statuses = jobs.job_statuses(settings, selected, param_set, outputs)
    others = {k: v for k, v in known_param_sets(layout, kind).items() if k != param_set.id}
    print(f"{kind}: parameter set {param_set.id} ({param_set.summary()})")
    print(f"  results: {param_set.directory(layout)}")
    for job, status in statuses.items():
        reason = status.reason
        if status.state == jobs.MISSING and not reason and others:
            have = [k for k in others
                    if jobs.JobFiles(layout, settings, job, ParamSet(others[k])).accuracy.exists()]  # fmt: skip
            if have:
                reason = f"in parameter set {have[0]}: {param_set.changes_from(others[have[0]])}"
        print(f"{status.state:<8} {job}" + (f"  ({reason})" if reason else ""))
    counts = {state: sum(s.state == state for s in statuses.values()) for state in jobs.STATES}
    print(", ".join(f"{n} {state}" for state, n in counts.items()) + f" (of {len(selected)})")
    for set_id, params in others.items():
        print(f"other parameter set {set_id}: {param_set.changes_from(params)}")
    return 0


def run_kind(args: argparse.Namespace, kind: str) -> int:
    import signal

    from bhscore import jobs
    from bhscore.paths import Layout
    from bhscore.settings import load_settings

    settings = load_settings(args.settings)
    solver = "batched" if args.solver == "ours" else args.solver
    selection = jobs.JobSelection.from_args(args, kind)
    legacy = Layout.from_settings(settings).legacy_trees()
    if legacy:
        print(f"note: results in the pre-0.2 layout at {legacy[0]} are not used; move them with "
              "`bhscore migrate` (see README, 'Where results live')", file=sys.stderr)  # fmt: skip
    if args.list:
        return _list_jobs(args, settings, kind, selection.jobs(settings), solver)
    if args.threads:
        import torch

        torch.set_num_threads(args.threads)

    def _terminate(signum, frame):  # SIGTERM (batch systems, kill): unwind, so locks and temp files go
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, _terminate)
    report = jobs.run_selection(
        settings,
        selection,
        solver=solver,
        device=None if args.device == "auto" else args.device,
        save_predictions=getattr(args, "save_features", False),
        save_model=args.save_model,
        progress=not args.no_progress,
        force=args.force,
        log_jobs=args.no_progress,
    )
    print(report.summary(kind))
    if report.locked:
        print(f"{len(report.locked)} job(s) were running in other workers; rerun to check that they finished")
    return 0


def legacy_main(kind: str, argv: list[str] | None = None, extra: tuple[str, ...] = ()) -> int:
    """The original entry scripts (``--net <dir>``) as thin wrappers around ``bhscore decode``/``encode``.

    ``--net`` takes a DNN directory of the settings (``caffe/AlexNet``) or a DNN name (repeatable; default:
    every DNN); every other argument is passed to the command, after ``extra``.
    """
    import argparse
    import sys

    from bhscore.cli import main
    from bhscore.errors import UserError
    from bhscore.settings import load_settings

    p = argparse.ArgumentParser(add_help=False)
    p.add_argument("--net", action="append", default=[])
    p.add_argument("--settings")
    p.add_argument("-h", "--help", action="store_true")
    known, rest = p.parse_known_args(sys.argv[1:] if argv is None else argv)
    command = kind_of(kind).command
    if known.help:
        print(f"usage: {sys.argv[0]} [--net DIR_OR_NAME ...] [--settings PATH] [bhscore {command} options]\n")
        return main([command, "--help"])
    settings_args = ["--settings", known.settings] if known.settings else []
    dnn_args: list[str] = []
    if known.net:
        try:
            settings = load_settings(known.settings)
        except Exception as e:
            print(f"error: {e}", file=sys.stderr)
            return 2
        by_dir = {d.dir: name for name, d in settings.dnns.items()}
        for net in known.net:
            name = net if net in settings.dnns else by_dir.get(net.rstrip("/"))
            if name is None:
                err = UserError(f"--net {net!r} is neither a DNN name nor a DNN dir of the settings; dirs: "
                                + ", ".join(sorted(by_dir)))  # fmt: skip
                print(f"error: {err}", file=sys.stderr)
                return 2
            dnn_args += ["--dnn", name]
    return main([command, *settings_args, *dnn_args, *extra, *rest])
