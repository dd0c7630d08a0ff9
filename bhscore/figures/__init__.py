"""Tidy tables behind every figure, and the helpers that build the figures from them.

The expensive step and the plotting step are apart: ``bhscore figure-tables`` (``make figure-tables``)
computes every number from the accuracy trees with the functions of :mod:`bhscore.score` and
:mod:`bhscore.stats`, reading each DNN's accuracy files once, and writes the tables; the notebooks in
``analysis/`` (one per figure, run by papermill through ``make figures`` or ``bhscore figure NAME``) only read
them (:func:`load_tables`) and plot. A notebook never computes a table: when one is missing it stops with a
message naming ``make figure-tables``.

Modules
-------
:mod:`~bhscore.figures.tables`
    Computing the tables (:func:`compute_tables`).
:mod:`~bhscore.figures.tables_io`
    Their files: :func:`write_tables`, :func:`read_tables`, :func:`load_tables` (the notebooks' reader).
:mod:`~bhscore.figures.inputs`
    The accuracy files the tables read (make's prerequisites) and which are missing.
:mod:`~bhscore.figures.plotting`
    Colours, error bars and reproducible saving, shared by the notebooks.
:mod:`~bhscore.figures.notebooks`
    The figures (:data:`FIGURES`) and running their notebooks with papermill (:func:`run_notebook`).

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

from bhscore.figures.inputs import accuracy_files, describe_missing, missing_accuracies
from bhscore.figures.notebooks import (
    EXECUTED_DIR,
    FIGURES,
    KERNEL_NAME,
    NOTEBOOK_DIR,
    figure_names,
    kernel_env,
    notebook_parameters,
    notebook_path,
    run_notebook,
    strip_outputs,
)
from bhscore.figures.plotting import error_bars, multipage_pdf, roi_colors, save_figure
from bhscore.figures.tables import (
    SOURCE_COLUMNS,
    DNNFigureData,
    FigureTables,
    accuracy_profile_table,
    compute_tables,
    correlation_table,
    dnn_figure_data,
    filter_comparison_table,
    other_p_method,
    ranking_table,
    spearman,
    top_roi_fraction_table,
    with_sources,
)
from bhscore.figures.tables_io import (
    PROVENANCE_FILE,
    SCORE_TABLE,
    TABLE_FILES,
    MissingTablesError,
    load_tables,
    missing_tables,
    read_csv,
    read_tables,
    tables_complete,
    write_tables,
)

__all__ = [
    "EXECUTED_DIR",
    "FIGURES",
    "KERNEL_NAME",
    "NOTEBOOK_DIR",
    "PROVENANCE_FILE",
    "SCORE_TABLE",
    "SOURCE_COLUMNS",
    "TABLE_FILES",
    "DNNFigureData",
    "FigureTables",
    "MissingTablesError",
    "accuracy_files",
    "accuracy_profile_table",
    "compute_tables",
    "correlation_table",
    "describe_missing",
    "dnn_figure_data",
    "error_bars",
    "figure_names",
    "filter_comparison_table",
    "kernel_env",
    "load_tables",
    "missing_accuracies",
    "missing_tables",
    "multipage_pdf",
    "notebook_parameters",
    "notebook_path",
    "other_p_method",
    "ranking_table",
    "read_csv",
    "read_tables",
    "roi_colors",
    "run_notebook",
    "save_figure",
    "spearman",
    "strip_outputs",
    "tables_complete",
    "top_roi_fraction_table",
    "with_sources",
    "write_tables",
]
