"""The arm core's sequences on the bench (helpers.Bench): the grip is confirmed before the
lift, a leak is retried then passed on, a drop is reported with where, the light curtain and
the e-stop stop the arm first and only an operator's reset and start resume it, the brain's
absence falls back to the routing table, a silent camera is reported, and every parcel seen
ends in exactly one record."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from edge.arm.events import (
    Alarm,
    AskBrain,
    Curtain,
    Estop,
    Grip,
    JointState,
    MotionEnded,
    MotionHalted,
    Move,
    PlaceSensor,
    ReducedSpeed,
    SafetyInput,
    StopMotion,
    Suction,
)
from edge.safety.machine import State
from tests.edge.arm.helpers import Bench, example_cfg

CFG = example_cfg()
BRAIN = {"DE-10": "c2", "DE-20": "c1", "AT-1": "c3"}


def _alarms(b: Bench, kind: str) -> list[Alarm]:
    return [a for a in b.actions if isinstance(a, Alarm) and a.kind == kind]


def _index(b: Bench, pred) -> int:
    return next(i for i, a in enumerate(b.actions) if pred(a))


def test_pick_and_place_with_the_grip_confirmed_before_the_lift() -> None:
    b = Bench(CFG, brain=BRAIN)
    b.see(1, 0.0, label="DE-10")
    b.run(4.0)
    (rec,) = b.records()
    assert rec.outcome == "placed" and rec.actual == "c2" and rec.decision_source == "brain"
    pick, carry = b.moves("pick")[0], b.moves("carry")[0]
    # the carry continues the pick move from an instant of its ride on the parcel's top,
    # after the seal held grip_confirm_ms, before the pick move would have lifted off
    grip_t = next(t for t, f in b.log if type(f).__name__ == "Grip" and f.gripped)
    assert carry.replace_from is not None
    assert pick.trajectory.marks["contact"] <= grip_t
    assert grip_t + CFG.suction.grip_confirm_ms / 1000 <= carry.replace_from
    assert carry.replace_from <= pick.trajectory.marks["lift"]
    assert carry.trajectory.q[0] == pick.trajectory.at(carry.replace_from)
    stages = [s.stage for s in rec.story]
    assert stages == ["seen", "asked", "decided", "pick", "sealed", "carry", "released",
                      "confirmed"]  # fmt: skip
    assert rec.cycle_ms is not None and 500 < rec.cycle_ms < 3000
    assert rec.contact is not None
    # the valve opened when the pick move started and closed at the release
    on = _index(b, lambda a: isinstance(a, Suction) and a.on)
    off = _index(b, lambda a: isinstance(a, Suction) and not a.on)
    assert on < off
    # the safety machine saw the arm move and come to rest
    motion = [a.value for a in b.actions if isinstance(a, SafetyInput) and a.kind == "motion"]
    assert motion == [True, False]


def test_a_vacuum_leak_is_retried_then_passed_on_with_the_reason() -> None:
    b = Bench(CFG, brain=BRAIN, leak=True)
    b.see(1, 0.0, label="DE-10")
    b.run(4.0)
    (rec,) = b.records()
    assert rec.outcome == "passed"
    assert not b.moves("carry")
    assert _alarms(b, "no_grip")
    assert "no seal" in rec.reason or "no grip" in rec.reason or "skipped" in rec.reason
    assert rec.attempts >= 1
    # the valve is closed after each miss
    assert not b.suction


def test_a_drop_in_transfer_is_reported_with_where() -> None:
    b = Bench(CFG, brain=BRAIN, drop_after_ms=250)
    b.see(1, 0.0, label="DE-10")
    b.run(4.0)
    (rec,) = b.records()
    assert rec.outcome == "dropped" and rec.dropped_at is not None
    assert "dropped in transfer" in rec.reason
    assert "onto the belt" in rec.reason or "off the belt" in rec.reason
    (alarm,) = _alarms(b, "drop")
    assert "lost in transfer" in alarm.detail


def test_light_curtain_stops_first_and_only_reset_and_start_resume() -> None:
    b = Bench(CFG, brain=BRAIN)
    b.see(1, 0.0, label="DE-10")
    b.run(1.2)
    assert b.moves("pick")
    n = len(b.actions)
    b.feed(Curtain(True, b.t))
    new = b.actions[n:]
    assert isinstance(new[0], StopMotion)  # the stop before anything is reported
    assert any(isinstance(a, SafetyInput) and a.kind == "fault" for a in new)
    assert b.safety.state is State.FAULT
    b.run(0.5)
    moves_before = len(b.moves())
    # a reset while the curtain is broken: the core faults the safety machine again
    b.on_safety(b.safety.reset(b.t))
    assert b.safety.state is State.FAULT
    b.feed(Curtain(False, b.t))
    b.see(2, 0.0, label="DE-20")
    b.run(1.5)
    assert len(b.moves()) == moves_before  # never a restart by itself
    b.on_safety(b.safety.reset(b.t))
    assert b.safety.state is State.READY
    b.on_safety(b.safety.start(b.t))
    b.run(4.0)
    assert len(b.moves()) > moves_before
    assert len(b.records()) == 2
    assert {r.parcel_id for r in b.records()} == {1, 2}


def test_a_slow_stop_after_the_curtain_is_an_alarm() -> None:
    b = Bench(CFG, brain=BRAIN)
    b.see(1, 0.0, label="DE-10")
    b.run(1.2)
    b.queue.clear()  # this MCU does not stop by itself: report the stop late by hand
    b.feed(Curtain(True, b.t))
    b.pending.clear()
    b.feed(MotionHalted("safety input", b.q, b.t + 0.5))
    (alarm,) = _alarms(b, "stop_time")
    assert "500 ms after the light curtain" in alarm.detail


def test_estop_mid_carry_keeps_the_parcel_and_carries_it_on_after_reset() -> None:
    b = Bench(CFG, brain=BRAIN)
    b.see(1, 0.0, label="DE-10")
    for _ in range(400):
        b.step()
        if b.moves("carry") and b.t > b.moves("carry")[0].trajectory.t0 + 0.1:
            break
    n = len(b.actions)
    b.feed(Estop(True, b.t))
    new = b.actions[n:]
    assert isinstance(new[0], StopMotion) and new[0].emergency
    assert not any(isinstance(a, Suction) and not a.on for a in new)  # the parcel stays held
    assert b.safety.state is State.ESTOP
    b.run(0.3)
    b.feed(Estop(False, b.t))
    b.run(0.5)
    assert not b.moves("place")  # released e-stop: still stopped until reset and start
    b.on_safety(b.safety.reset(b.t))
    b.on_safety(b.safety.start(b.t))
    b.run(3.0)
    assert b.moves("place")
    (rec,) = b.records()
    assert rec.outcome == "placed" and rec.actual == "c2"
    assert "held by the cup" in " ".join(s.detail for s in rec.story)


def test_brain_absent_the_routing_table_decides() -> None:
    b = Bench(CFG, brain=None)
    b.see(1, 0.0, label="DE-10")
    b.run(4.0)
    (rec,) = b.records()
    assert rec.decision_source == "routing_table"
    assert rec.destination == "c1"  # the example's first rule: DE-1.*
    assert "no brain answer in 300 ms" in rec.reason


def test_unpickable_and_unreadable_parcels_pass_with_the_reason() -> None:
    b = Bench(CFG, brain=BRAIN)
    b.see(1, 0.0, cls="irregular")
    b.see(2, 400.0, label=None)
    b.see(3, 800.0, size=(300.0, 90.0, 150.0))
    b.run(0.1)
    recs = {r.parcel_id: r for r in b.records()}
    assert "not pickable by a suction cup" in recs[1].reason
    assert recs[2].decision_source == "unreadable"
    assert "the 100 mm cup needs 120 mm" in recs[3].reason
    assert all(r.outcome == "passed" for r in recs.values())
    assert not [a for a in b.actions if isinstance(a, AskBrain)]


def test_camera_silent_is_reported_and_nothing_is_picked_blind() -> None:
    b = Bench(CFG, brain=BRAIN)
    b.run(0.2)
    b.camera = False
    b.run(1.5)
    (alarm,) = _alarms(b, "camera_silent")
    assert "nothing is picked blind" in alarm.detail
    assert not b.moves()
    b.camera = True
    b.run(0.1)
    assert _alarms(b, "camera_back")


def test_a_sighting_from_an_older_view_does_not_make_the_camera_silent() -> None:
    """A parcel handed over at its track's end carries its latest whole view's time: on a
    slow belt over ``silent_ms`` old. Frames keep coming: no silence (39 false alarms, and
    parcels passed unpicked for it, in a 300 mm/s run)."""
    b = Bench(CFG, brain=BRAIN)
    b.run(2.0)
    now = b.t
    b.t = now - CFG.camera.silent_ms / 1000 - 0.2  # the view the parcel is placed from
    b.see(1, 0.0, label="DE-10")
    b.t = now
    b.run(0.1)
    assert not _alarms(b, "camera_silent")


def test_reduced_speed_picks_nothing_faster_than_the_limit() -> None:
    b = Bench(CFG, brain=BRAIN)
    b.feed(ReducedSpeed(True, b.t))
    b.see(1, 0.0, label="DE-10")
    b.run(3.5)
    (rec,) = b.records()
    assert rec.outcome == "passed" and "reduced speed" in rec.reason
    assert not b.moves()


@settings(max_examples=4, deadline=None)
@given(
    st.lists(
        st.tuples(
            st.sampled_from(["DE-10", "DE-20", "AT-1", "XX-9", None]),
            st.sampled_from(["box", "polybag", "irregular"]),
            st.floats(1.0, 1.8),
        ),
        min_size=1,
        max_size=5,
    ),
    st.booleans(),
)
def test_every_parcel_seen_ends_in_exactly_one_record(parcels, leak: bool) -> None:
    b = Bench(CFG, brain=BRAIN, leak=leak)
    for i, (label, cls, gap) in enumerate(parcels):
        b.see(i + 1, 0.0, label=label, cls=cls, size=(300.0, 200.0, 120.0))
        b.run(gap)
    b.run(4.0)
    ids = [r.parcel_id for r in b.records()]
    assert sorted(ids) == list(range(1, len(parcels) + 1))
    assert not b.core.parcels
    for m in b.moves():
        assert isinstance(m, Move)


def test_mcu_unplugged_mid_move_then_replugged_resumes_after_reset_and_start() -> None:
    b = Bench(CFG, brain=BRAIN)
    b.see(1, 0.0, label="DE-10")
    b.run(1.2)
    assert b.moves("pick")
    n = len(b.actions)
    b.on_safety(b.safety.device_lost("mcu", "serial port vanished", b.t))
    assert isinstance(b.actions[n], StopMotion)  # stop first (the MCU's watchdog stops it too)
    b.queue.clear()  # unplugged: no motion_stopped will come
    b.pending.clear()
    b.run(0.5)
    assert b.safety.state is State.FAULT
    # replugged: the MCU reports the arm at rest; the safety machine needs reset and start
    b.feed(JointState(b.q, b.t))
    b.on_safety(b.safety.device_up("mcu", b.t))
    b.see(2, 0.0, label="DE-20")
    b.run(0.5)
    moves = len(b.moves())
    b.on_safety(b.safety.reset(b.t))
    b.on_safety(b.safety.start(b.t))
    b.run(4.0)
    assert len(b.moves()) > moves
    assert {r.parcel_id for r in b.records()} == {1, 2}
    assert any(r.outcome == "placed" for r in b.records())


def test_a_record_stays_small_whatever_happened() -> None:
    import json

    from edge.cell.record import MAX_RECORD_JSON_BYTES

    b = Bench(CFG, brain=BRAIN, leak=True)
    b.see(1, 0.0, label="DE-10" + "x" * 20000)
    for _ in range(30):  # a stop-start storm while it is in the window
        b.run(0.05)
        b.feed(Curtain(True, b.t))
        b.feed(Curtain(False, b.t))
        b.on_safety(b.safety.reset(b.t))
        b.on_safety(b.safety.start(b.t))
    b.run(4.0)
    (rec,) = b.records()
    assert len(json.dumps(rec.to_json())) <= MAX_RECORD_JSON_BYTES


def test_a_belt_speed_change_before_contact_re_plans_instead_of_missing() -> None:
    b = Bench(CFG, brain=BRAIN, speed=800.0)
    b.see(1, 0.0, label="DE-10")
    b.run(0.4)
    (pick,) = b.moves("pick")
    assert b.t < pick.trajectory.marks["contact"] - 0.3
    b.speed = 1000.0  # the belt speeds up (a VFD's new setpoint)
    b.run(4.0)
    (rec,) = b.records()
    assert rec.outcome == "placed" and rec.attempts == 1
    assert "re-plan" in [s.stage for s in rec.story]
    assert any(isinstance(a, StopMotion) and "re-plan" in a.cause for a in b.actions)
    assert len(b.moves("pick")) >= 2  # again while the speed estimate settles (250 ms)


def test_a_place_seen_before_the_release_still_closes_the_valve_at_the_release() -> None:
    """The destination's sensor may see the parcel up to PLACE_EARLY_S before the planned
    release (it slid off early): the record ends then, and the release that follows must
    still close the valve (it raised KeyError in ArmCore._released)."""
    b = Bench(CFG, brain=BRAIN)
    b.see(1, 0.0, label="DE-10")
    while not b.moves("carry"):
        b.step()
    release = b.moves("carry")[0].trajectory.marks["release"]
    while b.t < release - 0.1:
        b.step()
    b.feed(PlaceSensor("c2", b.t))
    (rec,) = b.records()
    assert rec.outcome == "placed" and rec.actual == "c2"
    assert b.suction  # the valve is still open: the release instant has not come
    b.run(1.0)  # the release (timer and MotionEnded) with the parcel already ended
    assert not b.suction
    assert len(b.records()) == 1


def test_a_grip_lost_after_the_parcel_ended_closes_the_valve_without_a_second_record() -> None:
    b = Bench(CFG, brain=BRAIN)
    b.see(1, 0.0, label="DE-10")
    while not b.moves("carry"):
        b.step()
    release = b.moves("carry")[0].trajectory.marks["release"]
    while b.t < release - 0.1:
        b.step()
    b.feed(PlaceSensor("c2", b.t))
    b.feed(Grip(False, 3.0, b.t))
    assert not b.suction
    b.run(1.0)
    assert [r.outcome for r in b.records()] == ["placed"]


def test_a_seal_early_in_the_descent_counts_and_the_carry_keeps_the_streams_promise() -> None:
    """A face higher than its class height seals during the descent, before the contact
    instant: the seal counts (no miss), and the carry starts no earlier than a seal 50 ms
    before contact allows (the node streams the pick's replaceable part from then on)."""
    b = Bench(CFG, brain=BRAIN, seal_ms=-80.0)
    b.see(1, 0.0, label="DE-10")
    b.run(4.0)
    (rec,) = b.records()
    assert rec.outcome == "placed" and rec.attempts == 1
    pick, carry = b.moves("pick")[0], b.moves("carry")[0]
    contact = pick.trajectory.marks["contact"]
    grip_t = next(t for t, f in b.log if isinstance(f, Grip) and f.gripped)
    assert grip_t < contact - 0.05  # sealed early in the descent
    s, tr = CFG.suction, CFG.tracking
    assert carry.replace_from is not None
    earliest = contact - 0.05 + s.grip_confirm_ms / 1000 + tr.lead_ms / 1000
    assert carry.replace_from >= earliest - 1e-9
    assert carry.trajectory.q[0] == pick.trajectory.at(carry.replace_from)


def test_a_drop_while_the_next_pick_is_planned_is_reported_as_the_carried_parcels() -> None:
    """The core plans the next pick as soon as a carry goes out; the cup still holds the
    carried parcel, so a seal lost then is that parcel's drop (it was read as the next
    pick's "no seal" and the dropped parcel's record said "unconfirmed": 12-02 run, id 33)."""
    b = Bench(CFG, brain=BRAIN, drop_after_ms=250)
    planned_at_drop: list[bool] = []
    feed = b.feed

    def watch(fact) -> None:
        if isinstance(fact, Grip) and not fact.gripped and b.core.carry is not None:
            planned_at_drop.append(b.core.pick is not None)
        feed(fact)

    b.feed = watch  # type: ignore[method-assign]
    b.see(1, 0.0, label="DE-10")
    b.see(2, -350.0, label="DE-20")
    b.run(6.0)
    assert planned_at_drop and planned_at_drop[0]  # the case: a next pick was planned
    recs = {r.parcel_id: r for r in b.records()}
    assert recs[1].outcome == "dropped" and recs[1].dropped_at is not None
    assert all(r.outcome in ("dropped", "passed") for r in recs.values())
    assert len(_alarms(b, "drop")) == sum(r.outcome == "dropped" for r in recs.values())


def _long_window_cfg():
    """The example with a 300 ms grip window (the simulated cell's): room on the top for a
    carry planned at the seal."""
    from edge.arm.config import ArmConfig
    from tests.edge.arm.helpers import example_dict

    d = example_dict()["arm"]
    d["suction"] = {**d["suction"], "grip_window_ms": 300}
    return ArmConfig.model_validate(d)


def _carry_plans(b: Bench) -> list[float]:
    """The bench times at which the core plans a carry (the real planner, watched)."""
    calls: list[float] = []
    real = b.core.mover.carry

    def watched(*args, **kwargs):
        calls.append(b.t)
        return real(*args, **kwargs)

    b.core.mover.carry = watched  # type: ignore[method-assign]
    return calls


def test_the_carry_is_planned_at_the_seal_and_the_confirming_fact_only_sends_it() -> None:
    from edge.arm.controller import PRECARRY_S

    cfg = _long_window_cfg()
    b = Bench(cfg, brain=BRAIN)
    calls = _carry_plans(b)
    b.see(1, 0.0, label="DE-10")
    b.run(4.0)
    (rec,) = b.records()
    assert rec.outcome == "placed"
    grip_t = next(t for t, f in b.log if isinstance(f, Grip) and f.gripped)
    (carry,) = b.moves("carry")
    sent_t = next(t for t, a in b.log if a is carry)
    confirm, lead = cfg.suction.grip_confirm_ms / 1000, cfg.tracking.lead_ms / 1000
    # planned in the seal's fact (and once at the pick, to refuse an uncarriable pick), not
    # in the fact that confirms the grip and sends it
    assert grip_t in calls and sent_t not in calls
    assert sent_t >= grip_t + confirm - 1e-9
    # it starts after the stream's lead from its sending, at most a tick and PRECARRY_S
    # after the earliest a carry planned at the confirmation could
    assert sent_t + lead <= carry.replace_from + 1e-9
    assert (
        carry.replace_from
        <= grip_t + confirm + b.dt + lead + PRECARRY_S + cfg.tracking.setpoint_ms / 1000
    )


def test_a_parcel_seen_between_the_seal_and_the_confirmation_gets_the_carry_planned_again() -> None:
    cfg = _long_window_cfg()
    b = Bench(cfg, brain=BRAIN)
    calls = _carry_plans(b)
    b.see(1, 0.0, label="DE-10")
    while not any(isinstance(f, Grip) and f.gripped for _, f in b.log):
        b.step()
    # a new parcel on the belt: the carry planned at the seal did not know it
    b.see(2, -300.0, label="DE-20", across=150.0)
    b.run(4.0)
    carry = b.moves("carry")[0]
    sent_t = next(t for t, a in b.log if a is carry)
    assert sent_t in calls  # planned again where it is sent, with the new neighbour
    assert [r.outcome for r in b.records() if r.parcel_id == 1] == ["placed"]


def test_a_carry_that_ended_away_from_its_destination_releases_nothing_there() -> None:
    """The MCU reports the carry's move ended with the arm still over the belt (the carry
    never ran: a box held on the belt was let go there in a run of session 9, the release
    firing at its planned instant): the valve stays open, an alarm says where, and the held
    parcel is carried to its destination from where the arm rests and released over it."""
    b = Bench(CFG, brain=BRAIN)
    b.see(1, 0.0, label="DE-10")
    while not b.moves("carry"):
        b.step()
    carry = b.moves("carry")[0]
    release = carry.trajectory.marks["release"]
    q = carry.trajectory.q[0]  # where the carry starts: the cup on the parcel, on the belt
    b.queue.clear()  # the MCU ran none of it
    b.q = q
    n = len(b.actions)
    b.step()
    b.feed(MotionEnded(carry.move_id, q, b.t))
    assert b.t < release
    assert b.suction and not any(isinstance(a, Suction) and not a.on for a in b.actions[n:])
    (alarm,) = _alarms(b, "release_refused")
    assert "not released, held" in alarm.detail
    b.run(4.0)
    (place,) = b.moves("place")
    assert place.trajectory.q[0] == q  # from where the arm rests
    (rec,) = b.records()
    assert rec.outcome == "placed" and rec.actual == "c2"
    stages = [s.stage for s in rec.story]
    assert stages.index("release refused") < stages.index("released")
    off = next(a for a in b.actions if isinstance(a, Suction) and not a.on)
    assert b.actions.index(place) < b.actions.index(off)  # closed only on the place move
    x, y, _, _ = b.core.mover.kin.fk(place.trajectory.at(off.t))
    dest = CFG.destination("c2")
    assert dest is not None
    assert abs(x - dest.place.x_mm) < 50 and abs(y - dest.place.y_mm) < 50
