"""CRC parameters and the worked frame of docs/mcu-protocol.md, checked against the code."""

from __future__ import annotations

import re
from pathlib import Path

from firmware_bridge.mcu import messages as m
from firmware_bridge.mcu.crc import CRC_CHECK, crc16
from firmware_bridge.mcu.framing import FLAG_NAK, FrameDecoder, encode_frame

SPEC = Path(__file__).resolve().parents[3] / "docs" / "mcu-protocol.md"


def _vector(name: str) -> bytes:
    """The hex bytes after a '<name>:' line inside the spec's test-vector block."""
    text = SPEC.read_text(encoding="utf-8")
    match = re.search(rf"^{re.escape(name)}:\s*((?:[0-9a-f]{{2}} ?)+)$", text, re.MULTILINE)
    assert match, f"test vector {name!r} missing from {SPEC.name}"
    return bytes.fromhex(match.group(1))


def test_crc_is_ccitt_false_with_the_standard_check_value():
    assert crc16(b"123456789") == CRC_CHECK == 0x29B1
    assert crc16(b"") == 0xFFFF


def test_spec_worked_data_frame_matches_the_encoder():
    frame = _vector("vector-ping-frame")
    payload = m.encode("ping", req=1, data=0x12345678)
    assert _vector("vector-ping-payload") == payload
    assert encode_frame(5, 3, payload) == frame
    frames, bad = FrameDecoder().feed(frame)
    assert not bad and len(frames) == 1
    assert (frames[0].seq, frames[0].ack, frames[0].payload) == (5, 3, payload)


def test_spec_worked_control_frames_match_the_encoder():
    assert encode_frame(0, 6) == _vector("vector-ack-frame")
    assert encode_frame(0, 6, b"", FLAG_NAK) == _vector("vector-nak-frame")


def test_every_message_of_the_code_is_in_the_spec_table():
    text = SPEC.read_text(encoding="utf-8")
    for spec in m.SPECS:
        assert re.search(rf"\|\s*0x{spec.id:02X}\s*\|\s*`{spec.name}`", text), spec.name


def test_spec_vectors_of_issue_19_match_the_encoder():
    """SYN frames, the unsynchronised NAK, a string message, several messages in a frame."""
    from firmware_bridge.mcu.framing import FLAG_SYN, FLAG_UNAK

    ident = m.encode("identify", req=0x1234)
    assert encode_frame(0, 0, ident, FLAG_SYN) == _vector("vector-syn-identify-frame")
    started = m.encode("started", reason=0, clock=0)
    assert encode_frame(0, 0, started, FLAG_SYN) == _vector("vector-started-frame")
    assert encode_frame(0, 0, b"", FLAG_UNAK) == _vector("vector-unak-frame")
    error = m.encode("error", req=7, code=m.ERR_NOT_CONFIGURED, message="output 9 not configured")
    assert error == _vector("vector-error-payload")
    assert encode_frame(2, 1, error) == _vector("vector-error-frame")
    multi = m.encode("ping", req=10, data=1) + m.encode("get_clock", req=11) + m.encode("heartbeat")
    assert multi == _vector("vector-multi-payload")
    assert encode_frame(1, 0, multi) == _vector("vector-multi-frame")
    assert [x.name for x in m.decode_payload(multi)] == ["ping", "get_clock", "heartbeat"]
    (frame,), bad = FrameDecoder().feed(_vector("vector-unak-frame"))
    assert not bad and frame.unak and frame.is_control
