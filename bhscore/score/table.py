"""The score table (``bhscores.csv``) of many DNNs, with its provenance."""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from pathlib import Path

from bhscore.score.dnn import DNNScore, score_dnn

TABLE_COLUMNS = [
    "dnn", "decoding", "encoding", "averaged",
    "decoding_ci_low", "decoding_ci_high", "encoding_ci_low", "encoding_ci_high",
    "averaged_ci_low", "averaged_ci_high",
    "decoding_n_kept", "decoding_n_items", "encoding_n_kept", "encoding_n_items",
    "n_layers", "imagenet_top1", "p_method",
    "decoding_source", "encoding_source", "decoding_params", "encoding_params",
    "decoding_n_files", "encoding_n_files",
]  # fmt: skip


def score_row(settings, result: DNNScore, p_method: str) -> dict:
    """One row of the score table (what the score used: source, parameter set and file count per kind)."""
    row = {
        "dnn": result.dnn,
        "decoding": result.decoding,
        "encoding": result.encoding,
        "averaged": result.averaged,
        "decoding_ci_low": result.decoding_ci[0],
        "decoding_ci_high": result.decoding_ci[1],
        "encoding_ci_low": result.encoding_ci[0],
        "encoding_ci_high": result.encoding_ci[1],
        "averaged_ci_low": result.averaged_ci[0],
        "averaged_ci_high": result.averaged_ci[1],
        "decoding_n_kept": int(result.decoding_counts.sum()),
        "decoding_n_items": int(result.decoding_n_items.sum()),
        "encoding_n_kept": int(result.encoding_counts.sum()),
        "encoding_n_items": int(result.encoding_n_items.sum()),
        "n_layers": len(settings.dnns[result.dnn].layers),
        "imagenet_top1": settings.dnns[result.dnn].imagenet_top1,
        "p_method": p_method,
    }
    for kind in ("decoding", "encoding"):
        used = result.sources.get(kind, {})
        row[f"{kind}_source"] = used.get("source", "")
        row[f"{kind}_params"] = used.get("param_set", "")
        row[f"{kind}_n_files"] = used.get("n_files", 0)
    return row


def score_table(
    settings,
    dnns: Sequence[str] | None = None,
    p_method: str | None = None,
    progress: bool = True,
    allow_mixed: bool = False,
    **overrides,
):
    """The score table: one row per DNN (columns :data:`TABLE_COLUMNS`), in settings order.

    Parameters
    ----------
    settings : bhscore.settings.Settings
    dnns : sequence of str, optional
        Default: every DNN of the settings.
    p_method : {'legacy', 'corrected'}, optional
        Default: ``settings.analysis.score.p_method``.
    allow_mixed : bool
        See :class:`AccuracyTree`.
    **overrides
        Other :class:`ScoreOptions` fields.

    Returns
    -------
    pandas.DataFrame
        With ``attrs["sources"]``: DNN -> :meth:`AccuracyTree.source_record` (for :func:`table_provenance`).
    """
    import pandas as pd
    from tqdm.auto import tqdm

    names = list(settings.dnns) if dnns is None else list(dnns)
    for name in names:
        settings.dnn(name)  # an unknown name fails here, listing the valid ones
    method = p_method or settings.analysis.score.p_method
    results = []
    for name in tqdm(names, desc="score", unit="DNN", disable=not progress or len(names) < 2):
        results.append(score_dnn(settings, name, allow_mixed=allow_mixed, p_method=method, **overrides))
    table = pd.DataFrame([score_row(settings, r, method) for r in results], columns=TABLE_COLUMNS)
    table.attrs["sources"] = {r.dnn: r.sources for r in results}
    return table


def table_provenance(settings, sources: dict) -> dict:
    """The provenance record of a score table: settings digest, versions, and what each DNN's score read.

    Parameters
    ----------
    settings : bhscore.settings.Settings
    sources : dict
        DNN -> :meth:`AccuracyTree.source_record`.
    """
    from bhscore.paths import data_root
    from bhscore.provenance import canonical_json, now_utc, package_versions

    dump = settings.model_dump(mode="json", by_alias=True)
    h = hashlib.sha256()
    for dnn in sorted(sources):
        for kind in ("decoding", "encoding"):
            h.update(f"{dnn}\0{kind}\0{sources[dnn].get(kind, {}).get('files_sha256', '')}\n".encode())
    return {
        "created": now_utc(),
        "packages": package_versions(),
        "settings_file": None if settings.source is None else str(settings.source),
        "settings_sha256": hashlib.sha256(canonical_json(dump).encode()).hexdigest(),
        "data_root": str(data_root(settings)),
        "accuracy_files_sha256": h.hexdigest(),
        "dnns": sources,
    }


def write_score_table(table, path: str | Path, settings) -> list[Path]:
    """Write the score table (CSV) and its provenance (``<stem>.provenance.json`` beside it), atomically."""
    import json

    from bhscore.atomic import atomic_write_text

    path = Path(path)
    meta = path.with_name(f"{path.stem}.provenance.json")
    atomic_write_text(meta, json.dumps(table_provenance(settings, table.attrs.get("sources", {})), indent=1) + "\n")
    atomic_write_text(path, table.to_csv(index=False))
    return [meta, path]
