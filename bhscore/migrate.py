"""Move results of the pre-provenance layout (bhscore 0.1) into the published / computed trees.

bhscore 0.1 kept downloaded and computed accuracies in the same folders at the data root
(``decoding_accuracy/``, ``encoding_accuracy/``, ``decoded_features/``, ``<kind>_models/``). Each file is
classified and moved, never copied over anything:

- a file listed in the download manifest of its archive (``downloads/<kind>_accuracy.manifest.tsv.gz``) with
  the same size, or, when there is no manifest, an accuracy file without the ``n_samples`` variable that
  bhscore always wrote, is **published**: it goes to ``published/<same path>`` (and the manifest is updated,
  so the download stays complete);
- everything else was **computed by an earlier version**, whose parameters were not recorded. It goes to
  ``computed/<kind>_accuracy/unverified-<date>/`` (a parameter set that no setting matches: kept, never
  used), or, with ``adopt``, into the current settings' parameter set with a provenance record that says it
  was adopted (the user vouches for the parameters; the inputs are fingerprinted now, if present).

A destination that exists is never overwritten: the file stays where it is and is reported.
"""

from __future__ import annotations

import gzip
import json
import logging
import os
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path, PurePosixPath

from bhscore.paths import KINDS, TEST, Layout

log = logging.getLogger(__name__)


@dataclass
class MigrationReport:
    """What :func:`migrate` did (or would do, with ``dry_run``)."""

    published: list[tuple[Path, Path]] = field(default_factory=list)
    computed: list[tuple[Path, Path]] = field(default_factory=list)
    kept: list[tuple[Path, str]] = field(default_factory=list)

    def summary(self) -> str:
        lines = [f"{len(self.published)} published file(s) -> published/",
                 f"{len(self.computed)} computed file(s) -> computed/"]  # fmt: skip
        if self.computed:
            lines.append(f"  e.g. {self.computed[0][1]}")
        if self.kept:
            lines.append(f"{len(self.kept)} file(s) left in place, e.g. {self.kept[0][0]}: {self.kept[0][1]}")
        return "\n".join(lines)


def _manifest(root: Path, name: str) -> dict[str, int] | None:
    from bhscore.download import STATE_DIR

    path = root / STATE_DIR / f"{name}.manifest.tsv.gz"
    try:
        with gzip.open(path, "rt") as f:
            return {rel: int(size) for rel, size in (line.rstrip("\n").rsplit("\t", 1) for line in f if line.strip())}
    except (OSError, EOFError, ValueError):
        return None


def _rewrite_manifest(root: Path, name: str, prefix: str) -> None:
    """Prefix every path of an archive's manifest (and its marker's anchor) after its files moved."""
    from bhscore.atomic import atomic_path
    from bhscore.download import STATE_DIR

    rows = _manifest(root, name)
    if rows is None:
        return
    with atomic_path(root / STATE_DIR / f"{name}.manifest.tsv.gz") as tmp, gzip.open(tmp, "wt") as f:
        for rel, size in rows.items():
            f.write(f"{rel if rel.startswith(prefix + '/') else f'{prefix}/{rel}'}\t{size}\n")
    marker = root / STATE_DIR / f"{name}.done.json"
    try:
        data = json.loads(marker.read_text())
    except (OSError, ValueError):
        return
    if isinstance(data, dict) and data.get("anchor") and not data["anchor"].startswith(prefix + "/"):
        from bhscore.atomic import atomic_write_text

        data["anchor"] = f"{prefix}/{data['anchor']}"
        atomic_write_text(marker, json.dumps(data, indent=1))


def _has_n_samples(path: Path) -> bool:
    import h5py

    try:
        with h5py.File(path, "r") as f:
            return "n_samples" in f
    except OSError:
        return False


def _move(src: Path, dst: Path, report: MigrationReport, dry_run: bool) -> bool:
    if dst.exists():
        report.kept.append((src, f"{dst} exists"))
        return False
    if not dry_run:
        dst.parent.mkdir(parents=True, exist_ok=True)
        os.replace(src, dst)
    return True


def _adopt_record(settings, layout: Layout, kind: str, rel: PurePosixPath, param_set, fingerprints) -> dict | None:
    """A provenance record for an adopted accuracy file at ``<kind>_accuracy/ImageNetTest/<dir>/<layer>/<subject>/<roi>``."""
    from bhscore.jobs import Job
    from bhscore.provenance import RECORD_VERSION, job_identity, now_utc, package_versions

    parts = rel.parts  # ImageNetTest, <dir...>, layer, subject, roi, accuracy.mat
    if len(parts) < 6 or parts[0] != TEST or parts[-1] != "accuracy.mat":
        return None
    dnn_dir, (layer, subject, roi) = "/".join(parts[1:-4]), parts[-4:-1]
    dnn = next((n for n, d in settings.dnns.items() if d.dir == dnn_dir), None)
    if dnn is None:
        return None
    job = Job(kind, dnn, layer, subject, roi)
    try:
        inputs = fingerprints.of_job(job)
    except Exception:  # inputs not here: nothing to record
        inputs = {}
    return {
        "bhscore_provenance": RECORD_VERSION,
        "job": job_identity(job, dnn_dir),
        "param_set": param_set.id,
        "params": param_set.params,
        "inputs": inputs,
        "adopted": "computed by bhscore 0.1 before provenance records; parameters assumed to be the current "
        "settings' (bhscore migrate --adopt)",
        "packages": package_versions(),
        "created": now_utc(),
    }


def migrate(settings, adopt: bool = False, dry_run: bool = False) -> MigrationReport:
    """Move the pre-0.2 result folders of ``settings``' data root (see the module docstring).

    Parameters
    ----------
    settings : bhscore.settings.Settings
    adopt : bool
        Computed files join the current parameter set (with an "adopted" provenance record) instead of an
        ``unverified-<date>`` set.
    dry_run : bool
        Only report what would move.
    """
    from bhscore.provenance import InputFingerprints

    layout = Layout.from_settings(settings)
    run = _Migration(settings, layout, MigrationReport(), adopt, dry_run,
                     f"unverified-{datetime.now(UTC):%Y%m%d}", InputFingerprints(settings, layout))  # fmt: skip
    for kind in KINDS:
        if (layout.root / f"{kind}_accuracy").is_dir():
            run.accuracy_tree(kind)
    _migrate_optional_outputs(layout, run.report, run.unverified, adopt, settings, dry_run)
    if not dry_run:
        run.fingerprints.save()
        for d in layout.legacy_trees():
            _remove_empty_dirs(d)
    return run.report


@dataclass
class _Migration:
    """One ``bhscore migrate`` run: what it moves where, and what it has done so far."""

    settings: object
    layout: Layout
    report: MigrationReport
    adopt: bool
    dry_run: bool
    unverified: str
    fingerprints: object

    def accuracy_tree(self, kind: str) -> None:
        """``<root>/<kind>_accuracy``: published files to published/, computed ones to a parameter set."""
        from bhscore.download import PUBLISHED_DIR
        from bhscore.provenance import ParamSet

        root = self.layout.root
        old = root / f"{kind}_accuracy"
        manifest = _manifest(root, f"{kind}_accuracy")
        param_set = ParamSet.from_settings(self.settings, kind)
        set_id = param_set.id if self.adopt else self.unverified
        moved_published = False
        for src in sorted(p for p in old.rglob("*") if p.is_file()):
            rel = src.relative_to(root).as_posix()
            if manifest is not None:
                published = manifest.get(rel) == src.stat().st_size
            else:
                published = src.name == "accuracy.mat" and not _has_n_samples(src)
            if not published:
                self._computed_file(kind, src, old, param_set, set_id)
            elif _move(src, self.layout.published_root / rel, self.report, self.dry_run):
                self.report.published.append((src, self.layout.published_root / rel))
                moved_published = True
        if not self.dry_run:
            if moved_published:
                _rewrite_manifest(root, f"{kind}_accuracy", PUBLISHED_DIR)
            if self.report.computed:
                self._write_params(kind, param_set, set_id)

    def _computed_file(self, kind: str, src: Path, old: Path, param_set, set_id: str) -> None:
        """A computed file into ``computed/<kind>_accuracy/<set_id>/`` (with a record when adopting)."""
        from bhscore import formats

        inner = PurePosixPath(src.relative_to(old).as_posix())
        dst = self.layout.param_set_dir(kind, set_id).joinpath(*inner.parts)
        record = None
        if self.adopt:
            record = _adopt_record(self.settings, self.layout, kind, inner, param_set, self.fingerprints)
        if dst.exists():
            self.report.kept.append((src, f"{dst} exists"))
            return
        self.report.computed.append((src, dst))
        if self.dry_run:
            return
        if record is not None:  # rewrite with the record, then remove the original
            content = formats.read_accuracy_file(src)
            record["n_outputs"] = int(content.accuracy.size)
            formats.write_accuracy(dst, content.accuracy, content.n_samples, provenance=record)
            src.unlink()
        else:
            _move(src, dst, self.report, self.dry_run)

    def _write_params(self, kind: str, param_set, set_id: str) -> None:
        """The parameter set's ``params.json`` (adopted: the settings' own; else a note without params)."""
        from bhscore.atomic import atomic_write_text

        params_json = self.layout.param_set_dir(kind, set_id) / "params.json"
        if self.adopt:
            param_set.ensure_written(self.layout)
        elif not params_json.exists():
            atomic_write_text(params_json, json.dumps({
                "param_set": self.unverified, "params": None,
                "note": "results of bhscore 0.1, moved by `bhscore migrate`; their parameters were not "
                "recorded, so no setting matches them (rerun `bhscore migrate --adopt` to vouch for them)",
            }, indent=2) + "\n")  # fmt: skip


def _migrate_optional_outputs(layout, report, unverified, adopt, settings, dry_run) -> None:
    """decoded_features/ and <kind>_models/ (never published): into the computed tree."""
    from bhscore.provenance import ParamSet

    moves = [(layout.root / "decoded_features", layout.computed_root / "decoded_features", "decoding")]
    moves += [(layout.root / f"{k}_models", layout.computed_root / f"{k}_models", k) for k in KINDS]
    for old, new_base, kind in moves:
        if not old.is_dir():
            continue
        set_id = ParamSet.from_settings(settings, kind).id if adopt else unverified
        for src in sorted(p for p in old.rglob("*") if p.is_file()):
            dst = new_base / set_id / src.relative_to(old)
            if _move(src, dst, report, dry_run):
                report.computed.append((src, dst))


def _remove_empty_dirs(top: Path) -> None:
    for d in sorted((p for p in top.rglob("*") if p.is_dir()), key=lambda p: len(p.parts), reverse=True):
        try:
            d.rmdir()
        except OSError:
            pass
    try:
        top.rmdir()
    except OSError:
        log.warning("%s still holds files that were not moved (see the report)", top)

