"""Plotting helpers shared by the notebooks: ROI colours, error bars, and saving figures reproducibly.

matplotlib is imported where used, so importing :mod:`bhscore.figures` stays cheap.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator, Sequence
from pathlib import Path

import numpy as np

_PDF_METADATA = {"CreationDate": None, "Creator": "bhscore"}  # no timestamp: identical inputs, identical PDF


def roi_colors(rois: Sequence[str]) -> dict[str, tuple]:
    """One colour per ROI, low (V1) to high (HVC) along a perceptually ordered colormap.

    Returns
    -------
    dict
        ROI -> RGBA tuple.
    """
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


def save_figure(
    fig, out_dir: str | os.PathLike, name: str, formats: Sequence[str] = ("pdf", "png"), dpi: int = 150
) -> list[Path]:
    """Save ``fig`` as ``<out_dir>/<name>.<fmt>`` for each format, each atomically.

    Returns
    -------
    list of Path
    """
    from bhscore.atomic import atomic_path

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

    from bhscore.atomic import atomic_path

    with atomic_path(Path(out_dir) / f"{name}.pdf") as tmp:
        pdf = PdfPages(tmp, metadata=_PDF_METADATA)
        try:
            yield pdf
        finally:
            pdf.close()
