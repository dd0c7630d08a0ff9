"""Verified, resumable, idempotent downloads of the published data (figshare).

What goes where
---------------
:data:`REGISTRY` lists every remote file of the paper (docs: method.md, "Downloads"), with its figshare
article and file id and where it lands under the data root (:func:`bhscore.paths.data_root`), in the layout
of the original repository:

- ``fmri`` (article 7033577, ~2.4 GB): six BData files, each saved as
  :meth:`bhscore.paths.Layout.fmri_file` ``fmri/<subject>_perceptionNaturalImage{Training,Test}_VC_v2.h5``;
- ``features`` (article 12401168, ~6.8 GB): six zips unpacked into the data root, giving
  ``features/{ImageNetTraining,ImageNetTest}/{caffe,pytorch,tensorflow}/<network>/<layer>/<image>.mat``;
- ``accuracy`` (article 12401168, ~350 MB): two zips giving ``published/decoding_accuracy/ImageNetTest/...``
  and ``published/encoding_accuracy/ImageNetTest/...`` (the published tree; never this machine's results,
  which live under ``computed/``).

How a file is fetched
---------------------
1. The expected MD5 and size come from the lock file ``<data root>/downloads.lock.json`` when it records
   the file; otherwise from figshare's API (``<api>/articles/<article>/files``, field ``computed_md5``), and
   they are recorded in the lock file at once, so later runs verify offline against them.
2. The bytes stream into ``<destination>.part`` with a progress bar. A dropped or stalled connection (see
   "Timeouts") is retried with ``Range: bytes=<received>-``; an interrupted run leaves the ``.part`` file,
   and the next run resumes it.
3. Only a file whose MD5 matches is renamed onto its destination; a mismatch deletes the download (after one
   fresh attempt when the download had been resumed). So a truncated or corrupt file never sits where a
   complete one is expected.
4. An archive is downloaded to ``<data root>/downloads/<name>.zip``, extracted into a staging folder beside
   it, moved into place, then a manifest (every file and its size) and, last, a completion marker
   ``downloads/<name>.done.json`` are written atomically. The zip is deleted after the marker.
5. A single file is complete when its marker matches the lock file and the file's size and modification
   time; an archive when its marker matches the lock file. Complete entries make no request at all.
   ``verify=True`` re-hashes single files and checks unpacked trees against their manifests.

Archive layout (assumption)
---------------------------
Each zip is expected to hold its tree relative to the data root (``features/ImageNetTest/caffe/...``,
``decoding_accuracy/ImageNetTest/...``), which is what the original repository's download scripts assumed
(``unzip`` run inside ``data/``). Tolerated deviations: single wrapping folders that are not named like a
level of the expected path are stripped (``BHscore_data/decoding_accuracy/...``); an archive that starts
lower in the expected path gets the missing leading folders (``ImageNetTest/...`` becomes
``decoding_accuracy/ImageNetTest/...``); top-level loose files (a README), ``__MACOSX/`` and ``.DS_Store``
entries are skipped. Anything else is refused with a message listing the archive's top-level entries; the
verified zip is kept for inspection.

Timeouts
--------
One timeout T (``--timeout``, ``BHSCORE_DOWNLOAD_TIMEOUT``, default 5 s) bounds three waits:

- connecting: no connection within T is "unreachable" (fails at once, with instructions);
- each read: no byte for T seconds drops the connection (then it is retried, resuming);
- a stall: a connection that delivers fewer than :data:`STALL_MIN_BYTES` (1 KiB) in any T seconds is
  abandoned, so a server that trickles bytes forever (one a second, say) is left after T to 2T seconds.
  A stalled attempt is retried like a dropped one, but does not count as progress, so after ``retries``
  stalls in a row the download fails with a message naming the URL.

Nothing bounds the total time: a slow download that keeps delivering at least 1 KiB per T seconds runs to
the end, however large the file.

Configuration
-------------
``BHSCORE_FIGSHARE_API`` (default ``https://api.figshare.com/v2``), ``BHSCORE_FIGSHARE_FILES`` (default
``https://ndownloader.figshare.com/files``) and ``BHSCORE_DOWNLOAD_TIMEOUT`` (the timeout T in seconds,
default 5) override the endpoints and the timeout; :class:`DownloadOptions` does the same per call.

Examples
--------
>>> from bhscore.download import download
>>> download("data", "accuracy")                        # doctest: +SKIP
"""

from __future__ import annotations

import gzip
import hashlib
import http.client
import json
import logging
import os
import re
import shutil
import time
import zipfile
import zlib
from collections import deque
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from pathlib import Path, PurePosixPath

import requests
import urllib3
from filelock import FileLock
from tqdm import tqdm

from bhscore.atomic import atomic_path, atomic_write_text
from bhscore.errors import UserError
from bhscore.paths import TEST, TRAINING, Layout

log = logging.getLogger(__name__)

API_ENV = "BHSCORE_FIGSHARE_API"
FILES_ENV = "BHSCORE_FIGSHARE_FILES"
TIMEOUT_ENV = "BHSCORE_DOWNLOAD_TIMEOUT"
DEFAULT_API = "https://api.figshare.com/v2"
DEFAULT_FILES = "https://ndownloader.figshare.com/files"
DEFAULT_CONNECT_TIMEOUT = 5.0
#: A connection that delivers fewer bytes than this in the stall window (the timeout) is abandoned.
STALL_MIN_BYTES = 1024

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

_PAGE_SIZE = 1000  # figshare's largest page of an article's file list
_RETRY_STATUS = {408, 429, 500, 502, 503, 504}
_CHUNK = 1 << 20


# -------------------------------------------------------------------------------------------------
# errors
# -------------------------------------------------------------------------------------------------


class DownloadError(UserError):
    """A download that cannot complete; the message says what failed and what to do."""


class NetworkError(DownloadError):
    """figshare cannot be reached; the message names the URL and how to place the file by hand."""


class ChecksumError(DownloadError):
    """A downloaded file does not match figshare's MD5; it has been deleted."""


class _Stalled(Exception):
    """A connection delivered fewer than STALL_MIN_BYTES in the stall window."""


class _Unreachable(Exception):
    """First contact with a host failed (no connection, or no answer within the timeout)."""

    def __init__(self, url: str, cause: BaseException, what: str):
        super().__init__(f"{what}: {url}: {cause}")
        self.url, self.cause, self.what = url, cause, what


# -------------------------------------------------------------------------------------------------
# registry
# -------------------------------------------------------------------------------------------------


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
        return Path(root) / STATE_DIR / f"{self.name}.done.json"

    def manifest_path(self, root: str | os.PathLike) -> Path:
        return Path(root) / STATE_DIR / f"{self.name}.manifest.tsv.gz"

    def url(self, files_base: str | None = None) -> str:
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


# -------------------------------------------------------------------------------------------------
# options, outcomes, lock file
# -------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class DownloadOptions:
    """How to download. ``None`` fields take the environment variable or the default.

    Parameters
    ----------
    api_base : str, optional
        figshare API root (``$BHSCORE_FIGSHARE_API`` or ``https://api.figshare.com/v2``).
    files_base : str, optional
        Download root, ``<files_base>/<file id>`` (``$BHSCORE_FIGSHARE_FILES`` or figshare's ndownloader).
    connect_timeout : float, optional
        Seconds to wait for a connection (``$BHSCORE_DOWNLOAD_TIMEOUT`` or 5): an unreachable host fails fast.
        The other timeouts default to it (module doc, "Timeouts").
    read_timeout : float, optional
        Seconds to wait for the next bytes of an answer (default: ``connect_timeout``).
    stall_timeout : float, optional
        A file download that receives fewer than :data:`STALL_MIN_BYTES` in this many seconds is abandoned
        (default: ``read_timeout``).
    retries : int
        Further attempts after a dropped connection or a transient HTTP error (each resumes the download);
        the count restarts whenever an attempt made progress.
    backoff : float
        Seconds before the first retry, doubling each time (capped at 30 s).
    progress : bool
        Show tqdm progress bars.
    verify : bool
        Also re-check complete entries: re-hash single files, check unpacked trees against their manifests.
    keep_archives : bool
        Keep the zips (in ``<data root>/downloads``) after unpacking.
    chunk_size : int
        Bytes per read; a dropped connection loses at most the chunk in flight.
    """

    api_base: str | None = None
    files_base: str | None = None
    connect_timeout: float | None = None
    read_timeout: float | None = None
    stall_timeout: float | None = None
    retries: int = 5
    backoff: float = 1.0
    progress: bool = True
    verify: bool = False
    keep_archives: bool = False
    chunk_size: int = _CHUNK

    def resolved(self) -> DownloadOptions:
        timeout = self.connect_timeout
        if timeout is None:
            env = os.environ.get(TIMEOUT_ENV)
            try:
                timeout = float(env) if env else DEFAULT_CONNECT_TIMEOUT
            except ValueError:
                raise UserError(f"{TIMEOUT_ENV}={env!r} is not a number of seconds") from None
        read = timeout if self.read_timeout is None else self.read_timeout
        stall = read if self.stall_timeout is None else self.stall_timeout
        for name, value in (("timeout", timeout), ("read timeout", read), ("stall timeout", stall)):
            if not (0 < value < float("inf")):
                raise UserError(f"the download {name} must be a positive number of seconds, got {value}")
        return replace(
            self,
            api_base=(self.api_base or os.environ.get(API_ENV) or DEFAULT_API).rstrip("/"),
            files_base=(self.files_base or os.environ.get(FILES_ENV) or DEFAULT_FILES).rstrip("/"),
            connect_timeout=timeout,
            read_timeout=read,
            stall_timeout=stall,
        )


@dataclass(frozen=True)
class Outcome:
    """What :func:`download` did for one entry.

    ``status`` is ``'present'`` (complete from an earlier run: nothing fetched, no request),
    ``'verified'`` (found on disk, e.g. placed by hand, and checked now), ``'downloaded'``, or
    ``'unverified'`` (found on disk, but no checksum could be obtained: figshare unreachable and none
    recorded in the lock file; it is used as it is and checked on the next run that can).
    """

    entry: RemoteFile
    status: str
    path: Path


class LockFile:
    """``<data root>/downloads.lock.json``: figshare's MD5 and size of every file fetched so far.

    Read-modify-write under a file lock, written atomically, so concurrent downloads (``make -j``) are safe.
    """

    def __init__(self, root: Path):
        self.path = Path(root) / LOCK_FILE
        self._lock_dir = Layout(Path(root)).lock_dir
        self._mutex = FileLock(str(self._lock_dir / f"{LOCK_FILE}.lock"))

    def read(self) -> dict:
        if not self.path.exists():
            return {"files": {}}
        try:
            data = json.loads(self.path.read_text())
            if not isinstance(data.get("files"), dict):
                raise ValueError("no 'files' mapping")
        except (ValueError, AttributeError) as e:
            raise DownloadError(
                f"cannot read the download lock file {self.path}: {e}\n"
                "  delete it: it is re-created from figshare's API on the next download"
            ) from None
        return data

    def get(self, entry: RemoteFile) -> dict | None:
        """The recorded ``{'md5', 'size', ...}`` of ``entry``, or None (none, or for another file id)."""
        rec = self.read()["files"].get(entry.name)
        if isinstance(rec, dict) and rec.get("file_id") == entry.file_id and rec.get("md5") and "size" in rec:
            return rec
        return None

    def put(self, entry: RemoteFile, rec: dict) -> None:
        self._lock_dir.mkdir(parents=True, exist_ok=True)
        with self._mutex:
            data = self.read()
            data["about"] = (
                "MD5 (figshare API computed_md5) and size of each downloaded file, recorded at download time; "
                "later runs of `bhscore download` verify against them without the network."
            )
            data["files"][entry.name] = rec
            atomic_write_text(self.path, json.dumps(data, indent=2, sort_keys=True) + "\n")


# -------------------------------------------------------------------------------------------------
# HTTP
# -------------------------------------------------------------------------------------------------


def _user_agent() -> str:
    try:
        from importlib.metadata import version

        return f"bhscore/{version('bhscore')} (Brain Hierarchy score data downloader)"
    except Exception:  # noqa: BLE001 - not installed as a distribution
        return "bhscore (data downloader)"


_STREAM_ERRORS = (
    requests.RequestException,
    urllib3.exceptions.HTTPError,
    http.client.HTTPException,
    ConnectionError,
    TimeoutError,
)


class _Client:
    """HTTP side: figshare's file lists and resumable streaming of file bytes."""

    def __init__(self, opts: DownloadOptions):
        self.opts = opts
        self.session = requests.Session()
        self.session.headers["User-Agent"] = _user_agent()
        self._articles: dict[int, dict[int, dict]] = {}

    @property
    def timeout(self) -> tuple[float, float]:
        return (self.opts.connect_timeout, self.opts.read_timeout)

    def _wait(self, failures: int) -> None:
        delay = min(self.opts.backoff * 2 ** (failures - 1), 30.0)
        if delay > 0:
            time.sleep(delay)

    # figshare API -------------------------------------------------------------------------------
    def article_files(self, article: int, wanted: set[int]) -> dict[int, dict]:
        """``{file id: figshare file record}`` of an article (all pages, until ``wanted`` are seen)."""
        cached = self._articles.get(article)
        if cached is not None and wanted <= cached.keys():
            return cached
        url = f"{self.opts.api_base}/articles/{article}/files"
        found: dict[int, dict] = {}
        for page in range(1, 101):
            items = self._get_json(url, {"page": page, "page_size": _PAGE_SIZE})
            if not isinstance(items, list):
                raise DownloadError(f"unexpected answer from figshare's API {url}: not a list of files")
            new = 0
            for item in items:
                if isinstance(item, dict) and isinstance(item.get("id"), int) and item["id"] not in found:
                    found[item["id"]] = item
                    new += 1
            if len(items) < _PAGE_SIZE or new == 0 or wanted <= found.keys():
                break
        self._articles[article] = found
        return found

    def _get_json(self, url: str, params: dict) -> object:
        failures = 0
        while True:
            try:
                r = self.session.get(url, params=params, timeout=self.timeout)
            except (requests.ConnectionError, requests.Timeout) as e:
                raise _Unreachable(
                    url, e, "fetching the file list (MD5 checksums) from figshare's API"
                ) from e
            if r.status_code in _RETRY_STATUS and failures < self.opts.retries:
                failures += 1
                self._wait(failures)
                continue
            if r.status_code != 200:
                raise DownloadError(f"figshare's API answered HTTP {r.status_code} for {r.url}")
            try:
                return r.json()
            except ValueError:
                raise DownloadError(f"figshare's API sent something that is not JSON for {r.url}") from None

    # file bytes ---------------------------------------------------------------------------------
    def fetch(self, url: str, part: Path, size: int, desc: str, how: str) -> tuple[str, bool]:
        """Download ``url`` into ``part`` until it holds ``size`` bytes, resuming what ``part`` holds.

        Returns
        -------
        md5 : str
            Hex MD5 of the ``size`` bytes now in ``part`` (the caller compares it).
        resumed : bool
            Whether any bytes came from an earlier attempt or run (a ``Range`` request).

        Raises
        ------
        _Unreachable
            The first request got no connection or no answer (nothing written).
        DownloadError
            ``retries`` further attempts failed; ``part`` keeps what arrived (the next run resumes it).
        """
        part.parent.mkdir(parents=True, exist_ok=True)
        hasher, hashed = hashlib.md5(), 0
        failures, attempts, contacted, resumed = 0, 0, False, False
        last_error: object = None
        while True:
            have = part.stat().st_size if part.exists() else 0
            if have > size:
                part.unlink()
                have = 0
            if have == 0:
                hasher, hashed = hashlib.md5(), 0
            elif have != hashed:  # bytes from an earlier run: hash them first
                hasher, hashed = _md5_of(part, have, self.opts.progress, f"{desc} (checking partial)"), have
                resumed = True
            if have == size:
                return hasher.hexdigest(), resumed
            if attempts > 0:
                if failures > self.opts.retries or attempts > 10 * (self.opts.retries + 1):
                    raise DownloadError(
                        f"download failed after {attempts} attempts: {url}\n  last error: {last_error}\n"
                        f"  {have} of {size} bytes are kept in {part}; run `{how}` again to resume"
                    )
                self._wait(failures)
            attempts += 1
            err: object = None
            headers = {"Accept-Encoding": "identity"}
            if have:
                headers["Range"] = f"bytes={have}-"
            try:
                response = self.session.get(url, headers=headers, stream=True, timeout=self.timeout)
            except (requests.ConnectionError, requests.Timeout) as e:
                if not contacted:
                    raise _Unreachable(url, e, "downloading the file") from e
                failures, last_error = failures + 1, e
                continue
            contacted = True
            with response:
                status = response.status_code
                if status == 416:  # our range starts past the end: the partial file is not this file
                    part.unlink(missing_ok=True)
                    failures, last_error = failures + 1, "HTTP 416 (range not satisfiable); restarting"
                    continue
                if status in _RETRY_STATUS:
                    failures, last_error = failures + 1, f"HTTP {status}"
                    continue
                if status not in (200, 206):
                    raise DownloadError(f"HTTP {status} for {url} ({desc}); the file may have moved")
                if status == 206 and _range_start(response.headers.get("Content-Range")) != have:
                    part.unlink(missing_ok=True)
                    failures, last_error = failures + 1, "unexpected Content-Range; restarting"
                    continue
                if status == 200 and have:
                    log.info(
                        "%s: the server does not resume downloads; starting again from the beginning", desc
                    )
                    hasher, hashed, have = hashlib.md5(), 0, 0
                resumed = resumed or status == 206
                start = have
                stalled = False
                try:
                    with open(part, "ab" if have else "wb") as f, self._bar(desc, size, have) as bar:
                        for chunk in self._body(response):
                            f.write(chunk)
                            hasher.update(chunk)
                            have += len(chunk)
                            bar.update(len(chunk))
                            if have > size:
                                break
                except _Stalled as e:
                    err, stalled = e, True
                except _STREAM_ERRORS as e:
                    err = e
                hashed = have
                if have - start >= (STALL_MIN_BYTES if stalled else 1):  # a trickle is no progress
                    failures = 0
                if have < size:
                    failures += 1
                    last_error = err or f"connection closed after {have} of {size} bytes"
                    log.info("%s: interrupted at %d of %d bytes (%s); resuming", desc, have, size,
                             err if stalled else type(err).__name__ if err else "connection closed")  # fmt: skip
                    continue
                if have > size:
                    part.unlink(missing_ok=True)
                    raise DownloadError(f"{url} sent more than the {size} bytes figshare announces; deleted")
                return hasher.hexdigest(), resumed

    def _body(self, response: requests.Response) -> Iterator[bytes]:
        """The body's bytes as they arrive (at most ``chunk_size`` at a time), until the connection ends.

        Raises :class:`_Stalled` when fewer than :data:`STALL_MIN_BYTES` arrived in the last
        ``stall_timeout`` seconds: each read returns within ``read_timeout``, but a server may trickle a
        byte at a time forever. ``read1`` returns what has arrived instead of waiting for a full chunk, so the
        check runs after every network read.
        """
        raw = response.raw
        read = getattr(raw, "read1", None) or raw.read  # urllib3 < 2 has no read1
        window = self.opts.stall_timeout
        total = 0
        marks = deque([(time.monotonic(), 0)])  # (time, bytes received by then), oldest first
        while True:
            chunk = read(self.opts.chunk_size, decode_content=True)
            if not chunk:
                return
            yield chunk
            total += len(chunk)
            now = time.monotonic()
            marks.append((now, total))
            while len(marks) > 1 and marks[1][0] <= now - window:  # keep one mark at or before now - window
                marks.popleft()
            since, then = marks[0]
            if now - since >= window and total - then < STALL_MIN_BYTES:
                raise _Stalled(
                    f"stalled: {total - then} bytes in the last {now - since:.1f} s (less than "
                    f"{STALL_MIN_BYTES} bytes in {window:g} s; the timeout is set by --timeout or {TIMEOUT_ENV})"
                )

    def _bar(self, desc: str, total: int, initial: int) -> tqdm:
        return tqdm(total=total, initial=initial, unit="B", unit_scale=True, unit_divisor=1024,
                    desc=desc, disable=not self.opts.progress, dynamic_ncols=True)  # fmt: skip


def _range_start(content_range: str | None) -> int | None:
    m = re.match(r"bytes\s+(\d+)-\d+/(\d+|\*)", content_range or "")
    return int(m.group(1)) if m else None


def _md5_of(path: Path, n: int | None = None, progress: bool = False, desc: str = "") -> hashlib._Hash:
    """MD5 of the first ``n`` bytes (default all) of ``path``."""
    h = hashlib.md5()
    total = path.stat().st_size if n is None else n
    left = total
    with open(path, "rb") as f, tqdm(total=total, unit="B", unit_scale=True, unit_divisor=1024, desc=desc,
                                     disable=not progress or total < 64 * _CHUNK) as bar:  # fmt: skip
        while left > 0:
            chunk = f.read(min(_CHUNK * 8, left))
            if not chunk:
                break
            h.update(chunk)
            left -= len(chunk)
            bar.update(len(chunk))
    return h


def md5_file(path: str | os.PathLike, progress: bool = False) -> str:
    """Hex MD5 of a file."""
    return _md5_of(Path(path), None, progress, f"checking {Path(path).name}").hexdigest()


# -------------------------------------------------------------------------------------------------
# archives
# -------------------------------------------------------------------------------------------------


def _member_parts(name: str, archive: Path) -> tuple[str, ...] | None:
    """Path components of a zip member, None for junk; refuses paths that escape the destination."""
    path = PurePosixPath(name.replace("\\", "/"))
    parts = tuple(p for p in path.parts if p not in ("", "."))
    if path.is_absolute() or ".." in parts or (parts and ":" in parts[0]):
        raise DownloadError(f"{archive}: unsafe member path {name!r} in the archive; refusing to unpack it")
    if not parts or parts[0] == "__MACOSX" or parts[-1] == ".DS_Store":
        return None
    return parts


def plan_unpack(
    names: Sequence[str], anchor: str, archive: Path = Path("archive.zip")
) -> list[PurePosixPath | None]:
    """Where each member of an archive goes, relative to the data root (None: skipped).

    Parameters
    ----------
    names : sequence of str
        Member names of the archive's files (no folders).
    anchor : str
        The folder the archive must yield, relative to the data root (``decoding_accuracy/ImageNetTest``).

    Returns
    -------
    list of PurePosixPath or None, one per name

    Raises
    ------
    DownloadError
        The archive's layout does not match the expected path (see the module docstring).
    """
    expected = PurePosixPath(anchor).parts
    parts = [_member_parts(n, archive) for n in names]
    members = [p for p in parts if p is not None]
    strip = 0  # leading wrapping folders to drop
    while True:
        inner = [p for p in members if len(p) > strip + 1]  # files inside a folder at this level
        tops = {p[strip] for p in inner}
        if len(tops) == 1 and next(iter(tops)) not in expected and any(len(p) > strip + 2 for p in inner):
            strip += 1  # a single wrapping folder that is not part of the expected path
        else:
            break
    inner = [p for p in members if len(p) > strip + 1]
    if not inner:
        raise DownloadError(f"{archive}: the archive holds no folders; expected {anchor}/...")
    tops = {p[strip] for p in inner}
    prefix = next((expected[:j] for j, level in enumerate(expected) if tops == {level}), None)
    if prefix is not None:
        mapped = {p: prefix + p[strip:] for p in inner}
        if any(m[: len(expected)] == expected and len(m) > len(expected) for m in mapped.values()):
            for p in members:
                if p not in mapped:
                    log.warning("%s: skipping the loose file %s", archive.name, "/".join(p))
            return [PurePosixPath(*mapped[p]) if p in mapped else None for p in parts]
    shown = ", ".join(sorted({"/".join(p[: strip + 1]) for p in inner})[:10])
    raise DownloadError(
        f"{archive}: unexpected layout; its top-level folders are {shown}, expected {anchor}/... "
        f"(or a part of that path, optionally inside one wrapping folder). The archive is kept; unpack it by "
        f"hand so that {anchor}/ appears under the data root."
    )


def unpack_archive(
    archive: str | os.PathLike,
    root: str | os.PathLike,
    anchor: str,
    progress: bool = True,
    land_at: str | None = None,
) -> list[tuple[str, int]]:
    """Unpack a zip into ``root`` so that ``anchor`` appears, via a staging folder (nothing partial in place).

    Files are extracted into ``<root>/downloads/<archive stem>.unpacking`` (same file system), then moved
    into place, merging with folders that already exist (other archives' trees, a user's own networks).
    ``land_at``: put the archive's ``anchor`` tree there instead (a directory renamed to the settings' name).

    Returns
    -------
    list of (relative POSIX path, size in bytes), one per unpacked file (the manifest).
    """
    archive, root = Path(archive), Path(root)
    staging = root / STATE_DIR / f"{archive.stem}.unpacking"
    shutil.rmtree(staging, ignore_errors=True)
    manifest: list[tuple[str, int]] = []
    try:
        with zipfile.ZipFile(archive) as zf:
            infos = [i for i in zf.infolist() if not i.is_dir()]
            targets = plan_unpack([i.filename for i in infos], anchor, archive)
            if land_at and land_at != anchor:
                n, new = len(PurePosixPath(anchor).parts), PurePosixPath(land_at).parts
                targets = [
                    PurePosixPath(*new, *t.parts[n:]) if t is not None and t.parts[:n] == PurePosixPath(anchor).parts
                    else t for t in targets
                ]  # fmt: skip
            total = sum(i.file_size for i, t in zip(infos, targets, strict=True) if t is not None)
            with tqdm(total=total, unit="B", unit_scale=True, unit_divisor=1024, desc=f"unpacking {archive.name}",
                      disable=not progress, dynamic_ncols=True) as bar:  # fmt: skip
                for info, target in zip(infos, targets, strict=True):
                    if target is None:
                        continue
                    out = staging.joinpath(*target.parts)
                    out.parent.mkdir(parents=True, exist_ok=True)
                    with zf.open(info) as src, open(out, "wb") as dst:
                        shutil.copyfileobj(src, dst, _CHUNK)
                    manifest.append((target.as_posix(), info.file_size))
                    bar.update(info.file_size)
        _merge_tree(staging, root)
    except (zipfile.BadZipFile, zlib.error, EOFError) as e:
        raise DownloadError(
            f"{archive} is not a valid zip archive ({e}); delete it and download it again"
        ) from None
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return manifest


def _merge_tree(src: Path, dst: Path) -> None:
    """Move everything under ``src`` into ``dst``: whole subtrees by one rename where ``dst`` has none."""
    dst.mkdir(parents=True, exist_ok=True)
    for child in src.iterdir():
        target = dst / child.name
        if child.is_dir() and target.is_dir() and not target.is_symlink():
            _merge_tree(child, target)
        elif child.is_dir() and target.exists():
            raise DownloadError(f"cannot unpack: {target} exists and is not a folder")
        else:
            if target.is_dir() and not target.is_symlink():
                raise DownloadError(f"cannot unpack: {target} is a folder, the archive has a file there")
            os.replace(child, target)


# -------------------------------------------------------------------------------------------------
# the run
# -------------------------------------------------------------------------------------------------


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


def _read_json(path: Path) -> dict | None:
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def _reason(e: BaseException, opts: DownloadOptions) -> str:
    if isinstance(e, requests.ConnectTimeout):
        return f"no connection within {opts.connect_timeout:g} s"
    if isinstance(e, requests.ReadTimeout):
        return f"connected, but no answer within {opts.read_timeout:g} s"
    text = str(e)
    m = re.search(r"\[Errno -?\d+\][^'\")]*", text)
    return m.group(0).strip() if m else text[:300]


class _Run:
    def __init__(self, root: Path, opts: DownloadOptions):
        self.root, self.opts = Path(root), opts
        self.layout = Layout(self.root)
        self.lock = LockFile(self.root)
        self._client: _Client | None = None  # opened on first need: a complete run makes no request

    @property
    def client(self) -> _Client:
        if self._client is None:
            self._client = _Client(self.opts)
        return self._client

    def ensure(self, entry: RemoteFile) -> Outcome:
        self.layout.lock_dir.mkdir(parents=True, exist_ok=True)
        with FileLock(str(self.layout.lock_dir / f"download-{entry.name}.lock")):
            try:
                return self._ensure(entry)
            except _Unreachable as e:
                raise NetworkError(self._offline_message(entry, e)) from None

    def _ensure(self, entry: RemoteFile) -> Outcome:
        rec = self.lock.get(entry)
        marker = _read_json(entry.marker_path(self.root))
        if marker is not None and self._complete(entry, marker, rec):
            log.debug("%s: complete (%s)", entry.name, entry.destination(self.root))
            return Outcome(entry, "present", entry.destination(self.root))
        return self._ensure_archive(entry, rec, marker) if entry.archive else self._ensure_file(entry, rec)

    # completeness ---------------------------------------------------------------------------------
    def _complete(self, entry: RemoteFile, marker: dict, rec: dict | None) -> bool:
        if marker.get("file_id") != entry.file_id or not marker.get("verified"):
            return False
        if rec is not None and marker.get("md5") != rec["md5"]:
            return False
        dest = entry.destination(self.root)
        if entry.archive:
            return dest.is_dir() and (not self.opts.verify or self._manifest_ok(entry))
        try:
            st = dest.stat()
        except OSError:
            return False
        if st.st_size != marker.get("size"):
            return False
        if self.opts.verify:
            return md5_file(dest, self.opts.progress) == marker["md5"]
        return st.st_mtime_ns == marker.get("mtime_ns")

    def _manifest_ok(self, entry: RemoteFile) -> bool:
        try:
            with gzip.open(entry.manifest_path(self.root), "rt") as f:
                rows = [line.rstrip("\n").rsplit("\t", 1) for line in f if line.strip()]
        except (OSError, EOFError):
            log.warning("%s: no readable manifest; unpacking again", entry.name)
            return False
        bad = []
        for rel, size in rows:
            path = self.root.joinpath(*PurePosixPath(rel).parts)
            try:
                if path.stat().st_size != int(size):
                    bad.append(rel)
            except OSError:
                bad.append(rel)
        if bad:
            log.warning("%s: %d of %d unpacked files are missing or changed (e.g. %s); fetching again",
                        entry.name, len(bad), len(rows), bad[0])  # fmt: skip
        return not bad

    # remote metadata ------------------------------------------------------------------------------
    def _remote(self, entry: RemoteFile) -> dict:
        """figshare's record of ``entry`` (MD5, size), recorded in the lock file."""
        wanted = {i for e in (*REGISTRY, *FEATURES_ALL_REGISTRY) if e.article == entry.article for i in e.file_ids}
        files = self.client.article_files(entry.article, wanted)
        item = files.get(entry.file_id)
        if item is None:
            raise DownloadError(
                f"figshare article {entry.article} does not list file {entry.file_id} ({entry.description}); "
                f"the registry in bhscore/download.py may be out of date ({self.opts.api_base})"
            )
        md5 = item.get("computed_md5") or item.get("supplied_md5")
        if not md5 or not isinstance(item.get("size"), int):
            raise DownloadError(
                f"figshare reports no MD5 or size for file {entry.file_id} ({entry.description})"
            )
        rec = {
            "article": entry.article,
            "file_id": entry.file_id,
            "name": item.get("name"),
            "size": item["size"],
            "md5": md5.lower(),
            "url": entry.url(self.opts.files_base),
            "recorded": _now(),
        }
        self.lock.put(entry, rec)
        return rec

    def _check_existing(self, entry: RemoteFile, path: Path, rec: dict | None) -> tuple[str, str] | None:
        """Check a file found at ``path``: ``('verified'|'unverified', md5)``, or None after moving it aside."""
        if rec is None:
            try:
                rec = self._remote(entry)
            except _Unreachable as e:
                log.warning(
                    "%s: found %s, but cannot verify it (%s; no checksum recorded in %s); using it as it is",
                    entry.name, path, _reason(e.cause, self.opts), self.lock.path,
                )  # fmt: skip
                return "unverified", md5_file(path, self.opts.progress)
        digest = md5_file(path, self.opts.progress)
        if digest == rec["md5"]:
            return "verified", digest
        bad = path.with_name(path.name + ".corrupt")
        os.replace(path, bad)
        log.warning("%s: %s has MD5 %s, figshare publishes %s; moved it to %s and downloading again",
                    entry.name, path, digest, rec["md5"], bad)  # fmt: skip
        return None

    # fetching -------------------------------------------------------------------------------------
    def _fetch_verified(self, entry: RemoteFile, path: Path, rec: dict) -> None:
        """Download ``entry`` and rename it onto ``path`` only if its MD5 matches ``rec``."""
        part = path.with_name(path.name + ".part")
        url = entry.url(self.opts.files_base)
        how = MAKE_TARGET[entry.group]
        for fresh in (False, True):
            digest, resumed = self.client.fetch(url, part, rec["size"], entry.name, how)
            if digest == rec["md5"]:
                os.replace(part, path)
                return
            part.unlink(missing_ok=True)
            if fresh or not resumed:
                break
            log.warning("%s: MD5 mismatch after resuming; downloading again from the start", entry.name)
        raise ChecksumError(
            f"checksum mismatch for {entry.description} ({entry.name}) from {url}:\n"
            f"  MD5 {digest}, but figshare publishes {rec['md5']} (recorded in {self.lock.path})\n"
            f"  the download was deleted; nothing was written to {path}.\n"
            f"  Run `{how}` again later; if it keeps failing, the file on figshare may have changed: "
            f"delete its entry '{entry.name}' from {self.lock.path} and try once more"
        )

    def _mark(self, entry: RemoteFile, info: dict) -> None:
        marker = {"name": entry.name, "file_id": entry.file_id, "article": entry.article, "written": _now()}
        marker.update(info)
        atomic_write_text(entry.marker_path(self.root), json.dumps(marker, indent=2, sort_keys=True) + "\n")

    def _obtain(self, entry: RemoteFile, path: Path, rec: dict | None) -> tuple[str, str]:
        """``path`` checked if it exists, else fetched and verified; returns (status, MD5)."""
        found = self._check_existing(entry, path, rec) if path.exists() else None
        if found is not None:
            return found
        rec = rec or self._remote(entry)
        path.parent.mkdir(parents=True, exist_ok=True)
        self._fetch_verified(entry, path, rec)
        return "downloaded", rec["md5"]

    def _ensure_file(self, entry: RemoteFile, rec: dict | None) -> Outcome:
        dest = entry.destination(self.root)
        status, digest = self._obtain(entry, dest, rec)
        if status != "unverified":
            st = dest.stat()
            self._mark(entry, {"md5": digest, "verified": True, "path": dest.relative_to(self.root).as_posix(),
                               "size": st.st_size, "mtime_ns": st.st_mtime_ns})  # fmt: skip
        return Outcome(entry, status, dest)

    def _ensure_archive(self, entry: RemoteFile, rec: dict | None, marker: dict | None) -> Outcome:
        zip_path = entry.download_path(self.root)
        dest = entry.destination(self.root)
        if entry.parts:
            status, digest = self._obtain_pieces(entry, zip_path)
        else:
            status, digest = self._obtain(entry, zip_path, rec)
        verified = status != "unverified"
        already = (
            marker is not None and marker.get("md5") == digest and marker.get("file_id") == entry.file_id
            and dest.is_dir() and self._manifest_ok(entry)
        )  # fmt: skip
        if not already:  # unpack; an interrupted earlier unpack (no marker) is simply redone
            entry.marker_path(self.root).unlink(missing_ok=True)
            manifest = unpack_archive(zip_path, self.root, entry.source_anchor or entry.anchor, self.opts.progress,
                                      land_at=entry.anchor)  # fmt: skip
            with atomic_path(entry.manifest_path(self.root)) as tmp, gzip.open(tmp, "wt") as f:
                f.writelines(f"{rel}\t{size}\n" for rel, size in manifest)
            n_files, n_bytes = len(manifest), sum(s for _, s in manifest)
        else:
            n_files, n_bytes = marker.get("n_files"), marker.get("n_bytes")
        self._mark(entry, {"md5": digest, "verified": verified, "anchor": entry.anchor,
                           "n_files": n_files, "n_bytes": n_bytes})  # fmt: skip
        if verified and not self.opts.keep_archives:
            zip_path.unlink()
            for i in range(len(entry.parts) + 1 if entry.parts else 0):
                entry.piece(i).download_path(self.root).unlink(missing_ok=True)
        elif not verified:
            log.warning("%s: keeping %s until it can be verified against figshare", entry.name, zip_path)
        return Outcome(entry, status, dest)

    def _obtain_pieces(self, entry: RemoteFile, zip_path: Path) -> tuple[str, str]:
        """Fetch and verify each piece of a split zip, then join them into ``zip_path`` (atomically).

        Returns (status, digest): status as :meth:`_obtain` (the weakest of the pieces'), digest the pieces'
        MD5s joined by '+' (what the completion marker records).
        """
        statuses, digests, paths = [], [], []
        for i in range(len(entry.file_ids)):
            piece = entry.piece(i)
            path = piece.download_path(self.root)
            status, digest = self._obtain(piece, path, self.lock.get(piece))
            statuses.append(status)
            digests.append(digest)
            paths.append(path)
        with atomic_path(zip_path) as tmp, open(tmp, "wb") as out:
            for path in paths:
                with open(path, "rb") as src:
                    shutil.copyfileobj(src, out, _CHUNK)
        order = ("unverified", "downloaded", "verified")
        return min(statuses, key=order.index), "+".join(digests)

    def size_of(self, entry: RemoteFile) -> int:
        """Bytes to download for ``entry`` (all pieces), from the lock file or figshare's API."""
        total = 0
        for i in range(len(entry.file_ids)):
            piece = entry.piece(i) if entry.parts else entry
            rec = self.lock.get(piece) or self._remote(piece)
            total += int(rec["size"])
        return total

    # messages -------------------------------------------------------------------------------------
    def _offline_message(self, entry: RemoteFile, e: _Unreachable) -> str:
        how = MAKE_TARGET[entry.group]
        target = entry.download_path(self.root)
        part = entry.part_path(self.root)
        lines = [
            f"cannot download {entry.description} ({entry.name}): network unreachable while {e.what}",
            f"  URL: {e.url}",
            f"  reason: {_reason(e.cause, self.opts)}",
            f"  Check the network connection (or HTTPS_PROXY) and run `{how}` again "
            f"(timeout {self.opts.connect_timeout:g} s, set by --timeout or {TIMEOUT_ENV}).",
        ]
        if part.exists():
            lines.append(f"  The partial download {part} is kept; the next run resumes it.")
        lines += [
            "  Or place the file by hand: download",
            f"      {entry.url(DEFAULT_FILES)}",
            f"  (figshare article https://doi.org/10.6084/m9.figshare.{entry.article}) and save it as",
            f"      {target}",
            f"  then run `{how}` again: it checks the file against figshare's MD5 (or the one recorded in "
            f"{self.lock.path})" + (" and unpacks it." if entry.archive else "."),
        ]
        return "\n".join(lines)


# -------------------------------------------------------------------------------------------------
# public entry points
# -------------------------------------------------------------------------------------------------


def download(
    root: str | os.PathLike,
    group: str = "all",
    *,
    subjects: Sequence[str] | None = None,
    names: Sequence[str] | None = None,
    options: DownloadOptions | None = None,
    dnn_dirs: Sequence[str] | None = None,
    **kwargs,
) -> list[Outcome]:
    """Make sure the selected remote files are in place under the data root ``root``, verified.

    Parameters
    ----------
    root : path-like
        The data root (:func:`bhscore.paths.data_root`).
    group : {'fmri', 'features', 'accuracy', 'all', 'features-all'}
    subjects, names, dnn_dirs : sequence of str, optional
        See :func:`select`. ``'features-all'`` first checks the free disk space (:func:`preflight`).
    options : DownloadOptions, optional
        Or its fields as keyword arguments (``api_base=..., connect_timeout=...``).

    Returns
    -------
    list of Outcome, one per selected entry, in registry order.

    Raises
    ------
    NetworkError
        figshare unreachable (fails at the first entry that needs the network; complete entries need none).
    ChecksumError
        A download does not match figshare's MD5 (it was deleted).
    DownloadError
        Any other failure; the message says what to do.
    """
    opts = (options or DownloadOptions(**kwargs)).resolved()
    run = _Run(Path(root), opts)
    entries = select(group, subjects, names, dnn_dirs)
    if group == FEATURES_ALL:
        plan = preflight(root, entries, options=opts)
        if not plan.fits:
            raise DownloadError(plan.refusal())
    return [run.ensure(entry) for entry in entries]


@dataclass(frozen=True)
class Preflight:
    """Size of a download and the disk it needs, known before it starts (:func:`preflight`).

    Attributes
    ----------
    n_bytes : int
        Bytes still to download (entries not yet complete).
    need_bytes : int
        Free space needed: the unpacked trees (taken as large as the zips: ``.mat`` arrays barely compress)
        plus the largest zip kept while it unpacks (twice that for a zip joined from pieces).
    free_bytes : int
        Free space on the data root's file system now.
    n_pending, n_complete : int
        Entries to fetch, and entries already complete (no request).
    """

    n_bytes: int
    need_bytes: int
    free_bytes: int
    n_pending: int
    n_complete: int
    root: Path

    @property
    def fits(self) -> bool:
        return self.need_bytes <= self.free_bytes

    def describe(self) -> str:
        return (f"{self.n_pending} archive(s) to fetch ({self.n_complete} complete): {_human(self.n_bytes)} to "
                f"download, needs {_human(self.need_bytes)} free, {_human(self.free_bytes)} free in {self.root}")  # fmt: skip

    def refusal(self) -> str:
        return (f"not enough disk space for the download: {self.describe()}; free "
                f"{_human(self.need_bytes - self.free_bytes)} or choose fewer DNNs (--dnn)")  # fmt: skip


def _human(n: float) -> str:
    for unit in ("B", "KB", "MB", "GB"):
        if abs(n) < 1000:
            return f"{n:.1f} {unit}" if unit != "B" else f"{int(n)} B"
        n /= 1000
    return f"{n:.1f} TB"


def preflight(
    root: str | os.PathLike, entries: Sequence[RemoteFile], options: DownloadOptions | None = None
) -> Preflight:
    """Sizes (lock file, else figshare's API: recorded) and the free-disk check of the incomplete ``entries``."""
    opts = (options or DownloadOptions()).resolved()
    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    run = _Run(root, opts)
    pending = [e for e, state in status(root, entries) if state != "complete"]
    try:
        sizes = {e.name: run.size_of(e) for e in pending}
    except _Unreachable as e:
        raise NetworkError(run._offline_message(pending[0], e)) from None
    transient = max((sizes[e.name] * (2 if e.parts else 1) for e in pending), default=0)
    total = sum(sizes.values())
    return Preflight(total, total + transient, shutil.disk_usage(root).free, len(pending),
                     len(entries) - len(pending), root)  # fmt: skip


def status(
    root: str | os.PathLike, entries: Sequence[RemoteFile] | None = None
) -> list[tuple[RemoteFile, str]]:
    """Offline state of each entry: ``'complete'``, ``'unverified'``, ``'partial'`` or ``'missing'``.

    No network and no hashing: ``'complete'`` means a completion marker that matches the lock file (and, for
    single files, the file's size). ``'unverified'`` means data found without a verified marker (placed by
    hand); ``'partial'`` an interrupted download that the next run resumes.
    """
    root = Path(root)
    lock = LockFile(root)
    out = []
    for entry in entries if entries is not None else REGISTRY:
        marker = _read_json(entry.marker_path(root))
        rec = lock.get(entry)
        dest = entry.destination(root)
        state = "missing"
        if (
            marker is not None and marker.get("verified") and marker.get("file_id") == entry.file_id
            and (rec is None or rec["md5"] == marker.get("md5")) and dest.exists()
            and (entry.archive or dest.stat().st_size == marker.get("size"))
        ):  # fmt: skip
            state = "complete"
        elif dest.exists() or entry.download_path(root).exists():
            state = "unverified"
        elif entry.part_path(root).exists():
            state = "partial"
        out.append((entry, state))
    return out
