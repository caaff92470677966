"""The board's config directory: immutable versions, an active and a last-known-good pointer.

Layout of a board's config directory (e.g. ``/etc/wolfpack``)::

    versions/000007/config.yaml      the config, exactly as flashed (and signed)
    versions/000007/config.yaml.sig  its detached signature, when it has one
    versions/000007/version.json     version stamp: number, sha256, author, time, source
    active     -> versions/000007    what the node runs
    last_good  -> versions/000006    what a rollback returns to
    trusted_keys/*.pub               when any key is here, only signed configs are accepted
    history.jsonl                    one line per flash and rollback
    signed_version.json              the highest signed version ever accepted (anti-replay)
    .lock                            flock()ed by every writer, so concurrent flashes queue

Why this shape: a version directory is written under a temporary name, fsynced and renamed
into place, so it is complete or absent; the pointers are symlinks replaced by rename, so
each is old or new. Whatever instant the power goes, ``active`` names one complete config.
Writers (install, rollback) hold an exclusive ``flock`` on ``.lock``, so two flashes at once
cannot number the same version or sweep away each other's half-written directory. Every
filesystem error (a symlink loop, a permission, a damaged file) becomes a StoreError that
says where. This module uses the standard library only, so the power-cut test can exercise it
quickly.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
import re
import shutil
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from pathlib import Path

CONFIG_NAME = "config.yaml"
SIGNATURE_NAME = "config.yaml.sig"
STAMP_NAME = "version.json"
HIGH_WATER_NAME = "signed_version.json"
LOCK_NAME = ".lock"
LOCK_TIMEOUT_S = 60.0
KEEP_VERSIONS = 5
DIR_MODE = 0o750  # configs may hold broker credentials: not world-readable, never writable
FILE_MODE = 0o640
_VERSION_DIR = re.compile(r"^\d{6}$")


class StoreError(Exception):
    """The config directory cannot do what was asked; the message says what and where."""


class VersionRefused(StoreError):
    """A signed version not newer than one this board already accepted (replay, downgrade)."""


@dataclass(frozen=True)
class VersionStamp:
    version: int
    sha256: str
    author: str
    time: str  # UTC, ISO 8601
    source: str
    signed_by: str | None = None
    node: str | None = None  # the config's node.id (older stamps: None)
    signed_version: int | None = None  # the version its signature vouches for


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
            lines = self.history_path.read_text(encoding="utf-8", errors="replace").splitlines()
        except FileNotFoundError:
            return []
        except OSError as exc:
            raise _error(self.history_path, exc) from None
        entries = []
        for line in lines:
            with contextlib.suppress(ValueError, RecursionError):
                entry = json.loads(line)
                if isinstance(entry, dict):
                    entries.append(entry)
        return entries

    def highest_signed_version(self) -> int:
        """The highest signed version this board ever accepted (0 when none).

        The larger of the high-water file and every kept stamp, so a power cut between the
        install and the high-water write cannot lower it.
        """
        best = 0
        try:
            raw = json.loads((self.root / HIGH_WATER_NAME).read_text(encoding="utf-8"))
            value = raw.get("version") if isinstance(raw, dict) else None
            if isinstance(value, int) and not isinstance(value, bool):
                best = value
        except FileNotFoundError:
            pass
        except (OSError, ValueError) as exc:
            raise StoreError(
                f"{self.root / HIGH_WATER_NAME}: cannot read the highest accepted signed "
                f"version ({getattr(exc, 'strerror', None) or exc}); refusing signed configs"
            ) from None
        for number in self._version_numbers():
            with contextlib.suppress(StoreError):
                stamp = self._read_version(self.versions / f"{number:06d}").stamp
                best = max(best, stamp.signed_version or 0)
        return best

    @contextlib.contextmanager
    def lock(self, timeout_s: float = LOCK_TIMEOUT_S) -> Iterator[None]:
        """Hold the store's exclusive writer lock (creating the store's directory if needed)."""
        self._make_dirs()
        path = self.root / LOCK_NAME
        try:
            fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
        except OSError as exc:
            raise _error(path, exc) from None
        try:
            end = time.monotonic() + timeout_s
            while True:
                try:
                    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                    break
                except BlockingIOError:
                    if time.monotonic() >= end:
                        raise StoreError(
                            f"{path}: another flash or rollback has held the store for "
                            f"{timeout_s:g} s; try again"
                        ) from None
                    time.sleep(0.02)
            yield
        finally:
            os.close(fd)  # releases the lock

    # ---- writing -------------------------------------------------------------------------

    def install(
        self,
        content: bytes,
        signature: str | None,
        author: str,
        source: str,
        signed_by: str | None,
        node: str | None = None,
        signed_version: int | None = None,
    ) -> VersionStamp:
        """Store a new version and make it active; the previous active becomes last_good.

        A ``signed_version`` not above :meth:`highest_signed_version` raises VersionRefused
        (checked under the lock, so two flashes of one signed file cannot both pass).
        """
        try:
            with self.lock():
                return self._install(
                    content, signature, author, source, signed_by, node, signed_version
                )
        except OSError as exc:
            raise _error(Path(exc.filename or self.root), exc) from None

    def _install(
        self,
        content: bytes,
        signature: str | None,
        author: str,
        source: str,
        signed_by: str | None,
        node: str | None,
        signed_version: int | None,
    ) -> VersionStamp:
        if signed_version is not None:
            highest = self.highest_signed_version()
            if signed_version <= highest:
                raise VersionRefused(
                    f"{source}: signed version {signed_version} is not newer than version "
                    f"{highest}, the highest this board has accepted: a replay or a downgrade "
                    "is refused (to go back, 'wolfpack config rollback' on the board, or sign "
                    "it again with a higher --version)"
                )
        self._remove_torn_writes()
        number = max(self._version_numbers(), default=0) + 1
        stamp = VersionStamp(
            version=number,
            sha256=hashlib.sha256(content).hexdigest(),
            author=author,
            time=time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            source=source,
            signed_by=signed_by,
            node=node,
            signed_version=signed_version,
        )
        tmp = self.versions / f".tmp-{os.getpid()}-{number:06d}"
        tmp.mkdir(mode=DIR_MODE)
        os.chmod(tmp, DIR_MODE)
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
        if signed_version is not None:
            self._write_high_water(signed_version)
        self._append_history({"event": "flash", **asdict(stamp)})
        self._prune()
        return stamp

    def rollback(self, to_version: int | None = None, reason: str = "manual") -> VersionStamp:
        """Make ``last_good`` (or a named kept version) active again.

        A rollback is local and always allowed: it does not lower the highest accepted signed
        version, so the version rolled away from cannot be replayed from outside afterwards.
        """
        try:
            with self.lock():
                return self._rollback(to_version, reason)
        except OSError as exc:
            raise _error(Path(exc.filename or self.root), exc) from None

    def _rollback(self, to_version: int | None, reason: str) -> VersionStamp:
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
        try:
            names = [p.name for p in self.versions.iterdir()]
        except FileNotFoundError:
            return []
        except OSError as exc:
            raise _error(self.versions, exc) from None
        return sorted(int(n) for n in names if _VERSION_DIR.match(n))

    def _pointer_target(self, name: str) -> str | None:
        path = self.root / name
        try:
            target = os.readlink(path)
        except FileNotFoundError:
            return None
        except OSError as exc:
            if exc.errno == 22:  # EINVAL: there, but not a symlink
                raise StoreError(
                    f"{path}: not a symlink to a version; the store is damaged"
                ) from None
            raise _error(path, exc) from None
        name_only = Path(target).name
        if not _VERSION_DIR.match(name_only):
            raise StoreError(f"{path}: points at {target!r}, which is not a version directory")
        return name_only

    def _make_dirs(self) -> None:
        """The store's directories, created 0750 whatever the umask (existing ones kept)."""
        for path in (self.root, self.versions):
            try:
                path.mkdir(mode=DIR_MODE)
                os.chmod(path, DIR_MODE)
            except FileExistsError:
                if not path.is_dir():
                    raise StoreError(f"{path}: exists but is not a directory") from None
            except FileNotFoundError:  # missing parents: create them too
                path.mkdir(mode=DIR_MODE, parents=True, exist_ok=True)
                os.chmod(path, DIR_MODE)
            except OSError as exc:
                raise _error(path, exc) from None

    def _write_high_water(self, version: int) -> None:
        path = self.root / HIGH_WATER_NAME
        tmp = self.root / f".{HIGH_WATER_NAME}.tmp-{os.getpid()}"
        _write_synced(tmp, json.dumps({"version": version}).encode("utf-8"))
        os.replace(tmp, path)
        _fsync_dir(self.root)

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
        except OSError as exc:
            why = exc.strerror or str(exc)
            raise StoreError(f"{path}: damaged or unreadable version directory ({why})") from None
        except (ValueError, TypeError, RecursionError) as exc:
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
        flags = os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_NOFOLLOW
        try:
            fd = os.open(self.history_path, flags, FILE_MODE)
        except OSError as exc:
            raise _error(self.history_path, exc) from None
        with os.fdopen(fd, "w", encoding="utf-8") as out:
            out.write(json.dumps(entry) + "\n")
            out.flush()
            os.fsync(out.fileno())

    def _remove_torn_writes(self) -> None:
        """Leftovers of writers killed mid-write. Called under the lock, so only the files
        that lock-holding writers make are swept (a running node's own temporary files, e.g.
        of its health file, are not this store's to remove)."""
        for path in self.versions.glob(".tmp-*"):
            shutil.rmtree(path, ignore_errors=True)
        for name in ("active", "last_good", HIGH_WATER_NAME):
            for path in self.root.glob(f".{name}.tmp-*"):
                with contextlib.suppress(FileNotFoundError):
                    path.unlink()

    def _prune(self) -> None:
        keep = {self._pointer_target("active"), self._pointer_target("last_good")}
        numbers = self._version_numbers()
        for number in numbers[:-KEEP_VERSIONS]:
            name = f"{number:06d}"
            if name not in keep:
                shutil.rmtree(self.versions / name, ignore_errors=True)


def _error(path: Path, exc: OSError) -> StoreError:
    return StoreError(f"{path}: {exc.strerror or exc}")


def _write_synced(path: Path, data: bytes) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW, FILE_MODE)
    with os.fdopen(fd, "wb") as out:
        os.fchmod(out.fileno(), FILE_MODE)
        out.write(data)
        out.flush()
        os.fsync(out.fileno())


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
