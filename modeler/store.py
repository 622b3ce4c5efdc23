"""Saved model versions on disk: layout, atomic save, the current-version pointer, verified load.

Error messages name versions, never paths (a server may show them to its clients); the path
concerned is each error's ``path`` attribute.

Layout under the model directory::

    CURRENT                      the current version id (replaced atomically)
    .train.lock                  file lock held by whoever writes (train, activate, clean-up)
    versions/<id>/model.joblib   the fitted estimator
    versions/<id>/tree.json      the same tree as plain arrays (modeler.compiled_tree), for serving
    versions/<id>/ensemble.bin   or a tree ensemble's arrays (modeler.compiled_ensemble)
    versions/<id>/metadata.json  what DESIGN.md lists, including both files' sha256

A version directory is built under a temporary name and renamed into place only when all files
are complete and flushed, so a listed version is always whole.

joblib and scikit-learn are imported only to save or unpickle an estimator: a server that answers
from ``tree.json`` never loads them (a faster start, a smaller process).
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import re
import shutil
import sys
import tempfile
import warnings
from importlib.metadata import version as installed_version
from pathlib import Path

import filelock

from modeler.atomic import TEMP_PREFIX, atomic_write_text, fsync_dir, fsync_file
from modeler.errors import (
    IncompatibleModelError,
    ModelIntegrityError,
    ReadOnlyModelDir,
    VersionNotFound,
)

POINTER_FILE = "CURRENT"
LOCK_FILE = ".train.lock"
VERSIONS_DIR = "versions"
ARTIFACT_FILE = "model.joblib"
METADATA_FILE = "metadata.json"
COMPILED_FILE = "tree.json"
VERSION_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")


def sha256_bytes(data: bytes) -> str:
    """Hex sha256 of ``data``."""
    return hashlib.sha256(data).hexdigest()


def sklearn_version() -> str:
    """The running scikit-learn version, without importing scikit-learn when it is not loaded."""
    module = sys.modules.get("sklearn")
    return module.__version__ if module is not None else installed_version("scikit-learn")


def _reason(exc: OSError) -> str:
    """What went wrong, without the file name an OSError's str() carries (errors name their path
    in ``path``, for the log, not in the message a client may see)."""
    return exc.strerror or type(exc).__name__


def _file_entry(name: str, data: bytes) -> dict:
    return {"file": name, "sha256": sha256_bytes(data), "bytes": len(data)}


class ModelStore:
    """Reads and writes model versions under one directory."""

    def __init__(self, root: str | os.PathLike) -> None:
        self.root = Path(root)
        self.versions_dir = self.root / VERSIONS_DIR
        self.pointer_path = self.root / POINTER_FILE
        self.lock_path = self.root / LOCK_FILE

    # -- the pointer -------------------------------------------------------------------------

    def pointer_stamp(self) -> tuple[int, int, int] | None:
        """A cheap fingerprint of the pointer file (one ``stat``); None when there is none."""
        try:
            st = os.stat(self.pointer_path)
        except FileNotFoundError:
            return None
        return (st.st_ino, st.st_mtime_ns, st.st_size)

    def current_version(self) -> str | None:
        """The version id the pointer names, or None when nothing was saved yet."""
        try:
            version = self.pointer_path.read_text(encoding="utf-8").strip()
        except FileNotFoundError:
            return None
        return version or None

    def activate(self, version: str) -> None:
        """Make ``version`` current. Callers hold :meth:`lock`."""
        self._check_exists(version)
        atomic_write_text(self.pointer_path, version + "\n")

    # -- versions ----------------------------------------------------------------------------

    def version_dir(self, version: str) -> Path:
        """Directory of one version (validated against path tricks)."""
        if not isinstance(version, str) or not VERSION_PATTERN.match(version):
            raise VersionNotFound(f"not a valid version id: {version!r}")
        return self.versions_dir / version

    def _check_exists(self, version: str) -> Path:
        path = self.version_dir(version)
        if not (path / METADATA_FILE).is_file():
            raise VersionNotFound(f"no saved version {version!r}", path=self.root)
        return path

    def list_versions(self) -> list[dict]:
        """Metadata of every complete version, oldest first."""
        if not self.versions_dir.is_dir():
            return []
        found = []
        for path in self.versions_dir.iterdir():
            if path.name.startswith(".") or not (path / METADATA_FILE).is_file():
                continue
            try:
                found.append(json.loads((path / METADATA_FILE).read_text(encoding="utf-8")))
            except (OSError, ValueError):
                continue
        return sorted(found, key=lambda m: (m.get("trained_at", ""), m.get("version", "")))

    def read_metadata(self, version: str) -> dict:
        """The metadata of one version."""
        path = self._check_exists(version) / METADATA_FILE
        try:
            return json.loads(path.read_text(encoding="utf-8"))
        except ValueError as exc:
            raise ModelIntegrityError(f"metadata of version {version!r} is not valid JSON") from exc

    def save(
        self, estimator: object, metadata: dict, compiled: bytes | None = None, compiled_file: str = COMPILED_FILE
    ) -> dict:
        """Write a new version and return its metadata (with the files' hashes). Hold :meth:`lock`.

        ``compiled`` is the predictor's own saved form (the tree's arrays as ``tree.json``, an
        ensemble's as ``ensemble.bin``), saved beside the pickle as ``compiled_file``.
        """
        import joblib

        version = metadata["version"]
        final = self.version_dir(version)
        self.versions_dir.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=TEMP_PREFIX, dir=self.versions_dir))
        try:
            artifact = tmp / ARTIFACT_FILE
            joblib.dump(estimator, artifact)
            fsync_file(artifact)
            data = artifact.read_bytes()
            metadata = {**metadata, "artifact": _file_entry(ARTIFACT_FILE, data)}
            if compiled is not None:
                (tmp / compiled_file).write_bytes(compiled)
                fsync_file(tmp / compiled_file)
                metadata["compiled"] = _file_entry(compiled_file, compiled)
            meta_path = tmp / METADATA_FILE
            meta_path.write_text(json.dumps(metadata, indent=2, sort_keys=True), encoding="utf-8")
            fsync_file(meta_path)
            os.chmod(tmp, 0o755)  # mkdtemp makes it private; other users may serve from it
            fsync_dir(tmp)
            os.rename(tmp, final)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
        fsync_dir(self.versions_dir)
        return metadata

    def delete(self, version: str) -> None:
        """Remove a saved version that is not current. Hold :meth:`lock`.

        The directory is first renamed to a temporary name, so a kill midway leaves a stray temp
        (cleaned at the next start) and never a half-deleted version that would still be listed.
        """
        path = self._check_exists(version)
        if version == self.current_version():
            raise ValueError(f"version {version!r} is current: activate another one before deleting it")
        doomed = self.versions_dir / f"{TEMP_PREFIX}deleted-{version}"
        os.rename(path, doomed)
        fsync_dir(self.versions_dir)
        shutil.rmtree(doomed, ignore_errors=True)

    def _read_verified(self, version: str, entry: dict, what: str) -> bytes:
        path = self.version_dir(version) / entry.get("file", "")
        try:
            data = path.read_bytes()
        except OSError as exc:
            raise ModelIntegrityError(
                f"cannot read the {what} of version {version!r}: {_reason(exc)}", path=path
            ) from exc
        expected = entry.get("sha256")
        actual = sha256_bytes(data)
        if actual != expected:
            raise ModelIntegrityError(
                f"{what} of version {version!r} has sha256 {actual[:12]}…, "
                f"but its metadata says {str(expected)[:12]}…: refusing to load it"
            )
        return data

    def _verified_artifact(self, version: str) -> tuple[bytes, dict]:
        """The artifact's bytes and the metadata, once the sha256 and scikit-learn version match."""
        metadata = self.read_metadata(version)
        data = self._read_verified(version, {"file": ARTIFACT_FILE, **metadata.get("artifact", {})}, "artifact")
        saved_with = metadata.get("environment", {}).get("sklearn")
        running = sklearn_version()
        if saved_with != running:
            raise IncompatibleModelError(
                f"version {version!r} was saved with scikit-learn {saved_with}, this process runs {running}: retrain it"
            )
        return data, metadata

    def load(self, version: str) -> tuple[object, dict]:
        """Load one version after checking its sha256 and scikit-learn version."""
        import joblib
        from sklearn.exceptions import InconsistentVersionWarning

        data, metadata = self._verified_artifact(version)
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("error", InconsistentVersionWarning)
                # Loads the bytes that were hashed, so the file cannot change in between.
                estimator = joblib.load(io.BytesIO(data))
        except InconsistentVersionWarning as exc:
            raise IncompatibleModelError(f"version {version!r}: {exc}") from exc
        except Exception as exc:  # an unpicklable file is corrupt, whatever the exception
            raise ModelIntegrityError(f"cannot unpickle version {version!r}: {exc}") from exc
        return estimator, metadata

    def load_compiled(self, version: str) -> tuple[bytes, dict] | None:
        """The saved ``tree.json`` and the metadata, verified as :meth:`load` verifies the artifact
        (whose hash is checked too, so a damaged version fails the same way); None for a version
        saved without one. Unpickles nothing and imports neither joblib nor scikit-learn."""
        _, metadata = self._verified_artifact(version)
        entry = metadata.get("compiled")
        if not entry:
            return None
        return self._read_verified(version, entry, "compiled tree"), metadata

    # -- writers' lock and clean-up ----------------------------------------------------------

    def writable(self) -> bool:
        """Whether this process may write in the model directory (False on a read-only mount or
        for a user without write permission). A missing directory counts as writable if it can be
        made."""
        path = self.root
        while not path.exists() and path.parent != path:
            path = path.parent
        return os.access(path, os.W_OK)

    def lock(self, timeout: float) -> filelock.BaseFileLock:
        """The inter-process lock every writer holds; raises ReadOnlyModelDir when writing here
        is not possible."""
        if not self.writable():
            raise ReadOnlyModelDir("the model directory is read-only: cannot train or save here", path=self.root)
        try:
            self.root.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise ReadOnlyModelDir(f"cannot create the model directory: {_reason(exc)}", path=self.root) from exc
        return filelock.FileLock(self.lock_path, timeout=timeout)

    def remove_stray_temp(self) -> list[Path]:
        """Delete leftovers of writers that were killed mid-write. Hold :meth:`lock`."""
        removed = []
        for parent in (self.root, self.versions_dir):
            if not parent.is_dir():
                continue
            for path in parent.glob(TEMP_PREFIX + "*"):
                if path.is_dir():
                    shutil.rmtree(path, ignore_errors=True)
                else:
                    path.unlink(missing_ok=True)
                removed.append(path)
        return removed
