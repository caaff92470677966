"""Framing of line devices: a pure, incremental decoder (bytes in, frames out) and its encoder.

Scanners and scales end each reading with CR LF, CR or LF, or wrap it in STX ... ETX. The
decoder is fed whatever chunks the OS delivers and returns whole frames. It never cuts or
merges a reading silently: a line longer than ``max_len`` becomes one ``oversize`` error at its
terminator (the decoder resynchronises there), bytes outside an STX/ETX frame become an
``outside-frame`` error, an STX that interrupts a frame makes the partial frame a ``cut`` error,
and what is pending when the stream ends becomes ``incomplete`` on ``flush()``. Every byte fed
is accounted for: frames and errors carry their stream ``offset`` and ``size``, whitespace
between STX/ETX frames is counted in ``ignored``, and the rest is ``pending``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, NamedTuple, get_args

Framing = Literal["crlf", "cr", "lf", "stx-etx"]
FRAMINGS: tuple[str, ...] = get_args(Framing)

STX = 0x02
ETX = 0x03
CR = 0x0D
LF = 0x0A
_BETWEEN_FRAMES = b"\r\n\t \x00"  # what devices commonly send between STX/ETX frames


class Frame(NamedTuple):
    """One complete reading: ``payload`` without delimiters. A named tuple: one is made per
    reading, and a tuple is several times cheaper to build than a frozen dataclass."""

    payload: bytes
    offset: int  # stream offset of the frame's first byte (its STX, or the line's first byte)
    size: int  # stream bytes it covers, delimiters included


@dataclass(frozen=True, slots=True)
class FrameError:
    """Bytes that did not make a valid frame, with the reason; nothing is dropped unreported."""

    kind: Literal["oversize", "outside-frame", "cut", "incomplete"]
    detail: str
    raw: bytes  # the first max_len bytes of what was refused
    offset: int
    size: int


def forbidden_bytes(framing: Framing) -> bytes:
    """Bytes a payload must not contain under ``framing`` (they would end the frame)."""
    if framing in ("crlf", "lf"):
        return b"\n"
    if framing == "cr":
        return b"\r"
    return bytes((STX, ETX))


def encode(payload: bytes, framing: Framing) -> bytes:
    """Frame one payload; ValueError if it contains a delimiter of ``framing``."""
    for b in forbidden_bytes(framing):
        if b in payload:
            raise ValueError(f"payload contains byte 0x{b:02x}, a delimiter of {framing} framing")
    if framing == "crlf":
        return payload + b"\r\n"
    if framing == "lf":
        return payload + b"\n"
    if framing == "cr":
        return payload + b"\r"
    return b"\x02" + payload + b"\x03"


Output = Frame | FrameError


class LineDecoder:
    """Incremental decoder for one byte stream. ``feed`` and ``flush`` return what completed.

    ``crlf`` ends a line at LF and removes one CR before it, so devices that send a bare LF are
    read too; ``cr`` and ``lf`` end a line at that byte exactly. Empty lines are frames with an
    empty payload (some scanners send one for a no-read); the caller decides what they mean.
    """

    def __init__(self, framing: Framing, max_len: int = 256) -> None:
        if framing not in FRAMINGS:
            raise ValueError(f"unknown framing {framing!r}; expected one of {', '.join(FRAMINGS)}")
        if max_len < 1:
            raise ValueError("max_len must be at least 1")
        self.framing: Framing = framing
        self.max_len = max_len
        self._stx = framing == "stx-etx"
        self._term = CR if framing == "cr" else LF
        self._strip_cr = framing == "crlf"
        self._keep = max_len + (1 if self._strip_cr else 0)  # bytes of a line worth keeping
        self._pos = 0  # bytes fed so far
        self._start = 0  # stream offset of the pending unit (line, frame, or gap between frames)
        self._buf = bytearray()  # kept prefix of the pending unit's payload
        self._len = 0  # true payload length of the pending unit
        self._ends_cr = False  # the pending unit's last byte is a CR
        self._inside = False  # stx-etx: inside a frame
        self._junk = False  # stx-etx: the gap before the next STX holds non-whitespace
        self.ignored = 0  # whitespace bytes between STX/ETX frames

    @property
    def pending(self) -> int:
        """Bytes fed that belong to no frame or error yet."""
        return self._pos - self._start

    @property
    def offset(self) -> int:
        return self._pos

    def feed(self, data: bytes) -> list[Output]:
        out: list[Output] = []
        if self._stx:
            self._feed_stx(data, out)
        else:
            self._feed_lines(data, out)
        self._pos += len(data)
        return out

    def flush(self) -> list[Output]:
        """End of stream (disconnect): what is pending is reported, and decoding starts afresh."""
        out: list[Output] = []
        end = self._pos
        if self._stx and not self._inside:
            self._close_gap(end, out)
        elif end > self._start:
            what = "frame" if self._stx else "line"
            out.append(
                FrameError(
                    "incomplete",
                    f"{what} of {self._len} bytes without its terminator when the stream ended",
                    bytes(self._buf[: self.max_len]),
                    self._start,
                    end - self._start,
                )
            )
        self._reset(end)
        self._inside = False
        return out

    # ---- shared -----------------------------------------------------------------------------
    def _take(self, chunk: bytes) -> None:
        k = len(chunk)
        if not k:
            return
        self._len += k
        self._ends_cr = chunk[-1] == CR
        room = self._keep - len(self._buf)
        if k <= room:
            self._buf += chunk
        elif room > 0:
            self._buf += chunk[:room]

    def _reset(self, start: int) -> None:
        self._start = start
        self._buf.clear()
        self._len = 0
        self._ends_cr = False
        self._junk = False

    def _oversize(self, end: int, length: int, delimiters: str) -> FrameError:
        return FrameError(
            "oversize",
            f"reading of {length} bytes exceeds the maximum of {self.max_len}; refused "
            f"whole and resynchronised at its {delimiters}",
            bytes(self._buf[: self.max_len]),
            self._start,
            end - self._start,
        )

    # ---- CR / LF / CR LF ----------------------------------------------------------------------
    def _feed_lines(self, data: bytes, out: list[Output]) -> None:
        base, i, n, term = self._pos, 0, len(data), self._term
        while i < n:
            j = data.find(term, i)
            if j < 0:
                self._take(data[i:])
                return
            end = base + j + 1
            if not self._len:  # fast path: the whole line is in this chunk
                length = j - i - (1 if self._strip_cr and j > i and data[j - 1] == CR else 0)
                if length <= self.max_len:
                    out.append(Frame(data[i : i + length], self._start, end - self._start))
                    self._start = end
                    i = j + 1
                    continue
            self._take(data[i:j])
            length = self._len - (1 if self._strip_cr and self._ends_cr else 0)
            if length <= self.max_len:
                out.append(Frame(bytes(self._buf[:length]), self._start, end - self._start))
            else:
                out.append(self._oversize(end, length, "terminator"))
            self._reset(end)
            i = j + 1

    # ---- STX ... ETX --------------------------------------------------------------------------
    def _feed_stx(self, data: bytes, out: list[Output]) -> None:
        base, i, n = self._pos, 0, len(data)
        while i < n:
            if not self._inside:
                if not self._len and data[i] == STX:  # fast path: no gap before this frame
                    self._start = base + i
                    self._inside = True
                    i += 1
                    continue
                j = data.find(STX, i)
                gap = data[i:] if j < 0 else data[i:j]
                if not self._junk and gap.strip(_BETWEEN_FRAMES):
                    self._junk = True
                self._take(gap)
                if j < 0:
                    return
                self._close_gap(base + j, out)
                self._inside = True
                i = j + 1
                continue
            e = data.find(ETX, i)
            if not self._len and 0 <= e - i <= self.max_len and data.find(STX, i, e) < 0:
                end = base + e + 1  # fast path: the whole frame is in this chunk
                out.append(Frame(data[i:e], self._start, end - self._start))
                self._start = end
                self._inside = False
                i = e + 1
                continue
            s = data.find(STX, i)
            if e < 0 and s < 0:
                self._take(data[i:])
                return
            if e >= 0 and (s < 0 or e < s):
                self._take(data[i:e])
                end = base + e + 1
                if self._len <= self.max_len:
                    out.append(Frame(bytes(self._buf), self._start, end - self._start))
                else:
                    out.append(self._oversize(end, self._len, "ETX"))
                self._reset(end)
                self._inside = False
                i = e + 1
            else:
                self._take(data[i:s])
                at = base + s
                out.append(
                    FrameError(
                        "cut",
                        f"frame of {self._len} bytes interrupted by a new STX before its ETX",
                        bytes(self._buf[: self.max_len]),
                        self._start,
                        at - self._start,
                    )
                )
                self._reset(at)
                i = s + 1

    def _close_gap(self, end: int, out: list[Output]) -> None:
        """The bytes between two frames: whitespace is ignored, anything else is reported."""
        size = end - self._start
        if size and self._junk:
            out.append(
                FrameError(
                    "outside-frame",
                    f"{size} bytes outside any STX ... ETX frame",
                    bytes(self._buf[: self.max_len]),
                    self._start,
                    size,
                )
            )
        else:
            self.ignored += size
        self._reset(end)
