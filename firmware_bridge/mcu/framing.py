"""Frames of the MCU link: sync byte, length, sequence, ack, flags, payload, CRC-16.

Layout (all integers unsigned; the CRC big-endian)::

    0     1    2    3    4      5 .. 5+LEN-1   5+LEN  6+LEN
    SYNC  LEN  SEQ  ACK  FLAGS  PAYLOAD         CRC_HI CRC_LO

``SYNC`` is 0x7E. The CRC (CRC-16/CCITT-FALSE) covers LEN through the last payload byte. No
byte stuffing: the receiver hunts for SYNC and accepts a candidate only when LEN is in range
and the CRC matches, so a 0x7E inside a payload costs at most a short re-hunt. A frame that
starts but does not complete within ``partial_timeout_s`` is abandoned (its sync byte was
probably garbage that announced a long length), so one corrupt byte cannot swallow the next
frames of an idle line.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass, field

from firmware_bridge.mcu.crc import crc16

SYNC = 0x7E
HEADER_LEN = 5  # SYNC LEN SEQ ACK FLAGS
TRAILER_LEN = 2  # CRC
OVERHEAD = HEADER_LEN + TRAILER_LEN
MAX_PAYLOAD = 248  # a frame is at most 255 bytes

FLAG_SYN = 0x01  # sequence numbering of the sender (re)starts with this frame's SEQ
FLAG_NAK = 0x02  # receiver saw a bad or out-of-order frame: resend from ACK now
KNOWN_FLAGS = FLAG_SYN | FLAG_NAK
# A control frame with both: an unsynchronised receiver's NAK (its ACK means nothing).
FLAG_UNAK = FLAG_SYN | FLAG_NAK

_HEADER = struct.Struct(">BBBBB")
_CRC = struct.Struct(">H")


@dataclass(frozen=True, slots=True)
class Frame:
    """One decoded frame. ``payload`` empty means a pure ACK/NAK control frame."""

    seq: int
    ack: int
    flags: int
    payload: bytes

    @property
    def is_control(self) -> bool:
        return not self.payload

    @property
    def syn(self) -> bool:
        return bool(self.flags & FLAG_SYN)

    @property
    def nak(self) -> bool:
        return bool(self.flags & FLAG_NAK)

    @property
    def unak(self) -> bool:
        """An unsynchronised NAK: "resend your SYN frame"; its ACK field is meaningless."""
        return not self.payload and self.flags & FLAG_UNAK == FLAG_UNAK


def encode_frame(seq: int, ack: int, payload: bytes = b"", flags: int = 0) -> bytes:
    """The bytes of one frame; raises ValueError on out-of-range fields."""
    if len(payload) > MAX_PAYLOAD:
        raise ValueError(f"payload of {len(payload)} bytes exceeds MAX_PAYLOAD={MAX_PAYLOAD}")
    if not (0 <= seq <= 255 and 0 <= ack <= 255):
        raise ValueError(f"seq ({seq}) and ack ({ack}) must be 0..255")
    if flags & ~KNOWN_FLAGS:
        raise ValueError(f"unknown flag bits 0x{flags & ~KNOWN_FLAGS:02x}")
    body = bytes((len(payload), seq, ack, flags)) + payload
    return bytes((SYNC,)) + body + _CRC.pack(crc16(body))


@dataclass
class DecoderStats:
    """What the decoder threw away, so a technician can see a noisy cable."""

    frames: int = 0
    crc_errors: int = 0
    length_errors: int = 0
    flag_errors: int = 0
    abandoned_partials: int = 0
    garbage_bytes: int = 0

    @property
    def bad_frames(self) -> int:
        return self.crc_errors + self.length_errors + self.flag_errors + self.abandoned_partials


@dataclass
class FrameDecoder:
    """Turns an arbitrary byte stream into valid frames; never raises on input.

    ``feed`` returns the frames completed by the new bytes and whether anything was
    discarded as bad since the last call (the caller decides whether to NAK).
    """

    partial_timeout_s: float = 0.02
    stats: DecoderStats = field(default_factory=DecoderStats)
    _buf: bytearray = field(default_factory=bytearray)
    _partial_since: float | None = None

    def feed(self, data: bytes, now: float = 0.0) -> tuple[list[Frame], bool]:
        buf = self._buf
        bad_before = self.stats.bad_frames
        if (
            buf
            and self._partial_since is not None
            and now - self._partial_since > self.partial_timeout_s
        ):
            # The pending candidate waited too long for its tail: treat its SYNC as garbage.
            self.stats.abandoned_partials += 1
            del buf[0]
            self.stats.garbage_bytes += 1
        buf += data
        frames: list[Frame] = []
        stats = self.stats
        while True:
            start = buf.find(SYNC)
            if start < 0:
                stats.garbage_bytes += len(buf)
                buf.clear()
                break
            if start:
                stats.garbage_bytes += start
                del buf[:start]
            if len(buf) < 2:
                break
            length = buf[1]
            if length > MAX_PAYLOAD:
                stats.length_errors += 1
                del buf[0]
                continue
            total = length + OVERHEAD
            if len(buf) < total:
                break
            body_end = total - TRAILER_LEN
            (crc,) = _CRC.unpack_from(buf, body_end)
            if crc16(memoryview(buf)[1:body_end]) != crc:
                stats.crc_errors += 1
                del buf[0]
                continue
            _, _, seq, ack, flags = _HEADER.unpack_from(buf, 0)
            if flags & ~KNOWN_FLAGS:
                stats.flag_errors += 1
                del buf[0]
                continue
            frames.append(Frame(seq, ack, flags, bytes(buf[HEADER_LEN:body_end])))
            stats.frames += 1
            del buf[:total]
        self._partial_since = now if buf else None
        return frames, stats.bad_frames != bad_before

    @property
    def pending(self) -> int:
        """Bytes held while waiting for the rest of a candidate frame."""
        return len(self._buf)
