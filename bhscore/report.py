"""The report page: one self-contained HTML file with every table, figure and check of an analysis.

:func:`build_report` reads what ``make figures`` wrote into a figures directory and writes
``<figures>/index.html``:

- the score table (sortable by clicking a column header): scores with bootstrap CIs, each subject's averaged
  score and their spread, the layer-order null's p-value, the compact letters of the pairwise tests;
- the pairwise matrix of averaged-score differences (paired bootstrap, Holm-adjusted decisions);
- every figure (the PNGs, embedded), with what each shows;
- the comparison with the published scores (:func:`bhscore.verify.verify`, as ``make verify``);
- the provenance of the accuracies (``bhscores.provenance.json``, rendered whatever keys it has).

The page needs no server and loads nothing from the network (images are ``data:`` URIs; a Content Security
Policy forbids every other source); a little JavaScript sorts the table.

Examples
--------
>>> from bhscore import report
>>> report.build_report("figures", settings_path="settings.json")  # doctest: +SKIP
"""

from __future__ import annotations

import base64
import datetime
import hashlib
import html
import json
import math
import os
from pathlib import Path
from typing import TYPE_CHECKING

from bhscore.errors import MissingDataError, UserError
from bhscore.figures.tables_io import PROVENANCE_FILE  # the score table's provenance record, beside it
from bhscore.kinds import SCORE_COMPONENTS

if TYPE_CHECKING:
    import pandas as pd

#: The page, relative to the figures directory.
REPORT_FILE = "index.html"

_CSS = """
body { font: 14px/1.45 system-ui, sans-serif; margin: 1.5em auto; max-width: 1200px; padding: 0 1em; color: #222; }
h1 { font-size: 1.6em; } h2 { margin-top: 2em; border-bottom: 1px solid #ccc; }
table { border-collapse: collapse; font-size: 12px; margin: .5em 0; }
th, td { border: 1px solid #ddd; padding: 2px 6px; text-align: right; white-space: nowrap; }
th { background: #f3f3f3; position: sticky; top: 0; }
td.name, th.name { text-align: left; }
table.sortable th { cursor: pointer; user-select: none; }
table.sortable th[aria-sort=ascending]::after { content: " \\25B2"; }
table.sortable th[aria-sort=descending]::after { content: " \\25BC"; }
.ci { color: #777; font-size: 11px; }
.note { color: #555; font-size: 13px; }
.fail { color: #b00; font-weight: bold; } .ok { color: #060; font-weight: bold; }
figure { margin: 1.5em 0; } figure img { max-width: 100%; border: 1px solid #eee; }
figcaption { font-size: 13px; color: #444; }
.matrix td { min-width: 3.2em; } .matrix td.same { background: #eee; color: #888; }
dl { margin: .2em 0 .2em 1em; } dt { font-weight: bold; } dd { margin-left: 1.5em; word-break: break-all; }
.scroll { overflow-x: auto; max-width: 100%; }
pre { background: #f7f7f7; padding: .6em; overflow-x: auto; font-size: 12px; }
"""

_JS = """
function cellKey(row, col) {
  const cell = row.cells[col];
  const raw = cell.dataset.sort !== undefined ? cell.dataset.sort : cell.textContent.trim();
  const num = parseFloat(raw);
  return raw === "" ? null : (Number.isNaN(num) ? raw.toLowerCase() : num);
}
function sortTable(table, col, header) {
  const ascending = header.getAttribute("aria-sort") !== "ascending";
  for (const h of table.tHead.rows[0].cells) h.removeAttribute("aria-sort");
  header.setAttribute("aria-sort", ascending ? "ascending" : "descending");
  const body = table.tBodies[0];
  const rows = Array.from(body.rows);
  rows.sort((a, b) => {
    const x = cellKey(a, col), y = cellKey(b, col);
    if (x === null || y === null) return (x === null) - (y === null);  // missing values last
    const order = (typeof x === "number" && typeof y === "number") ? x - y : String(x).localeCompare(String(y));
    return ascending ? order : -order;
  });
  for (const r of rows) body.appendChild(r);
}
document.addEventListener("DOMContentLoaded", () => {
  for (const table of document.querySelectorAll("table.sortable")) {
    Array.from(table.tHead.rows[0].cells).forEach((header, col) =>
      header.addEventListener("click", () => sortTable(table, col, header)));
  }
});
"""

_CSP = "default-src 'none'; img-src data:; style-src 'unsafe-inline'; script-src 'unsafe-inline'"


def _esc(value) -> str:
    return html.escape(str(value), quote=True)


def _is_missing(value) -> bool:
    return value is None or (isinstance(value, float) and math.isnan(value))


def _num(value, fmt: str = ".3f") -> str:
    return "" if _is_missing(value) else format(float(value), fmt)


def _p(value) -> str:
    if _is_missing(value):
        return ""
    return f"{value:.3g}" if value >= 0.001 else f"{value:.1e}"


def _td(text: str, sort=None, cls: str | None = None, title: str | None = None) -> str:
    attrs = ""
    if sort is not None:
        attrs += f' data-sort="{"" if _is_missing(sort) else _esc(sort)}"'
    if cls:
        attrs += f' class="{cls}"'
    if title:
        attrs += f' title="{_esc(title)}"'
    return f"<td{attrs}>{text}</td>"


def package_version() -> str:
    """bhscore's installed version (``unknown`` when not installed)."""
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("bhscore")
    except PackageNotFoundError:
        return "unknown"


# -------------------------------------------------------------------------------------------------
# sections
# -------------------------------------------------------------------------------------------------


def score_table_html(scores: pd.DataFrame, dnn_stats: pd.DataFrame | None) -> str:
    """The sortable score table: one row per DNN."""
    from bhscore.stats import subjects_of

    st = dnn_stats.set_index("dnn") if dnn_stats is not None and len(dnn_stats) else None
    subjects = subjects_of(dnn_stats) if st is not None else []
    rank = scores["averaged"].rank(ascending=False, method="min")
    head = ["rank", "DNN", "averaged", "decoding", "encoding"]
    head += [f"averaged {s}" for s in subjects] + (["subject s.d."] if st is not None else [])
    head += ["null p (averaged)", "letters"] if st is not None else []
    head += ["ImageNet top-1", "kept units", "kept voxels"]
    has_sources = {"decoding_source", "encoding_source"} <= set(scores.columns)
    head += ["accuracies (dec / enc)"] if has_sources else []
    rows = []
    for i, r in scores.reset_index(drop=True).iterrows():
        cells = [_td(_num(rank.iloc[i], ".0f"), rank.iloc[i]), _td(_esc(r["dnn"]), cls="name")]
        for c in ("averaged", "decoding", "encoding"):
            lo, hi = r.get(f"{c}_ci_low"), r.get(f"{c}_ci_high")
            ci = f' <span class="ci">[{_num(lo)}, {_num(hi)}]</span>' if not _is_missing(lo) else ""
            cells.append(_td(_num(r[c]) + ci, r[c]))
        if st is not None:
            s = st.loc[r["dnn"]] if r["dnn"] in st.index else None
            for subject in subjects:
                v = None if s is None else s[f"averaged_{subject}"]
                cells.append(_td(_num(v), v))
            sd = None if s is None else s["averaged_subject_sd"]
            cells.append(_td(_num(sd), sd))
            p = None if s is None else s["averaged_null_p"]
            how = "" if s is None else f"{s['null_method']}, {int(s['null_n_orderings'])} layer orderings"
            cells.append(_td(_p(p), p, title=how))
            cells.append(_td(_esc("" if s is None else s["averaged_letters"]), cls="name"))
        cells.append(_td(_num(r.get("imagenet_top1"), ".1f"), r.get("imagenet_top1")))
        for kind in ("decoding", "encoding"):
            kept, items = r.get(f"{kind}_n_kept"), r.get(f"{kind}_n_items")
            frac = None if _is_missing(kept) or not items else kept / items
            cells.append(_td("" if frac is None else f"{int(kept)} / {int(items)}", frac))
        if has_sources:
            cells.append(_td(_esc(f"{r['decoding_source']} / {r['encoding_source']}"), cls="name"))
        rows.append("<tr>" + "".join(cells) + "</tr>")
    header = "".join(f"<th{' class=name' if h in ('DNN', 'letters') else ''}>{_esc(h)}</th>" for h in head)
    return (
        f'<table class="sortable" id="scores"><thead><tr>{header}</tr></thead>'
        f"<tbody>{''.join(rows)}</tbody></table>"
    )


def pairwise_matrix_html(pairwise: pd.DataFrame, order: list[str], component: str = "averaged") -> str:
    """The matrix of score differences (row - column); significant cells coloured by sign."""
    p = pairwise[pairwise["component"] == component]
    if p.empty:
        return '<p class="note">No pair to compare (fewer than two DNNs).</p>'
    cell = {(a, b): r for a, b, r in zip(p["dnn_a"], p["dnn_b"], p.itertuples(), strict=True)}
    big = max(float(p["diff"].abs().max()), 1e-12)
    head = '<th class="name">A \\ B</th>' + "".join(f"<th>{_esc(b)}</th>" for b in order)
    rows = []
    for a in order:
        tds = [f'<td class="name">{_esc(a)}</td>']
        for b in order:
            r = cell.get((a, b))
            if r is None:
                tds.append("<td></td>")
                continue
            tip = (f"{a} - {b}: {_num(r.diff)} [{_num(r.ci_low)}, {_num(r.ci_high)}], p = {_p(r.p_value)}, "
                   f"Holm p = {_p(r.p_holm)}")  # fmt: skip
            if bool(r.significant):
                shade = min(1.0, abs(r.diff) / big)
                rgb = (200, 60, 60) if r.diff > 0 else (60, 90, 200)
                style = f' style="background: rgba({rgb[0]},{rgb[1]},{rgb[2]},{0.15 + 0.6 * shade:.2f})"'
                tds.append(f'<td{style} title="{_esc(tip)}">{_num(r.diff)}</td>')
            else:
                tds.append(f'<td class="same" title="{_esc(tip)}">{_num(r.diff)}</td>')
        rows.append("<tr>" + "".join(tds) + "</tr>")
    return f'<table class="matrix" id="pairwise"><thead><tr>{head}</tr></thead><tbody>{"".join(rows)}</tbody></table>'


def figures_html(figures_dir: Path) -> str:
    """Every figure's PNG, embedded, with its description."""
    from bhscore.figures import FIGURES, figure_names

    names = list(dict.fromkeys([*FIGURES, *figure_names()]))
    parts = []
    for name in names:
        png = figures_dir / f"{name}.png"
        caption = f"<figcaption><b>{_esc(name)}</b>: {_esc(FIGURES.get(name, ''))}</figcaption>"
        if png.is_file():
            data = base64.b64encode(png.read_bytes()).decode("ascii")
            img = f'<img alt="{_esc(name)}" src="data:image/png;base64,{data}">'
        else:
            img = f'<p class="note">{_esc(png.name)} not built (make figures)</p>'
        parts.append(f'<figure id="fig-{_esc(name)}">{img}{caption}</figure>')
    return "\n".join(parts)


def verify_html(settings, scores: pd.DataFrame) -> str:
    """The comparison with the published scores, as ``make verify`` computes it, or why there is none."""
    from bhscore.verify import read_published, verify

    try:
        published = read_published()
        shared = [d for d in scores["dnn"] if d in set(published["dnn"])]
        if settings is None:
            return '<p class="note">Not compared: no settings file given.</p>'
        if not shared:
            return '<p class="note">Not compared: no DNN of this table is in the published table.</p>'
        result = verify(settings, table=scores, dnns=shared)
    except UserError as e:
        return f'<p class="note">Not compared: {_esc(e)}</p>'
    t = result.table
    verdict = (
        f'<p class="ok">PASS: {result.n_checked} DNN(s) reproduced within tolerance</p>'
        if result.ok
        else f'<p class="fail">FAIL: {len(result.failures)} check(s) failed</p>'
    )
    note = (
        f'<p class="note">{len(shared)} of the {len(published)} published DNNs are in this table. Tolerances: '
        + ", ".join(f"{c} {v:g}" for c, v in result.tolerances.items())
        + ". Differences are expected unless the scores come from the paper's accuracies and settings (see "
        "Provenance).</p>"
    )
    head = ["DNN"] + [
        f"{c} {w}" for c in SCORE_COMPONENTS for w in ("ours", "published", "diff")
    ]
    head.append("status")
    rows = []
    for _, r in t.iterrows():
        tds = [f'<td class="name">{_esc(r["dnn"])}</td>']
        for c in SCORE_COMPONENTS:
            tds += [f"<td>{_num(r.get(c))}</td>", f"<td>{_num(r.get(f'{c}_published'))}</td>"]
            tds.append(f"<td>{_num(r.get(f'{c}_diff'), '+.1e')}</td>")
        cls = "ok" if r["status"] == "ok" else "fail" if r["status"] in ("FAIL", "missing") else "note"
        tds.append(f'<td class="{cls}">{_esc(r["status"])}</td>')
        rows.append("<tr>" + "".join(tds) + "</tr>")
    table = (
        f'<table id="verify"><thead><tr>{"".join(f"<th>{_esc(h)}</th>" for h in head)}</tr></thead>'
        f"<tbody>{''.join(rows)}</tbody></table>"
    )
    return verdict + note + f'<div class="scroll">{table}</div>'


def _render_value(value, depth: int = 0) -> str:
    if isinstance(value, dict):
        if not value:
            return "<i>(empty)</i>"
        items = []
        for k, v in value.items():
            inner = _render_value(v, depth + 1)
            if isinstance(v, dict) and depth >= 1 and v:
                items.append(
                    f"<dt>{_esc(k)}</dt><dd><details><summary>{len(v)} entries</summary>{inner}</details></dd>"
                )
            else:
                items.append(f"<dt>{_esc(k)}</dt><dd>{inner}</dd>")
        return "<dl>" + "".join(items) + "</dl>"
    if isinstance(value, list):
        if all(not isinstance(v, dict | list) for v in value):
            return _esc(", ".join(str(v) for v in value)) if value else "<i>(none)</i>"
        return "<ol>" + "".join(f"<li>{_render_value(v, depth + 1)}</li>" for v in value) + "</ol>"
    return "<i>null</i>" if value is None else _esc(value)


def provenance_html(path: Path) -> str:
    """The provenance record beside the score table, whatever keys it has; a note when there is none."""
    if not path.is_file():
        return f'<p class="note" id="no-provenance">No provenance record ({_esc(path.name)} not found).</p>'
    try:
        record = json.loads(path.read_text())
    except (OSError, ValueError) as e:
        return f'<p class="fail">Unreadable provenance record {_esc(path.name)}: {_esc(e)}</p>'
    return f'<div id="provenance">{_render_value(record)}</div>'


# -------------------------------------------------------------------------------------------------
# the page
# -------------------------------------------------------------------------------------------------


def read_report_tables(figures_dir: Path) -> tuple[pd.DataFrame, pd.DataFrame | None, pd.DataFrame | None]:
    """The score table of ``figures_dir`` and, when present, its per-DNN statistics and pairwise tables.

    Raises
    ------
    MissingDataError
        There is no score table.
    """
    from bhscore import figures

    table = figures_dir / figures.SCORE_TABLE
    if not table.is_file():
        raise MissingDataError(table, how=f"make figure-tables FIGURES={figures_dir}", what="score table")
    optional = [figures_dir / figures.TABLE_FILES[k] for k in ("dnn_stats", "pairwise")]
    dnn_stats, pairwise = (figures.read_csv(path) if path.is_file() else None for path in optional)
    return figures.read_csv(table), dnn_stats, pairwise


def _settings_line(settings_path: str | os.PathLike | None) -> str:
    """Which settings file the page is for, with the start of its SHA-256."""
    if settings_path is None:
        return "no settings file given"
    digest = hashlib.sha256(Path(settings_path).read_bytes()).hexdigest()[:16]
    return f"{_esc(Path(settings_path).resolve())} (SHA-256 {digest}…)"


def pairwise_section_html(scores: pd.DataFrame, dnn_stats: pd.DataFrame | None, pairwise: pd.DataFrame | None) -> str:
    """The pairwise matrix with how to read it, or a note that there is no pairwise table."""
    if pairwise is None:
        return '<p class="note">No pairwise table (tables/pairwise.csv): rebuild with make figures.</p>'
    order = list(scores.sort_values("averaged", ascending=False, kind="stable")["dnn"])
    n_boot = int(dnn_stats["n_boot"].iloc[0]) if dnn_stats is not None and len(dnn_stats) else None
    n_pairs = len(scores) * (len(scores) - 1) // 2
    note = (
        f'<p class="note">Averaged-score difference row - column from {n_boot} paired resamples (units within '
        "layers, voxels within subjects and shared by every DNN, fresh layer draws; docs/method.md). "
        f"Coloured: different after Holm's correction over the {n_pairs} pairs (red: row higher, blue: "
        "column higher); grey: not distinguishable. Hover a cell for its CI and p-values.</p>"
    )
    return note + f'<div class="scroll">{pairwise_matrix_html(pairwise, order)}</div>'


def _body(figures_dir: Path, settings_path, scores: pd.DataFrame, dnn_stats, pairwise) -> str:
    """Every section of the page, in order."""
    from bhscore.settings import load_settings

    settings = load_settings(settings_path) if settings_path is not None else None
    method = _esc(scores["p_method"].iloc[0]) if len(scores) and "p_method" in scores else "?"
    when = datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M:%S UTC")
    return f"""
<h1>BH scores: {len(scores)} DNN(s)</h1>
<p class="note">Generated {when} by bhscore {_esc(package_version())} from {_esc(figures_dir.resolve())};
settings {_settings_line(settings_path)}; significance filter {method}.</p>
<nav>Sections: <a href="#s-scores">scores</a> · <a href="#s-pairs">pairwise</a> · <a href="#s-figures">figures</a> ·
<a href="#s-verify">published</a> · <a href="#s-provenance">provenance</a></nav>
<h2 id="s-scores">Scores</h2>
<p class="note">Click a column header to sort. Brackets: bootstrap CI. Per subject: the averaged score of each
subject alone. Null p: is the averaged score above what the DNN gets with its layers in random order
(one-sided; exact over every ordering when there are few, Monte Carlo otherwise)? Letters: DNNs sharing a
letter are not significantly different (Holm, alpha 0.05).</p>
<div class="scroll">{score_table_html(scores, dnn_stats)}</div>
<h2 id="s-pairs">Pairwise comparisons</h2>
{pairwise_section_html(scores, dnn_stats, pairwise)}
<h2 id="s-figures">Figures</h2>
{figures_html(figures_dir)}
<h2 id="s-verify">Comparison with the published scores</h2>
{verify_html(settings, scores)}
<h2 id="s-provenance">Provenance of the accuracies</h2>
{provenance_html(figures_dir / PROVENANCE_FILE)}
"""


def _page(body: str) -> str:
    """The HTML document around ``body``: styles, the sorting script and the Content Security Policy."""
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">
<meta http-equiv="Content-Security-Policy" content="{_CSP}">
<meta name="viewport" content="width=device-width, initial-scale=1">
<link rel="icon" href="data:,">
<title>BH score report</title>
<style>{_CSS}</style>
<script>{_JS}</script>
</head><body>{body}</body></html>
"""


def build_report(
    figures_dir: str | os.PathLike,
    settings_path: str | os.PathLike | None = None,
    out: str | os.PathLike | None = None,
) -> Path:
    """Write the report page of a figures directory.

    Parameters
    ----------
    figures_dir : path-like
        Holds ``bhscores.csv``, ``tables/`` and the figures (``make figures``).
    settings_path : path-like, optional
        The settings the tables were computed with (for the comparison with the published scores).
    out : path-like, optional
        Default ``<figures_dir>/index.html``.

    Returns
    -------
    Path
        The page.
    """
    from bhscore.atomic import atomic_write_text

    figures_dir = Path(figures_dir)
    scores, dnn_stats, pairwise = read_report_tables(figures_dir)
    path = Path(out) if out is not None else figures_dir / REPORT_FILE
    atomic_write_text(path, _page(_body(figures_dir, settings_path, scores, dnn_stats, pairwise)))
    return path
