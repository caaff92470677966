"""aim: centre -- a stroke meets the parcel's middle, known once its trailing edge passed."""

from __future__ import annotations

from edge.cell.events import BrainAnswer, EyeEdge, Halt, Resume, Sighting, Tick
from tests.edge.cell.helpers import Driver, make_cfg


def test_stroke_waits_for_the_length_then_aims_at_the_centre() -> None:
    d = Driver(make_cfg(aim="centre"))
    d(EyeEdge("in", True, 1000, 1.0))  # leading edge at the eye (100 mm)
    d(Sighting("scanner", 1050, 1.05, 100.0, label="A-1"))
    d(BrainAnswer(1, "a", 1.06))
    assert d.strokes == []  # decided, but the length is not known yet
    d(EyeEdge("in", False, 1300, 1.3))  # 300 mm long
    (stroke,) = d.strokes
    # leading edge at the diverter (1000 mm) at count 1000 + 900; the centre 150 mm later
    assert stroke.count == 1000 + 900 + 150


def test_leading_edge_aim_is_the_default() -> None:
    d = Driver()
    d(EyeEdge("in", True, 1000, 1.0))
    d(Sighting("scanner", 1050, 1.05, 100.0, label="A-1"))
    d(BrainAnswer(1, "a", 1.06))
    (stroke,) = d.strokes
    assert stroke.count == 1900


def test_without_a_trailing_edge_the_stroke_is_scheduled_at_the_decision_point() -> None:
    d = Driver(make_cfg(aim="centre"))
    d(EyeEdge("in", True, 1000, 1.0))
    d(Sighting("scanner", 1050, 1.05, 100.0, label="A-1"))
    d(BrainAnswer(1, "a", 1.06))
    d(Tick(1000 + 700, 1.7))  # leading edge at 800 mm: the decision point
    (stroke,) = d.strokes
    assert stroke.count == 1900
    assert any(s.stage == "length_unknown" for s in d.core.active[1].story)


def test_resume_schedules_what_a_halt_sent_to_reject() -> None:
    cfg = make_cfg(reject={"id": "rej", "position_mm": 2800, "output": 7})
    d = Driver(cfg)
    d(EyeEdge("in", True, 1000, 1.0))
    d(Sighting("scanner", 1050, 1.05, 100.0, label="A-1"))
    d(Halt("e-stop", 1.06))
    d(BrainAnswer(1, "a", 1.07))  # decided while halted: reject, nothing fires yet
    assert d.strokes == []
    d(Resume(2.0))
    (stroke,) = d.strokes
    assert stroke.chute == "rej" and stroke.output == 7


def test_a_drop_into_a_still_blocked_chute_sensor_is_sorted_unconfirmed_not_lost() -> None:
    from edge.cell.events import ChuteSensor, StrokeDone

    d = Driver()
    for lead, label in ((1000, "A-1"), (1200, "A-2")):
        d(EyeEdge("in", True, lead, lead / 1000))
        d(Sighting("scanner", lead + 10, lead / 1000, 100.0, label=label))
    d(BrainAnswer(1, "a", 1.3))
    d(BrainAnswer(2, "a", 1.3))
    d(StrokeDone(1, 1900, 1.9))
    d(ChuteSensor("a", 1905, 1.905))  # parcel 1 drops: the sensor blocks
    d(StrokeDone(2, 2100, 2.1))  # parcel 2 drops while it is still blocked: no new edge
    d(ChuteSensor("a", 2150, 2.15, blocked=False))
    d(Tick(1000 + 900 + 300 + 200 + 10, 2.5))  # both confirmation windows have passed
    by_id = {r.parcel_id: r for r in d.records}
    assert by_id[1].outcome == "sorted" and by_id[1].confirmed
    assert by_id[2].outcome == "sorted" and not by_id[2].confirmed
    assert "still blocked" in by_id[2].reason
