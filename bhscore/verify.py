"""The reproduction check: computed BH scores against the published ones.

The published table (``reference/published_bhscores.csv``, copied from the original notebook's printed output)
holds the decoding-, encoding-based and averaged scores of the paper's 29 DNNs and their ImageNet top-1
accuracies. With the paper's settings (legacy significance filter, the seed-0 voxel subsample of 1000 per file)
our scores must agree:

- encoding-based: within 1e-6 (the computation is deterministic, so it must be the same number);
- decoding-based: within 0.015, the run-to-run spread of the original's unseeded random layer draws (ours are
  seeded, so they are one realisation of the same distribution);
- averaged: within 0.01 (the decoding spread halved, with margin);
- ImageNet top-1 in the settings: equal to the published value (Figure 3B uses it).

Examples
--------
>>> from bhscore.settings import load_settings
>>> from bhscore import verify
>>> result = verify.verify(load_settings(), table="figures/bhscores.csv")  # doctest: +SKIP
>>> print(verify.format_report(result)); result.ok                         # doctest: +SKIP
"""

from __future__ import annotations

import math
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from bhscore.errors import MissingDataError, UserError
from bhscore.kinds import SCORE_COMPONENTS
from bhscore.settings import REPO_ROOT

if TYPE_CHECKING:
    import pandas as pd

#: The published scores (copied from the shared reference into the repository).
PUBLISHED = REPO_ROOT / "reference" / "published_bhscores.csv"

#: Largest accepted |computed - published| per score component.
TOLERANCES = {"decoding": 0.015, "encoding": 1e-6, "averaged": 0.01}
#: Largest accepted |settings - published| ImageNet top-1 (percent).
TOP1_TOLERANCE = 1e-6

#: Score settings that the published numbers used (``settings.analysis.score``); others change the scores.
PAPER_SCORE_SETTINGS = {
    "p_method": "legacy",
    "p_threshold": 0.05,
    "layers_per_draw": 5,
    "encoding_voxel_subsample": 1000,
}

COMPONENTS = SCORE_COMPONENTS
_PUBLISHED_COLUMNS = {
    "bhscore_decoding": "decoding",
    "bhscore_encoding": "encoding",
    "bhscore_averaged": "averaged",
    "imagenet_top1_percent": "imagenet_top1",
}


def read_published(path: str | os.PathLike | None = None) -> pd.DataFrame:
    """The published table with columns dnn, decoding, encoding, averaged, imagenet_top1.

    Parameters
    ----------
    path : path-like, optional
        Default :data:`PUBLISHED`. Columns ``dnn, bhscore_decoding, bhscore_encoding, bhscore_averaged,
        imagenet_top1_percent`` (as in the shared reference) or already ``dnn, decoding, encoding, averaged,
        imagenet_top1``.
    """
    import pandas as pd

    path = Path(path) if path else PUBLISHED
    if not path.is_file():
        raise MissingDataError(path, what="published BH score table")
    df = pd.read_csv(path, keep_default_na=False, na_values=[""]).rename(columns=_PUBLISHED_COLUMNS)
    need = ["dnn", *COMPONENTS]
    absent = [c for c in need if c not in df.columns]
    if absent:
        raise UserError(f"{path}: missing column(s) {absent}; has {list(df.columns)}")
    if df["dnn"].duplicated().any():
        raise UserError(f"{path}: DNNs listed twice: {sorted(df.dnn[df.dnn.duplicated()])}")
    if "imagenet_top1" not in df.columns:
        df["imagenet_top1"] = np.nan
    return df[["dnn", *COMPONENTS, "imagenet_top1"]]


def settings_problems(settings) -> list[str]:
    """How ``settings.analysis.score`` differs from the settings the published scores used (empty: none)."""
    s = settings.analysis.score
    return [
        f"analysis.score.{key} = {getattr(s, key)!r}, the published scores used {value!r}"
        for key, value in PAPER_SCORE_SETTINGS.items()
        if getattr(s, key) != value
    ]


@dataclass
class Comparison:
    """The outcome of :func:`compare`.

    Attributes
    ----------
    table : DataFrame
        One row per DNN: for each component c: c (computed), c_published, c_diff (computed - published),
        c_ok; imagenet_top1, imagenet_top1_published, imagenet_top1_ok; status ('ok', 'FAIL', 'missing': published
        but not computed, 'unpublished': computed only, not checked).
    failures : list of str
        One line per failed check.
    tolerances : dict
    """

    table: pd.DataFrame
    failures: list[str] = field(default_factory=list)
    tolerances: dict = field(default_factory=lambda: dict(TOLERANCES))

    @property
    def ok(self) -> bool:
        return not self.failures

    @property
    def n_checked(self) -> int:
        return int(self.table["status"].isin(["ok", "FAIL"]).sum())


def _within(a: float, b: float, tol: float) -> bool:
    if math.isnan(a) and math.isnan(b):
        return True
    return bool(abs(a - b) <= tol)  # False when only one is NaN


def compare(
    computed: pd.DataFrame,
    published: pd.DataFrame,
    tolerances: dict | None = None,
    top1_tolerance: float = TOP1_TOLERANCE,
) -> Comparison:
    """Compare a score table with the published one.

    Parameters
    ----------
    computed : DataFrame
        Columns dnn, decoding, encoding, averaged and optionally imagenet_top1 (a score table).
    published : DataFrame
        As returned by :func:`read_published`.
    tolerances : dict, optional
        Component -> largest accepted |difference|; default :data:`TOLERANCES`.
    top1_tolerance : float

    Returns
    -------
    Comparison
    """
    import pandas as pd

    tol = dict(TOLERANCES, **(tolerances or {}))
    comp = computed.set_index("dnn")
    pub = published.set_index("dnn")
    names = list(pub.index) + [n for n in comp.index if n not in pub.index]
    rows, failures = [], []
    for name in names:
        row: dict = {"dnn": name}
        if name not in comp.index:
            row["status"] = "missing"
            failures.append(f"{name}: published but not in the computed table")
            rows.append(row)
            continue
        if name not in pub.index:
            row.update({c: float(comp.at[name, c]) for c in COMPONENTS})
            row["status"] = "unpublished"
            rows.append(row)
            continue
        bad = []
        for c in COMPONENTS:
            a, b = float(comp.at[name, c]), float(pub.at[name, c])
            ok = _within(a, b, tol[c])
            row.update({c: a, f"{c}_published": b, f"{c}_diff": a - b, f"{c}_ok": ok})
            if not ok:
                bad.append(f"{c} {a:.6f} vs published {b:.6f} (|diff| {abs(a - b):.2g} > {tol[c]:g})")
        a = float(comp.at[name, "imagenet_top1"]) if "imagenet_top1" in comp.columns else math.nan
        b = float(pub.at[name, "imagenet_top1"])
        top1_ok = math.isnan(b) or _within(a, b, top1_tolerance)
        row.update({"imagenet_top1": a, "imagenet_top1_published": b, "imagenet_top1_ok": top1_ok})
        if not top1_ok:
            bad.append(f"ImageNet top-1 in the settings {a:g} vs published {b:g}")
        row["status"] = "FAIL" if bad else "ok"
        failures += [f"{name}: {msg}" for msg in bad]
        rows.append(row)
    cols = ["dnn"]
    for c in COMPONENTS:
        cols += [c, f"{c}_published", f"{c}_diff", f"{c}_ok"]
    cols += ["imagenet_top1", "imagenet_top1_published", "imagenet_top1_ok", "status"]
    return Comparison(pd.DataFrame(rows, columns=cols), failures, tol)


def format_report(result: Comparison) -> str:
    """A per-DNN table of computed vs published scores and their differences, and a verdict."""
    t = result.table

    def num(v, fmt):
        return "" if v is None or (isinstance(v, float) and math.isnan(v)) else format(v, fmt)

    header = ["dnn"]
    for c in COMPONENTS:
        header += [c[:3], "published", "diff"]
    header.append("status")
    lines = []
    for _, r in t.iterrows():
        cells = [str(r["dnn"])]
        for c in COMPONENTS:
            cells += [
                num(r.get(c), ".6f"),
                num(r.get(f"{c}_published"), ".6f"),
                num(r.get(f"{c}_diff"), "+.1e"),
            ]
        cells.append(str(r["status"]))
        lines.append(cells)
    widths = [
        max(len(h), *(len(line[i]) for line in lines)) if lines else len(h) for i, h in enumerate(header)
    ]
    fmt_row = lambda cells: "  ".join(  # noqa: E731
        cell.ljust(w) if i in (0, len(cells) - 1) else cell.rjust(w)
        for i, (cell, w) in enumerate(zip(cells, widths, strict=True))
    )
    tol = ", ".join(f"{c} {result.tolerances[c]:g}" for c in COMPONENTS)
    out = [f"computed vs published BH scores (tolerances: {tol}; dec/enc/ave = decoding/encoding/averaged)"]
    out += [fmt_row(header), fmt_row(["-" * w for w in widths])]
    out += [fmt_row(cells) for cells in lines]
    n_pub = int(t["status"].isin(["ok", "FAIL", "missing"]).sum())
    if result.ok:
        out.append(f"PASS: {result.n_checked} of {n_pub} published DNNs reproduced within tolerance")
    else:
        out.append(f"FAIL: {len(result.failures)} check(s) failed:")
        out += [f"  {f}" for f in result.failures]
    return "\n".join(out)


def verify(
    settings,
    table: str | os.PathLike | pd.DataFrame | None = None,
    published: str | os.PathLike | None = None,
    dnns: Sequence[str] | None = None,
    tolerances: dict | None = None,
) -> Comparison:
    """Compare the scores of ``settings`` with the published table.

    Parameters
    ----------
    settings : bhscore.settings.Settings
        Must carry the paper's score settings (:data:`PAPER_SCORE_SETTINGS`; ``p_method`` is forced to 'legacy'
        when the scores are computed here).
    table : path-like or DataFrame, optional
        A score table computed with these settings (e.g. ``figures/bhscores.csv``); default: compute the scores
        now (legacy filter, no bootstrap).
    published : path-like, optional
        Default :data:`PUBLISHED`.
    dnns : sequence of str, optional
        Check only these DNNs (default: every published DNN).
    tolerances : dict, optional
        Override :data:`TOLERANCES` per component.

    Raises
    ------
    UserError
        When the settings or the table do not use the paper's score settings.
    """
    import pandas as pd

    problems = [
        p
        for p in settings_problems(settings)
        if table is not None or not p.startswith("analysis.score.p_method")
    ]
    pub = read_published(published)
    if dnns:
        unknown = [d for d in dnns if d not in set(pub.dnn)]
        if unknown:
            raise UserError(f"not in the published table: {unknown}; published: {', '.join(pub.dnn)}")
        pub = pub[pub.dnn.isin(dnns)]
    if table is None:
        if problems:
            raise UserError(_problems_message(problems))
        from bhscore.score import score_table

        names = [d for d in pub.dnn if d in settings.dnns]
        computed = score_table(settings, dnns=names, p_method="legacy", n_bootstrap=0)
    else:
        computed = table if isinstance(table, pd.DataFrame) else _read_table(table)
        methods = set(computed["p_method"].dropna()) if "p_method" in computed.columns else set()
        if methods - {"legacy"}:
            problems.append(
                f"the table was computed with p_method {sorted(methods)}, the published scores used 'legacy'"
            )
        if problems:
            raise UserError(_problems_message(problems))
    if dnns:
        computed = computed[computed.dnn.isin(dnns)]
    return compare(computed, pub, tolerances)


def _read_table(path: str | os.PathLike) -> pd.DataFrame:
    import pandas as pd

    path = Path(path)
    if not path.is_file():
        raise MissingDataError(path, how="make figure-tables (or bhscore figure-tables)", what="score table")
    return pd.read_csv(path, keep_default_na=False, na_values=[""])


def _problems_message(problems: list[str]) -> str:
    return (
        "the published scores cannot be reproduced with these settings:\n"
        + "\n".join(f"  - {p}" for p in problems)
        + "\n  use the repository's settings.json (the paper's settings) for `make verify`"
    )
