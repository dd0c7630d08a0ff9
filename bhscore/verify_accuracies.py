"""``bhscore verify --accuracies``: this machine's accuracy files against the published ones, file by file.

For every (kind, DNN, layer, subject, ROI) that has both a computed file (the current parameter set,
``computed/<kind>_accuracy/<set>``) and a published one (``published/<kind>_accuracy``), it reports the item
counts, the Pearson r between the two accuracy vectors, the largest \\|difference\\| and the NaN mismatches
(NaN in one file only); per DNN the BH scores (decoding, encoding, averaged) from either tree; and per DNN the
number of all-NaN files in the published encoding tree.

Tolerances (``analysis.verify``): a file passes when its item counts and NaN positions agree, its max
\\|difference\\| is within ``<kind>_max_abs_diff`` and its r is at least ``min_pearson_r``.

Reference tree
--------------
:func:`write_reference_tree` computes accuracies as the original scripts do (bdpy's ``ModelTraining`` with
``fastl2lir.FastL2LiR``, z-scoring by the training mean and std with ddof=1, test samples averaged per image,
Pearson r per output over the test images) and writes them as a published tree: the demo and the tests use it
as their "published" accuracies.

Examples
--------
>>> from bhscore.settings import load_settings
>>> from bhscore.verify_accuracies import compare_accuracies, format_accuracy_report
>>> result = compare_accuracies(load_settings(), dnns=["AlexNet"])   # doctest: +SKIP
>>> print(format_accuracy_report(result)); result.ok                 # doctest: +SKIP
"""

from __future__ import annotations

import contextlib
import io
import itertools
import logging
import math
import os
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from bhscore.errors import UserError
from bhscore.kinds import SCORE_COMPONENTS, kind_of
from bhscore.paths import KINDS, TEST, TRAINING, Layout

if TYPE_CHECKING:
    import pandas as pd

log = logging.getLogger(__name__)

#: Columns of the per-file table.
FILE_COLUMNS = ["kind", "dnn", "layer", "subject", "roi", "n_computed", "n_published", "pearson_r",
                "max_abs_diff", "nan_mismatch", "ok", "path"]  # fmt: skip


@dataclass
class AccuracyComparison:
    """The outcome of :func:`compare_accuracies`.

    Attributes
    ----------
    files : DataFrame
        One row per compared file (:data:`FILE_COLUMNS`).
    scores : DataFrame
        One row per DNN: ``<component>_computed``, ``<component>_published``, ``<component>_diff`` for
        decoding, encoding, averaged.
    all_nan : dict
        DNN -> number of all-NaN files in the published encoding tree (of those read).
    failures : list of str
        One line per file outside the tolerances, naming the file.
    tolerances : dict
    """

    files: pd.DataFrame
    scores: pd.DataFrame
    all_nan: dict[str, int]
    failures: list[str] = field(default_factory=list)
    tolerances: dict = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return not self.failures


def _tolerances(settings) -> dict:
    v = settings.analysis.verify
    return {"decoding": v.decoding_max_abs_diff, "encoding": v.encoding_max_abs_diff, "min_r": v.min_pearson_r}


def compare_files(computed: np.ndarray, published: np.ndarray) -> dict:
    """Agreement of two accuracy vectors (shape (n,) each).

    Returns
    -------
    dict
        ``n_computed``, ``n_published``, ``pearson_r`` (over items finite in both; NaN when sizes differ or
        fewer than 2), ``max_abs_diff`` (same items), ``nan_mismatch`` (items NaN in exactly one vector).
    """
    a, b = np.asarray(computed, np.float64).ravel(), np.asarray(published, np.float64).ravel()
    out = {"n_computed": a.size, "n_published": b.size, "pearson_r": math.nan, "max_abs_diff": math.nan,
           "nan_mismatch": -1}  # fmt: skip
    if a.size != b.size:
        return out
    fa, fb = np.isfinite(a), np.isfinite(b)
    both = fa & fb
    out["nan_mismatch"] = int((fa != fb).sum())
    if both.any():
        out["max_abs_diff"] = float(np.abs(a[both] - b[both]).max())
    if both.sum() >= 2:
        x, y = a[both] - a[both].mean(), b[both] - b[both].mean()
        den = math.sqrt(float(x @ x) * float(y @ y))
        out["pearson_r"] = float(x @ y) / den if den > 0 else (1.0 if out["max_abs_diff"] == 0 else math.nan)
    return out


def _settings_with_source(settings, source: str):
    from bhscore.settings import settings_from_dict

    raw = settings.model_dump()
    raw["analysis"]["score"]["accuracy_source"] = source
    for d in raw["dnns"].values():
        d["accuracy_source"] = None
    return settings_from_dict(raw, source=settings.source)


def dnns_with_both(settings) -> list[str]:
    """DNNs of ``settings`` with at least one computed and one published accuracy file of some kind."""
    from bhscore.sources import accuracy_file

    def has(name: str, source: str) -> bool:
        first = (settings.dnns[name].layers[0], settings.subjects[0], settings.rois[0])
        return any(accuracy_file(settings, k, name, *first, source=source).is_file() for k in KINDS)

    return [name for name in settings.dnns if has(name, "computed") and has(name, "published")]


def _compare_job(settings, job, tol: dict) -> tuple[dict, str, int] | None:
    """One job's computed file against its published one: (row of the file table, failure line or "", 1 if
    the published file is all NaN where the original can leave it so, else 0); None if either is absent."""
    from bhscore.formats import read_accuracy
    from bhscore.sources import accuracy_file

    where = (job.kind, job.dnn, job.layer, job.subject, job.roi)
    pub_path = accuracy_file(settings, *where, source="published")
    comp_path = accuracy_file(settings, *where, source="computed")
    if not pub_path.is_file() or not comp_path.is_file():
        return None
    pub, comp = read_accuracy(pub_path)[0], read_accuracy(comp_path)[0]
    all_nan = int(kind_of(job.kind).whole_file_nan and not np.isfinite(pub).any())
    stats = compare_files(comp, pub)
    ok = (stats["n_computed"] == stats["n_published"] and stats["nan_mismatch"] == 0
          and not stats["max_abs_diff"] > tol[job.kind] and not stats["pearson_r"] < tol["min_r"])  # fmt: skip
    row = {"kind": job.kind, "dnn": job.dnn, "layer": job.layer, "subject": job.subject, "roi": job.roi,
           **stats, "ok": ok, "path": str(comp_path)}  # fmt: skip
    failure = "" if ok else (
        f"{comp_path}: {' '.join(where)} vs {pub_path}: items {stats['n_computed']}/{stats['n_published']}, "
        f"r {stats['pearson_r']:.6g}, max |diff| {stats['max_abs_diff']:.3g} (tolerance {tol[job.kind]:g}), "
        f"NaN mismatches {stats['nan_mismatch']}"
    )
    return row, failure, all_nan


def compare_accuracies(settings, dnns: Sequence[str] | None = None, scores: bool = True) -> AccuracyComparison:
    """Compare the computed accuracy files of ``dnns`` with the published ones (see the module docstring).

    Parameters
    ----------
    settings : bhscore.settings.Settings
        The parameter set of the computed files and the tolerances (``analysis.verify``).
    dnns : sequence of str, optional
        Default: every DNN with both trees (:func:`dnns_with_both`).
    scores : bool
        Also compute the BH scores from either tree (legacy filter, no bootstrap).

    Raises
    ------
    UserError
        No DNN has both trees, or a named DNN has neither file of a job.
    """
    import pandas as pd

    from bhscore.jobs import Job

    names = list(dnns) if dnns else dnns_with_both(settings)
    if not names:
        raise UserError(
            "no DNN has both computed and published accuracies: run `bhscore decode --dnn NAME` / `bhscore encode "
            "--dnn NAME` and `make download-accuracy` first (simulated data and the demo: add --write-reference "
            "to compute their published tree the original scripts' way)"
        )
    for name in names:
        settings.dnn(name)  # an unknown name: one clear error
    tol = _tolerances(settings)
    rows, failures, all_nan = [], [], {}
    for kind in KINDS:
        for name in names:
            if kind_of(kind).whole_file_nan:
                all_nan.setdefault(name, 0)
            cells = itertools.product(settings.dnns[name].layers, settings.subjects, settings.rois)
            for job in (Job(kind, name, *cell) for cell in cells):
                compared = _compare_job(settings, job, tol)
                if compared is None:
                    continue
                row, failure, pub_all_nan = compared
                rows.append(row)
                if failure:
                    failures.append(failure)
                if pub_all_nan:
                    all_nan[name] += 1
    files = pd.DataFrame(rows, columns=FILE_COLUMNS)
    if files.empty:
        raise UserError(f"no accuracy file of {', '.join(names)} exists in both the computed and the published tree")
    score_rows = pd.DataFrame({"dnn": names})
    if scores:
        score_rows = _scores(settings, names)
    return AccuracyComparison(files, score_rows, all_nan, failures, tol)


def _scores(settings, names: list[str]) -> pd.DataFrame:
    from bhscore.score import score_table

    out = None
    for source in ("computed", "published"):
        s = _settings_with_source(settings, source)
        try:
            t = score_table(s, dnns=names, p_method="legacy", progress=False, n_bootstrap=0)
        except UserError as e:  # e.g. one kind absent from a tree: say so, keep the file comparison
            log.warning("BH scores from the %s tree not computed: %s", source, e)
            return out if out is not None else _empty_scores(names)
        t = t.set_index("dnn")[list(SCORE_COMPONENTS)].add_suffix(f"_{source}")
        out = t if out is None else out.join(t)
    for c in SCORE_COMPONENTS:
        out[f"{c}_diff"] = out[f"{c}_computed"] - out[f"{c}_published"]
    return out.reset_index()


def _empty_scores(names):
    import pandas as pd

    return pd.DataFrame({"dnn": names})


def summary(result: AccuracyComparison) -> pd.DataFrame:
    """Per (kind, DNN, layer): files, items, smallest r, largest \\|difference\\|, NaN mismatches, failures."""
    f = result.files
    g = f.groupby(["kind", "dnn", "layer"], sort=False)
    return g.agg(files=("ok", "size"), items=("n_computed", "sum"), min_pearson_r=("pearson_r", "min"),
                 max_abs_diff=("max_abs_diff", "max"), nan_mismatch=("nan_mismatch", "sum"),
                 failed=("ok", lambda s: int((~s).sum()))).reset_index()  # fmt: skip


def format_accuracy_report(result: AccuracyComparison) -> str:
    """The per-layer agreement, the BH scores from either tree, the all-NaN counts and a verdict."""
    s = summary(result)
    out = [f"computed vs published accuracies (tolerances: decoding {result.tolerances['decoding']:g}, encoding "
           f"{result.tolerances['encoding']:g}, Pearson r >= {result.tolerances['min_r']:g})"]  # fmt: skip
    out.append(f"{'kind':8s} {'dnn':20s} {'layer':16s} {'files':>5s} {'items':>8s} {'min r':>10s} {'max|diff|':>10s} "
               f"{'NaN!=':>6s} {'failed':>6s}")  # fmt: skip
    for r in s.itertuples():
        out.append(f"{r.kind:8s} {r.dnn:20s} {r.layer:16s} {r.files:5d} {r.items:8d} {r.min_pearson_r:10.7f} "
                   f"{r.max_abs_diff:10.2e} {r.nan_mismatch:6d} {r.failed:6d}")  # fmt: skip
    if {"decoding_computed", "decoding_published"} <= set(result.scores.columns):
        out.append("BH scores (legacy filter) from the computed vs the published tree:")
        for r in result.scores.itertuples():
            out.append("  " + f"{r.dnn:20s} " + "  ".join(
                f"{c} {getattr(r, c + '_computed'):.6f} vs {getattr(r, c + '_published'):.6f} "
                f"({getattr(r, c + '_diff'):+.1e})" for c in SCORE_COMPONENTS))  # fmt: skip
    out.append("all-NaN files in the published encoding tree: "
               + ", ".join(f"{k} {v}" for k, v in result.all_nan.items()))  # fmt: skip
    n = len(result.files)
    if result.ok:
        out.append(f"PASS: {n} accuracy files agree within tolerance")
    else:
        out.append(f"FAIL: {len(result.failures)} of {n} files outside tolerance:")
        out += [f"  {line}" for line in result.failures[:20]]
        if len(result.failures) > 20:
            out.append(f"  ... {len(result.failures) - 20} more in the CSV")
    return "\n".join(out)


def write_outputs(result: AccuracyComparison, out_dir: str | os.PathLike, settings) -> list[Path]:
    """Write ``accuracy_files.csv``, ``accuracy_summary.csv``, ``accuracy_scores.csv`` and the figure
    ``verify_accuracies.{png,pdf}`` (computed vs published accuracies per ROI, coloured by layer; per-layer
    agreement) into ``out_dir``, atomically. Returns the paths written."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from bhscore.formats import atomic_path, atomic_write_text, read_accuracy
    from bhscore.sources import accuracy_file

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = []
    for name, table in (("accuracy_files.csv", result.files), ("accuracy_summary.csv", summary(result)),
                        ("accuracy_scores.csv", result.scores)):  # fmt: skip
        atomic_write_text(out_dir / name, table.to_csv(index=False))
        paths.append(out_dir / name)

    f = result.files
    kinds = [k for k in KINDS if (f.kind == k).any()]
    rois = list(dict.fromkeys(f.roi))
    fig, axes = plt.subplots(len(kinds), len(rois) + 1, figsize=(2.6 * (len(rois) + 1), 2.6 * len(kinds)),
                             squeeze=False)  # fmt: skip
    for i, kind in enumerate(kinds):
        fk = f[f.kind == kind]
        layers = list(dict.fromkeys(fk.layer))
        colours = plt.get_cmap("viridis")(np.linspace(0, 1, max(len(layers), 2)))
        for j, roi in enumerate(rois):
            ax = axes[i, j]
            for r in fk[fk.roi == roi].itertuples():
                comp = read_accuracy(r.path)[0]
                pub = read_accuracy(accuracy_file(settings, kind, r.dnn, r.layer, r.subject, r.roi,
                                                  source="published"))[0]  # fmt: skip
                if comp.size == pub.size:
                    ax.scatter(pub, comp, s=2, color=colours[layers.index(r.layer)], alpha=0.5, linewidths=0)
            ax.plot([-1, 1], [-1, 1], color="0.6", lw=0.5)
            ax.set_title(f"{kind} {roi}", fontsize=8)
            ax.set_xlabel("published r", fontsize=7)
            if j == 0:
                ax.set_ylabel("computed r", fontsize=7)
            ax.tick_params(labelsize=6)
        ax = axes[i, len(rois)]
        per_layer = fk.groupby("layer", sort=False)["max_abs_diff"].max().reindex(layers)
        ax.bar(range(len(layers)), per_layer.fillna(0).to_numpy(), color=colours[: len(layers)])
        ax.axhline(result.tolerances[kind], color="red", lw=0.7, ls="--", label="tolerance")
        ax.set_yscale("symlog", linthresh=1e-9)
        ax.set_xticks(range(len(layers)), layers, rotation=90, fontsize=5)
        ax.set_title(f"{kind}: max |diff| per layer", fontsize=8)
        ax.tick_params(labelsize=6)
        ax.legend(fontsize=6)
    fig.tight_layout()
    for ext in ("png", "pdf"):
        path = out_dir / f"verify_accuracies.{ext}"
        with atomic_path(path) as tmp:
            fig.savefig(tmp, format=ext, dpi=150)
        paths.append(path)
    plt.close(fig)
    return paths


def run(settings, dnns: Sequence[str] | None = None, out_dir: str | os.PathLike | None = None):
    """Compare, then write the tables and the figure into ``out_dir`` (if given). Returns (result, paths)."""
    result = compare_accuracies(settings, dnns)
    paths = []
    if out_dir is not None:
        paths = write_outputs(result, out_dir, settings)
    return result, paths


# -------------------------------------------------------------------------------------------------
# the reference path (the original scripts' computation) for a "published" tree
# -------------------------------------------------------------------------------------------------


def _zscore_stats(a: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    return a.mean(axis=0, keepdims=True), a.std(axis=0, ddof=1, keepdims=True)


def _reference_model(fit_dtype: str):
    """The fastl2lir package and the extra ``fit`` parameters of the original scripts for a settings dtype:
    float64 passes none (the original decoding), float32 ``dtype=np.float32`` (the original encoding) with
    fastl2lir 0.11, float32_mixed the same with fastl2lir 0.7 (docs/method.md, options)."""
    from bhscore.ridge.reference import package_for
    from bhscore.settings import PRECISIONS

    dtype, solve_dtype = PRECISIONS[fit_dtype]
    package = package_for(np.dtype(dtype), np.dtype(solve_dtype))
    return package, ({} if fit_dtype == "float64" else {"dtype": np.float32})


def _reference_fit_predict(X, Y, X_test, alpha, n_feat, dtype, x_stats=None, y_stats=None, fit_dtype="float64"):
    """FastL2LiR through bdpy's ModelTraining, as the original scripts: z-scored X and Y (training statistics),
    prediction un-z-scored. Shapes: X (n, p), Y (n, q), X_test (m, p) -> (m, q).

    ``x_stats`` / ``y_stats``: (mean, std) arrays of shape (1, p) / (1, q) when the original takes them from
    other rows than the fitted ones (the features' statistics over the distinct images). ``dtype``:
    ModelTraining's (the data's rounding); ``fit_dtype``: the settings dtype of the fit (:func:`_reference_model`).
    """
    from bdpy.ml import ModelTraining

    x_mean, x_norm = x_stats if x_stats is not None else _zscore_stats(X)
    y_mean, y_norm = y_stats if y_stats is not None else _zscore_stats(Y)
    from bhscore.ridge.reference import quiet

    package, fit_parameters = _reference_model(fit_dtype)
    model = package.FastL2LiR()
    with tempfile.TemporaryDirectory() as tmp, contextlib.redirect_stdout(io.StringIO()), quiet(package):
        train = ModelTraining(model, X, Y, X_normalize={"mean": x_mean, "std": x_norm},
                              Y_normalize={"mean": y_mean, "std": y_norm}, dtype=dtype,
                              model_parameters={"alpha": alpha, "n_feat": min(n_feat, X.shape[1]),
                                                **fit_parameters},
                              save_format="pickle", save_path=os.path.join(tmp, "model"), verbose=0)  # fmt: skip
        train.run()
    pred = model.predict(((X_test - x_mean) / x_norm).astype(dtype or np.float64))
    return pred * y_norm + y_mean


def _pearson_columns(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    a, b = a - a.mean(axis=0), b - b.mean(axis=0)
    with np.errstate(invalid="ignore", divide="ignore"):
        return (a * b).sum(axis=0) / np.sqrt((a * a).sum(axis=0) * (b * b).sum(axis=0))


def _write_reference_layer(settings, layout, store, fm, where: tuple[str, str, str, str], dtype) -> None:
    """The reference accuracy files of one (kind, DNN, layer, subject), every ROI (see write_reference_tree)."""
    from bhscore.fitting import sample_rows
    from bhscore.formats import write_accuracy

    kind, name, layer, subject = where
    description, ridge = kind_of(kind), kind_of(kind).ridge_settings(settings)
    rows = sample_rows(fm.train_labels, fm.train_images, subject)
    F_img = store.features(name, layer, TRAINING, fm.train_images).astype(np.float64)
    F_test = store.features(name, layer, TEST, fm.test_names).astype(np.float64)
    order = store.unit_order(name, layer)
    if order is not None:  # the original encoding flattens units in Fortran order
        F_img, F_test = F_img[:, order], F_test[:, order]
    F, f_stats = F_img[rows], _zscore_stats(F_img)  # the features' statistics over the distinct images
    stats = {"x_stats" if description.inputs == "units" else "y_stats": f_stats}
    for roi in settings.rois:
        B, B_test = fm.train[roi].astype(np.float64), fm.test[roi].astype(np.float64)
        X, Y = description.inputs_outputs(B, F)
        X_test, Y_test = description.inputs_outputs(B_test, F_test)
        pred = _reference_fit_predict(X, Y, X_test, ridge.alpha, ridge.n_feat, dtype, fit_dtype=ridge.dtype, **stats)
        path = layout.accuracy_file(layout.published_accuracy_root(kind), settings.dnn(name).dir, layer, subject, roi)
        write_accuracy(path, _pearson_columns(pred, Y_test), len(fm.test_names))


def write_reference_tree(settings, dnns: Sequence[str] | None = None, kinds: Sequence[str] = KINDS,
                         dtypes: dict | None = None, progress: bool = True) -> Path:  # fmt: skip
    """Compute accuracies the original scripts' way and write them as the published tree of ``settings``.

    ModelTraining with dtype float32 in both directions and the features' statistics over the distinct
    training images (the original scripts; ``dtypes`` overrides the dtypes), alpha, n_feat and the fit's
    dtype from ``settings.analysis`` (float32_mixed: fastl2lir 0.7); encoding reads the features tree of
    ``analysis.encoding.inputs``. Meant for small experiments (the demo, tests): one bdpy fit per (DNN, layer, subject, ROI).

    Returns
    -------
    Path
        The published root (``<data root>/published``).
    """
    from tqdm.auto import tqdm

    from bhscore.datastore import DataStore


    # both original scripts run bdpy's ModelTraining with dtype float32 (docs/method.md, options)
    dtypes = {"decoding": np.float32, "encoding": np.float32, **(dtypes or {})}
    layout = Layout.from_settings(settings)
    names = list(dnns) if dnns else list(settings.dnns)
    n_layers = sum(len(settings.dnn(name).layers) for name in names)
    total = len(kinds) * len(settings.subjects) * n_layers * len(settings.rois)
    with tqdm(total=total, desc="reference fits (bdpy + fastl2lir)", unit="job", disable=not progress) as bar:
        for kind in kinds:
            store = DataStore(settings, kind=kind, non_finite="propagate")
            for subject in settings.subjects:
                fm = store.fmri(subject)
                for name in names:
                    for layer in settings.dnn(name).layers:
                        _write_reference_layer(settings, layout, store, fm, (kind, name, layer, subject), dtypes[kind])
                        bar.update(len(settings.rois))
    return layout.published_root
