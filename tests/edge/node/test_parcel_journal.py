"""A node killed after committing a parcel's record and before the journal snapshot that
drops the parcel: the restarted node must not restore that parcel and record it a second
time (it did, once in CI: "lost" after "sorted"). The outbox is the witness."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

from edge.cell.controller import CellCore
from edge.cell.events import EyeEdge, Halt, Tick
from edge.cell.persist import snapshot
from edge.node.parcel_journal import ParcelJournal
from edge.runtime.fleet import FleetBridge
from edge.runtime.reporter import Reporter
from fleet_link.config import MqttConfig
from tests.edge.cell.helpers import Driver, make_cfg


def _journal_with_two_parcels(path: Path) -> tuple[int, int, int]:
    d = Driver()
    d(Tick(0, 0.0))
    for lead in (10, 400):
        d(EyeEdge("in", True, lead, lead / 1000))
        d(EyeEdge("in", False, lead + 200, (lead + 200) / 1000))
    first, second = sorted(d.core.active.values(), key=lambda p: p.id)
    path.write_text(json.dumps(snapshot(d.core, 700, 0.7)))
    return first.id, first.lead_count, second.id


def _bridge(tmp_path: Path, loop: asyncio.AbstractEventLoop) -> FleetBridge:
    cfg = MqttConfig.model_validate(
        {"broker": "mqtt://127.0.0.1:1", "outbox": {"path": str(tmp_path / "outbox.sqlite")}}
    )
    return FleetBridge(cfg, "site", "node-1", None, loop, None, lambda _n, _a: {})


def _fresh() -> CellCore:
    core = CellCore(make_cfg())
    core.handle(Halt("waiting for an operator's start", 0.0))
    return core


def test_a_parcel_whose_record_was_committed_is_not_restored_again(tmp_path: Path):
    journal_file = tmp_path / "node-1.parcels.json"
    recorded, lead, other = _journal_with_two_parcels(journal_file)
    loop = asyncio.new_event_loop()
    bridge = _bridge(tmp_path, loop)
    try:
        # the dead node committed the first parcel's record; an older run's record of the same
        # id at another lead count (ids restart after a power cut) must not hide the second
        bridge.link.publish_event("parcel", {"parcel_id": recorded, "lead_count": lead,
                                             "outcome": "sorted", "chute": "a"})  # fmt: skip
        bridge.link.publish_event("parcel", {"parcel_id": other, "lead_count": 99_999,
                                             "outcome": "sorted", "chute": "b"})  # fmt: skip
        core = _fresh()
        journal = ParcelJournal(journal_file, Reporter("test-journal"))
        journal.load(core)
        journal.restore(core, 720, 1.0, bridge.recorded_parcels)
        assert set(core.active) == {other}
        assert recorded not in core.finished  # not finished a second time either
    finally:
        bridge.link.outbox.close()
        loop.close()


def test_an_unreadable_outbox_costs_no_parcel(tmp_path: Path):
    journal_file = tmp_path / "node-1.parcels.json"
    first, _lead, second = _journal_with_two_parcels(journal_file)

    def broken() -> set[tuple[int, int]]:
        raise OSError("disk I/O error")

    core = _fresh()
    journal = ParcelJournal(journal_file, Reporter("test-journal"))
    journal.load(core)
    journal.restore(core, 720, 1.0, broken)
    assert set(core.active) == {first, second}
