"""Bootstrap count tables: units resampled within each layer, voxels within each (subject, ROI).

- decoding-based score: units are resampled with replacement within each layer, and a drawn unit brings its
  top ROI in every subject (the same units are decoded from every subject). Units of different DNNs are
  different units, so the draws are independent between DNNs. Exactly: a multinomial draw over the unit
  *types* of a layer (how many subjects have each ROI on top), vectorised with numpy.
- encoding-based score: voxels are resampled with replacement within each (subject, ROI), the same voxels for
  every DNN (all DNNs are scored on the same brain): this makes the comparison of two DNNs paired.

Random streams are keyed by the seed and the DNN's name (decoding) or the (subject, ROI) (encoding), so the
resample of a DNN does not depend on which other DNNs are resampled with it.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence

import numpy as np

from bhscore.stats.tops import ItemTops

#: Unit resampling schemes: 'joint' (a unit with all its subjects: the design) or 'subject' (each subject's
#: units on their own; kept for the calibration study in docs/method.md).
UNIT_RESAMPLING = ("joint", "subject")


def name_key(name: str) -> int:
    """A stable 64-bit integer of a name (random streams keyed by DNN, not by position in a list)."""
    return int.from_bytes(hashlib.sha256(name.encode()).digest()[:8], "little")


def _unit_types(tops: list[np.ndarray], n_rois: int, scheme: str) -> list[tuple[np.ndarray, np.ndarray]]:
    """Strata of one layer's units: the distinct unit types and how many units have each.

    A unit's type is its contribution to the pooled count table: how many subjects have each ROI on top.
    One stratum (all subjects: a unit brings its results in every subject) when every subject has the same
    units and ``scheme`` is 'joint'; one stratum per subject otherwise.

    Returns
    -------
    list of (types, n_units)
        types : ndarray of shape (n_types, n_rois), float64 (small integers)
        n_units : ndarray of shape (n_types,), int64
    """
    if scheme == "joint" and len({t.size for t in tops}) == 1:
        groups = [np.stack(tops)]
    else:
        groups = [t[None, :] for t in tops]
    out = []
    for g in groups:
        if g.shape[1] == 0:
            continue
        base = g.shape[0] + 1  # one digit per ROI: how many of the group's subjects have it on top
        digit = base ** np.arange(n_rois + 1, dtype=np.int64)
        digit[n_rois] = 0  # dropped: no contribution
        codes, n_units = np.unique(digit[g.astype(np.int64)].sum(axis=0), return_counts=True)
        types = (codes[:, None] // digit[None, :n_rois]) % base
        out.append((types.astype(np.float64), n_units))
    return out


def resample_decoding_counts(
    tops: ItemTops, n_boot: int, rng: np.random.Generator, scheme: str = "joint"
) -> np.ndarray:
    """Bootstrap count tables of the decoding-based score: units resampled within each layer.

    A layer's resample is a multinomial draw over its unit types (:func:`_unit_types`), which is exactly
    drawing its units with replacement and recounting.

    Returns
    -------
    ndarray of shape (n_boot, n_layers, n_rois), float64 (integer counts)
    """
    out = np.zeros((n_boot, tops.n_layers, tops.n_rois))
    for layer, per_subject in enumerate(tops.decoding):
        for types, n_units in _unit_types(per_subject, tops.n_rois, scheme):
            n = int(n_units.sum())
            draws = rng.multinomial(n, n_units / n, size=n_boot)  # (n_boot, n_types)
            out[:, layer] += draws @ types
    return out


def _bootstrap_weights(n_items: int, n_boot: int, rng: np.random.Generator) -> np.ndarray:
    """How often each item is drawn in each resample: ndarray (n_boot, n_items), float32 (exact integers)."""
    idx = rng.integers(0, n_items, size=(n_boot, n_items), dtype=np.int64)
    idx += (np.arange(n_boot, dtype=np.int64) * n_items)[:, None]
    return np.bincount(idx.ravel(), minlength=n_boot * n_items).reshape(n_boot, n_items).astype(np.float32)


def resample_encoding_counts(
    all_tops: Sequence[ItemTops], n_boot: int, seed: int
) -> tuple[list[np.ndarray], np.ndarray]:
    """Bootstrap count tables of the encoding-based score of every DNN, voxels shared across DNNs.

    Voxels are resampled within each (subject, ROI) with weights drawn once for all DNNs (a one-hot matrix
    product counts each DNN's resampled voxels per top layer). A DNN whose voxel counts differ from the first
    DNN's cannot be paired; it gets its own draws.

    Returns
    -------
    counts : list (n_dnns) of ndarray of shape (n_boot, n_rois, n_layers), int64
    paired : ndarray of shape (n_dnns,), bool
    """
    ref = all_tops[0]
    shape = [[t.size for t in per_roi] for per_roi in ref.encoding]
    paired = np.array(
        [
            t.subjects == ref.subjects and [[v.size for v in pr] for pr in t.encoding] == shape
            for t in all_tops
        ]
    )
    out = [np.zeros((n_boot, t.n_rois, t.n_layers), dtype=np.int64) for t in all_tops]
    _add_shared_encoding_counts(out, all_tops, paired, n_boot, seed)
    for i in np.flatnonzero(~paired):
        _add_own_encoding_counts(out[i], all_tops[i], n_boot, seed)
    return out, paired


def _add_shared_encoding_counts(
    out: list[np.ndarray], all_tops: Sequence[ItemTops], paired: np.ndarray, n_boot: int, seed: int
) -> None:
    """Add to ``out`` the counts of the paired DNNs' voxels, resampled with the same weights for all of them.

    Parameters
    ----------
    out : list (n_dnns) of ndarray of shape (n_boot, n_rois, n_layers), int64
        Updated in place where ``paired`` is true.
    all_tops : sequence (n_dnns) of ItemTops
        The first one is the reference of the voxel counts (always paired).
    paired : ndarray of shape (n_dnns,), bool
    """
    shared = [i for i in range(len(all_tops)) if paired[i]]
    offsets = np.cumsum([0] + [all_tops[i].n_layers for i in shared])
    for s, per_roi in enumerate(all_tops[0].encoding):
        for r, ref_tops in enumerate(per_roi):
            n_vox = ref_tops.size
            if n_vox == 0:
                continue
            rng = np.random.default_rng([seed, 5, s, r])
            weights = _bootstrap_weights(n_vox, n_boot, rng)
            onehot = np.zeros((n_vox, int(offsets[-1]) + 1), dtype=np.float32)
            for pos, i in enumerate(shared):
                codes = all_tops[i].encoding[s][r].astype(np.int64)
                cols = np.where(
                    codes < all_tops[i].n_layers, offsets[pos] + codes, offsets[-1]
                )  # dropped: spare
                onehot[np.arange(n_vox), cols] = 1.0
            counted = np.rint(weights @ onehot).astype(np.int64)
            for pos, i in enumerate(shared):
                out[i][:, r, :] += counted[:, offsets[pos] : offsets[pos + 1]]


def _add_own_encoding_counts(out: np.ndarray, tops: ItemTops, n_boot: int, seed: int) -> None:
    """Add to ``out`` (n_boot, n_rois, n_layers) the counts of an unpaired DNN's voxels, its own draws."""
    for s, per_roi in enumerate(tops.encoding):
        for r, codes in enumerate(per_roi):
            if codes.size == 0:
                continue
            rng = np.random.default_rng([seed, 6, name_key(tops.dnn), s, r])
            onehot = np.eye(tops.n_layers + 1, dtype=np.float32)[codes][:, : tops.n_layers]
            out[:, r, :] += np.rint(_bootstrap_weights(codes.size, n_boot, rng) @ onehot).astype(np.int64)
