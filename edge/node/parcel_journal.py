"""The parcels in flight on disk, so a node killed and restarted (kill -9, a crash, systemd's
restart) goes on tracking the parcels already on the belt instead of losing them.

The loop takes a snapshot of the cell core (``edge/cell/persist.py``) when it changed, at most
every ``min_interval_s``; the reporting thread writes it (temp file, rename: a kill at any
instant leaves the old or the new snapshot whole). The file only has to outlive the process,
not the board: after a power cut the MCU restarts too and its encoder counts from zero, so
positions would be unknown anyway. Keep it on tmpfs (``/run/wolfpack``) where the health file
is, which spares an SD card ~20 small writes a second.
"""

from __future__ import annotations

import json
import logging
import os
import time
from collections.abc import Callable, Collection
from pathlib import Path
from typing import Any

from edge.cell.controller import CellCore
from edge.cell.persist import RestoreError, next_id, pending_actions, restore, snapshot
from edge.runtime.reporter import Reporter

log = logging.getLogger("wolfpack.node.journal")

MAX_BYTES = 4 * 1024 * 1024  # a journal bigger than this is not ours: refuse it


class ParcelJournal:
    def __init__(self, path: Path, reporter: Reporter, min_interval_s: float = 0.04) -> None:
        self.path = path
        self.reporter = reporter
        self.min_interval_s = min_interval_s
        self.dirty = False
        self._due = 0.0
        self.saved: dict[str, Any] | None = None  # what the previous run left, until restored
        self.restored = False
        self.writes = 0

    def load(self, core: CellCore) -> None:
        """Read what a previous run left; give the core its next parcel id at once (events
        that arrive before the restore must not reuse an id)."""
        try:
            if self.path.stat().st_size > MAX_BYTES:
                raise RestoreError(f"{self.path.stat().st_size} bytes, more than {MAX_BYTES}")
            data = json.loads(self.path.read_text(encoding="utf-8"))
            core.tracker._next_id = max(core.tracker._next_id, next_id(data))
        except FileNotFoundError:
            self.restored = True  # a first start: nothing to restore
            return
        except (OSError, ValueError, RestoreError) as exc:
            log.error("parcel journal %s not usable (%s); starting without it", self.path, exc)
            self.restored = True
            return
        self.saved = data
        log.info("parcel journal: %d parcels from the previous run, restored at the first "
                 "encoder count", len(data["parcels"]))  # fmt: skip

    def restore(
        self,
        core: CellCore,
        count: int,
        t: float,
        recorded: Callable[[], Collection[tuple[int, int]]] | None = None,
    ) -> dict[int, int] | None:
        """Put the saved parcels back (once, at the first encoder count after start);
        returns parcel id -> MCU action id of the strokes they had pending (None: nothing
        restored). ``recorded`` gives the (parcel id, lead count) of records already
        committed to the outbox; those parcels are finished, not restored."""
        if self.restored:
            return None
        self.restored = True
        data, self.saved = self.saved, None
        if data is None:
            return None
        done: Collection[tuple[int, int]] = ()
        if recorded is not None:
            try:
                done = recorded()
            except Exception:  # an unreadable outbox must not cost the parcels on the belt
                log.exception("parcel journal: the outbox's last records not readable")
        try:
            notes = restore(core, data, count, t, done)
        except RestoreError as exc:
            log.error("parcel journal %s not restored: %s", self.path, exc)
            return None
        for note in notes:
            log.warning("parcel journal: %s", note)
        self.dirty = True
        return {pid: aid for pid, aid in pending_actions(data).items() if pid in core.active}

    def tick(
        self, core: CellCore, count: int | None, now: float, actions: dict[int, int]
    ) -> None:
        """Save a snapshot if the core changed and the last save is old enough."""
        if not self.dirty or now < self._due or not self.restored:
            return
        self.save_now(core, count, now, actions)

    def save_now(
        self, core: CellCore, count: int | None, now: float, actions: dict[int, int]
    ) -> None:
        """Save at once: right after a parcel's record is handed to the reporting thread, so
        a node killed then does not restore (and record again) a parcel already recorded."""
        if not self.restored:
            self.dirty = True
            return
        self.dirty = False
        self._due = now + self.min_interval_s
        self.reporter.submit(self._write, snapshot(core, count, now, actions))

    def _write(self, body: dict[str, Any]) -> None:
        tmp = self.path.with_name(self.path.name + ".tmp")
        tmp.write_text(json.dumps(body, separators=(",", ":")), encoding="utf-8")
        os.replace(tmp, self.path)
        self.writes += 1

    def close(self, core: CellCore, count: int | None, actions: dict[int, int]) -> None:
        """At an orderly stop: the last snapshot (parcels still on a stopped belt)."""
        if self.restored:
            self.reporter.submit(self._write, snapshot(core, count, time.monotonic(), actions))
