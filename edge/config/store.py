"""The board's config directory: immutable versions, an active and a last-known-good pointer.

Layout of a board's config directory (e.g. ``/etc/wolfpack``)::

    versions/000007/config.yaml      the config, exactly as flashed (and signed)
    versions/000007/config.yaml.sig  its detached signature, when it has one
    versions/000007/version.json     version stamp: number, sha256, author, time, source
    active     -> versions/000007    what the node runs
    last_good  -> versions/000006    what a rollback returns to
    trusted_keys/*.pub               when any key is here, only signed configs are accepted
    history.jsonl                    one line per flash and rollback

Why this shape: a version directory is written under a temporary name, fsynced and renamed
into place, so it is complete or absent; the pointers are symlinks replaced by rename, so
each is old or new. Whatever instant the power goes, ``active`` names one complete config.
This module uses the standard library only, so the power-cut test can exercise it quickly.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import re
import shutil
import time
from dataclasses import asdict, dataclass
from pathlib import Path

CONFIG_NAME = "config.yaml"
SIGNATURE_NAME = "config.yaml.sig"
STAMP_NAME = "version.json"
KEEP_VERSIONS = 5
_VERSION_DIR = re.compile(r"^\d{6}$")


class StoreError(Exception):
    """The config directory cannot do what was asked; the message says what and where."""


@dataclass(frozen=True)
class VersionStamp:
    version: int
    sha256: str
    author: str
    time: str  # UTC, ISO 8601
    source: str
    signed_by: str | None = None


@dataclass(frozen=True)
class StoredConfig:
    stamp: VersionStamp
    path: Path  # the version directory
    content: bytes

    @property
    def config_path(self) -> Path:
        return self.path / CONFIG_NAME


class ConfigStore:
    """A board's config directory; safe against a crash or power cut at any instant."""

    def __init__(self, root: Path) -> None:
        self.root = Path(root)
        self.versions = self.root / "versions"
        self.trusted_keys_dir = self.root / "trusted_keys"
        self.history_path = self.root / "history.jsonl"

    # ---- reading -------------------------------------------------------------------------

    def active(self) -> StoredConfig | None:
        return self._read_pointer("active")

    def last_good(self) -> StoredConfig | None:
        return self._read_pointer("last_good")

    def version(self, number: int) -> StoredConfig:
        path = self.versions / f"{number:06d}"
        if not path.is_dir():
            known = ", ".join(str(n) for n in self._version_numbers()) or "none"
            raise StoreError(f"{self.root}: no version {number} (kept versions: {known})")
        return self._read_version(path)

    def history(self) -> list[dict[str, object]]:
        """Every complete history line; a line torn by a power cut is skipped."""
        try:
            lines = self.history_path.read_text(encoding="utf-8").splitlines()
        except FileNotFoundError:
            return []
        entries = []
        for line in lines:
            with contextlib.suppress(json.JSONDecodeError):
                entries.append(json.loads(line))
        return entries

    # ---- writing -------------------------------------------------------------------------

    def install(
        self, content: bytes, signature: str | None, author: str, source: str, signed_by: str | None
    ) -> VersionStamp:
        """Store a new version and make it active; the previous active becomes last_good."""
        self.versions.mkdir(parents=True, exist_ok=True)
        self._remove_torn_writes()
        number = max(self._version_numbers(), default=0) + 1
        stamp = VersionStamp(
            version=number,
            sha256=hashlib.sha256(content).hexdigest(),
            author=author,
            time=time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            source=source,
            signed_by=signed_by,
        )
        tmp = self.versions / f".tmp-{os.getpid()}-{number:06d}"
        tmp.mkdir()
        _write_synced(tmp / CONFIG_NAME, content)
        if signature is not None:
            _write_synced(tmp / SIGNATURE_NAME, signature.encode("utf-8"))
        _write_synced(tmp / STAMP_NAME, json.dumps(asdict(stamp), indent=2).encode("utf-8"))
        _fsync_dir(tmp)
        final = self.versions / f"{number:06d}"
        os.rename(tmp, final)
        _fsync_dir(self.versions)
        previous = self._pointer_target("active")
        if previous is not None:
            self._set_pointer("last_good", previous)
        self._set_pointer("active", final.name)
        self._append_history({"event": "flash", **asdict(stamp)})
        self._prune()
        return stamp

    def rollback(self, to_version: int | None = None, reason: str = "manual") -> VersionStamp:
        """Make ``last_good`` (or a named kept version) active again."""
        if to_version is None:
            target = self.last_good()
            if target is None:
                raise StoreError(f"{self.root}: nothing to roll back to (no last_good version)")
        else:
            target = self.version(to_version)
        current = self.active()
        if current is not None and current.stamp.version == target.stamp.version:
            raise StoreError(f"{self.root}: version {target.stamp.version} is already active")
        self._set_pointer("active", target.path.name)
        self._append_history(
            {
                "event": "rollback",
                "version": target.stamp.version,
                "from_version": current.stamp.version if current else None,
                "reason": reason,
                "time": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            }
        )
        return target.stamp

    # ---- internals -----------------------------------------------------------------------

    def _version_numbers(self) -> list[int]:
        if not self.versions.is_dir():
            return []
        return sorted(int(p.name) for p in self.versions.iterdir() if _VERSION_DIR.match(p.name))

    def _pointer_target(self, name: str) -> str | None:
        try:
            target = os.readlink(self.root / name)
        except FileNotFoundError:
            return None
        return Path(target).name

    def _read_pointer(self, name: str) -> StoredConfig | None:
        target = self._pointer_target(name)
        if target is None:
            return None
        return self._read_version(self.versions / target)

    def _read_version(self, path: Path) -> StoredConfig:
        try:
            raw = json.loads((path / STAMP_NAME).read_text(encoding="utf-8"))
            stamp = VersionStamp(**raw)
            content = (path / CONFIG_NAME).read_bytes()
        except (OSError, ValueError, TypeError) as exc:
            raise StoreError(f"{path}: damaged version directory ({exc})") from None
        if hashlib.sha256(content).hexdigest() != stamp.sha256:
            raise StoreError(f"{path}: {CONFIG_NAME} does not match its stamped sha256")
        return StoredConfig(stamp=stamp, path=path, content=content)

    def _set_pointer(self, name: str, version_dir: str) -> None:
        tmp = self.root / f".{name}.tmp-{os.getpid()}"
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()
        os.symlink(f"versions/{version_dir}", tmp)
        os.replace(tmp, self.root / name)
        _fsync_dir(self.root)

    def _append_history(self, entry: dict[str, object]) -> None:
        with open(self.history_path, "a", encoding="utf-8") as out:
            out.write(json.dumps(entry) + "\n")
            out.flush()
            os.fsync(out.fileno())

    def _remove_torn_writes(self) -> None:
        for path in self.versions.glob(".tmp-*"):
            shutil.rmtree(path, ignore_errors=True)
        for path in self.root.glob(".*.tmp-*"):
            with contextlib.suppress(FileNotFoundError):
                path.unlink()

    def _prune(self) -> None:
        keep = {self._pointer_target("active"), self._pointer_target("last_good")}
        numbers = self._version_numbers()
        for number in numbers[:-KEEP_VERSIONS]:
            name = f"{number:06d}"
            if name not in keep:
                shutil.rmtree(self.versions / name, ignore_errors=True)


def _write_synced(path: Path, data: bytes) -> None:
    with open(path, "wb") as out:
        out.write(data)
        out.flush()
        os.fsync(out.fileno())


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
