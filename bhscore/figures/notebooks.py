"""The figures' notebooks (``analysis/<name>.ipynb``) and running them with papermill.

Each notebook gets, as papermill parameters, the settings file, the directory its PDF and PNG go to and the
directory of the tables; it reads the tables (:func:`bhscore.figures.load_tables`) and plots, nothing more.
"""

from __future__ import annotations

import contextlib
import os
import sys
from collections.abc import Iterator
from pathlib import Path

from bhscore.errors import UserError
from bhscore.settings import REPO_ROOT

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

#: The notebooks.
NOTEBOOK_DIR = REPO_ROOT / "analysis"
#: Executed notebooks, relative to the figures directory.
EXECUTED_DIR = "notebooks"
#: The Jupyter kernel the notebooks run in (the project's environment: ``ipykernel install --sys-prefix``).
KERNEL_NAME = "python3"


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

    from bhscore.atomic import atomic_write_text

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


def kernel_env() -> dict[str, str]:
    """Environment of the kernel: Agg backend; this environment's kernels found before the user's."""
    env_share = str(Path(sys.prefix) / "share" / "jupyter")
    jp = os.environ.get("JUPYTER_PATH")
    return {"MPLBACKEND": "Agg", "JUPYTER_PATH": env_share + (os.pathsep + jp if jp else "")}


@contextlib.contextmanager
def _kernel_environment() -> Iterator[None]:
    """:func:`kernel_env` set in this process for the block (the kernel is found with it and inherits it)."""
    values = kernel_env()
    old = {k: os.environ.get(k) for k in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for k, v in old.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def notebook_parameters(
    settings_path: str | os.PathLike, output_dir: Path, tables_dir: str | os.PathLike | None = None
) -> dict[str, str | None]:
    """The papermill parameters of a figure's notebook: absolute paths (the kernel runs in ``analysis/``).

    Returns
    -------
    dict
        ``settings_path``, ``output_dir`` and ``tables_dir`` (None: the tables are in ``output_dir``).
    """
    return {
        "settings_path": str(Path(settings_path).resolve()),
        "output_dir": str(Path(output_dir).resolve()),
        "tables_dir": str(Path(tables_dir).resolve()) if tables_dir else None,
    }


def run_notebook(
    name: str,
    settings_path: str | os.PathLike,
    output_dir: str | os.PathLike,
    tables_dir: str | os.PathLike | None = None,
    notebook_dir: str | os.PathLike | None = None,
    executed_dir: str | os.PathLike | None = None,
    kernel_name: str = KERNEL_NAME,
    timeout: float | None = None,
) -> Path:
    """Execute the notebook of one figure with papermill.

    The executed notebook goes to a temporary file renamed onto ``<executed_dir>/<name>.ipynb`` when it has
    run through and written ``<output_dir>/<name>.pdf`` and ``.png``; a failed run is kept as
    ``<name>.failed.ipynb`` for inspection and raises :class:`UserError`. The notebook only reads the tables:
    make them first (``bhscore figure-tables``).

    Parameters
    ----------
    name : str
        Figure name (notebook stem), see :data:`FIGURES`.
    settings_path : path-like
    output_dir : path-like
        Where the figure files go.
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
    from bhscore.atomic import atomic_path

    nb = notebook_path(name, notebook_dir).resolve()
    output_dir = Path(output_dir).resolve()
    executed_dir = Path(executed_dir).resolve() if executed_dir else output_dir / EXECUTED_DIR
    executed_dir.mkdir(parents=True, exist_ok=True)
    output_dir.mkdir(parents=True, exist_ok=True)
    target = executed_dir / f"{name}.ipynb"
    failed = executed_dir / f"{name}.failed.ipynb"
    params = notebook_parameters(settings_path, output_dir, tables_dir)
    with atomic_path(target) as tmp, _kernel_environment():
        _execute(nb, tmp, failed, params, kernel_name, timeout)
        absent = [str(p) for p in (output_dir / f"{name}.{fmt}" for fmt in ("pdf", "png")) if _empty(p)]
        if absent:
            raise UserError(f"figure {name}: the notebook ran but did not write {', '.join(absent)}")
    failed.unlink(missing_ok=True)
    return target


def _empty(path: Path) -> bool:
    return not path.is_file() or path.stat().st_size == 0


def _execute(nb: Path, out: Path, failed: Path, params: dict, kernel_name: str, timeout: float | None) -> None:
    """Run notebook ``nb`` into ``out``; on a failing cell move ``out`` to ``failed`` and raise :class:`UserError`."""
    import papermill

    try:
        papermill.execute_notebook(
            str(nb),
            str(out),
            parameters=params,
            kernel_name=kernel_name,
            language="python",
            cwd=str(nb.parent),
            progress_bar=False,
            execution_timeout=timeout,
            extra_arguments=["--IPKernelApp.log_level=CRITICAL"],  # no transport warnings on stderr
        )
    except papermill.PapermillExecutionError as e:
        if out.exists():
            os.replace(out, failed)
        raise UserError(
            f"figure {nb.stem}: the notebook failed in cell {e.exec_count}: {e.ename}: {e.evalue}\n"
            f"  the executed notebook is {failed}"
        ) from None
