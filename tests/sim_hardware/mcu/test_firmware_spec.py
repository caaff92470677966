"""The Python firmware's rules from issue 19 (docs/mcu-protocol.md), fed frames directly:
watchdog arming, configured outputs, unknown ids, reset ending its payload, what a new host
SYN stops, the bounded send queue, the late-action fault, RTO bounds from the baud rate."""

from __future__ import annotations

import asyncio
import time

import pytest

from firmware_bridge.mcu import messages as m
from firmware_bridge.mcu.framing import FLAG_SYN, FrameDecoder, encode_frame
from sim_hardware.mcu.firmware import TX_QUEUE_BYTES, SimFirmware, _Scheduled


class _Host:
    """Collects what the firmware transmits; decodes each frame once (by SEQ and SYN)."""

    def __init__(self) -> None:
        self.decoder = FrameDecoder()
        self.frames: list = []

    def __call__(self, data: bytes) -> None:
        self.frames += self.decoder.feed(data)[0]

    def messages(self) -> list[m.Message]:
        return [x for f in self.frames if f.payload for x in m.decode_payload(f.payload)]

    def named(self, name: str) -> list[m.Message]:
        return [x for x in self.messages() if x.name == name]


class _Session:
    """A host session: SYN identify, then numbered frames."""

    def __init__(self, fw: SimFirmware, req: int = 1) -> None:
        self.fw, self.seq = fw, 1
        fw.receive(encode_frame(0, 0, m.encode("identify", req=req), FLAG_SYN))

    def send(self, *messages: bytes) -> None:
        self.fw.receive(encode_frame(self.seq, 0, b"".join(messages)))
        self.seq += 1


def _booted(**kwargs) -> tuple[SimFirmware, _Host]:
    host = _Host()
    fw = SimFirmware(host, **kwargs)
    fw.flush()
    return fw, host


def test_the_watchdog_is_armed_by_set_watchdog_only():
    fw, _ = _booted(watchdog_ms=10)
    s = _Session(fw)
    s.send(m.encode("ping", req=2, data=0))
    assert not fw.watchdog_armed and not fw.watchdog_enabled
    s.send(m.encode("set_watchdog", req=3, timeout_ms=50))
    assert fw.watchdog_armed and fw.watchdog_ms == 50
    _Session(fw, req=9)  # a new host session keeps it armed
    assert fw.watchdog_armed


def test_config_output_drives_the_safe_value_once_and_unconfigured_outputs_are_refused():
    fw, host = _booted()
    s = _Session(fw)
    s.send(m.encode("set_output", req=2, pin=3, value=1))
    s.send(m.encode("schedule_at_clock", req=3, action=1, clock=10**12, pin=3, value=1,
                    duration=0))  # fmt: skip
    errors = {x["req"]: x for x in host.named("error")}
    assert errors[2]["code"] == errors[3]["code"] == m.ERR_NOT_CONFIGURED
    assert "output 3 is not configured" in errors[2]["message"]
    s.send(m.encode("config_output", req=4, pin=3, safe_value=1))
    assert fw.outputs[3] == 1 and fw.output_log[-1].cause == "config"
    s.send(m.encode("set_output", req=5, pin=3, value=0))
    s.send(m.encode("config_output", req=6, pin=3, safe_value=1))  # the same: no change
    assert fw.outputs[3] == 0
    s.send(m.encode("config_output", req=7, pin=3, safe_value=0))  # changed: driven
    s.send(m.encode("set_output", req=8, pin=3, value=1))
    s.send(m.encode("config_output", req=9, pin=3, safe_value=1))
    assert fw.outputs[3] == 1 and fw.safe_values[3] == 1


def test_an_unknown_command_answers_error_1_with_its_req_and_skips_the_rest():
    fw, host = _booted()
    s = _Session(fw)
    pong_id = m.BY_NAME["pong"].id  # a response id sent as a command is unknown too
    for bad in (bytes((0x3E, 0x21, 0x00, 1, 2, 3)), bytes((pong_id, 0x22, 0x00, 0, 0, 0, 0))):
        s.send(m.encode("ping", req=1, data=0), bad, m.encode("ping", req=3, data=0))
    assert [x["req"] for x in host.named("pong")] == [1, 1]
    assert [(x["req"], x["code"]) for x in host.named("error")] == [(0x21, 1), (0x22, 1)]
    faults = host.named("fault")
    assert "unknown command id 0x3e at payload byte 7: 13 bytes skipped" in faults[0]["message"]
    assert [n for n, _ in fw.executed].count("ping") == 2


def test_reset_ends_its_payload():
    fw, _ = _booted()
    s = _Session(fw)
    s.send(m.encode("reset", req=2), m.encode("ping", req=3, data=0))
    assert [n for n, _ in fw.executed] == ["identify", "reset"]


def test_a_new_host_syn_stops_reports_and_a_watchdog_trip_too_leaving_others_outputs():
    async def main() -> tuple[int, int, list[int]]:
        fw, _ = _booted()
        fw.start(asyncio.get_running_loop())
        s = _Session(fw)
        s.send(m.encode("set_encoder_report", req=2, encoder=0, interval_ms=5))
        running = len(fw._report_tasks)
        _Session(fw, req=50)  # a new host
        after_syn = len(fw._report_tasks)
        s = _Session(fw, req=60)
        s.send(m.encode("config_output", req=61, pin=1, safe_value=1),
               m.encode("set_output", req=62, pin=1, value=0),
               m.encode("set_encoder_report", req=63, encoder=0, interval_ms=5))  # fmt: skip
        fw.outputs[6] = 1  # an output nobody configured (as the board left it)
        fw._trip_watchdog(time.monotonic(), 0.2)
        outputs = list(fw.outputs)
        assert not fw._report_tasks
        fw.stop()
        return running, after_syn, outputs

    running, after_syn, outputs = asyncio.run(main())
    assert running == 1 and after_syn == 0
    assert outputs[1] == 1 and outputs[6] == 1  # configured: safe; unconfigured: untouched


def test_with_the_host_gone_the_send_queue_is_bounded_and_drops_are_reported():
    fw, host = _booted()
    _Session(fw)  # a host that then never acknowledges anything
    for i in range(1000):
        fw.set_input(2, (i + 1) % 2)
        if i == 20:  # the window is full: these wait in the queue, and go first
            for _ in range(20):
                fw._event("encoder_report", encoder=0, count=0, clock=0)
    ep = fw.endpoint
    queued = sum(map(len, ep._pending))
    assert queued <= TX_QUEUE_BYTES and ep.in_flight == 16
    assert fw.tx_dropped["encoder_report"] == 20  # dropped first
    assert fw.tx_dropped["input_edge"] > 0
    dropped = dict(fw.tx_dropped)
    host.frames.clear()
    _Session(fw, req=77)  # the next host, which acknowledges what it gets
    for _ in range(40):
        last = host.frames[-1].seq
        fw.receive(encode_frame(0, (last + 1) & 0xFF, b""))
    overflow = [x for x in host.named("fault") if x["code"] == m.FAULT_QUEUE_OVERFLOW]
    assert len(overflow) == 1
    text = overflow[0]["message"]
    assert f"{dropped['encoder_report']} encoder_report" in text and "input_edge" in text
    edges = host.named("input_edge")
    assert edges and edges[-1]["value"] == 0  # the newest edge (the 1000th: 0) is kept
    assert fw.tx_dropped == {}


def test_a_clock_action_fired_late_is_reported_after_its_action_done():
    fw, host = _booted()
    _Session(fw)
    fw.configured[2] = True
    late = _Scheduled(5, "clock", fw.clock() - 3000, 0, 2, 1, 0)  # 3 ms late at 1 MHz
    fw._scheduled[5] = late
    fw._fire(late)
    names = [x.name for x in host.messages()]
    assert names[-2:] == ["action_done", "fault"]
    fault = host.named("fault")[-1]
    assert fault["code"] == m.FAULT_LATE_ACTION and "action 5 fired" in fault["message"]
    on_time = _Scheduled(6, "clock", fw.clock() + 10, 0, 2, 1, 0)
    fw._scheduled[6] = on_time
    fw._fire(on_time)
    assert fw.late_faults == 1


@pytest.mark.parametrize(("baud", "rto_min"), [(None, 0.04), (250000, 0.0506), (9600, 0.8169)])
def test_the_firmwares_rto_bounds_follow_its_baud_rate(baud, rto_min):
    fw, _ = _booted(baud=baud)
    assert fw.endpoint.rtt.min_rto == pytest.approx(rto_min, abs=1e-3)
    assert fw.endpoint.rtt.rto == pytest.approx(max(0.1, rto_min), abs=1e-3)


class _Compare:
    """A compare unit that records what the firmware asks of it."""

    def __init__(self, t0: float) -> None:
        self.t0, self.disarmed = t0, []

    def drives(self, pin: int) -> bool:
        return pin == 2

    def arm(self, key, pin, value, count, duration_s) -> None:  # pragma: no cover - unused
        raise AssertionError("armed through _scheduled directly in this test")

    def disarm(self, key: int, at: float) -> bool:
        self.disarmed.append(key)
        return True

    def time_of_count(self, count: int) -> float | None:
        return self.t0 + count / 1000.0


def test_a_cancel_after_the_compare_fired_reports_the_stroke_first_and_before_it_disarms():
    from sim_hardware.mcu.encoder import BeltEncoder

    fw, host = _booted()
    s = _Session(fw)
    fw.configured[2] = True
    now = time.monotonic()
    fw.encoder = BeltEncoder(speed_mm_s=1000.0, t0=now)  # 1 count per ms from now
    fw.compare = _Compare(now)
    passed = _Scheduled(7, "count", 5, 0, 2, 1, 0, compare=1)  # reached 5 ms after now
    ahead = _Scheduled(8, "count", 10_000_000, 0, 2, 1, 0, compare=2)
    fw._scheduled.update({7: passed, 8: ahead})
    while fw.encoder.count_at(time.monotonic()) < 6:
        pass
    s.send(m.encode("cancel_action", req=20, action=7), m.encode("cancel_action", req=21, action=8))
    msgs = [(x.name, x.fields.get("req")) for x in host.messages() if x.name != "started"]
    assert msgs[-3:] == [("action_done", None), ("error", 20), ("ok", 21)], msgs
    done = host.named("action_done")[-1]
    assert done["action"] == 7 and done["count"] == 5  # the compare's count, not this loop's
    assert fw.compare.disarmed == [2] and fw._scheduled == {}
