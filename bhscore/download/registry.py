"""The remote files of the paper: where each is on figshare and where it lands under the data root.

:data:`REGISTRY` lists every remote file of the paper (docs: method.md, "Downloads"), with its figshare
article and file id and where it lands under the data root (:func:`bhscore.paths.data_root`), in the layout
of the original repository (see :mod:`bhscore.download`); :data:`FEATURES_ALL_REGISTRY` the opt-in
all-units features. :func:`select` picks entries by group, subject, name or DNN.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path, PurePosixPath

from bhscore.download.options import DEFAULT_FILES
from bhscore.errors import UserError
from bhscore.paths import TEST, TRAINING, Layout

#: figshare articles: the fMRI of Shen et al. (2019) and the BH score data (features, accuracies).
FMRI_ARTICLE = 7033577
DATA_ARTICLE = 12401168

#: Folder (relative to the data root) of the published accuracies: :attr:`bhscore.paths.Layout.published_root`.
PUBLISHED_DIR = "published"
#: Lock file (expected MD5 and size per file), relative to the data root.
LOCK_FILE = "downloads.lock.json"
#: Folder (relative to the data root) of archives, partial downloads, manifests and completion markers.
STATE_DIR = "downloads"

GROUPS = ("fmri", "features", "accuracy")
#: The all-units features (the paper's encoding inputs): opt-in, per DNN, never part of 'all'.
FEATURES_ALL = "features-all"
#: Folder (relative to the data root) of the all-units features: :meth:`bhscore.paths.Layout.features_all_dir`.
FEATURES_ALL_DIR = "features_all"
#: figshare article assumed for the all-units features' MD5s (NOT verified: the original's script names only
#: file ids). If figshare does not list them there, the download stops naming this registry.
FEATURES_ALL_ARTICLE = DATA_ARTICLE
#: The command that (re)runs a group's download: named in every message.
MAKE_TARGET = {g: f"make download-{g}" for g in GROUPS}
MAKE_TARGET[FEATURES_ALL] = "bhscore download features-all --dnn NAME"
#: Approximate download sizes per group (method.md).
APPROX_SIZE = {"fmri": "2.4 GB", "features": "6.8 GB", "accuracy": "350 MB", FEATURES_ALL: "800 GB for all 29 DNNs"}


@dataclass(frozen=True)
class RemoteFile:
    """One file on figshare and where it goes.

    Parameters
    ----------
    name : str
        Registry key, also the stem of the archive and marker names (``fmri-sub-01-test``,
        ``features-ImageNetTest-caffe``, ``decoding_accuracy``).
    group : {'fmri', 'features', 'accuracy'}
    article, file_id : int
        figshare article and file ids.
    description : str
        Human-readable, for messages.
    archive : bool
        A zip to unpack into the data root.
    anchor : str, optional
        Archives: the folder (POSIX path relative to the data root) the archive's tree lands in.
    subject, split : str, optional
        fMRI files: subject and stimulus set (:data:`bhscore.paths.TRAINING` / :data:`~bhscore.paths.TEST`).
    source_anchor : str, optional
        Archives whose tree is named differently from ``anchor`` (``features_all/.../caffe/VGG/F`` lands in
        ``features_all/.../caffe/VGG-F``, the settings' directory): the archive's own path.
    parts : tuple of int
        Further figshare file ids of a zip published in pieces (``.zip.00``, ``.zip.01``, ...; ``file_id`` is
        the first): each piece is fetched and verified on its own, then they are joined and unpacked.
    """

    name: str
    group: str
    article: int
    file_id: int
    description: str
    archive: bool = False
    anchor: str | None = None
    subject: str | None = None
    split: str | None = None
    source_anchor: str | None = None
    parts: tuple[int, ...] = ()

    @property
    def file_ids(self) -> tuple[int, ...]:
        """Every figshare file id of this entry, in order (one, or the pieces of a split zip)."""
        return (self.file_id, *self.parts)

    def piece(self, index: int) -> RemoteFile:
        """Piece ``index`` of a split zip, as an entry of its own (``<name>-part00``, fetched and verified alone)."""
        return replace(self, name=f"{self.name}-part{index:02d}", file_id=self.file_ids[index], parts=(),
                       description=f"{self.description}, piece {index + 1} of {len(self.file_ids)}")  # fmt: skip

    def destination(self, root: str | os.PathLike) -> Path:
        """Where the data lands: the fMRI file, or the folder an archive unpacks into."""
        root = Path(root)
        if self.archive:
            return root.joinpath(*PurePosixPath(self.anchor).parts)
        return Layout(root).fmri_file(self.subject, self.split)

    def download_path(self, root: str | os.PathLike) -> Path:
        """Where the verified bytes go: the destination itself, or ``downloads/<name>.zip``."""
        return Path(root) / STATE_DIR / f"{self.name}.zip" if self.archive else self.destination(root)

    def part_path(self, root: str | os.PathLike) -> Path:
        """The partial download (resumed by the next run)."""
        path = self.download_path(root)
        return path.with_name(path.name + ".part")

    def marker_path(self, root: str | os.PathLike) -> Path:
        """The completion marker, written last (``downloads/<name>.done.json``)."""
        return Path(root) / STATE_DIR / f"{self.name}.done.json"

    def manifest_path(self, root: str | os.PathLike) -> Path:
        """Every unpacked file and its size (``downloads/<name>.manifest.tsv.gz``; archives)."""
        return Path(root) / STATE_DIR / f"{self.name}.manifest.tsv.gz"

    def url(self, files_base: str | None = None) -> str:
        """The download URL, ``<files_base>/<file id>`` (default: figshare's ndownloader)."""
        return f"{(files_base or DEFAULT_FILES).rstrip('/')}/{self.file_id}"


def _build_registry() -> tuple[RemoteFile, ...]:
    fmri = {
        ("sub-01", TEST): 33900890, ("sub-01", TRAINING): 33900893,
        ("sub-02", TEST): 33900896, ("sub-02", TRAINING): 33900899,
        ("sub-03", TEST): 33900902, ("sub-03", TRAINING): 33900908,
    }  # fmt: skip
    features = {
        (TRAINING, "caffe"): 24172706, (TRAINING, "pytorch"): 24172862, (TRAINING, "tensorflow"): 24172895,
        (TEST, "caffe"): 24172679, (TEST, "pytorch"): 24172691, (TEST, "tensorflow"): 24172697,
    }  # fmt: skip
    out = []
    for (subject, split), file_id in fmri.items():
        short = "test" if split == TEST else "training"
        out.append(RemoteFile(f"fmri-{subject}-{short}", "fmri", FMRI_ARTICLE, file_id,
                              f"fMRI {subject} {split}", subject=subject, split=split))  # fmt: skip
    for (split, framework), file_id in features.items():
        out.append(RemoteFile(f"features-{split}-{framework}", "features", DATA_ARTICLE, file_id,
                              f"{framework} features {split}", archive=True,
                              anchor=f"features/{split}/{framework}"))  # fmt: skip
    # published accuracies go to their own tree, apart from this machine's results (computed/)
    out.append(RemoteFile("decoding_accuracy", "accuracy", DATA_ARTICLE, 24132263, "decoding accuracies",
                          archive=True, anchor=f"{PUBLISHED_DIR}/decoding_accuracy/{TEST}"))  # fmt: skip
    out.append(RemoteFile("encoding_accuracy", "accuracy", DATA_ARTICLE, 32116400, "encoding accuracies",
                          archive=True, anchor=f"{PUBLISHED_DIR}/encoding_accuracy/{TEST}"))  # fmt: skip
    return tuple(out)


#: Every remote file of the paper (the opt-in all-units features are in :data:`FEATURES_ALL_REGISTRY`).
REGISTRY: tuple[RemoteFile, ...] = _build_registry()

#: The all-units features (the paper's encoding inputs, ~800 GB): settings directory -> (directory in the
#: archive where it differs, test zip id, training zip id(s)). File ids from the original repository's
#: ``data/download_features_all.sh``; a training zip of several ids is published in pieces joined in order.
_FEATURES_ALL: dict[str, tuple[str | None, int, tuple[int, ...]]] = {
    "caffe/AlexNet": (None, 32878559, (32901365,)),
    "caffe/DenseNet_121": (None, 32878586, (33287366, 33287882, 33287921)),
    "caffe/DenseNet_161": (None, 32878598, (33358598, 33358739, 33360572, 33362681, 33362726)),
    "caffe/DenseNet_169": (None, 32878610, (33365762, 33375758, 33399371)),
    "caffe/DenseNet_201": (None, 32878619, (33403757, 33447575, 33447728, 33459317)),
    "caffe/InceptionResNet-v2": ("caffe/InceptionResNet/v2", 32878625, (33473486, 33527549, 33527939)),
    "caffe/SqueeseNet": (None, 32878628, (32903426,)),
    "caffe/SqueeseNet1.0": (None, 32878631, (32906450,)),
    "caffe/VGG-F": ("caffe/VGG/F", 32878643, (32970713,)),
    "caffe/VGG-M": ("caffe/VGG/M", 32878646, (32972843,)),
    "caffe/VGG-S": ("caffe/VGG/S", 32878652, (32975132,)),
    "caffe/VGG16_nonaka": (None, 32878634, (33003557,)),
    "caffe/VGG19_nonaka": (None, 32878640, (33008231,)),
    "pytorch/CORnet_R": (None, 32878655, (33079235,)),
    "pytorch/CORnet_S": (None, 32878658, (33079247,)),
    "pytorch/CORnet_Z": (None, 32878661, (33079295,)),
    "pytorch/resnet18": (None, 32878664, (33079373,)),
    "pytorch/resnet34": (None, 32878673, (33079484,)),
    "tensorflow/inception_v1": (None, 32878679, (33080060,)),
    "tensorflow/inception_v2": (None, 32878685, (33080372,)),
    "tensorflow/inception_v3": (None, 32878688, (33157214,)),
    "tensorflow/inception_v4": (None, 32878694, (33157673,)),
    "tensorflow/mobilenet_v2_1.4_224": (None, 32878697, (33151580,)),
    "tensorflow/nasnet_large": (None, 32878712, (33540686, 33549602, 33638723, 33644051, 33652460)),
    "tensorflow/nasnet_mobile": (None, 32878715, (33154940,)),
    "tensorflow/pnasnet_large": (None, 32878742, (33655901, 33658091, 33658610, 33660215)),
    "tensorflow/resnet_v2_101": (None, 32878754, (33671498, 33671567)),
    "tensorflow/resnet_v2_152": (None, 32878766, (33773318, 33777761, 33780851)),
    "tensorflow/resnet_v2_50": (None, 32878748, (33660482, 33660500)),
}  # fmt: skip


def _build_features_all() -> tuple[RemoteFile, ...]:
    out = []
    for dnn_dir, (remote_dir, test_id, training_ids) in _FEATURES_ALL.items():
        for split, ids in ((TRAINING, training_ids), (TEST, (test_id,))):
            anchor = f"{FEATURES_ALL_DIR}/{split}/{dnn_dir}"
            source = f"{FEATURES_ALL_DIR}/{split}/{remote_dir}" if remote_dir else None
            out.append(RemoteFile(f"features_all-{split}-{dnn_dir.replace('/', '-')}", FEATURES_ALL,
                                  FEATURES_ALL_ARTICLE, ids[0], f"all-units features {dnn_dir} {split}",
                                  archive=True, anchor=anchor, source_anchor=source, parts=ids[1:]))  # fmt: skip
    return tuple(out)


#: The all-units features, one entry per (DNN, stimulus set): opt-in (``bhscore download features-all``).
FEATURES_ALL_REGISTRY: tuple[RemoteFile, ...] = _build_features_all()


def features_all_entries(dnn_dirs: Sequence[str] | None = None) -> list[RemoteFile]:
    """The all-units features entries of these DNN directories (settings ``dir``; default: all 29 DNNs).

    Raises
    ------
    UserError
        A directory with no published all-units features.
    """
    if not dnn_dirs:
        return list(FEATURES_ALL_REGISTRY)
    bad = [d for d in dnn_dirs if d not in _FEATURES_ALL]
    if bad:
        raise UserError(
            f"no published all-units features for {', '.join(bad)}; published for: {', '.join(_FEATURES_ALL)}"
        )
    anchors = {f"{FEATURES_ALL_DIR}/{s}/{d}" for d in dnn_dirs for s in (TRAINING, TEST)}
    return [e for e in FEATURES_ALL_REGISTRY if e.anchor in anchors]


def article_file_ids(article: int) -> set[int]:
    """Every file id of figshare article ``article`` in both registries (the pages of its file list to read)."""
    return {i for e in (*REGISTRY, *FEATURES_ALL_REGISTRY) if e.article == article for i in e.file_ids}


#: Subjects whose fMRI is published.
FMRI_SUBJECTS: tuple[str, ...] = tuple(dict.fromkeys(e.subject for e in REGISTRY if e.group == "fmri"))


def select(
    group: str = "all",
    subjects: Sequence[str] | None = None,
    names: Sequence[str] | None = None,
    dnn_dirs: Sequence[str] | None = None,
) -> list[RemoteFile]:
    """Registry entries of a group (``'fmri'``, ``'features'``, ``'accuracy'``, ``'all'`` or ``'features-all'``).

    Parameters
    ----------
    subjects : sequence of str, optional
        Keep only these subjects' fMRI files (other groups are unaffected).
    names : sequence of str, optional
        Keep only these registry names.
    dnn_dirs : sequence of str, optional
        ``'features-all'`` only: these DNNs' directories (settings ``dir``); default all 29 (~800 GB).
    """
    if group == FEATURES_ALL:
        entries = features_all_entries(dnn_dirs)
        if names:
            entries = [e for e in entries if e.name in names]
        if not entries:
            raise UserError(f"nothing selected (group {group!r}, names {names})")
        return entries
    if group != "all" and group not in GROUPS:
        raise UserError(f"unknown download group {group!r}; valid: {', '.join(GROUPS)}, all, {FEATURES_ALL}")
    entries = [e for e in REGISTRY if group in ("all", e.group)]
    if subjects:
        bad = [s for s in subjects if s not in FMRI_SUBJECTS]
        if bad:
            raise UserError(
                f"no published fMRI for subject(s) {', '.join(bad)}; valid: {', '.join(FMRI_SUBJECTS)}"
            )
        entries = [e for e in entries if e.group != "fmri" or e.subject in subjects]
    if names:
        known = {e.name for e in REGISTRY}
        bad = [n for n in names if n not in known]
        if bad:
            raise UserError(f"unknown download(s) {', '.join(bad)}; valid: {', '.join(sorted(known))}")
        entries = [e for e in entries if e.name in names]
    if not entries:
        raise UserError(f"nothing selected (group {group!r}, subjects {subjects}, names {names})")
    return entries
