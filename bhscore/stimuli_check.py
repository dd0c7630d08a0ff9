"""Is a folder of stimulus images complete? The check behind ``bhscore stimuli check`` and ``bhscore extract``.

A DNN is scored on its features of the 1200 training and 50 test images of the fMRI experiment (ImageNet
photographs the lab distributes on request). Before a long extraction this module compares a folder with
the image names the data use and reports:

- missing: expected names without an image file (file name ``<name>.JPEG``; any image suffix, any case);
- extra: image files whose name the data do not use (not extracted by mistake, but not needed);
- ambiguous: several files with the same stem (``x.JPEG`` and ``x.png``): the stem names the feature file;
- unreadable: files Pillow cannot open or decode (JPEGs are decoded at 1/8 scale, which still reads every
  byte of the compressed data, so truncated files are caught);
- non-RGB modes (``L``, ``CMYK``, ``RGBA``, ``P``, ``I;16``, ...): converted to RGB at extraction, only noted.

Where the expected names come from, first found: a names file given by the user (one name per line); the
``stimulus_name`` labels of any subject's fMRI file of the split (``Layout.fmri_file``); for the test set the
shipped list of the 50 test images (``bhscore/data/test_image_names.txt``). Without any of these (training
set, fMRI not downloaded yet) only the folder's own consistency is checked.

Examples
--------
>>> from bhscore.stimuli_check import check_stimuli, expected_names
>>> report = check_stimuli("stimuli/test", expected_names("ImageNetTest"))   # doctest: +SKIP
>>> print(report.summary())                                                   # doctest: +SKIP
"""

from __future__ import annotations

import logging
import os
import re
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

from bhscore.errors import CorruptFileError, MissingDataError, UserError
from bhscore.extraction import IMAGE_SUFFIXES, image_files
from bhscore.paths import SPLITS, TEST, TRAINING

log = logging.getLogger(__name__)

#: Images of each stimulus set in the experiment (Horikawa & Kamitani 2017).
EXPECTED_COUNT = {TRAINING: 1200, TEST: 50}
#: The shipped list of the 50 test images (package data), in image_index order.
TEST_NAMES_RESOURCE = "data/test_image_names.txt"
#: Names of the real form: WordNet synset + image number.
NAME_PATTERN = re.compile(r"n\d{8}_\d+")
#: Folders larger than this get a progress bar.
PROGRESS_MIN_FILES = 200
#: Names listed per category in the summary.
MAX_LISTED = 10


# =================================================================================================
# the expected names
# =================================================================================================


@dataclass(frozen=True)
class ExpectedNames:
    """The image names a folder should hold, and where they come from.

    Attributes
    ----------
    names : list of str or None
        Sorted distinct names; None when no source was found (only the folder's consistency is checked).
    source : str
        Where they come from, for messages (``"fMRI file <path>"``, ``"names file <path>"``, ...).
    split : str or None
        The stimulus set, when known.
    """

    names: list[str] | None
    source: str
    split: str | None = None


def shipped_test_names() -> list[str]:
    """The 50 test image names shipped with the package, in image_index order."""
    text = resources.files("bhscore").joinpath(TEST_NAMES_RESOURCE).read_text()
    return [line.strip() for line in text.splitlines() if line.strip()]


def read_names_file(path: str | os.PathLike) -> list[str]:
    """Image names from a text file: one per line; blank lines and ``#`` comments skipped; an image
    suffix (``n01443537_22563.JPEG``) is dropped.

    Returns
    -------
    list of str
        Sorted distinct names.

    Raises
    ------
    MissingDataError
        The file does not exist.
    UserError
        The file lists no names.
    """
    path = Path(path)
    if not path.is_file():
        raise MissingDataError(path, what="names file")
    names = set()
    for line in path.read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        if line:
            stem, suffix = os.path.splitext(line)
            names.add(stem if suffix.lower() in IMAGE_SUFFIXES else line)
    if not names:
        raise UserError(f"names file {path} lists no image names; write one name per line (n01443537_22563)")
    return sorted(names)


def fmri_stimulus_names(path: str | os.PathLike) -> list[str]:
    """The distinct ``stimulus_name`` labels of a BData fMRI file, read without loading the voxels.

    Reads only the label column and its value map (``/vmap/stimulus_name``): a file of the real training
    size (6000 samples x 14k columns, 670 MB) takes 0.6 s, :func:`bhscore.formats.read_fmri` 3 s (measured,
    file cached); the labels are the same (tested).

    Returns
    -------
    list of str
        Sorted distinct names.

    Raises
    ------
    CorruptFileError
        Not a BData file, or no ``stimulus_name`` column with a value map.
    """
    import h5py
    import numpy as np

    path = Path(path)
    try:
        with h5py.File(path, "r") as f:
            keys = [k.decode() if isinstance(k, bytes) else str(k) for k in f["metadata/key"][()]]
            row = np.asarray(f["metadata/value"][keys.index("stimulus_name")], dtype=np.float64)
            (columns,) = np.nonzero(row == 1)
            if len(columns) != 1:
                raise ValueError(f"stimulus_name marks {len(columns)} columns, expected 1")
            codes = np.unique(np.asarray(f["dataset"][:, int(columns[0])], dtype=np.float64))
            vmap = {float(k): v[()] for k, v in f["vmap/stimulus_name"].items()}
            names = [vmap[float(c)] for c in codes]
    except (OSError, KeyError, ValueError, IndexError) as e:
        raise CorruptFileError(path, f"no stimulus_name labels ({type(e).__name__}: {e})") from None
    return sorted({n.decode() if isinstance(n, bytes) else str(n) for n in names})


def expected_names(
    split: str | None, settings: Any = None, names_file: str | os.PathLike | None = None
) -> ExpectedNames:
    """The names a stimulus folder should hold: a names file, else the fMRI labels, else the shipped test list.

    Parameters
    ----------
    split : {'ImageNetTraining', 'ImageNetTest'} or None
    settings : Settings, optional
        Where the fMRI files are (default: the settings file in use, ``$BHSCORE_SETTINGS``).
    names_file : path-like, optional
        A text file of names, one per line (:func:`read_names_file`); takes precedence.

    Returns
    -------
    ExpectedNames
    """
    if split is not None and split not in SPLITS:
        raise UserError(f"unknown stimulus set {split!r}; choose {' or '.join(SPLITS)}")
    if names_file is not None:
        return ExpectedNames(read_names_file(names_file), f"names file {names_file}", split)
    if split is None:
        return ExpectedNames(None, "no --split or names file: only the folder's consistency is checked")
    from bhscore.paths import Layout
    from bhscore.settings import load_settings

    settings = load_settings(None) if settings is None else settings
    layout = Layout.from_settings(settings)
    fmri = next((p for p in (layout.fmri_file(s, split) for s in settings.subjects) if p.exists()), None)
    if fmri is not None:
        return ExpectedNames(fmri_stimulus_names(fmri), f"fMRI file {fmri}", split)
    if split == TEST:
        return ExpectedNames(sorted(shipped_test_names()), "the shipped list of the 50 test images", split)
    return ExpectedNames(
        None,
        f"no {split} fMRI file under {layout.fmri_dir} (make download-fmri) and no names file (--names): "
        "only the folder's consistency is checked",
        split,
    )


# =================================================================================================
# the folder
# =================================================================================================


def inspect_image(path: str | os.PathLike) -> tuple[str | None, str | None]:
    """Open and decode one image cheaply: (Pillow mode, None) or (None, why it is unreadable).

    JPEGs are decoded at 1/8 scale (``draft``): every byte of the compressed data is still read, so a
    truncated or corrupt file fails, at about 2/3 of the cost of a full decode (1250 JPEGs of 500x375 px,
    57 KB each: 1.5 s on one thread vs 2.3 s; 0.9 s with 2 threads). Other formats are decoded in full.
    """
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as im:
            mode = im.mode
            if im.format == "JPEG":
                im.draft(mode, (1, 1))
            im.load()
            return mode, None
    except UnidentifiedImageError:
        return None, "empty file" if os.path.getsize(path) == 0 else "not an image Pillow can identify"
    except (OSError, ValueError, SyntaxError, Image.DecompressionBombError) as e:
        return None, f"{type(e).__name__}: {e}"


@dataclass
class StimulusReport:
    """What :func:`check_stimuli` found in a folder.

    Attributes
    ----------
    folder : Path
    expected : ExpectedNames
    files : list of Path
        The image files found (sorted by stem).
    missing : list of str
        Expected names without a file.
    extra : list of str
        File names (with suffix) whose stem is not expected.
    ambiguous : dict of str -> list of str
        Stem -> its files' names, for stems with several files.
    unreadable : dict of str -> str
        File name -> why it cannot be read (empty when images were not read).
    modes : dict of str -> list of str
        Non-RGB Pillow mode -> file names.
    ignored : list of str
        Files that are not images (by suffix), not hidden.
    subdirectories : list of str
        Sub-folders (images must sit directly in the folder).
    odd_names : list of str
        Stems not of the form ``n<8 digits>_<number>`` (noted only when no expected names are known).
    images_read : bool
        Whether the images were opened (unreadable files and modes are known).
    """

    folder: Path
    expected: ExpectedNames
    files: list[Path]
    missing: list[str] = field(default_factory=list)
    extra: list[str] = field(default_factory=list)
    ambiguous: dict[str, list[str]] = field(default_factory=dict)
    unreadable: dict[str, str] = field(default_factory=dict)
    modes: dict[str, list[str]] = field(default_factory=dict)
    ignored: list[str] = field(default_factory=list)
    subdirectories: list[str] = field(default_factory=list)
    odd_names: list[str] = field(default_factory=list)
    images_read: bool = True

    @property
    def complete(self) -> bool:
        """No missing, ambiguous or unreadable image (extra files and odd modes are fine)."""
        return not (self.missing or self.ambiguous or self.unreadable) and bool(self.files)

    @property
    def usable(self) -> list[Path]:
        """The files an extraction can use: readable, one per name (ambiguous names left out)."""
        return [p for p in self.files if p.name not in self.unreadable and p.stem not in self.ambiguous]

    def problems(self) -> str:
        """The problems in a few words (``"3 missing, 1 unreadable"``), or ``""`` when complete."""
        counts = {"missing": len(self.missing), "ambiguous": len(self.ambiguous), "unreadable": len(self.unreadable)}
        parts = [f"{n} {what}" for what, n in counts.items() if n]
        if not self.files:
            parts.insert(0, "no image files")
        return ", ".join(parts)

    def remedy(self) -> str:
        """One line: what to do about the problems."""
        steps = []
        if self.missing or not self.files:
            steps.append(f"copy the missing images into {self.folder} as <name>.JPEG (the lab distributes them on request)")
        if self.ambiguous:
            steps.append("keep one file per name")
        if self.unreadable:
            steps.append("replace the unreadable files")
        return "; ".join(steps)

    def summary(self, max_listed: int = MAX_LISTED) -> str:
        """A compact human-readable report: counts, then up to ``max_listed`` names per category."""
        lines = [f"stimulus folder: {self.folder}" + (f" ({self.expected.split})" if self.expected.split else "")]
        e = self.expected
        if e.names is not None:
            lines.append(f"expected: {len(e.names)} images, from {e.source}")
        else:
            lines.append(f"expected: unknown; {e.source}")
            count = EXPECTED_COUNT.get(e.split or "")
            if count is not None and count != len({p.stem for p in self.files}):
                lines.append(f"note: the experiment's {e.split} set has {count} images; this folder has "
                             f"{len({p.stem for p in self.files})} names")  # fmt: skip
        n_read = len(self.files) - len(self.unreadable)
        lines.append(f"found: {len(self.files)} image files" + (f", {n_read} readable" if self.images_read else ""))

        def listed(title: str, items: Sequence[str], one_per_line: bool = False) -> None:
            if items:
                lines.append(f"{title}: {len(items)}")
                more = [f"... and {len(items) - max_listed} more"] if len(items) > max_listed else []
                shown = [*items[:max_listed], *more]
                lines.extend([f"  {x}" for x in shown] if one_per_line else ["  " + ", ".join(shown)])

        listed("MISSING", self.missing)
        listed("AMBIGUOUS (one name, several files)", [", ".join(fs) for fs in self.ambiguous.values()], True)
        listed("UNREADABLE", [f"{name}: {why}" for name, why in self.unreadable.items()], True)
        listed("extra (names the data do not use; not needed)", self.extra)
        for mode, names in self.modes.items():
            listed(f"mode {mode} (converted to RGB at extraction)", names)
        if e.names and self.files and len(self.extra) == len(self.files):
            lines.append("note: no file has an expected name: another stimulus set's folder (--split)?")
        listed("names not of the form n<8 digits>_<number>", self.odd_names)
        listed("ignored (not images by their suffix)", self.ignored)
        listed("ignored sub-folders (images must sit directly in the folder)", self.subdirectories)
        if self.complete and e.names is not None:
            lines.append(f"OK: all {len(e.names)} expected images present and readable")
        elif self.complete:
            lines.append("OK: consistent (nothing to compare the names with)")
        else:
            lines.append(f"INCOMPLETE: {self.problems()} in {self.folder}; {self.remedy()}")
        return "\n".join(lines)

    def as_dict(self) -> dict[str, Any]:
        """The report as JSON-serialisable data (``bhscore stimuli check --json``)."""
        return {
            "folder": str(self.folder),
            "split": self.expected.split,
            "expected_source": self.expected.source,
            "n_expected": None if self.expected.names is None else len(self.expected.names),
            "n_files": len(self.files),
            "complete": self.complete,
            "missing": self.missing,
            "ambiguous": self.ambiguous,
            "unreadable": self.unreadable,
            "extra": self.extra,
            "modes": self.modes,
            "odd_names": self.odd_names,
            "ignored": self.ignored,
            "subdirectories": self.subdirectories,
            "images_read": self.images_read,
        }


def _default_workers() -> int:
    return min(8, os.cpu_count() or 1)


def check_stimuli(
    folder: str | os.PathLike,
    expected: ExpectedNames | Sequence[str] | None = None,
    *,
    read_images: bool = True,
    workers: int | None = None,
    progress: bool = True,
) -> StimulusReport:
    """Compare a stimulus folder with the expected image names and open every image.

    Parameters
    ----------
    folder : path-like
        The folder of images (``<name>.JPEG``; the listing of :func:`bhscore.extraction.image_files`).
    expected : ExpectedNames or sequence of str, optional
        The names the folder should hold (:func:`expected_names`); None checks only the folder's consistency.
    read_images : bool
        Open and decode every image (unreadable files, modes); False compares names only.
    workers : int, optional
        Threads reading images (Pillow decodes without the GIL); default min(8, CPUs).
    progress : bool
        Show a progress bar for folders of more than ``PROGRESS_MIN_FILES`` images.

    Returns
    -------
    StimulusReport
    """
    folder = Path(folder)
    if not isinstance(expected, ExpectedNames):
        expected = (
            ExpectedNames(None, "no expected names: only the folder's consistency is checked")
            if expected is None
            else ExpectedNames(sorted(set(expected)), "the given names")
        )
    files = image_files(folder)
    report = StimulusReport(folder=folder, expected=expected, files=files, images_read=read_images)

    by_stem: dict[str, list[str]] = {}
    for p in files:
        by_stem.setdefault(p.stem, []).append(p.name)
    report.ambiguous = {s: names for s, names in by_stem.items() if len(names) > 1}
    if expected.names is not None:
        wanted = set(expected.names)
        report.missing = sorted(wanted - by_stem.keys())
        report.extra = [p.name for p in files if p.stem not in wanted]
    else:
        report.odd_names = [s for s in by_stem if not NAME_PATTERN.fullmatch(s)]

    image_set = set(files)
    for entry in sorted(folder.iterdir()):
        if entry.name.startswith("."):
            continue
        if entry.is_dir():
            report.subdirectories.append(entry.name)
        elif entry not in image_set:
            report.ignored.append(entry.name)

    if read_images and files:
        from tqdm.auto import tqdm

        with ThreadPoolExecutor(max_workers=workers or _default_workers()) as pool:
            results = list(
                tqdm(
                    pool.map(inspect_image, files),
                    total=len(files),
                    desc=f"read {folder.name}",
                    unit="img",
                    disable=not progress or len(files) <= PROGRESS_MIN_FILES,
                )
            )
        for p, (mode, error) in zip(files, results, strict=True):
            if error is not None:
                report.unreadable[p.name] = error
            elif mode != "RGB":
                report.modes.setdefault(mode, []).append(p.name)
        report.modes = dict(sorted(report.modes.items()))
    return report
