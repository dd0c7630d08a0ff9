"""The figure tables on disk: where each lives under the figures directory, writing, reading.

:func:`write_tables` writes what :func:`bhscore.figures.tables.compute_tables` computed (``bhscore
figure-tables``, ``make figure-tables``); the notebooks read it back with :func:`load_tables`, which never
computes anything: missing tables are an error that names the command making them.
"""

from __future__ import annotations

import json
import os
import warnings
from dataclasses import fields
from pathlib import Path
from typing import TYPE_CHECKING

from bhscore.errors import MissingDataError, UserError
from bhscore.figures.tables import FigureTables

if TYPE_CHECKING:
    import pandas as pd

#: The score table, relative to the figures directory.
SCORE_TABLE = "bhscores.csv"
#: The score table's provenance record, beside it.
PROVENANCE_FILE = "bhscores.provenance.json"

#: Where each table lives, relative to the figures directory (the score table last).
TABLE_FILES = {
    "ranking": "tables/fig3a_ranking.csv",
    "correlations": "tables/correlations.csv",
    "top_roi_fractions": "tables/figS1_top_roi_fractions.csv",
    "filter_comparison": "tables/fig_filter_comparison.csv",
    "accuracy_profiles": "tables/fig_accuracy_profiles.csv",
    "dnn_stats": "tables/dnn_stats.csv",
    "pairwise": "tables/pairwise.csv",
    "scores": SCORE_TABLE,
}


class MissingTablesError(UserError, FileNotFoundError):
    """Figure tables are missing from a figures directory; the message lists them and the command making them.

    Parameters
    ----------
    tables_dir : path-like
        The figures directory.
    missing : sequence of str
        The missing files, relative to ``tables_dir``.
    settings_path : path-like, optional
        The settings the tables are for (passed as SETTINGS in the command).
    """

    def __init__(self, tables_dir: str | os.PathLike, missing, settings_path: str | os.PathLike | None = None):
        self.path, self.missing = Path(tables_dir), list(missing)
        settings = f"SETTINGS={settings_path} " if settings_path is not None else ""
        option = f"--settings {settings_path} " if settings_path is not None else ""
        super().__init__(
            f"figure table(s) missing in {self.path}: {', '.join(self.missing)}\n"
            f"  make them with: make figure-tables {settings}FIGURES={self.path}\n"
            f"  (or: bhscore figure-tables {option}--out {self.path}); the notebooks only read the tables"
        )


def write_tables(tables: FigureTables, out_dir: str | os.PathLike) -> list[Path]:
    """Write every table under ``out_dir`` (atomically each; the provenance record first, the score table last).

    Returns
    -------
    list of Path
        The files written, in writing order.
    """
    from bhscore.atomic import atomic_write_text

    out_dir = Path(out_dir)
    written = []
    provenance = tables.scores.attrs.get("provenance")
    if provenance is not None:  # what the scores were computed from, beside bhscores.csv
        path = out_dir / PROVENANCE_FILE
        atomic_write_text(path, json.dumps(provenance, indent=1) + "\n")
        written.append(path)
    for f in fields(FigureTables):  # 'scores' is the last field
        path = out_dir / TABLE_FILES[f.name]
        atomic_write_text(path, getattr(tables, f.name).to_csv(index=False))
        written.append(path)
    return written


def read_csv(path: str | os.PathLike) -> pd.DataFrame:
    """Read a table written by :func:`write_tables` (only empty fields are missing values: a layer may be 'NA')."""
    import pandas as pd

    return pd.read_csv(path, keep_default_na=False, na_values=[""])


def missing_tables(out_dir: str | os.PathLike) -> list[str]:
    """The tables absent from ``out_dir``, relative to it (empty: every table is there)."""
    return [rel for rel in TABLE_FILES.values() if not (Path(out_dir) / rel).is_file()]


def tables_complete(out_dir: str | os.PathLike) -> bool:
    """Whether every table exists under ``out_dir``."""
    return not missing_tables(out_dir)


def read_tables(out_dir: str | os.PathLike) -> FigureTables:
    """Read the tables written by :func:`write_tables`.

    Raises
    ------
    MissingDataError
        A table is missing (the first one is named, with the command making them).
    """
    out_dir = Path(out_dir)
    frames = {}
    for name, rel in TABLE_FILES.items():
        path = out_dir / rel
        if not path.is_file():
            raise MissingDataError(
                path, how=f"bhscore figure-tables --out {out_dir} (or make figures)", what="figure table"
            )
        frames[name] = read_csv(path)
    return FigureTables(**frames)


def load_tables(tables_dir: str | os.PathLike, settings_path: str | os.PathLike | None = None) -> FigureTables:
    """The figure tables of ``tables_dir``, as a notebook reads them: read only, never computed.

    Parameters
    ----------
    tables_dir : path-like
        The figures directory holding ``bhscores.csv`` and ``tables/``.
    settings_path : path-like, optional
        The settings the figure is drawn for: named in the error when tables are missing, and a warning is
        given if the tables' DNNs differ from the settings'.

    Raises
    ------
    MissingTablesError
        Any table is missing; the message lists them and names ``make figure-tables`` with the SETTINGS and
        FIGURES to pass.
    """
    tables_dir = Path(tables_dir).resolve()
    settings_path = Path(settings_path).resolve() if settings_path is not None else None
    missing = missing_tables(tables_dir)
    if missing:
        raise MissingTablesError(tables_dir, missing, settings_path)
    tables = read_tables(tables_dir)
    if settings_path is not None:
        _warn_if_other_dnns(tables, tables_dir, settings_path)
    return tables


def _warn_if_other_dnns(tables: FigureTables, tables_dir: Path, settings_path: Path) -> None:
    """Warn when the tables were computed for other DNNs than the settings list."""
    from bhscore.settings import load_settings

    names = list(load_settings(settings_path).dnns)
    have = list(tables.scores["dnn"])
    if have != names:
        warnings.warn(
            f"the tables in {tables_dir} are for DNNs {have}, the settings {settings_path} list {names}: "
            f"rebuild them with `make figure-tables SETTINGS={settings_path} FIGURES={tables_dir}`",
            UserWarning,
            stacklevel=3,
        )
