"""The simulated firmware's protocol rules, fed frames directly (no pty, no event loop)."""

from __future__ import annotations

from firmware_bridge.mcu import messages as m
from firmware_bridge.mcu.framing import FLAG_SYN, FrameDecoder, encode_frame
from sim_hardware.mcu.firmware import SimFirmware


class _Host:
    """Collects and decodes what the firmware transmits."""

    def __init__(self) -> None:
        self.decoder = FrameDecoder()
        self.frames = []

    def __call__(self, data: bytes) -> None:
        self.frames += self.decoder.feed(data)[0]

    def messages(self) -> list[m.Message]:
        return [msg for f in self.frames if f.payload for msg in m.decode_payload(f.payload)]


def _booted() -> tuple[SimFirmware, _Host]:
    host = _Host()
    fw = SimFirmware(host)
    fw.flush()
    return fw, host


def test_boot_announces_started_in_a_syn_frame_and_ignores_frames_before_a_host_syn():
    fw, host = _booted()
    assert host.frames[0].syn and host.messages()[0].name == "started"
    fw.receive(encode_frame(0, 0, m.encode("ping", req=1, data=1)))  # no SYN yet
    assert [n for n, _ in fw.executed] == []
    assert fw.endpoint.counters.unsynced_dropped == 1


def test_host_syn_restarts_the_mcu_sequence_space_and_is_answered_in_a_syn_frame():
    fw, host = _booted()
    fw.receive(encode_frame(0, 0, m.encode("identify", req=9), FLAG_SYN))
    reply = host.frames[-1]
    assert reply.syn and reply.seq == 0 and reply.ack == 1
    (msg,) = m.decode_payload(reply.payload)
    assert msg.name == "identify_response" and msg["req"] == 9
    assert msg["firmware"] == "wolfpack-sim-mcu" and "schedule_at_count" in msg["commands"]


def test_duplicates_are_acked_not_executed_and_a_resent_syn_does_not_rewind():
    fw, host = _booted()
    syn = encode_frame(0, 0, m.encode("identify", req=1), FLAG_SYN)
    one = encode_frame(1, 0, m.encode("ping", req=2, data=20))
    two = encode_frame(2, 0, m.encode("ping", req=3, data=30))
    for data in (syn, one, two, syn, one, two):
        fw.receive(data)
    assert [n for n, _ in fw.executed] == ["identify", "ping", "ping"]
    assert fw.endpoint.counters.duplicates == 3
    assert host.frames[-1].ack == 3  # re-acknowledged


def test_undecodable_payload_is_reported_as_a_fault_and_earlier_messages_stand():
    fw, host = _booted()
    payload = m.encode("ping", req=5, data=55) + b"\xee\x01"
    fw.receive(encode_frame(0, 0, payload, FLAG_SYN))
    names = [msg.name for msg in host.messages()]
    assert "pong" in names
    fault = [msg for msg in host.messages() if msg.name == "fault"]
    assert fault and "unknown command id 0xee at payload byte 7" in fault[0]["message"]


def test_refusals_say_why():
    fw, host = _booted()
    fw.receive(encode_frame(0, 0, m.encode("identify", req=1), FLAG_SYN))
    fw.receive(encode_frame(1, 0, m.encode("set_output", req=2, pin=99, value=1)))
    fw.receive(encode_frame(2, 0, m.encode("cancel_action", req=3, action=7)))
    fw.receive(encode_frame(3, 0, m.encode("set_watchdog", req=4, timeout_ms=5)))
    errors = {msg["req"]: msg for msg in host.messages() if msg.name == "error"}
    assert (
        errors[2]["code"] == m.ERR_BAD_ARGUMENT
        and "output 99 does not exist" in errors[2]["message"]
    )
    assert errors[3]["code"] == m.ERR_NOT_FOUND
    assert "watchdog timeout must be >= 10 ms" in errors[4]["message"]
