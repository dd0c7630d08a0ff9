"""The accuracy files the figure tables read: make's prerequisites of the tables, and what is missing.

Kept free of heavy imports: ``make figures`` lists these files on every run.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from bhscore.paths import Layout


def accuracy_files(settings, dnns: Sequence[str] | None = None) -> list[Path]:
    """Every accuracy file the tables read, from each DNN's source: (kind, DNN, layer, subject, ROI) order."""
    from bhscore.sources import accuracy_paths

    return [path for _, path in accuracy_paths(settings, dnns)]


def missing_accuracies(settings, dnns: Sequence[str] | None = None) -> dict[str, list[Path]]:
    """The accuracy files the tables need that do not exist, by source (``published`` / ``computed``)."""
    from bhscore.sources import COMPUTED, PUBLISHED, accuracy_paths

    out: dict[str, list[Path]] = {PUBLISHED: [], COMPUTED: []}
    for src, path in accuracy_paths(settings, dnns):
        if not path.is_file():
            out[src.source].append(path)
    return out


def describe_missing(missing: dict[str, list[Path]], settings, shown: int = 3) -> str:
    """A message naming the missing accuracy files (a few per source) and how to get them."""
    from bhscore.sources import COMPUTED, PUBLISHED

    layout = Layout.from_settings(settings)
    lines = []
    if missing.get(PUBLISHED):
        lines.append(f"{len(missing[PUBLISHED])} published accuracy file(s) missing under {layout.published_root}, e.g.:")
        lines += [f"  {p}" for p in missing[PUBLISHED][:shown]]
        lines.append("  get them with `make download-accuracy` (nothing computed is touched)")
    if missing.get(COMPUTED):
        lines.append(f"{len(missing[COMPUTED])} computed accuracy file(s) missing under {layout.computed_root}, e.g.:")
        lines += [f"  {p}" for p in missing[COMPUTED][:shown]]
        lines.append("  compute them with `bhscore decode` / `bhscore encode` (`--list` shows what is missing or stale)")
    legacy = layout.legacy_trees()
    if legacy:
        lines.append(f"  results in the pre-0.2 layout ({legacy[0]}) are not read: move them with `bhscore migrate`")
    lines.append("  (analysis.score.accuracy_source, or a DNN's accuracy_source, chooses published or computed)")
    return "\n".join(lines)
