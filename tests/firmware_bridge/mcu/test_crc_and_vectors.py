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
