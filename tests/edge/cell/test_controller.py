"""The cell core, scenario by scenario: each test drives facts in and checks the actions."""

from __future__ import annotations

from edge.cell.events import (
    Alarm,
    AskBrain,
    BrainAnswer,
    BrainUnavailable,
    CancelStroke,
    ChuteFull,
    ChuteSensor,
    EyeEdge,
    Halt,
    Resume,
    ScheduleStroke,
    Sighting,
    StrokeDone,
    StrokeRefused,
    Tick,
)
from tests.edge.cell.helpers import Driver, make_cfg


def induct(d: Driver, count: int, t: float, length: int = 300) -> int:
    """A parcel's leading edge at the induction eye at ``count``; trailing edge after it."""
    d(EyeEdge("in", True, count, t))
    d(EyeEdge("in", False, count + length, t + length / 1000))
    return max(d.core.active)


def camera(d: Driver, count: int, t: float, lead_count: int, label: str | None, **kw) -> None:
    """The camera sees a parcel whose leading edge crossed the eye at ``lead_count``."""
    d(Sighting("camera", count, t, position_mm=100 + (count - lead_count), label=label, **kw))


def test_brain_answer_schedules_the_stroke_where_the_parcel_meets_its_diverter():
    d = Driver()
    pid = induct(d, 1000, 1.0)
    camera(d, 1500, 1.5, 1000, "A-1", class_name="box", size_mm=(300, 200, 100))
    (ask,) = d.of(AskBrain)
    assert ask == AskBrain(pid, "A-1", "box", (300, 200, 100), 1.5 + 0.030)
    d(BrainAnswer(pid, "b", 1.51))
    (stroke,) = d.strokes
    # leading edge at 100 mm at count 1000; the b diverter at 2000 mm: count 2900
    assert stroke == ScheduleStroke(pid, "b", 2, 2900, 100.0, 0)
    d(StrokeDone(pid, 2901, 3.4))
    d(ChuteSensor("b", 3000, 3.5))
    (rec,) = d.records
    assert (rec.outcome, rec.chute, rec.actual_chute, rec.confirmed) == ("sorted", "b", "b", True)
    assert rec.decision_source == "brain" and rec.label_source == "camera"
    assert rec.scheduled_count == 2900 and rec.fired_count == 2901 and rec.divert_error_mm == 1.0
    assert rec.latency_ms["seen_to_label"] == 500.0
    assert rec.latency_ms["label_to_decision"] == 10.0
    assert rec.latency_ms["decision_to_scheduled"] == 0.0
    assert [s.stage for s in rec.story] == [
        "leading_edge", "trailing_edge", "sighting", "ask_brain", "decided", "scheduled",
        "fired", "chute_sensor",
    ]  # fmt: skip
    assert d.core.active == {}


def test_brain_late_falls_back_to_the_routing_table_at_the_deadline():
    d = Driver()
    pid = induct(d, 0, 0.0)
    camera(d, 400, 0.4, 0, "A-7")
    d(Tick(420, 0.42))
    assert d.strokes == []
    d(Tick(431, 0.431))  # 31 ms after the ask
    (stroke,) = d.strokes
    assert (stroke.chute, stroke.count) == ("a", 900)
    d(BrainAnswer(pid, "b", 0.5))  # too late: ignored, noted
    assert len(d.strokes) == 1
    d(StrokeDone(pid, 900, 0.9))
    d(ChuteSensor("a", 1000, 1.0))
    (rec,) = d.records
    assert rec.decision_source == "routing_table" and rec.outcome == "sorted"
    assert rec.reason.startswith("brain late (deadline 30 ms); routing rule 0")
    assert "brain_late" in [s.stage for s in rec.story]


def test_brain_unavailable_decides_at_once_and_unknown_answers_use_the_table():
    d = Driver()
    p1 = induct(d, 0, 0.0)
    camera(d, 400, 0.4, 0, "B-1")
    d(BrainUnavailable(p1, "offline", 0.401))
    p2 = induct(d, 500, 0.5)
    camera(d, 700, 0.7, 500, "A-2")
    d(BrainAnswer(p2, "nowhere", 0.71))
    assert [(s.parcel_id, s.chute) for s in d.strokes] == [(p1, "b"), (p2, "a")]


def test_unreadable_label_goes_to_reject_at_the_decision_point():
    d = Driver()
    pid = induct(d, 0, 0.0)
    camera(d, 400, 0.4, 0, None, class_name="polybag")
    d(Tick(699, 0.699))
    assert d.core.active[pid].phase == "tracking"
    d(Tick(700, 0.7))  # leading edge at 800 mm
    assert d.strokes == [] and d.of(AskBrain) == []
    d(Tick(2900, 2.9))
    (rec,) = d.records
    assert (rec.outcome, rec.chute, rec.decision_source) == ("rejected", "reject", "unreadable")
    assert rec.reason == "label unreadable" and rec.class_name == "polybag"


def test_a_decision_too_late_for_its_diverter_goes_to_reject_and_says_why():
    d = Driver()
    pid = induct(d, 0, 0.0)
    camera(d, 400, 0.4, 0, "A-1")
    d(Tick(890, 0.41))  # belt jumped on (e.g. a slow event loop); a at count 900
    d(BrainAnswer(pid, "a", 0.42))
    assert d.strokes == []
    parcel = d.core.active[pid]
    assert parcel.chute == "reject"
    assert parcel.reason == "a too close to schedule safely (10 counts ahead at count 890, need 20)"


def test_mcu_refusal_reroutes_to_reject():
    d = Driver()
    pid = induct(d, 0, 0.0)
    camera(d, 400, 0.4, 0, "A-1")
    d(BrainAnswer(pid, "a", 0.41))
    d(StrokeRefused(pid, "encoder count 900 already passed", 0.95))
    d(Tick(2900, 2.9))
    (rec,) = d.records
    assert rec.outcome == "rejected" and "MCU refused the stroke" in rec.reason


def test_a_parcel_in_the_wrong_chute_is_a_mis_sort_and_its_stroke_is_cancelled():
    d = Driver()
    pid = induct(d, 0, 0.0)
    camera(d, 400, 0.4, 0, "B-1")
    d(BrainAnswer(pid, "b", 0.41))
    d(ChuteSensor("a", 950, 0.95))  # fell into a
    (rec,) = d.records
    assert (rec.outcome, rec.chute, rec.actual_chute) == ("mis_sorted", "b", "a")
    (cancel,) = d.of(CancelStroke)
    assert cancel == CancelStroke(pid, "b", 2, 1900)
    assert [a.kind for a in d.of(Alarm)] == ["mis_sort"]


def test_a_stroke_that_fired_without_the_chute_seeing_the_parcel_is_lost():
    d = Driver()
    pid = induct(d, 0, 0.0)
    camera(d, 400, 0.4, 0, "A-1")
    d(BrainAnswer(pid, "a", 0.41))
    d(StrokeDone(pid, 900, 0.9))
    d(Tick(1199, 1.2))
    assert d.records == []
    d(Tick(1200, 1.21))  # leading edge 300 mm past the diverter: window over
    (rec,) = d.records
    assert rec.outcome == "lost" and rec.reason == "chute a sensor never saw it"


def test_a_chute_event_nobody_expected_is_an_alarm():
    d = Driver()
    d(ChuteSensor("a", 5000, 5.0))
    assert [a.kind for a in d.of(Alarm)] == ["unmatched_chute_event"]


def test_a_full_chute_sends_its_parcels_to_reject_until_it_is_free():
    d = Driver()
    p1 = induct(d, 0, 0.0)
    camera(d, 400, 0.4, 0, "A-1")
    d(BrainAnswer(p1, "a", 0.41))
    d(ChuteFull("a", True, 0.5))
    assert d.of(CancelStroke) == [CancelStroke(p1, "a", 1, 900)]
    p2 = induct(d, 500, 0.5)
    camera(d, 700, 0.7, 500, "A-2")
    d(BrainAnswer(p2, "a", 0.71))
    d(ChuteFull("a", False, 0.8))
    p3 = induct(d, 900, 0.9)
    camera(d, 1100, 1.1, 900, "A-3")
    d(BrainAnswer(p3, "a", 1.11))
    assert [s.parcel_id for s in d.strokes] == [p1, p3]
    assert d.core.active[p2].reason == "chute a full"
    assert [a.kind for a in d.of(Alarm)] == ["chute_full", "chute_free"]


def test_a_photo_eye_blocked_too_long_raises_one_jam_fault():
    d = Driver()
    d(EyeEdge("mid", True, 100, 0.1))
    d(Tick(600, 0.6))
    assert d.of(Alarm) == []
    d(Tick(601, 0.601))
    d(Tick(900, 0.9))
    (jam,) = d.of(Alarm)
    assert jam.kind == "jam" and jam.fault and "photo-eye mid" in jam.detail


def test_halt_cancels_every_pending_stroke_and_nothing_is_scheduled_until_resume():
    d = Driver()
    p1 = induct(d, 0, 0.0)
    camera(d, 400, 0.4, 0, "A-1")
    d(BrainAnswer(p1, "a", 0.41))
    p2 = induct(d, 400, 0.4)
    camera(d, 600, 0.6, 400, "B-1")
    d(BrainAnswer(p2, "b", 0.61))
    assert len(d.strokes) == 2
    d(Halt("e-stop", 0.62))
    assert {c.parcel_id for c in d.of(CancelStroke)} == {p1, p2}
    p3 = induct(d, 650, 0.65)
    camera(d, 700, 0.7, 650, "A-3")
    d(BrainAnswer(p3, "a", 0.71))
    assert len(d.strokes) == 2 and d.core.active[p3].reason == "halted: e-stop"
    d(Resume(0.8))
    p4 = induct(d, 1000, 1.0)
    camera(d, 1100, 1.1, 1000, "A-4")
    d(BrainAnswer(p4, "a", 1.11))
    assert [s.parcel_id for s in d.strokes] == [p1, p2, p4]


def test_scanner_read_inside_the_parcel_body_is_attached_to_it():
    d = Driver()
    pid = induct(d, 0, 0.0, length=400)
    # scanner at 600 mm; at count 700 the parcel spans 400..800 mm
    d(Sighting("scanner", 700, 0.7, position_mm=600, label="B-5"))
    assert d.core.active[pid].label_source == "scanner" and len(d.core.active) == 1


def test_a_second_source_disagreeing_sends_the_parcel_to_reject():
    d = Driver()
    pid = induct(d, 0, 0.0, length=400)
    camera(d, 300, 0.3, 0, "A-1")
    d(BrainAnswer(pid, "a", 0.31))
    d(Sighting("scanner", 700, 0.7, position_mm=600, label="B-5"))
    assert d.of(CancelStroke) and d.core.active[pid].chute == "reject"
    assert "labels disagree: camera read 'A-1', scanner read 'B-5'" in d.core.active[pid].reason


def test_camera_first_then_the_eye_is_one_parcel():
    cfg = make_cfg(
        photo_eyes=[{"id": "in", "position_mm": 500, "mcu_input": 0}], decision_point_mm=800
    )
    d = Driver(cfg)
    d(Sighting("camera", 1000, 1.0, position_mm=480, label="A-1"))
    d(EyeEdge("in", True, 1021, 1.02))
    assert len(d.core.active) == 1


def test_reject_with_a_diverter_is_scheduled_and_confirmed():
    cfg = make_cfg(reject={"position_mm": 2500, "output": 7, "confirm_input": 10})
    d = Driver(cfg)
    pid = induct(d, 0, 0.0)
    camera(d, 400, 0.4, 0, "Z-1")
    d(BrainAnswer(pid, None, 0.41))
    (stroke,) = d.strokes
    assert (stroke.chute, stroke.output, stroke.count) == ("reject", 7, 2400)
    d(StrokeDone(pid, 2400, 2.4))
    d(ChuteSensor("reject", 2450, 2.45))
    (rec,) = d.records
    assert (rec.outcome, rec.reason) == (
        "rejected",
        "brain does not know it; no routing rule matched",
    )


def test_a_reject_bound_parcel_carried_past_the_reject_by_a_stop_is_a_recorded_run_out():
    """The e-stop cancels every stroke; a parcel inside the belt's stopping distance of the
    reject diverter coasts past it and leaves at the belt's end: a run-out, on record, not a
    parcel lost. One whose reject stroke did fire and was never seen stays lost."""
    cfg = make_cfg(reject={"position_mm": 2500, "output": 7, "confirm_input": 10})
    d = Driver(cfg)
    coasted = induct(d, 0, 0.0)
    camera(d, 400, 0.4, 0, "Z-1")
    d(BrainAnswer(coasted, None, 0.41))
    fired = induct(d, 500, 0.5)
    camera(d, 900, 0.9, 500, "Z-2")
    d(BrainAnswer(fired, None, 0.91))
    assert [s.parcel_id for s in d.strokes] == [coasted, fired]
    d(Tick(2300, 2.3))
    d(Halt("e-stop", 2.3))  # 100 mm before the reject's stroke: the belt coasts 400 mm
    d(Tick(2700, 2.8))
    d(Resume(3.0))
    d(StrokeDone(fired, 2900, 3.1))  # the second one's reject stroke, rescheduled, fires
    d(Tick(3300, 3.3))
    d(Tick(3600, 3.6))
    by_id = {r.parcel_id: r for r in d.records}
    assert by_id[coasted].outcome == "run_out"
    assert "belt's end" in by_id[coasted].reason and "e-stop" in by_id[coasted].reason
    assert by_id[coasted].story[-1].stage == "run_out"
    (alarm,) = [a for a in d.of(Alarm) if a.kind == "run_out"]  # an operator must take it
    assert f"parcel {coasted}" in alarm.detail and not alarm.fault
    assert by_id[fired].outcome == "lost"  # fired, yet no sensor saw it
