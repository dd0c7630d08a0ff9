"""Simulated item tops with a planted hierarchy, and the calibration of the tests on them.

Used by docs/method.md (the measured calibration), the tests and ``bench/bench_compare.py``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np

from bhscore.score import COMPONENTS, ScoreOptions
from bhscore.stats.bootstrap import bootstrap_scores
from bhscore.stats.null import EXACT_LIMIT, N_PERMUTATIONS, layer_order_null
from bhscore.stats.pairwise import differences
from bhscore.stats.tops import ItemTops, level_tops

if TYPE_CHECKING:
    import pandas as pd


def _affinity(strength: float, n_layers: int, n_rois: int) -> np.ndarray:
    """(n_layers, n_rois): a Gaussian ridge along the diagonal, flattened to its overall mean by 1 - strength.

    Strength 0 makes every layer alike (a DNN without hierarchy whose layers are exchangeable).
    """
    centre = np.linspace(0, n_rois - 1, n_layers)[:, None]
    ridge = np.exp(-((np.arange(n_rois)[None, :] - centre) ** 2) / (2 * 0.9**2))
    return strength * ridge + (1 - strength) * ridge.mean()


def _noisy_accuracies(
    signal: np.ndarray, shape: tuple[int, ...], nan: np.ndarray, noise: float, rng: np.random.Generator
) -> np.ndarray:
    """Simulated accuracies: ``signal + noise * N(0, 1)``, NaN where ``nan``, clipped to [-0.99, 0.99].

    Parameters
    ----------
    signal : ndarray broadcastable to ``shape``
    shape : tuple of int
        Shape of the accuracies; the last axis is the items.
    nan : ndarray of shape (shape[-1],), bool
        Constant items.

    Returns
    -------
    ndarray of shape ``shape``
    """
    acc = signal + noise * rng.standard_normal(shape)
    acc[..., nan] = np.nan
    return np.clip(acc, -0.99, 0.99)


def simulate_tops(
    strengths: Sequence[float],
    n_layers: Sequence[int] | int = 8,
    rng: np.random.Generator | int = 0,
    n_units: int = 1000,
    n_voxels: int = 1000,
    n_subjects: int = 3,
    n_rois: int = 5,
    n_samples: int = 50,
    noise: float = 0.15,
    method: str = "legacy",
    names: Sequence[str] | None = None,
) -> list[ItemTops]:
    """Item tops of simulated DNNs recorded from one simulated brain, with a planted hierarchy per DNN.

    The model of :func:`bhscore.simulate.simulate_accuracies` (a Gaussian ridge of layer-ROI affinity whose
    height is the DNN's strength), with the structure of the real data that the resampling must respect:

    - decoding: unit u of layer j has a decodability b_u ~ U(0.15, 0.65) shared by every subject (the same
      unit is decoded from every brain); its accuracy from ROI r of subject s is
      b_u * affinity[j, r] + noise * N(0, 1);
    - encoding: voxel v of subject s, ROI r has a signal level b_v ~ U(0.15, 0.65) shared by every DNN (the
      same brain); its accuracy from layer j of a DNN is b_v * affinity[j, r] + noise * N(0, 1).

    About 1% of the items are NaN (constant), as in real trees.

    Parameters
    ----------
    strengths : sequence of float
        Hierarchy strength of each DNN, 0 (none, exchangeable layers) to 1.
    n_layers : int or sequence of int
    rng : Generator or int
    n_units, n_voxels : int
        Units per layer and voxels per (subject, ROI) (the paper: 1000 and 1000 after the subsample).
    n_subjects, n_rois, n_samples : int
    noise : float
    method : {'legacy', 'corrected'}
    names : sequence of str, optional

    Returns
    -------
    list of ItemTops
    """
    rng = np.random.default_rng(rng)
    k = len(strengths)
    layers = [n_layers] * k if isinstance(n_layers, int) else list(n_layers)
    names = list(names) if names is not None else [f"S{i}" for i in range(k)]
    subjects = tuple(f"sub-{i + 1:02d}" for i in range(n_subjects))
    voxel_base = rng.uniform(0.15, 0.65, size=(n_subjects, n_rois, n_voxels))
    voxel_nan = rng.random((n_subjects, n_rois, n_voxels)) < 0.01
    out = []
    for name, strength, n_l in zip(names, strengths, layers, strict=True):
        aff = _affinity(strength, n_l, n_rois)
        dec = []
        for j in range(n_l):
            base = rng.uniform(0.15, 0.65, size=n_units)
            nan = rng.random(n_units) < 0.01
            signal = base[None, None, :] * aff[j][None, :, None]
            acc = _noisy_accuracies(signal, (n_subjects, n_rois, n_units), nan, noise, rng)
            dec.append([level_tops(acc[s], n_samples, method) for s in range(n_subjects)])
        enc = []
        for s in range(n_subjects):
            per_roi = []
            for r in range(n_rois):
                signal = voxel_base[s, r][None, :] * aff[:, r][:, None]
                acc = _noisy_accuracies(signal, (n_l, n_voxels), voxel_nan[s, r], noise, rng)
                per_roi.append(level_tops(acc, n_samples, method))
            enc.append(per_roi)
        out.append(ItemTops(name, subjects, n_rois, dec, enc))
    return out


def calibrate_pairs(
    delta: float,
    n_pairs: int,
    base_strength: float = 0.5,
    n_layers: int = 8,
    n_boot: int = 1000,
    seed: int = 0,
    options: ScoreOptions | None = None,
    **simulation,
) -> pd.DataFrame:
    """The paired test on simulated pairs of DNNs whose hierarchy strengths differ by ``delta``.

    Each pair is a new simulated experiment (:func:`simulate_tops`: new units, new voxels) of DNN A (strength
    ``base_strength``) and DNN B (``base_strength - delta``); ``delta`` 0 gives the false-positive rate, > 0 the
    power. The true score difference is estimated by the mean of ``diff`` over pairs.

    Returns
    -------
    pandas.DataFrame
        One row per (pair, component): pair, component, diff (A - B), ci_low, ci_high, p_value.
    """
    import pandas as pd

    options = options or ScoreOptions()
    rows = []
    for i in range(n_pairs):
        tops = simulate_tops(
            [base_strength, base_strength - delta],
            n_layers,
            rng=[seed, 11, i],
            names=["A", "B"],
            **simulation,
        )
        boot = bootstrap_scores(tops, options, n_boot=n_boot, seed=seed * 1_000_003 + i)
        for c in COMPONENTS:
            d = differences(boot.point[c], boot.replicates[c], options.ci_level)
            rows.append(
                {
                    "pair": i,
                    "component": c,
                    "diff": d.diff[0, 1],
                    "ci_low": d.ci_low[0, 1],
                    "ci_high": d.ci_high[0, 1],
                    "p_value": d.p_value[0, 1],
                }  # fmt: skip
            )
    return pd.DataFrame(rows)


def calibrate_null(
    n_dnns: int,
    n_layers: int = 8,
    n_permutations: int = N_PERMUTATIONS,
    exact_limit: int = EXACT_LIMIT,
    seed: int = 0,
    options: ScoreOptions | None = None,
    **simulation,
) -> pd.DataFrame:
    """Layer-order null p-values of simulated DNNs without hierarchy (strength 0): uniform if the test is exact.

    Returns
    -------
    pandas.DataFrame
        One row per (DNN, component): dnn, component, p_value, method.
    """
    import pandas as pd

    options = options or ScoreOptions()
    rows = []
    for i in range(n_dnns):
        (tops,) = simulate_tops([0.0], n_layers, rng=[seed, 12, i], **simulation)
        null = layer_order_null(tops, options, n_permutations, exact_limit, seed=seed * 1_000_003 + i)
        rows += [
            {"dnn": i, "component": c, "p_value": null.p_value[c], "method": null.method} for c in COMPONENTS
        ]
    return pd.DataFrame(rows)
