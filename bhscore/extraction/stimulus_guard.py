"""The stimulus check before an extraction: refuse an incomplete folder unless ``allow_missing``.

Used by ``bhscore extract`` and by :func:`~bhscore.extraction.from_settings.extract_dnn` with ``check_stimuli``.

The check itself and its report are :mod:`bhscore.stimuli_check`; this module is the extraction's policy on it.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

from bhscore.errors import UserError
from bhscore.stimuli_check import ExpectedNames, StimulusReport, check_stimuli

log = logging.getLogger(__name__)


def guard_extraction(
    images: str | os.PathLike,
    expected: ExpectedNames,
    *,
    allow_missing: bool = False,
    workers: int | None = None,
    progress: bool = True,
) -> list[Path]:
    """Check a folder before extraction; refuse an incomplete one unless ``allow_missing``.

    Compares the names and opens every image (:func:`bhscore.stimuli_check.check_stimuli`); non-RGB modes and extra files are
    logged only.

    Parameters
    ----------
    images : path-like
        The stimulus folder.
    expected : ExpectedNames
        :func:`bhscore.stimuli_check.expected_names` of the split.
    allow_missing : bool
        Warn instead of refusing, and return what can be extracted (readable files, one per name).

    Returns
    -------
    list of Path
        The image files to extract, sorted by name.

    Raises
    ------
    UserError
        The folder is incomplete (and not ``allow_missing``), or nothing in it can be extracted.
    """
    report = check_stimuli(images, expected, workers=workers, progress=progress)
    _log_notes(report)
    if report.complete:
        return report.files
    problem = _incomplete_problem(report)
    check = f"bhscore stimuli check {report.folder}" + (f" --split {expected.split}" if expected.split else "")
    usable = report.usable
    if not allow_missing:
        raise UserError(
            f"{problem}; {report.remedy()}; list them all with '{check}', "
            "or pass --allow-missing to extract the readable images there are"
        )
    if not usable:
        raise UserError(f"{problem}; nothing to extract; {report.remedy()}")
    log.warning("%s; extracting the %d readable image(s) there are (--allow-missing)", problem, len(usable))
    return usable


def _log_notes(report: StimulusReport) -> None:
    """Log what an extraction accepts: no names to compare with, extra files, non-RGB modes."""
    expected = report.expected
    what = f"{expected.split} " if expected.split else ""
    if expected.names is None:
        log.info("stimulus check of %s: %s", report.folder, expected.source)
    if report.extra:
        log.info("%d image file(s) in %s are not %simages of the data (extracted anyway): %s",
                 len(report.extra), report.folder, what, ", ".join(report.extra[:5]))  # fmt: skip
    if report.modes:
        desc = ", ".join(f"{len(v)} {k}" for k, v in report.modes.items())
        log.info("non-RGB images in %s (%s): converted to RGB at extraction", report.folder, desc)


def _incomplete_problem(report: StimulusReport) -> str:
    """What is wrong with an incomplete folder, in one line: counts, how many images and a few examples."""
    expected = report.expected
    examples = [*report.missing[:3], *report.ambiguous, *report.unreadable][:5]
    problem = f"{report.folder}: {report.problems()}"
    if expected.names is not None:
        what = f"{expected.split} " if expected.split else ""
        problem += f" of the {len(expected.names)} {what}images (names from {expected.source})"
    if examples:
        problem += f", e.g. {', '.join(examples)}"
    return problem
