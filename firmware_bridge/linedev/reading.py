"""What one frame's payload means: a reading, a no-read, or a refused reading.

A pure function of the device's config and the payload bytes, so the driver and the property
tests share it. Line noise (a loose connector, EMI on an RS-232 run, a device rebooting) makes
frames of garbage: NUL bytes, control characters, printable junk. None of it may reach the
cell as a label, so a reading is refused (a ``LineError`` of kind ``invalid-reading``) when it
holds a control character, is blank, or does not fully match the device's ``label_pattern``.
"""

from __future__ import annotations

import re
import unicodedata

from firmware_bridge.linedev.config import LineDeviceConfig
from firmware_bridge.linedev.events import LineError, NoRead, Read

INVALID = "invalid-reading"
_SHOWN = 40  # characters of a refused reading quoted in its detail


def shown(text: str) -> str:
    """``text`` quoted with every control or non-ASCII character escaped, cut to 40 chars, so
    a log line or an MQTT payload never carries the noise itself."""
    cut = text[:_SHOWN]
    body = cut.encode("ascii", "backslashreplace").decode("ascii")
    body = "".join(c if 0x20 <= ord(c) < 0x7F else f"\\x{ord(c):02x}" for c in body)
    more = f"... ({len(text)} chars)" if len(text) > _SHOWN else ""
    return f"'{body}'{more}"


def why_invalid(text: str, pattern: re.Pattern[str] | None) -> str | None:
    """Why ``text`` is not a valid reading, or None if it is one."""
    for i, c in enumerate(text):
        if unicodedata.category(c) == "Cc":  # C0 (incl. NUL, TAB), DEL, C1
            return f"control character 0x{ord(c):02x} at {i}"
    if not text.strip():
        return "blank (only spaces)"
    if pattern is not None and pattern.fullmatch(text) is None:
        return f"does not match label_pattern {pattern.pattern!r}"
    return None


def classify(
    config: LineDeviceConfig, raw: bytes, wall: float, mono: float
) -> Read | NoRead | LineError:
    """The event one frame payload (delimiters removed) makes under ``config``."""
    name = config.name
    try:
        text = raw.decode(config.encoding)
    except UnicodeDecodeError as exc:
        return LineError(
            name,
            "undecodable",
            f"byte 0x{raw[exc.start]:02x} at {exc.start} is not {config.encoding}",
            raw,
            wall,
            mono,
        )
    token = config.no_read_token
    if token is not None and text.strip() == token:
        return NoRead(name, "token", raw, wall, mono)
    if not text and config.empty_is_no_read:
        return NoRead(name, "empty", raw, wall, mono)
    why = why_invalid(text, config.compiled_pattern)
    if why is not None:
        return LineError(name, INVALID, f"reading {shown(text)} refused: {why}", raw, wall, mono)
    return Read(name, text, raw, wall, mono)
