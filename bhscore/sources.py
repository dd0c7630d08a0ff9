"""Which accuracy tree a DNN's score reads: the published one or this machine's current parameter set.

``analysis.score.accuracy_source`` chooses for every DNN, a DNN's own ``accuracy_source`` overrides it
(a DNN of your own has only computed accuracies). Computed accuracies are those of the parameter set that
the current settings define (:class:`bhscore.provenance.ParamSet`): changing alpha makes the score look for
(and, if absent, ask for) accuracies computed with the new alpha, never silently reuse the old ones.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

from bhscore.kinds import kind_of
from bhscore.paths import KINDS, Layout

PUBLISHED, COMPUTED = "published", "computed"


@dataclass(frozen=True)
class AccuracySource:
    """One DNN's accuracy tree of one kind.

    Attributes
    ----------
    kind : {'decoding', 'encoding'}
    source : {'published', 'computed'}
    root : Path
        The tree root (``published/<kind>_accuracy`` or ``computed/<kind>_accuracy/<set>``).
    param_set : bhscore.provenance.ParamSet or None
        The parameter set (computed only).
    """

    kind: str
    source: str
    root: Path
    param_set: object | None = None

    @property
    def label(self) -> str:
        """``published`` or the parameter-set id."""
        return PUBLISHED if self.param_set is None else self.param_set.id

    def how_to_make(self, dnn: str) -> str:
        """The command that produces this tree's files for ``dnn``."""
        if self.source == PUBLISHED:
            return (
                "make download-accuracy (the published accuracies); or compute them and set "
                f"accuracy_source to 'computed' (bhscore {kind_of(self.kind).command} --dnn '{dnn}')"
            )
        return f"bhscore {kind_of(self.kind).command} --dnn '{dnn}' (parameter set {self.label})"


def accuracy_source(settings, dnn: str, kind: str, layout: Layout | None = None) -> AccuracySource:
    """The tree that DNN ``dnn``'s ``kind`` accuracies are read from under ``settings``."""
    from bhscore.provenance import ParamSet

    layout = layout or Layout.from_settings(settings)
    source = settings.accuracy_source(dnn)
    if source == PUBLISHED:
        return AccuracySource(kind, source, layout.published_accuracy_root(kind))
    param_set = ParamSet.from_settings(settings, kind)
    return AccuracySource(kind, source, param_set.directory(layout), param_set)


def accuracy_paths(settings, dnns: Sequence[str] | None = None) -> Iterator[tuple[AccuracySource, Path]]:
    """Every accuracy file the score reads, with its source: (kind, DNN, layer, subject, ROI) in settings order."""
    layout = Layout.from_settings(settings)
    names = list(settings.dnns) if dnns is None else list(dnns)
    for kind in KINDS:
        for name in names:
            src = accuracy_source(settings, name, kind, layout)
            d = settings.dnn(name)
            for layer in d.layers:
                for subject in settings.subjects:
                    for roi in settings.rois:
                        yield src, layout.accuracy_file(src.root, d.dir, layer, subject, roi)


def accuracy_file(settings, kind: str, dnn: str, layer: str, subject: str, roi: str, source: str | None = None) -> Path:
    """The accuracy file of one job in ``source`` (default: the DNN's source under ``settings``).

    ``source='computed'`` is the current parameter set's file (what ``bhscore decode``/``encode`` writes).
    """
    from bhscore.provenance import ParamSet

    layout = Layout.from_settings(settings)
    source = source or settings.accuracy_source(dnn)
    if source == PUBLISHED:
        root = layout.published_accuracy_root(kind)
    elif source == COMPUTED:
        root = ParamSet.from_settings(settings, kind).directory(layout)
    else:
        raise ValueError(f"source must be {PUBLISHED!r} or {COMPUTED!r}, got {source!r}")
    return layout.accuracy_file(root, settings.dnn(dnn).dir, layer, subject, roi)
