"""Verified, resumable, idempotent downloads of the published data (figshare).

What goes where
---------------
:data:`REGISTRY` (:mod:`~bhscore.download.registry`) lists every remote file of the paper (docs: method.md,
"Downloads"), with its figshare article and file id and where it lands under the data root
(:func:`bhscore.paths.data_root`), in the layout of the original repository:

- ``fmri`` (article 7033577, ~2.4 GB): six BData files, each saved as
  :meth:`bhscore.paths.Layout.fmri_file` ``fmri/<subject>_perceptionNaturalImage{Training,Test}_VC_v2.h5``;
- ``features`` (article 12401168, ~6.8 GB): six zips unpacked into the data root, giving
  ``features/{ImageNetTraining,ImageNetTest}/{caffe,pytorch,tensorflow}/<network>/<layer>/<image>.mat``;
- ``accuracy`` (article 12401168, ~350 MB): two zips giving ``published/decoding_accuracy/ImageNetTest/...``
  and ``published/encoding_accuracy/ImageNetTest/...`` (the published tree; never this machine's results,
  which live under ``computed/``);
- ``features-all`` (opt-in, per DNN, ~800 GB for all 29): :data:`FEATURES_ALL_REGISTRY`.

How a file is fetched
---------------------
1. The expected MD5 and size come from the lock file ``<data root>/downloads.lock.json`` when it records
   the file; otherwise from figshare's API (``<api>/articles/<article>/files``, field ``computed_md5``), and
   they are recorded in the lock file at once, so later runs verify offline against them
   (:mod:`~bhscore.download.checksums`).
2. The bytes stream into ``<destination>.part`` with a progress bar. A dropped or stalled connection (see
   :mod:`~bhscore.download.transfer`, "Timeouts") is retried with ``Range: bytes=<received>-``; an
   interrupted run leaves the ``.part`` file, and the next run resumes it.
3. Only a file whose MD5 matches is renamed onto its destination; a mismatch deletes the download (after one
   fresh attempt when the download had been resumed). So a truncated or corrupt file never sits where a
   complete one is expected (:mod:`~bhscore.download.obtain`).
4. An archive is downloaded to ``<data root>/downloads/<name>.zip``, extracted into a staging folder beside
   it, moved into place, then a manifest (every file and its size) and, last, a completion marker
   ``downloads/<name>.done.json`` are written atomically. The zip is deleted after the marker
   (:mod:`~bhscore.download.run`; the archive layouts accepted: :mod:`~bhscore.download.archive`).
5. A single file is complete when its marker matches the lock file and the file's size and modification
   time; an archive when its marker matches the lock file. Complete entries make no request at all.
   ``verify=True`` re-hashes single files and checks unpacked trees against their manifests
   (:mod:`~bhscore.download.verify`).

Modules
-------
``registry`` the remote files and :func:`select`; ``options`` :class:`DownloadOptions` and the environment;
``errors`` the exceptions and the offline message; ``client`` the HTTP session and figshare's API;
``transfer`` resumable streaming with timeouts and retries; ``checksums`` the lock file and expected MD5s;
``obtain`` verified bytes at a path; ``archive`` unpacking; ``verify`` hashes, markers, manifests and
:func:`status`; ``plan`` the free-disk :func:`preflight`; ``run`` :func:`download`.

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

from bhscore.download.archive import plan_unpack, unpack_archive
from bhscore.download.checksums import LockFile
from bhscore.download.errors import ChecksumError, DownloadError, NetworkError
from bhscore.download.options import (
    API_ENV,
    DEFAULT_API,
    DEFAULT_CONNECT_TIMEOUT,
    DEFAULT_FILES,
    FILES_ENV,
    STALL_MIN_BYTES,
    TIMEOUT_ENV,
    DownloadOptions,
)
from bhscore.download.plan import Preflight, preflight
from bhscore.download.registry import (
    APPROX_SIZE,
    DATA_ARTICLE,
    FEATURES_ALL,
    FEATURES_ALL_ARTICLE,
    FEATURES_ALL_DIR,
    FEATURES_ALL_REGISTRY,
    FMRI_ARTICLE,
    FMRI_SUBJECTS,
    GROUPS,
    LOCK_FILE,
    MAKE_TARGET,
    PUBLISHED_DIR,
    REGISTRY,
    STATE_DIR,
    RemoteFile,
    features_all_entries,
    select,
)
from bhscore.download.run import Outcome, download
from bhscore.download.verify import md5_file, status

__all__ = [
    "API_ENV",
    "APPROX_SIZE",
    "DATA_ARTICLE",
    "DEFAULT_API",
    "DEFAULT_CONNECT_TIMEOUT",
    "DEFAULT_FILES",
    "FEATURES_ALL",
    "FEATURES_ALL_ARTICLE",
    "FEATURES_ALL_DIR",
    "FEATURES_ALL_REGISTRY",
    "FILES_ENV",
    "FMRI_ARTICLE",
    "FMRI_SUBJECTS",
    "GROUPS",
    "LOCK_FILE",
    "MAKE_TARGET",
    "PUBLISHED_DIR",
    "REGISTRY",
    "STALL_MIN_BYTES",
    "STATE_DIR",
    "TIMEOUT_ENV",
    "ChecksumError",
    "DownloadError",
    "DownloadOptions",
    "LockFile",
    "NetworkError",
    "Outcome",
    "Preflight",
    "RemoteFile",
    "download",
    "features_all_entries",
    "md5_file",
    "plan_unpack",
    "preflight",
    "select",
    "status",
    "unpack_archive",
]
