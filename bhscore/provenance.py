"""What made a result: parameter sets, input fingerprints and the provenance record of every accuracy file.

Parameter set
    The parameters that determine a computed accuracy: the direction (``kind``), every field of
    ``analysis.decoding`` / ``analysis.encoding`` (alpha, n_feat, dtype, solver, non_finite, ...) and the
    fixed method details of this version (:data:`METHOD`). Its id is the first 12 hex digits of the SHA-256
    of its canonical JSON; results live in ``computed/<kind>_accuracy/<id>/`` with a ``params.json``, so
    changing a parameter starts a new set and never touches the old one.

Input fingerprints
    Each input a job reads (the subject's training and test fMRI files, the layer's training and test feature
    files) is fingerprinted by its size and a SHA-256 of its content. Digests are computed once and cached in
    ``<data root>/cache/digests.json`` under (path, size, modification time), so checking them later costs a
    ``stat`` per file.

Provenance record
    A JSON object stored *inside* each computed ``accuracy.mat`` as the variable ``provenance`` (uint8 bytes of
    UTF-8 JSON; MATLAB: ``jsondecode(char(provenance))``), next to ``accuracy`` and ``n_samples``; bdpy,
    hdf5storage and MATLAB read the file as before. It names the job, the parameter set and its parameters, the
    input fingerprints, the numbers of inputs/outputs/samples, any non-finite test values (``non_finite:
    propagate``), the run (device, threads, host), the package versions and the time. The file is written
    atomically and last, so a record is never separated from its accuracies.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import platform
import socket
import threading
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)

#: Name of the provenance variable in an accuracy file.
PROVENANCE_KEY = "provenance"
#: Version of the record's schema (bumped when a field changes meaning).
RECORD_VERSION = 1
#: Parameters always part of a parameter set (other options only when not at their default).
CORE = ("alpha", "n_feat", "dtype", "solver")
#: Options whose default differs from what earlier versions did: recorded unless they have that earlier value.
#: ``inputs``: encoding read the 1000-unit subset before the setting existed, so 'subset' sets keep their ids
#: (earlier results stay valid) and the default 'all_units' is a new set.
IMPLIED = {"inputs": "subset"}
#: Fixed method details of this version that determine the numbers (docs/method.md). A change here is a new
#: parameter set for every job.
METHOD = {
    "zscore": "training mean, std ddof=1 (constant columns: the constant_inputs option)",
    "test": "image-averaged test samples, z-scored with the training statistics",
    "accuracy": "Pearson r over test images; NaN for a constant prediction or truth",
    "matching": "samples matched to features by stimulus name",
    # v2: the defaults of constant_inputs, zscore_over and float32_rounding reproduce the original scripts
    # (NaN for constant inputs, feature statistics over the distinct images, bdpy's float32 rounding), which
    # changes what the defaults compute: every set id changes, so earlier results are not counted as done.
    "options": "v2: original scripts' numerics by default (incl. Fortran unit order in encoding)",
}


def canonical_json(obj: Any) -> str:
    """JSON with sorted keys and no whitespace: equal objects give equal text (and digests)."""
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), allow_nan=False)


def now_utc(timespec: str = "microseconds") -> str:
    """The current UTC time, ISO 8601 (to the microsecond: records of one run are ordered)."""
    return datetime.now(UTC).isoformat(timespec=timespec)


def package_versions() -> dict[str, str]:
    """Versions of bhscore and of the libraries that shape the numbers."""
    from importlib.metadata import PackageNotFoundError, version

    out = {"python": platform.python_version()}
    for name in ("bhscore", "numpy", "torch", "fastl2lir", "bdpy", "h5py"):
        try:
            out[name] = version(name)
        except PackageNotFoundError:
            out[name] = "absent"
    return out


# -------------------------------------------------------------------------------------------------
# parameter sets
# -------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ParamSet:
    """The parameters that determine the accuracies of one direction.

    Attributes
    ----------
    params : dict
        ``{"kind": ..., <every ridge setting>, "method": METHOD}``, JSON-able.
    """

    params: dict = field(hash=False)

    @classmethod
    def from_settings(cls, settings, kind: str, **overrides: Any) -> ParamSet:
        """The parameter set of ``kind`` under ``settings`` (``overrides``: e.g. ``solver='fastl2lir'``).

        The :data:`CORE` parameters are always included; any other option only when it differs from its
        default, so that a new option whose default keeps today's numbers leaves every set id (and so every
        computed result) valid. A change of what a default *does* must change :data:`METHOD` instead.
        """
        from bhscore.kinds import kind_of

        ridge = kind_of(kind).ridge_settings(settings)
        section = ridge.model_dump()
        unknown = set(overrides) - set(section)
        if unknown:
            raise ValueError(f"unknown parameter(s) {sorted(unknown)}; valid: {sorted(section)}")
        section.update({k: v for k, v in overrides.items() if v is not None})
        fields = type(ridge).model_fields
        # an option is recorded when its value differs from what earlier versions did (IMPLIED), else its default
        implied = {k: IMPLIED.get(k, f.default) for k, f in fields.items()}
        params = {k: v for k, v in section.items() if k in CORE or v != implied[k]}
        return cls({"kind": kind, **params, "method": METHOD})

    @property
    def kind(self) -> str:
        return self.params["kind"]

    @property
    def id(self) -> str:
        """12 hex digits of the SHA-256 of the canonical JSON of the parameters."""
        return hashlib.sha256(canonical_json(self.params).encode()).hexdigest()[:12]

    def changes_from(self, other: Mapping[str, Any]) -> str:
        """What differs from another set's parameters, e.g. ``"alpha 100 -> 1e+06"`` (other -> self)."""
        keys = sorted(set(self.params) | set(other))
        diffs = [
            f"{k} {_short(other.get(k))} -> {_short(self.params.get(k))}"
            for k in keys
            if other.get(k) != self.params.get(k)
        ]
        return ", ".join(diffs) or "no difference"

    def summary(self) -> str:
        """The parameters a user sets, on one line."""
        return ", ".join(f"{k}={_short(v)}" for k, v in self.params.items() if k not in ("kind", "method"))

    def directory(self, layout) -> Path:
        return layout.param_set_dir(self.kind, self.id)

    def ensure_written(self, layout) -> Path:
        """Write ``params.json`` of this set (once; atomically) and return the set's directory."""
        from bhscore.atomic import atomic_write_text

        d = self.directory(layout)
        path = d / "params.json"
        if not path.exists():
            record = {"param_set": self.id, "params": self.params, "created": now_utc()}
            atomic_write_text(path, json.dumps(record, indent=2, sort_keys=True) + "\n")
        return d


def _short(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:g}"
    if isinstance(value, dict):
        return "{...}"
    return str(value)


def known_param_sets(layout, kind: str) -> dict[str, dict]:
    """The parameter sets of ``kind`` present under ``computed/``: id -> parameters (from params.json)."""
    base = layout.computed_root / f"{kind}_accuracy"
    out = {}
    if base.is_dir():
        for d in sorted(base.iterdir()):
            try:
                out[d.name] = json.loads((d / "params.json").read_text())["params"]
            except (OSError, ValueError, KeyError, TypeError):
                continue
    return out


# -------------------------------------------------------------------------------------------------
# input fingerprints
# -------------------------------------------------------------------------------------------------

_CHUNK = 1 << 22


class DigestCache:
    """SHA-256 digests of files, cached on disk under (path, size, modification time).

    Parameters
    ----------
    path : Path
        The cache file (JSON). Concurrent workers may write it; a lost entry is only recomputed.
    """

    def __init__(self, path: Path):
        self.path = Path(path)
        self._lock = threading.Lock()
        try:
            self._entries: dict[str, str] = json.loads(self.path.read_text())
        except (OSError, ValueError):
            self._entries = {}
        self._dirty = False

    def file(self, path: Path) -> dict:
        """``{"size": bytes, "sha256": hex}`` of one file."""
        st = os.stat(path)
        key = f"{Path(path).resolve()}|{st.st_size}|{st.st_mtime_ns}"
        digest = self._entries.get(key)
        if digest is None:
            h = hashlib.sha256()
            with open(path, "rb") as f:
                while block := f.read(_CHUNK):
                    h.update(block)
            digest = self._put(key, h.hexdigest())
        return {"size": st.st_size, "sha256": digest}

    def files(self, directory: Path, names: Sequence[str]) -> dict:
        """One digest over several files of ``directory`` (their names, sizes and contents, in the given order)."""
        stats = [(n, os.stat(directory / n)) for n in names]
        stamp = hashlib.sha256()
        for n, st in stats:
            stamp.update(f"{n}\0{st.st_size}\0{st.st_mtime_ns}\n".encode())
        key = f"{Path(directory).resolve()}|{stamp.hexdigest()}"
        digest = self._entries.get(key)
        if digest is None:
            h = hashlib.sha256()
            for n, st in stats:
                h.update(f"{n}\0{st.st_size}\n".encode())
                with open(directory / n, "rb") as f:
                    while block := f.read(_CHUNK):
                        h.update(block)
            digest = self._put(key, h.hexdigest())
        return {"n_files": len(names), "size": sum(st.st_size for _, st in stats), "sha256": digest}

    def _put(self, key: str, digest: str) -> str:
        with self._lock:
            self._entries[key] = digest
            self._dirty = True
        return digest

    def save(self) -> None:
        """Write the cache if it learnt something (merging what other workers wrote meanwhile)."""
        from bhscore.atomic import atomic_write_text

        with self._lock:
            if not self._dirty:
                return
            try:
                merged = json.loads(self.path.read_text())
            except (OSError, ValueError):
                merged = {}
            merged.update(self._entries)
            try:
                atomic_write_text(self.path, json.dumps(merged, indent=0, sort_keys=True))
            except OSError as e:  # a read-only data root still computes; digests are only recomputed
                log.warning("could not save the digest cache %s: %s", self.path, e)
            self._dirty = False


class InputFingerprints:
    """Fingerprints of a job's inputs, memoised for one run.

    Parameters
    ----------
    settings : bhscore.settings.Settings
    layout : bhscore.paths.Layout
    """

    def __init__(self, settings, layout):
        self.settings = settings
        self.layout = layout
        self.cache = DigestCache(layout.digest_cache)
        self._memo: dict[tuple, dict] = {}

    def _relative(self, path: Path) -> str:
        try:
            return Path(path).relative_to(self.layout.root).as_posix()
        except ValueError:
            return str(path)

    def fmri(self, subject: str, split: str) -> dict:
        """``{"file": relative path, "size": ..., "sha256": ...}`` of a subject's fMRI file."""
        key = ("fmri", subject, split)
        if key not in self._memo:
            from bhscore.errors import MissingDataError

            path = self.layout.fmri_file(subject, split)
            if not path.is_file():
                raise MissingDataError(path, how="make download-fmri", what="fMRI file")
            self._memo[key] = {"file": self._relative(path), **self.cache.file(path)}
        return self._memo[key]

    def features(self, dnn: str, layer: str, split: str, kind: str = "decoding") -> dict:
        """``{"dir": relative layer folder, "n_files", "size", "sha256"}`` of the feature files ``kind`` reads."""
        key = ("features", dnn, layer, split, kind)
        if key not in self._memo:
            from bhscore.formats import feature_labels

            d = self.layout.input_features(self.settings, kind, split, dnn)[0] / layer
            names = [f"{n}.mat" for n in feature_labels(d.parent, layer)]
            self._memo[key] = {"dir": self._relative(d), **self.cache.files(d, names)}
        return self._memo[key]

    def of_job(self, job) -> dict[str, dict]:
        """The fingerprints of every input of ``job`` (a :class:`bhscore.jobs.Job`)."""
        from bhscore.paths import TEST, TRAINING

        return {
            "fmri_training": self.fmri(job.subject, TRAINING),
            "fmri_test": self.fmri(job.subject, TEST),
            "features_training": self.features(job.dnn, job.layer, TRAINING, job.kind),
            "features_test": self.features(job.dnn, job.layer, TEST, job.kind),
        }

    def save(self) -> None:
        self.cache.save()


_INPUT_NAMES = {
    "fmri_training": "training fMRI file",
    "fmri_test": "test fMRI file",
    "features_training": "training features",
    "features_test": "test features",
}


def input_changes(recorded: Mapping[str, dict], current: Mapping[str, dict]) -> list[str]:
    """Human-readable differences between recorded and current input fingerprints (empty: unchanged)."""
    out = []
    for name, now in current.items():
        then = recorded.get(name)
        if then is None or then.get("sha256") != now.get("sha256"):
            where = now.get("file") or now.get("dir")
            out.append(f"{_INPUT_NAMES.get(name, name)} changed ({where})")
    return out


# -------------------------------------------------------------------------------------------------
# the record of one accuracy file
# -------------------------------------------------------------------------------------------------


def job_identity(job, dnn_dir: str) -> dict[str, str]:
    return {"kind": job.kind, "dnn": job.dnn, "dnn_dir": dnn_dir, "layer": job.layer,
            "subject": job.subject, "roi": job.roi}  # fmt: skip


def make_record(
    job,
    dnn_dir: str,
    param_set: ParamSet,
    inputs: Mapping[str, dict],
    n_inputs: int,
    n_outputs: int,
    n_train_samples: int,
    n_test_images: int,
    run: Mapping[str, Any] | None = None,
    non_finite: Mapping[str, Any] | None = None,
) -> dict:
    """The provenance record of one computed accuracy file (see the module docstring)."""
    record = {
        "bhscore_provenance": RECORD_VERSION,
        "job": job_identity(job, dnn_dir),
        "param_set": param_set.id,
        "params": param_set.params,
        "inputs": dict(inputs),
        "n_inputs": int(n_inputs),
        "n_outputs": int(n_outputs),
        "n_train_samples": int(n_train_samples),
        "n_test_images": int(n_test_images),
        "run": {"host": socket.gethostname(), **(run or {})},
        "packages": package_versions(),
        "created": now_utc(),
    }
    if non_finite:
        record["non_finite"] = dict(non_finite)
    return record


def encode_record(record: Mapping[str, Any]):
    """The record as the uint8 array stored in the MAT file, shape (1, n_bytes)."""
    import numpy as np

    data = canonical_json(record).encode()
    return np.frombuffer(data, dtype=np.uint8).reshape(1, -1).copy()


def decode_record(array) -> dict:
    """Inverse of :func:`encode_record`; raises ValueError on anything that is not a record."""
    import numpy as np

    record = json.loads(np.asarray(array, dtype=np.uint8).tobytes().decode())
    if not isinstance(record, dict) or "bhscore_provenance" not in record:
        raise ValueError("not a bhscore provenance record")
    return record
