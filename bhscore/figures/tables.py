"""The tables behind every figure, computed from the accuracy trees (each DNN's files read once).

Every number a figure shows is computed here with the functions of :mod:`bhscore.score` and
:mod:`bhscore.stats`; :mod:`bhscore.figures.tables_io` writes and reads the tables, the notebooks only plot
them. The columns of each table are listed in the :mod:`bhscore.figures` docstring.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    import pandas as pd

# pandas, scipy, bhscore.score and bhscore.stats are imported where used: listing the accuracy files (make
# does it on every `make figures`) stays fast.

#: The components in the order the figure tables list them: the averaged score first (the score table,
#: ``bhscore.score.COMPONENTS``, has it last).
_AVERAGED_FIRST = ("averaged", "decoding", "encoding")

#: Each DNN's accuracy sources and parameter sets, appended to every table with a ``dnn`` column.
SOURCE_COLUMNS = ["decoding_source", "decoding_params", "encoding_source", "encoding_params"]


@dataclass
class FigureTables:
    """The tables of every figure (pandas DataFrames; see the :mod:`bhscore.figures` docstring for the columns)."""

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
        Kept units per (layer, top ROI), all layers, settings' filter (``DNNScore.decoding_counts``).
    n_items : ndarray of shape (n_layers,)
        Units per layer, all subjects.
    profile : ndarray of shape (n_layers, n_rois)
        Mean decoding accuracy (:func:`bhscore.score.mean_accuracy_profile`).
    sources : dict
        What the scores were computed from (``AccuracyTree.source_record``).
    tops : bhscore.stats.ItemTops
        Per-subject item tops for the statistics.
    """

    row: dict
    other_row: dict
    counts: np.ndarray
    n_items: np.ndarray
    profile: np.ndarray
    sources: dict = field(default_factory=dict)
    tops: object = None


def other_p_method(method: str) -> str:
    """'corrected' for 'legacy' and vice versa."""
    from bhscore.score import P_METHODS

    if method not in P_METHODS:
        raise ValueError(f"p_method must be one of {P_METHODS}, got {method!r}")
    return P_METHODS[1 - P_METHODS.index(method)]


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
    return DNNFigureData(
        row=bhs.score_row(settings, main, method),
        other_row=bhs.score_row(settings, alt, other),
        counts=main.decoding_counts,
        n_items=main.decoding_n_items,
        profile=bhs.mean_accuracy_profile(dec),
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
        for c in _AVERAGED_FIRST:
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

    from bhscore.score import P_METHODS

    by_method = {str(t["p_method"].iloc[0]): t for t in (scores, other) if len(t)}
    rows = []
    for method in (m for m in P_METHODS if m in by_method):
        t = by_method[method]
        for c in _AVERAGED_FIRST:
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

    Parameters
    ----------
    x, y : array-like of shape (n,)

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

    from bhscore.score import P_METHODS

    pairs = [
        (scores[x], scores[y], x, y)
        for x, y in [("imagenet_top1", c) for c in _AVERAGED_FIRST] + [("encoding", "decoding")]
    ]
    f = filter_comparison
    for c in _AVERAGED_FIRST:
        sub = f[f["component"] == c].pivot(index="dnn", columns="p_method", values="score")
        if set(P_METHODS) <= set(sub.columns):
            pairs.append((sub["legacy"], sub["corrected"], f"legacy:{c}", f"corrected:{c}"))
    rows = []
    for xs, ys, x, y in pairs:
        rho, p, n = spearman(pd.to_numeric(xs, errors="coerce"), pd.to_numeric(ys, errors="coerce"))
        rows.append({"x": x, "y": y, "rho": rho, "p_value": p, "n": n})
    return pd.DataFrame(rows, columns=["x", "y", "rho", "p_value", "n"])


# -------------------------------------------------------------------------------------------------
# layer x ROI tables
# -------------------------------------------------------------------------------------------------

#: The columns that place a row of a layer x ROI table.
_CELL_COLUMNS = ["dnn", "layer_index", "layer", "depth", "roi_index", "roi"]


def _layer_roi_frame(dnn: str, layers: Sequence[str], rois: Sequence[str], values: dict) -> pd.DataFrame:
    """One DNN's (layer, ROI) cells, one row each, layer-major: the :data:`_CELL_COLUMNS`, then ``values``.

    Parameters
    ----------
    dnn : str
    layers, rois : sequence of str
        Names by layer index and ROI index.
    values : dict
        Column name -> ndarray of shape (n_layers, n_rois) (one value per cell; the first one sets the shape),
        ndarray of shape (n_layers,) (one value per layer) or a scalar (every row).

    Returns
    -------
    DataFrame with n_layers x n_rois rows
        ``depth`` is the layer's relative position, 0 (first) to 1 (last).
    """
    import pandas as pd

    n_layers, n_rois = next(v.shape for v in values.values() if np.ndim(v) == 2)
    li, ri = (ix.ravel() for ix in np.meshgrid(np.arange(n_layers), np.arange(n_rois), indexing="ij"))
    cells = {
        "dnn": dnn,
        "layer_index": li,
        "layer": np.asarray(layers, dtype=object)[li],
        "depth": (np.arange(n_layers) / max(n_layers - 1, 1))[li],
        "roi_index": ri,
        "roi": np.asarray(rois, dtype=object)[ri],
    }
    for name, v in values.items():
        cells[name] = v if np.ndim(v) == 0 else v.ravel() if np.ndim(v) == 2 else v[li]
    return pd.DataFrame(cells)


def _layer_roi_table(settings, data: dict[str, DNNFigureData], values, columns: list[str]) -> pd.DataFrame:
    """Every DNN's :func:`_layer_roi_frame` with ``values(dnn_figure_data)``, stacked, columns ``columns``."""
    import pandas as pd

    rois = list(settings.rois)
    frames = [_layer_roi_frame(name, settings.dnns[name].layers, rois, values(d)) for name, d in data.items()]
    return pd.concat(frames, ignore_index=True)[columns] if frames else pd.DataFrame(columns=columns)


def top_roi_fraction_table(settings, data: dict[str, DNNFigureData], p_method: str) -> pd.DataFrame:
    """Figure S1: for every (DNN, layer, ROI), the kept units whose top ROI it is, and their fraction.

    ``fraction`` = count / n_kept (the layer's kept units; NaN where none passed the filter). ``depth`` is the
    layer's relative position, 0 (first) to 1 (last).
    """

    def values(d: DNNFigureData) -> dict:
        n_kept = d.counts.sum(axis=1)
        with np.errstate(invalid="ignore", divide="ignore"):
            fraction = np.where(n_kept[:, None] > 0, d.counts / n_kept[:, None], np.nan)
        return {"count": d.counts, "n_kept": n_kept, "n_items": d.n_items, "fraction": fraction, "p_method": p_method}

    columns = [*_CELL_COLUMNS, "count", "n_kept", "n_items", "fraction", "p_method"]
    return _layer_roi_table(settings, data, values, columns)


def accuracy_profile_table(settings, data: dict[str, DNNFigureData]) -> pd.DataFrame:
    """Per (DNN, layer, ROI) mean decoding accuracy over units of all subjects (NaN units ignored)."""
    columns = ["dnn", "kind", *_CELL_COLUMNS[1:], "mean_accuracy"]
    return _layer_roi_table(
        settings, data, lambda d: {"kind": "decoding", "mean_accuracy": d.profile}, columns
    )
