"""Tidy tables behind every figure, and the helpers that build the figures from them.

The notebooks in ``analysis/`` (one per figure, run by papermill through ``make figures`` or
``bhscore figure NAME``) only load these tables and plot. Every number they show is computed here from the
accuracy trees with the functions of :mod:`bhscore.score`; each DNN's accuracy files are read once.

Files written by :func:`write_tables` into the figures directory::

    bhscores.csv                         the score table (columns bhscore.score.TABLE_COLUMNS), settings' filter
    bhscores.provenance.json             what the scores were computed from (bhscore.score.table_provenance)
    tables/fig3a_ranking.csv             dnn, rank, component, score, ci_low, ci_high
    tables/correlations.csv              x, y, rho, p_value, n (Spearman over DNNs)
    tables/figS1_top_roi_fractions.csv   dnn, layer_index, layer, depth, roi_index, roi, count, n_kept, n_items,
                                         fraction, p_method
    tables/fig_filter_comparison.csv     dnn, component, p_method, score, rank, n_kept, n_items
    tables/fig_accuracy_profiles.csv     dnn, kind, layer_index, layer, depth, roi_index, roi, mean_accuracy
    tables/dnn_stats.csv                 per DNN: per-subject scores, their s.d., layer-order null p-values,
                                         compact letters (bhscore.stats.dnn_stats_columns)
    tables/pairwise.csv                  every pair of DNNs: difference, CI, p, Holm (bhscore.stats.pairwise_table)

Every table with a ``dnn`` column also has each DNN's accuracy sources and parameter sets
(:data:`SOURCE_COLUMNS`).

``bhscores.csv`` is written last, so its presence means the whole set is complete.

Examples
--------
>>> from bhscore.settings import load_settings
>>> from bhscore import figures
>>> tables = figures.compute_tables(load_settings())        # doctest: +SKIP
>>> figures.write_tables(tables, "figures")                 # doctest: +SKIP
>>> figures.run_notebook("fig3b_imagenet", "settings.json", "figures")  # doctest: +SKIP
"""

from __future__ import annotations

import contextlib
import json
import os
import sys
import warnings
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from bhscore.errors import MissingDataError, UserError
from bhscore.paths import DATA_ENV, Layout
from bhscore.settings import REPO_ROOT

if TYPE_CHECKING:
    import pandas as pd

# pandas, scipy, bhscore.score and bhscore.formats are imported where used: listing the accuracy files (make
# does it on every `make figures`) stays fast.

#: Every figure: notebook ``analysis/<name>.ipynb`` writes ``<name>.pdf`` and ``<name>.png``.
FIGURES = {
    "fig3a_ranking": "Figure 3A: the DNNs ranked by averaged BH score (bars), with the decoding- and "
    "encoding-based components (markers) and bootstrap confidence intervals (error bars).",
    "fig3b_imagenet": "Figure 3B: averaged BH score vs ImageNet top-1 accuracy, with Spearman's rho.",
    "figS1_top_roi_histograms": "Figure S1: for every DNN and every layer, the fractions of significant units "
    "whose best-decoding ROI is V1..HVC, titled with the DNN's scores (PDF: one page per DNN; PNG: all DNNs "
    "as stacked bars).",
    "fig_decoding_vs_encoding": "Decoding-based vs encoding-based BH score of every DNN, with Spearman's rho.",
    "fig_filter_comparison": "Legacy (published) vs corrected significance filter: each DNN's score and rank "
    "under both, and how the ranking changes.",
    "fig_accuracy_profiles": "For every DNN, a layer x ROI heatmap of the mean decoding accuracy.",
    "fig_pairwise": "Which DNNs differ? Paired bootstrap differences of the averaged BH score for every pair "
    "(Holm-adjusted), and the ranking with compact letters: DNNs sharing a letter are not distinguishable.",
    "fig_subject_scores": "Each subject's BH scores next to the pooled score, per DNN: do the subjects agree?",
}

#: The score table, relative to the figures directory.
SCORE_TABLE = "bhscores.csv"
#: Score components in display order.
COMPONENTS = ("averaged", "decoding", "encoding")
#: The notebooks.
NOTEBOOK_DIR = REPO_ROOT / "analysis"
#: Executed notebooks, relative to the figures directory.
EXECUTED_DIR = "notebooks"
#: The Jupyter kernel the notebooks run in (the project's environment: ``ipykernel install --sys-prefix``).
KERNEL_NAME = "python3"

_P_METHODS = ("legacy", "corrected")


# -------------------------------------------------------------------------------------------------
# the tables
# -------------------------------------------------------------------------------------------------


@dataclass
class FigureTables:
    """The tables of every figure (pandas DataFrames; see the module docstring for the columns)."""

    ranking: pd.DataFrame
    correlations: pd.DataFrame
    top_roi_fractions: pd.DataFrame
    filter_comparison: pd.DataFrame
    accuracy_profiles: pd.DataFrame
    dnn_stats: pd.DataFrame
    pairwise: pd.DataFrame
    scores: pd.DataFrame  # last: written last

    def correlation(self, x: str, y: str) -> dict:
        """The row of :attr:`correlations` for ``(x, y)`` as a dict (rho, p_value, n)."""
        hit = self.correlations[(self.correlations["x"] == x) & (self.correlations["y"] == y)]
        if hit.empty:
            raise KeyError(
                f"no correlation of {x!r} with {y!r}; have {list(zip(self.correlations.x, self.correlations.y, strict=True))}"
            )
        return hit.iloc[0].to_dict()


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


@dataclass
class DNNFigureData:
    """What the figures need from one DNN's accuracy trees.

    Attributes
    ----------
    row : dict
        Its row of the score table (the settings' significance filter, with bootstrap CIs).
    other_row : dict
        Its row under the other filter (no bootstrap).
    counts : ndarray of shape (n_layers, n_rois)
        Kept units per (layer, top ROI), all layers, settings' filter (:func:`bhscore.score.layer_top_counts`).
    n_items : ndarray of shape (n_layers,)
        Units per layer, all subjects.
    profile : ndarray of shape (n_layers, n_rois)
        Mean decoding accuracy (:func:`bhscore.score.mean_accuracy_profile`).
    """

    row: dict
    other_row: dict
    counts: np.ndarray
    n_items: np.ndarray
    profile: np.ndarray
    sources: dict = field(default_factory=dict)
    tops: object = None  # bhscore.stats.ItemTops: per-subject item tops for the statistics


def other_p_method(method: str) -> str:
    """'corrected' for 'legacy' and vice versa."""
    if method not in _P_METHODS:
        raise ValueError(f"p_method must be one of {_P_METHODS}, got {method!r}")
    return _P_METHODS[1 - _P_METHODS.index(method)]


def dnn_figure_data(settings, dnn: str) -> DNNFigureData:
    """Scores under both filters, top-ROI counts and the accuracy profile of one DNN, reading its trees once.

    The score row equals ``bhscore.score.score_table(settings, [dnn])``'s row.
    """
    from bhscore import score as bhs
    from bhscore import stats

    tree = bhs.AccuracyTree(settings, dnn)
    # each subject's levels, every file read once; pooled they are tree.decoding_levels() / encoding_levels()
    dec_by_subject = tree.levels_by_subject("decoding")
    enc_by_subject = tree.levels_by_subject("encoding", settings.analysis.score.encoding_voxel_subsample)
    dec, enc = stats.pool_subjects(dec_by_subject), stats.pool_subjects(enc_by_subject)
    n = tree.n_samples
    method = settings.analysis.score.p_method
    other = other_p_method(method)
    sources = tree.source_record()
    main = bhs.score_from_levels(dnn, dec, enc, n, bhs.ScoreOptions.from_settings(settings, p_method=method))
    main = replace(main, sources=sources)
    alt = bhs.score_from_levels(
        dnn, dec, enc, n, bhs.ScoreOptions.from_settings(settings, p_method=other, n_bootstrap=0)
    )
    alt = replace(alt, sources=sources)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN (layer, ROI): NaN mean
        profile = np.stack([np.nanmean(level, axis=1) for level in dec])
    return DNNFigureData(
        row=bhs.score_row(settings, main, method),
        other_row=bhs.score_row(settings, alt, other),
        counts=main.decoding_counts,
        n_items=main.decoding_n_items,
        profile=profile,
        sources=sources,
        tops=stats.item_tops(dnn, dec_by_subject, enc_by_subject, n, method, settings.analysis.score.p_threshold),
    )


def compute_tables(settings, dnns: Sequence[str] | None = None, progress: bool = True) -> FigureTables:
    """Every figure's table from the accuracy trees of ``settings``.

    Parameters
    ----------
    settings : bhscore.settings.Settings
    dnns : sequence of str, optional
        Default: every DNN of the settings, in settings order.
    progress : bool
        Show a progress bar over DNNs.

    Returns
    -------
    FigureTables
    """
    import pandas as pd
    from tqdm.auto import tqdm

    from bhscore import score as bhs
    from bhscore import stats

    names = list(settings.dnns) if dnns is None else list(dnns)
    for name in names:
        settings.dnn(name)  # an unknown name fails here, listing the valid ones
    data = {}
    for name in tqdm(names, desc="figure tables", unit="DNN", disable=not progress or len(names) < 2):
        data[name] = dnn_figure_data(settings, name)
    scores = pd.DataFrame([d.row for d in data.values()], columns=bhs.TABLE_COLUMNS)
    other = pd.DataFrame([d.other_row for d in data.values()], columns=bhs.TABLE_COLUMNS)
    scores.attrs["provenance"] = bhs.table_provenance(settings, {name: d.sources for name, d in data.items()})
    filt = filter_comparison_table(scores, other)
    # per-subject scores, layer-order nulls, every pair's paired comparison (bhscore.stats)
    dnn_stats = stats.compute_stats([d.tops for d in data.values()], bhs.ScoreOptions.from_settings(settings))
    return FigureTables(
        ranking=with_sources(ranking_table(scores), scores),
        correlations=correlation_table(scores, filt),
        top_roi_fractions=with_sources(
            top_roi_fraction_table(settings, data, scores["p_method"].iloc[0] if len(scores) else ""), scores
        ),
        filter_comparison=with_sources(filt, scores),
        accuracy_profiles=with_sources(accuracy_profile_table(settings, data), scores),
        dnn_stats=dnn_stats.dnn_stats,
        pairwise=dnn_stats.pairwise,
        scores=scores,
    )


SOURCE_COLUMNS = ["decoding_source", "decoding_params", "encoding_source", "encoding_params"]


def with_sources(table: pd.DataFrame, scores: pd.DataFrame) -> pd.DataFrame:
    """``table`` (one or more rows per DNN) with each DNN's accuracy sources and parameter sets appended."""
    if table.empty or "dnn" not in table:
        return table
    keep = [c for c in SOURCE_COLUMNS if c not in table]
    return table.merge(scores[["dnn", *keep]], on="dnn", how="left", validate="many_to_one")


def _rank(values: pd.Series) -> pd.Series:
    """1 = the highest score; ties share the best rank; NaN scores get no rank."""
    return values.rank(ascending=False, method="min")


def ranking_table(scores: pd.DataFrame) -> pd.DataFrame:
    """Figure 3A: one row per (DNN, component), DNNs ordered by averaged score (rank 1 = highest).

    Columns: dnn, rank, component ('averaged', 'decoding', 'encoding'), score, ci_low, ci_high.
    """
    import pandas as pd

    rank = _rank(scores["averaged"])
    rows = []
    for i in np.argsort(rank.to_numpy(), kind="stable"):  # NaN ranks last
        r = scores.iloc[i]
        for c in COMPONENTS:
            rows.append(
                {
                    "dnn": r["dnn"],
                    "rank": rank.iloc[i],
                    "component": c,
                    "score": r[c],
                    "ci_low": r[f"{c}_ci_low"],
                    "ci_high": r[f"{c}_ci_high"],
                }
            )
    return pd.DataFrame(rows, columns=["dnn", "rank", "component", "score", "ci_low", "ci_high"])


def filter_comparison_table(scores: pd.DataFrame, other: pd.DataFrame) -> pd.DataFrame:
    """Scores and ranks of every DNN under both significance filters.

    Parameters
    ----------
    scores, other : DataFrame
        Score tables under the two filters (their ``p_method`` columns say which).

    Returns
    -------
    DataFrame
        Columns dnn, component, p_method, score, rank (within p_method and component; 1 = highest), n_kept and
        n_items (items that passed the filter / all items; NaN for 'averaged'). Rows: legacy first.
    """
    import pandas as pd

    by_method = {}
    for table in (scores, other):
        if len(table):
            by_method[str(table["p_method"].iloc[0])] = table
    rows = []
    for method in _P_METHODS:
        if method not in by_method:
            continue
        t = by_method[method]
        for c in COMPONENTS:
            rank = _rank(t[c])
            for i in range(len(t)):
                rows.append(
                    {
                        "dnn": t["dnn"].iloc[i],
                        "component": c,
                        "p_method": method,
                        "score": t[c].iloc[i],
                        "rank": rank.iloc[i],
                        "n_kept": t[f"{c}_n_kept"].iloc[i] if c != "averaged" else np.nan,
                        "n_items": t[f"{c}_n_items"].iloc[i] if c != "averaged" else np.nan,
                    }
                )
    return pd.DataFrame(rows, columns=["dnn", "component", "p_method", "score", "rank", "n_kept", "n_items"])


def spearman(x: np.ndarray, y: np.ndarray) -> tuple[float, float, int]:
    """Spearman's rho (ties averaged) and its two-sided p-value over the pairs where both are finite.

    Returns
    -------
    rho, p_value : float
        NaN with fewer than 3 pairs or a constant variable.
    n : int
        Pairs used.
    """
    from scipy import stats

    x = np.asarray(x, dtype=np.float64)
    y = np.asarray(y, dtype=np.float64)
    ok = np.isfinite(x) & np.isfinite(y)
    n = int(ok.sum())
    if n < 3 or np.ptp(x[ok]) == 0 or np.ptp(y[ok]) == 0:
        return float("nan"), float("nan"), n
    res = stats.spearmanr(x[ok], y[ok])
    return float(res.statistic), float(res.pvalue), n


def correlation_table(scores: pd.DataFrame, filter_comparison: pd.DataFrame) -> pd.DataFrame:
    """Spearman correlations over DNNs shown in the figures.

    Rows (x, y): (imagenet_top1, averaged|decoding|encoding) for Figure 3B, (encoding, decoding) for the
    decoding vs encoding scatter, and (legacy:<component>, corrected:<component>) for the filter comparison.
    DNNs with a missing value (e.g. no ImageNet top-1 in the settings) are left out of that row; ``n`` says how
    many DNNs entered.
    """
    import pandas as pd

    pairs = [
        (scores[x], scores[y], x, y)
        for x, y in [("imagenet_top1", c) for c in COMPONENTS] + [("encoding", "decoding")]
    ]
    f = filter_comparison
    for c in COMPONENTS:
        sub = f[f["component"] == c].pivot(index="dnn", columns="p_method", values="score")
        if set(_P_METHODS) <= set(sub.columns):
            pairs.append((sub["legacy"], sub["corrected"], f"legacy:{c}", f"corrected:{c}"))
    rows = []
    for xs, ys, x, y in pairs:
        rho, p, n = spearman(pd.to_numeric(xs, errors="coerce"), pd.to_numeric(ys, errors="coerce"))
        rows.append({"x": x, "y": y, "rho": rho, "p_value": p, "n": n})
    return pd.DataFrame(rows, columns=["x", "y", "rho", "p_value", "n"])


def _depth(n_layers: int) -> np.ndarray:
    return np.arange(n_layers) / max(n_layers - 1, 1)


def top_roi_fraction_table(settings, data: dict[str, DNNFigureData], p_method: str) -> pd.DataFrame:
    """Figure S1: for every (DNN, layer, ROI), the kept units whose top ROI it is, and their fraction.

    ``fraction`` = count / n_kept (the layer's kept units; NaN where none passed the filter). ``depth`` is the
    layer's relative position, 0 (first) to 1 (last).
    """
    import pandas as pd

    frames = []
    rois = list(settings.rois)
    for name, d in data.items():
        layers = settings.dnns[name].layers
        n_layers, n_rois = d.counts.shape
        n_kept = d.counts.sum(axis=1)
        with np.errstate(invalid="ignore", divide="ignore"):
            frac = np.where(n_kept[:, None] > 0, d.counts / n_kept[:, None], np.nan)
        li, ri = np.meshgrid(np.arange(n_layers), np.arange(n_rois), indexing="ij")
        frames.append(
            pd.DataFrame(
                {
                    "dnn": name,
                    "layer_index": li.ravel(),
                    "layer": np.asarray(layers, dtype=object)[li.ravel()],
                    "depth": _depth(n_layers)[li.ravel()],
                    "roi_index": ri.ravel(),
                    "roi": np.asarray(rois, dtype=object)[ri.ravel()],
                    "count": d.counts.ravel(),
                    "n_kept": n_kept[li.ravel()],
                    "n_items": d.n_items[li.ravel()],
                    "fraction": frac.ravel(),
                    "p_method": p_method,
                }
            )
        )
    cols = [
        "dnn",
        "layer_index",
        "layer",
        "depth",
        "roi_index",
        "roi",
        "count",
        "n_kept",
        "n_items",
        "fraction",
        "p_method",
    ]
    return pd.concat(frames, ignore_index=True)[cols] if frames else pd.DataFrame(columns=cols)


def accuracy_profile_table(settings, data: dict[str, DNNFigureData]) -> pd.DataFrame:
    """Per (DNN, layer, ROI) mean decoding accuracy over units of all subjects (NaN units ignored)."""
    import pandas as pd

    frames = []
    rois = list(settings.rois)
    for name, d in data.items():
        layers = settings.dnns[name].layers
        n_layers, n_rois = d.profile.shape
        li, ri = np.meshgrid(np.arange(n_layers), np.arange(n_rois), indexing="ij")
        frames.append(
            pd.DataFrame(
                {
                    "dnn": name,
                    "kind": "decoding",
                    "layer_index": li.ravel(),
                    "layer": np.asarray(layers, dtype=object)[li.ravel()],
                    "depth": _depth(n_layers)[li.ravel()],
                    "roi_index": ri.ravel(),
                    "roi": np.asarray(rois, dtype=object)[ri.ravel()],
                    "mean_accuracy": d.profile.ravel(),
                }
            )
        )
    cols = ["dnn", "kind", "layer_index", "layer", "depth", "roi_index", "roi", "mean_accuracy"]
    return pd.concat(frames, ignore_index=True)[cols] if frames else pd.DataFrame(columns=cols)


# -------------------------------------------------------------------------------------------------
# reading and writing
# -------------------------------------------------------------------------------------------------


def write_tables(tables: FigureTables, out_dir: str | os.PathLike) -> list[Path]:
    """Write every table under ``out_dir`` (atomically each; the score table last).

    Returns
    -------
    list of Path
        The files written, in writing order.
    """
    from bhscore.formats import atomic_write_text

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


def tables_complete(out_dir: str | os.PathLike) -> bool:
    """Whether every table exists under ``out_dir``."""
    return all((Path(out_dir) / rel).is_file() for rel in TABLE_FILES.values())


def read_tables(out_dir: str | os.PathLike) -> FigureTables:
    """Read the tables written by :func:`write_tables`."""
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


@contextlib.contextmanager
def override_env(**values: str | None) -> Iterator[None]:
    """Set (or, with None, leave alone) environment variables for the duration of the block."""
    old = {k: os.environ.get(k) for k in values}
    try:
        for k, v in values.items():
            if v is not None:
                os.environ[k] = str(v)
        yield
    finally:
        for k, v in old.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def load_tables(
    tables_dir: str | os.PathLike,
    settings_path: str | os.PathLike | None = None,
    data_root: str | os.PathLike | None = None,
) -> FigureTables:
    """The figure tables of ``tables_dir``; computed from the settings' accuracies and written there if absent.

    Parameters
    ----------
    tables_dir : path-like
        The figures directory holding ``bhscores.csv`` and ``tables/``.
    settings_path : path-like, optional
        Settings to compute the tables with when they are absent (default settings file otherwise); when the
        tables exist, a warning is given if their DNNs differ from the settings'.
    data_root : path-like, optional
        Overrides the settings' data root (as ``$BHSCORE_DATA`` does).
    """
    from bhscore.settings import load_settings

    tables_dir = Path(tables_dir)
    if tables_complete(tables_dir):
        tables = read_tables(tables_dir)
        if settings_path is not None:
            names = list(load_settings(settings_path).dnns)
            if list(tables.scores["dnn"]) != names:
                warnings.warn(
                    f"the tables in {tables_dir} are for DNNs {list(tables.scores['dnn'])}, the settings "
                    f"{settings_path} list {names}: rebuild them with `make figures` or `bhscore figure-tables`",
                    UserWarning,
                    stacklevel=2,
                )
        return tables
    print(f"figure tables not found in {tables_dir}: computing them from the accuracies", file=sys.stderr)
    with override_env(**{DATA_ENV: None if data_root is None else str(Path(data_root).resolve())}):
        tables = compute_tables(load_settings(settings_path))
    write_tables(tables, tables_dir)
    return tables


# -------------------------------------------------------------------------------------------------
# accuracy inputs (for make's dependency tracking and the fetch-if-missing step)
# -------------------------------------------------------------------------------------------------


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


# -------------------------------------------------------------------------------------------------
# plotting helpers shared by the notebooks
# -------------------------------------------------------------------------------------------------


def roi_colors(rois: Sequence[str]) -> dict[str, tuple]:
    """One colour per ROI, low (V1) to high (HVC) along a perceptually ordered colormap."""
    import matplotlib

    cmap = matplotlib.colormaps["viridis"]
    pos = np.linspace(0.05, 0.9, len(rois)) if len(rois) > 1 else [0.5]
    return {roi: tuple(cmap(p)) for roi, p in zip(rois, pos, strict=True)}


def error_bars(score, ci_low, ci_high) -> np.ndarray:
    """Error-bar lengths for matplotlib's ``yerr``/``xerr`` from a confidence interval.

    Parameters
    ----------
    score, ci_low, ci_high : array-like of shape (n,)

    Returns
    -------
    ndarray of shape (2, n)
        Lengths below and above ``score``; 0 where the interval is missing (NaN) and never negative (a
        percentile interval need not contain the point estimate).
    """
    score, lo, hi = (np.asarray(v, dtype=np.float64) for v in (score, ci_low, ci_high))
    err = np.stack([score - lo, hi - score])
    return np.clip(np.nan_to_num(err, nan=0.0), 0.0, None)


_PDF_METADATA = {"CreationDate": None, "Creator": "bhscore"}  # no timestamp: identical inputs, identical PDF


def save_figure(
    fig, out_dir: str | os.PathLike, name: str, formats: Sequence[str] = ("pdf", "png"), dpi: int = 150
) -> list[Path]:
    """Save ``fig`` as ``<out_dir>/<name>.<fmt>`` for each format, each atomically.

    Returns
    -------
    list of Path
    """
    from bhscore.formats import atomic_path

    written = []
    for fmt in formats:
        path = Path(out_dir) / f"{name}.{fmt}"
        with atomic_path(path) as tmp:
            fig.savefig(
                tmp,
                format=fmt,
                dpi=dpi,
                bbox_inches="tight",
                metadata=_PDF_METADATA if fmt == "pdf" else None,
            )
        written.append(path)
    return written


@contextlib.contextmanager
def multipage_pdf(out_dir: str | os.PathLike, name: str) -> Iterator:
    """A ``matplotlib.backends.backend_pdf.PdfPages`` writing ``<out_dir>/<name>.pdf`` atomically.

    Examples
    --------
    >>> with multipage_pdf("figures", "figS1_top_roi_histograms") as pdf:  # doctest: +SKIP
    ...     pdf.savefig(fig)
    """
    from matplotlib.backends.backend_pdf import PdfPages

    from bhscore.formats import atomic_path

    with atomic_path(Path(out_dir) / f"{name}.pdf") as tmp:
        pdf = PdfPages(tmp, metadata=_PDF_METADATA)
        try:
            yield pdf
        finally:
            pdf.close()


# -------------------------------------------------------------------------------------------------
# running the notebooks
# -------------------------------------------------------------------------------------------------


def figure_names(notebook_dir: str | os.PathLike | None = None) -> list[str]:
    """The figures: stems of the notebooks in ``notebook_dir`` (default ``analysis/``), sorted."""
    return sorted(p.stem for p in Path(notebook_dir or NOTEBOOK_DIR).glob("*.ipynb"))


def notebook_path(name: str, notebook_dir: str | os.PathLike | None = None) -> Path:
    """``<notebook_dir>/<name>.ipynb``; an unknown name raises :class:`UserError` listing the figures."""
    path = Path(notebook_dir or NOTEBOOK_DIR) / f"{name}.ipynb"
    if not path.is_file():
        names = figure_names(notebook_dir)
        raise UserError(f"no notebook for figure {name!r} ({path}); figures: {', '.join(names) or '(none)'}")
    return path


def strip_outputs(path: str | os.PathLike) -> bool:
    """Remove outputs and execution counts from a notebook in place (as committed in ``analysis/``).

    Returns
    -------
    bool
        Whether the file changed.
    """
    import nbformat

    from bhscore.formats import atomic_write_text

    path = Path(path)
    nb = nbformat.read(path, as_version=4)
    changed = False
    for cell in nb.cells:
        if cell.cell_type != "code":
            continue
        if cell.outputs or cell.execution_count is not None:
            cell.outputs, cell.execution_count, changed = [], None, True
        for key in ("execution", "papermill"):
            changed |= cell.metadata.pop(key, None) is not None
    changed |= nb.metadata.pop("papermill", None) is not None
    if changed:
        atomic_write_text(path, nbformat.writes(nb) + "\n")
    return changed


def _kernel_env() -> dict[str, str]:
    """Environment of the kernel: Agg backend; this environment's kernels found before the user's."""
    env_share = str(Path(sys.prefix) / "share" / "jupyter")
    jp = os.environ.get("JUPYTER_PATH")
    return {"MPLBACKEND": "Agg", "JUPYTER_PATH": env_share + (os.pathsep + jp if jp else "")}


def run_notebook(
    name: str,
    settings_path: str | os.PathLike,
    output_dir: str | os.PathLike,
    data_root: str | os.PathLike | None = None,
    tables_dir: str | os.PathLike | None = None,
    notebook_dir: str | os.PathLike | None = None,
    executed_dir: str | os.PathLike | None = None,
    kernel_name: str = KERNEL_NAME,
    timeout: float | None = None,
) -> Path:
    """Execute the notebook of one figure with papermill.

    The executed notebook goes to a temporary file renamed onto ``<executed_dir>/<name>.ipynb`` when it has
    run through and written ``<output_dir>/<name>.pdf`` and ``.png``; a failed run is kept as
    ``<name>.failed.ipynb`` for inspection and raises :class:`UserError`.

    Parameters
    ----------
    name : str
        Figure name (notebook stem), see :data:`FIGURES`.
    settings_path : path-like
    output_dir : path-like
        Where the figure files go.
    data_root : path-like, optional
        Overrides the settings' data root (only used when the tables must be computed).
    tables_dir : path-like, optional
        Where the tables are (default: ``output_dir``).
    notebook_dir : path-like, optional
        Default ``analysis/``.
    executed_dir : path-like, optional
        Default ``<output_dir>/notebooks``.
    kernel_name : str
    timeout : float, optional
        Per-cell timeout in seconds.

    Returns
    -------
    Path
        The executed notebook.
    """
    import papermill

    from bhscore.formats import atomic_path

    nb = notebook_path(name, notebook_dir).resolve()
    output_dir = Path(output_dir).resolve()
    executed_dir = Path(executed_dir).resolve() if executed_dir else output_dir / EXECUTED_DIR
    executed_dir.mkdir(parents=True, exist_ok=True)
    output_dir.mkdir(parents=True, exist_ok=True)
    target = executed_dir / f"{name}.ipynb"
    failed = executed_dir / f"{name}.failed.ipynb"
    params = {
        "settings_path": str(Path(settings_path).resolve()),
        "data_root": None if data_root is None else str(Path(data_root).resolve()),
        "output_dir": str(output_dir),
        "tables_dir": str(Path(tables_dir).resolve()) if tables_dir else None,
    }
    with atomic_path(target) as tmp, override_env(**_kernel_env()):
        try:
            papermill.execute_notebook(
                str(nb),
                str(tmp),
                parameters=params,
                kernel_name=kernel_name,
                language="python",
                cwd=str(nb.parent),
                progress_bar=False,
                execution_timeout=timeout,
                extra_arguments=["--IPKernelApp.log_level=CRITICAL"],  # no transport warnings on stderr
            )
        except papermill.PapermillExecutionError as e:
            if tmp.exists():
                os.replace(tmp, failed)
            raise UserError(
                f"figure {name}: the notebook failed in cell {e.exec_count}: {e.ename}: {e.evalue}\n"
                f"  the executed notebook is {failed}"
            ) from None
        outputs = [output_dir / f"{name}.{fmt}" for fmt in ("pdf", "png")]
        absent = [str(p) for p in outputs if not p.is_file() or p.stat().st_size == 0]
        if absent:
            raise UserError(f"figure {name}: the notebook ran but did not write {', '.join(absent)}")
    failed.unlink(missing_ok=True)
    return target
