"""Item tops: every item's best-predicting row (or 'dropped'), kept per item and per subject.

For every item (a unit decoded from one subject, or a voxel of one subject) the row that predicts it best, or
"dropped" when it fails the significance filter. They are what :func:`bhscore.score.level_counts` counts;
keeping them per item and per subject (not only their counts) is what lets a resample draw the same unit for
every subject and the same voxel for every DNN.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from bhscore.score import ScoreOptions, keep_mask, top_rows


def level_tops(acc: np.ndarray, n: int, method: str = "legacy", p_threshold: float = 0.05) -> np.ndarray:
    """Top row of every item of one level, ``n_rows`` where the item is dropped by the filter.

    Parameters
    ----------
    acc : ndarray of shape (n_rows, n_items)
    n, method, p_threshold
        The significance filter (:func:`bhscore.score.keep_mask`).

    Returns
    -------
    ndarray of shape (n_items,), int16
        ``np.bincount(tops, minlength=n_rows + 1)[:n_rows]`` is the level's row of
        :func:`bhscore.score.level_counts`.
    """
    best, top = top_rows(acc)
    return np.where(keep_mask(best, n, method, p_threshold), top, np.shape(acc)[0]).astype(np.int16)


@dataclass
class ItemTops:
    """Every item's top row (or 'dropped') of one DNN, per subject.

    Attributes
    ----------
    dnn : str
    subjects : tuple of str
    n_rois : int
    decoding : list (n_layers) of list (n_subjects) of ndarray of shape (n_units,), int16
        Top ROI of each unit decoded from each subject; ``n_rois`` = dropped. Position = unit.
    encoding : list (n_subjects) of list (n_rois) of ndarray of shape (n_voxels,), int16
        Top layer of each voxel; ``n_layers`` = dropped. Position = voxel (the same for every DNN).
    """

    dnn: str
    subjects: tuple[str, ...]
    n_rois: int
    decoding: list[list[np.ndarray]]
    encoding: list[list[np.ndarray]]

    @property
    def n_layers(self) -> int:
        return len(self.decoding)

    def decoding_counts(self, subject: int | None = None) -> tuple[np.ndarray, np.ndarray]:
        """Count table of the decoding-based score, all subjects pooled or one (index).

        Returns
        -------
        counts : ndarray of shape (n_layers, n_rois), int64
        n_items : ndarray of shape (n_layers,), int64
        """
        subs = range(len(self.subjects)) if subject is None else [subject]
        full = np.array(
            [sum(np.bincount(layer[s], minlength=self.n_rois + 1) for s in subs) for layer in self.decoding],
            dtype=np.int64,
        ).reshape(self.n_layers, self.n_rois + 1)
        return full[:, : self.n_rois], full.sum(axis=1)

    def encoding_counts(self, subject: int | None = None) -> tuple[np.ndarray, np.ndarray]:
        """Count table of the encoding-based score, all subjects pooled or one (index).

        Returns
        -------
        counts : ndarray of shape (n_rois, n_layers), int64
        n_items : ndarray of shape (n_rois,), int64
        """
        subs = range(len(self.subjects)) if subject is None else [subject]
        full = np.zeros((self.n_rois, self.n_layers + 1), dtype=np.int64)
        for s in subs:
            for r, tops in enumerate(self.encoding[s]):
                full[r] += np.bincount(tops, minlength=self.n_layers + 1)
        return full[:, : self.n_layers], full.sum(axis=1)


def item_tops(
    dnn: str,
    decoding_levels: Mapping[str, Sequence[np.ndarray]],
    encoding_levels: Mapping[str, Sequence[np.ndarray]],
    n_samples: int,
    method: str = "legacy",
    p_threshold: float = 0.05,
) -> ItemTops:
    """Item tops of one DNN from its per-subject levels.

    Parameters
    ----------
    dnn : str
    decoding_levels : mapping subject -> sequence (n_layers) of ndarray of shape (n_rois, n_units)
    encoding_levels : mapping subject -> sequence (n_rois) of ndarray of shape (n_layers, n_voxels)
        As returned by :meth:`bhscore.score.AccuracyTree.levels_by_subject`; same subjects, in order.
    n_samples, method, p_threshold
        The significance filter.
    """
    subjects = tuple(decoding_levels)
    if tuple(encoding_levels) != subjects:
        raise ValueError(
            f"{dnn}: decoding subjects {subjects} differ from encoding subjects {tuple(encoding_levels)}"
        )
    n_layers = {len(levels) for levels in decoding_levels.values()}
    if len(n_layers) != 1:
        raise ValueError(f"{dnn}: subjects have different numbers of layers {sorted(n_layers)}")
    first = decoding_levels[subjects[0]]
    n_rois = int(np.shape(first[0])[0])
    dec = [
        [level_tops(decoding_levels[s][layer], n_samples, method, p_threshold) for s in subjects]
        for layer in range(len(first))
    ]
    enc = [
        [level_tops(level, n_samples, method, p_threshold) for level in encoding_levels[s]] for s in subjects
    ]
    return ItemTops(dnn, subjects, n_rois, dec, enc)


def read_item_tops(settings, dnn: str, options: ScoreOptions | None = None) -> ItemTops:
    """Item tops of one DNN of ``settings`` read from its accuracy trees (once each)."""
    from bhscore.score import AccuracyTree

    options = options or ScoreOptions.from_settings(settings)
    tree = AccuracyTree(settings, dnn)
    dec = tree.levels_by_subject("decoding")
    enc = tree.levels_by_subject("encoding", settings.analysis.score.encoding_voxel_subsample)
    return item_tops(dnn, dec, enc, tree.n_samples, options.p_method, options.p_threshold)


def pool_subjects(by_subject: Mapping[str, Sequence[np.ndarray]]) -> list[np.ndarray]:
    """The pooled levels (subjects side by side) from per-subject levels: equal to ``decoding_levels()`` /
    ``encoding_levels()`` of :class:`bhscore.score.AccuracyTree`.

    Returns
    -------
    list of ndarray of shape (n_rows, n_items_all_subjects)
    """
    return [np.hstack(parts) for parts in zip(*by_subject.values(), strict=True)]
