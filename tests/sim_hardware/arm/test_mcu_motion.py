"""The simulated arm firmware (spec 12), fed frames directly: segments, stops, suction."""

from __future__ import annotations

import time

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from firmware_bridge.mcu import messages as m
from firmware_bridge.mcu.framing import FLAG_SYN, FrameDecoder, encode_frame
from sim_hardware.mcu.firmware import FirmwareExtension, SimFirmware
from sim_hardware.mcu.motion import ArmFirmware, JointQueue, QueueRefused

F = 1_000_000  # clock ticks per second
STOP_MS = 100


class _Host:
    def __init__(self) -> None:
        self.decoder = FrameDecoder()
        self.frames: list = []
        self.seq = 0

    def __call__(self, data: bytes) -> None:
        self.frames += self.decoder.feed(data)[0]

    def messages(self, name: str | None = None) -> list[m.Message]:
        msgs = [x for f in self.frames if f.payload for x in m.decode_payload(f.payload)]
        return [x for x in msgs if name is None or x.name == name]


def _arm(safety_pin: int = 3, vacuum=None) -> tuple[SimFirmware, ArmFirmware, _Host, list]:
    host = _Host()
    fw = SimFirmware(host)
    arm = ArmFirmware(vacuum=vacuum)
    fw.register_extension(arm)
    fw.receive(encode_frame(0, 0, m.encode("identify", req=1), FLAG_SYN))
    sent = [0]

    def cmd(name: str, **fields) -> m.Message | None:
        sent[0] += 1
        req = 100 + sent[0]
        data = [f for f in host.frames if f.payload]
        ack = (data[-1].seq + 1) % 256 if data else 0  # acknowledge what the MCU sent
        fw.receive(encode_frame(sent[0], ack, m.encode(name, req=req, **fields)))
        answers = [x for x in host.messages() if x.fields.get("req") == req]
        return answers[-1] if answers else None

    if safety_pin != m.NO_PIN:
        fw.set_input(safety_pin, 1)  # the light curtain is clear (its OSSD reads 1)
    ok = cmd("config_motion", joints=2, safety_pin=safety_pin, safety_level=0, stop_ms=STOP_MS)
    assert ok is not None and ok.name == "ok"
    return fw, arm, host, [cmd]


def _seg(cmd, seg: int, start: int, dur: int, p0: int, p1: int = 0, end: bool = False):
    pos = {n: 0 for n in m.JOINT_NAMES} | {"p0": p0, "p1": p1}
    return cmd(
        "queue_joint_segment", seg=seg, flags=m.SEG_END if end else 0, start=start,
        duration=dur, **pos,
    )  # fmt: skip


def test_identify_lists_the_arm_commands_only_with_the_extension():
    fw, _, host, (cmd,) = _arm()
    (ident,) = host.messages("identify_response")
    assert len(ident["commands"]) <= m.MAX_STRING and "get_commands" in ident["commands"]
    names: list[str] = []
    while True:  # the rest of a list too long for identify_response, page by page (spec 5)
        page = cmd("get_commands", offset=len(names))
        assert page.name == "commands" and len(page["names"]) <= m.MAX_STRING
        names += page["names"].split(",")
        if len(names) >= page["total"]:
            break
    assert {"queue_joint_segment", "get_vacuum", "schedule_at_count", "ping"} <= set(names)
    bare = _Host()
    SimFirmware(bare).receive(encode_frame(0, 0, m.encode("identify", req=1), FLAG_SYN))
    assert "queue_joint_segment" not in bare.messages("identify_response")[0]["commands"]
    with pytest.raises(ValueError, match="already handled"):
        fw.register_extension(ArmFirmware())
    bad = FirmwareExtension()
    bad.commands = ("pong",)
    with pytest.raises(ValueError, match="not a command"):
        fw.register_extension(bad)


def test_servo_setpoints_follow_the_segments_and_a_move_ends_at_rest():
    fw, arm, host, (cmd,) = _arm()
    t0 = fw.clock() + F // 10
    assert _seg(cmd, 1, t0, F // 10, 100_000).name == "ok"
    assert _seg(cmd, 2, t0 + F // 10, F // 10, 100_000, 50_000, end=True).name == "ok"
    at = fw.time_of_clock
    assert arm.setpoint_at(at(t0 - 10))[:2] == (0.0, 0.0)  # holds until start
    p = arm.setpoint_at(at(t0 + F // 20))
    assert p[0] == pytest.approx(50_000, abs=2) and p[1] == 0
    p = arm.setpoint_at(at(t0 + F // 10 + F // 20))
    assert p[0] == pytest.approx(100_000, abs=2) and p[1] == pytest.approx(25_000, abs=2)
    assert not host.messages("motion_stopped")
    p = arm.setpoint_at(at(t0 + F // 5 + 5))
    (done,) = host.messages("motion_stopped")
    assert done["reason"] == m.STOP_END_OF_MOVE and done["seg"] == 2
    assert done["clock"] == t0 + F // 5 and (done["p0"], done["p1"]) == (100_000, 50_000)
    assert p[:2] == (100_000, 50_000) and arm.queue.state == m.MOTION_IDLE


def test_queue_underrun_stops_within_stop_ms_and_halts_until_resumed():
    fw, arm, host, (cmd,) = _arm()
    t0 = fw.clock() + F // 10
    _seg(cmd, 7, t0, F // 10, 100_000)  # 1 rad/s, no END: the host is late with the next
    end = t0 + F // 10
    arm.setpoint_at(fw.time_of_clock(end + 1))
    (stop,) = host.messages("motion_stopped")
    v = 100_000 / (F // 10)  # urad per tick
    rest = 100_000 + v * STOP_MS * F / 1000 / 2
    assert stop["reason"] == m.STOP_UNDERRUN and stop["clock"] == end + STOP_MS * F // 1000
    assert stop["p0"] == pytest.approx(rest, abs=1)
    # no stale command: decelerating, never faster than the last segment, at rest in time
    prev = arm.setpoint_at(fw.time_of_clock(end))[0]
    for k in range(1, 12):
        now = arm.setpoint_at(fw.time_of_clock(end + k * F // 100))[0]
        assert 0 <= now - prev <= v * F // 100 + 1e-6
        prev = now
    assert prev == pytest.approx(rest, abs=1) and arm.queue.state == m.MOTION_HALTED
    refused = _seg(cmd, 8, fw.clock() + F, F // 10, 0)
    assert refused.name == "error" and refused["code"] == m.ERR_HALTED
    assert "queue underrun" in refused["message"]
    assert cmd("resume_motion").name == "ok"
    assert _seg(cmd, 9, fw.clock() + F, F // 10, 0, end=True).name == "ok"


def test_safety_input_stops_the_move_within_stop_ms_and_blocks_resume_while_open():
    fw, arm, host, (cmd,) = _arm(safety_pin=3)
    t0 = fw.clock() + F // 100
    _seg(cmd, 1, t0, F, 1_000_000, end=True)
    broken = fw.time_of_clock(t0 + F // 2)
    arm.setpoint_at(broken)
    fw.set_input(3, 0, at=broken)  # beam broken mid-move (edge latched at its time)
    (stop,) = host.messages("motion_stopped")
    assert stop["reason"] == m.STOP_SAFETY
    assert stop["clock"] - fw.clock(broken) <= STOP_MS * F // 1000 + F // 1000
    assert arm.queue.state in (m.MOTION_STOPPING, m.MOTION_HALTED)
    arm.setpoint_at(fw.time_of_clock(stop["clock"] + 1))
    assert arm.queue.state == m.MOTION_HALTED
    r = cmd("resume_motion")
    assert r.name == "error" and r["code"] == m.ERR_HALTED and "still unsafe" in r["message"]
    fw.set_input(3, 1)
    assert cmd("resume_motion").name == "ok"
    st_ = cmd("get_motion")
    assert st_["state"] == m.MOTION_IDLE and st_["reason"] == m.STOP_SAFETY
    assert st_["p0"] == stop["p0"]


def test_watchdog_stops_and_halts_the_arm_and_keeps_the_valve():
    fw, arm, host, (cmd,) = _arm()
    cmd("set_suction", on=1)
    t0 = fw.clock() + F // 100
    _seg(cmd, 1, t0, F, 1_000_000, end=True)
    fw._trip_watchdog(fw.time_of_clock(t0 + F // 4), 0.6)
    (stop,) = host.messages("motion_stopped")
    assert stop["reason"] == m.STOP_WATCHDOG and arm.queue.halted
    assert arm.valve  # a held parcel is not dropped from height


def test_refusals_say_why():
    fw, _, _, (cmd,) = _arm()
    now = fw.clock()
    r = _seg(cmd, 1, now - 10, 1000, 0)
    assert r["code"] == m.ERR_IN_PAST and "in the past" in r["message"]
    _seg(cmd, 2, now + F, 1000, 0)
    r = _seg(cmd, 3, now + F + 2000, 1000, 0)
    assert r["code"] == m.ERR_BAD_ARGUMENT and "gap" in r["message"]
    r = _seg(cmd, 4, now + F + 1000, 0, 0)
    assert r["code"] == m.ERR_BAD_ARGUMENT and "duration" in r["message"]
    for k in range(63):
        assert _seg(cmd, 10 + k, now + F + 1000 * (k + 1), 1000, 0).name == "ok"
    r = _seg(cmd, 99, now + F + 64_000, 1000, 0)
    assert r["code"] == m.ERR_QUEUE_FULL
    r = cmd("config_motion", joints=2, safety_pin=3, safety_level=0, stop_ms=50)
    assert r["code"] == m.ERR_BUSY
    assert (
        cmd("config_motion", joints=2, safety_pin=3, safety_level=0, stop_ms=STOP_MS).name == "ok"
    )
    fresh = _Host()
    fw2 = SimFirmware(fresh)
    fw2.register_extension(ArmFirmware())
    fw2.receive(encode_frame(0, 0, m.encode("identify", req=1), FLAG_SYN))
    fw2.receive(encode_frame(1, 0, m.encode("stop_motion", req=5)))
    assert fresh.messages("error")[0]["code"] == m.ERR_NOT_CONFIGURED


def test_suction_valve_and_grip_events_with_hysteresis():
    level = {"pa": 0.0}
    fw, arm, host, (cmd,) = _arm(vacuum=lambda t: level["pa"])
    seen = []
    arm.valve_listeners.append(lambda on, t: seen.append(on))
    assert cmd("config_vacuum", grip_pa=40_000, report_ms=0).name == "ok"
    cmd("set_suction", on=1)
    assert seen == [True]
    now = time.monotonic()
    for pa in (30_000, 45_000, 38_000, 35_000, 50_000):
        level["pa"] = pa
        arm.sample(now)
    grips = [(x["gripped"], x["pressure_pa"]) for x in host.messages("grip_changed")]
    assert grips == [(1, 45_000), (0, 35_000), (1, 50_000)]
    v = cmd("get_vacuum")
    assert (v["pressure_pa"], v["valve"], v["gripped"]) == (50_000, 1, 1)
    fw.reset()
    assert seen == [True, False] and not arm.valve and not arm.configured


# ---- the pure core ---------------------------------------------------------------------------
_segments = st.lists(
    st.tuples(st.integers(1, 50_000), st.integers(-200_000, 200_000)), min_size=1, max_size=8
)


@settings(max_examples=150, deadline=None)
@given(_segments, st.booleans(), st.integers(0, 400_000), st.integers(1, 300))
def test_any_stop_comes_to_rest_within_stop_ms_never_faster_than_it_was(segs, end, t_stop, ms):
    """Whatever the segments and whenever the stop (or an underrun), the setpoint moves no
    faster than the segment it was on, and is at rest stop_ms after the stop began."""
    q = JointQueue([0.0], clock_freq=F, stop_ms=ms)
    start = 1000
    for i, (dur, p) in enumerate(segs):
        q.push(i + 1, m.SEG_END if end and i == len(segs) - 1 else 0, start, dur, [p], 0)
        start += dur
    vmax = max(abs(s.velocity()[0]) for s in q.segments)
    events = q.stop_at(t_stop, m.STOP_SAFETY)
    t, prev = t_stop, q.setpoint(t_stop)[0]
    step = 97
    for _ in range(5000):
        t += step
        events += q.advance(t)
        cur = q.setpoint(t)[0]
        assert abs(cur - prev) <= vmax * step + 1e-6
        prev = cur
        if q.stop is None and not q.segments:
            break
    assert q.stop is None and not q.segments
    stops = [e for e in events if e.reason != m.STOP_END_OF_MOVE]
    for e in stops:
        assert e.clock - max(t_stop, 1000) <= ms * F // 1000 or e.reason == m.STOP_UNDERRUN
        assert q.setpoint(e.clock + 1)[0] == pytest.approx(e.positions[0], abs=1e-6)
    assert q.halted  # a safety stop halts, moving or not


@given(st.integers(-(2**31), 2**31 - 1), st.integers(1, F))
def test_a_segment_starting_now_or_before_on_an_empty_queue_is_refused(p, dur):
    q = JointQueue([0.0], clock_freq=F)
    with pytest.raises(QueueRefused) as err:
        q.push(1, 0, 500, dur, [p], 500)
    assert err.value.code == m.ERR_IN_PAST
