"""A fixed reader's reports are matched in passing order, so a late report (a busy host, a
slow line) still reaches the parcel it belongs to, and a no-read takes its turn."""

from __future__ import annotations

from edge.cell.events import EyeEdge, Sighting
from tests.edge.cell.helpers import Driver

SCANNER_MM = 400.0  # eye at 100 mm: a parcel's middle reaches the scanner 300 mm + L/2 later


def _two_parcels(d: Driver) -> None:
    # parcel 1: lead 1000, 200 mm long; parcel 2: lead 1300, 200 mm long (100 mm gap)
    for lead in (1000, 1300):
        d(EyeEdge("in", True, lead, lead / 1000))
        d(EyeEdge("in", False, lead + 200, (lead + 200) / 1000))


def read(count: int, label: str | None) -> Sighting:
    return Sighting(
        "scanner", count, count / 1000, SCANNER_MM, label=label, in_order_mm=600.0,
        no_read=label is None,
    )  # fmt: skip


def test_a_late_read_goes_to_the_parcel_that_passed_first() -> None:
    d = Driver()
    _two_parcels(d)
    # parcel 1's middle passed the scanner at 1400; its read arrives 250 counts late, when
    # parcel 2's body covers the scanner: by position it would be parcel 2's
    d(read(1650, "A-1"))
    d(read(1700, "A-2"))
    labels = {p.id: p.label for p in d.core.active.values()}
    assert labels == {1: "A-1", 2: "A-2"}
    assert all(p.conflict is None for p in d.core.active.values())


def test_a_no_read_takes_its_turn_and_creates_no_parcel() -> None:
    d = Driver()
    _two_parcels(d)
    d(read(1450, None))  # parcel 1 unreadable
    d(read(1750, "A-2"))
    active = d.core.active
    assert set(active) == {1, 2}
    assert active[1].label is None and active[2].label == "A-2"
    assert any(s.stage == "no_read" for s in active[1].story)


def test_a_read_long_after_every_parcel_passed_falls_back_to_position() -> None:
    d = Driver()
    _two_parcels(d)
    d(read(1450, "A-1"))
    d(read(1750, "A-2"))
    d(read(1760, "A-3"))  # a third report for two parcels: not given to an older one
    assert d.core.active[1].label == "A-1"
    # by position it lands on parcel 2 (its body covers the scanner): a conflict, to reject
    assert d.core.active[2].conflict is not None
