"""Messages carried in frame payloads: one id byte, then fixed fields, little-endian.

A payload is a concatenation of whole messages; a message never spans frames. Field types:
``B`` u8, ``H`` u16, ``I`` u32, ``i`` i32, ``Q`` u64, ``q`` i64, ``s`` string (u8 length + UTF-8, at
most 200 bytes). Ids 0x01-0x3F are host->MCU commands, 0x40-0x7F MCU->host responses,
0x80-0xBF MCU->host asynchronous events. The table below is the single source of truth; the
spec (docs/mcu-protocol.md) lists the same table.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from typing import Any

MAX_STRING = 200


class MessageError(ValueError):
    """A payload that does not decode: names the byte offset and what was wrong."""


@dataclass(frozen=True)
class MessageSpec:
    id: int
    name: str
    fields: tuple[tuple[str, str], ...]

    @property
    def has_strings(self) -> bool:
        return any(t == "s" for _, t in self.fields)


# Joint setpoints of the arm messages: i32 micro-units (urad for a revolute joint, um for a
# prismatic one); a firmware with fewer joints ignores (and reports 0 for) the rest.
MAX_JOINTS = 6
JOINT_FIELDS = tuple(f"p{i}:i" for i in range(MAX_JOINTS))
JOINT_NAMES = tuple(f"p{i}" for i in range(MAX_JOINTS))


def _spec(mid: int, name: str, *fields: str) -> MessageSpec:
    parsed = tuple((f.split(":")[0], f.split(":")[1]) for f in fields)
    return MessageSpec(mid, name, parsed)


# fmt: off
SPECS: tuple[MessageSpec, ...] = (
    # host -> MCU commands
    _spec(0x01, "identify", "req:H"),
    _spec(0x02, "ping", "req:H", "data:I"),
    _spec(0x03, "get_clock", "req:H"),
    _spec(0x04, "heartbeat"),
    _spec(0x05, "set_watchdog", "req:H", "timeout_ms:H"),
    _spec(0x06, "config_output", "req:H", "pin:B", "safe_value:B"),
    _spec(0x07, "set_output", "req:H", "pin:B", "value:B"),
    _spec(0x08, "schedule_at_clock", "req:H", "action:H", "clock:Q", "pin:B", "value:B",
          "duration:I"),
    _spec(0x09, "schedule_at_count", "req:H", "action:H", "encoder:B", "count:q", "pin:B",
          "value:B", "duration:I"),
    _spec(0x0A, "cancel_action", "req:H", "action:H"),
    _spec(0x0B, "get_inputs", "req:H"),
    _spec(0x0C, "get_encoder", "req:H", "encoder:B"),
    _spec(0x0D, "set_encoder_report", "req:H", "encoder:B", "interval_ms:H"),
    _spec(0x0E, "get_stats", "req:H"),
    _spec(0x0F, "reset", "req:H"),
    # protocol 2: the rest of a command list that does not fit identify_response (spec 5)
    _spec(0x30, "get_commands", "req:H", "offset:B"),
    # arm (protocol 2, docs/mcu-protocol.md section 12): timed joint segments, suction, vacuum
    _spec(0x10, "config_motion", "req:H", "joints:B", "safety_pin:B", "safety_level:B",
          "stop_ms:H"),
    _spec(0x11, "queue_joint_segment", "req:H", "seg:H", "flags:B", "start:Q", "duration:I",
          *JOINT_FIELDS),
    _spec(0x12, "stop_motion", "req:H"),
    _spec(0x13, "resume_motion", "req:H"),
    _spec(0x14, "get_motion", "req:H"),
    _spec(0x15, "set_suction", "req:H", "on:B"),
    _spec(0x16, "get_vacuum", "req:H"),
    _spec(0x17, "config_vacuum", "req:H", "grip_pa:I", "report_ms:H"),
    # MCU -> host responses (req echoes the command's req)
    _spec(0x41, "identify_response", "req:H", "protocol:H", "rx_window:B", "max_payload:B",
          "clock_freq:I", "outputs:B", "inputs:B", "encoders:B", "firmware:s", "version:s",
          "commands:s"),
    _spec(0x42, "pong", "req:H", "data:I"),
    _spec(0x43, "clock", "req:H", "clock:Q"),
    _spec(0x44, "ok", "req:H"),
    _spec(0x45, "error", "req:H", "code:B", "message:s"),
    _spec(0x46, "inputs", "req:H", "bits:I"),
    _spec(0x47, "encoder_state", "req:H", "encoder:B", "count:q", "clock:Q"),
    _spec(0x48, "stats", "req:H", "rx_frames:I", "rx_bad:I", "naks_sent:I", "retransmits:I",
          "duplicates:I", "rx_garbage:I"),
    _spec(0x49, "commands", "req:H", "offset:B", "total:B", "names:s"),
    # arm answers
    _spec(0x50, "motion_state", "req:H", "state:B", "reason:B", "queued:B", "free:B", "seg:H",
          "clock:Q", *JOINT_FIELDS),
    _spec(0x51, "vacuum", "req:H", "pressure_pa:I", "valve:B", "gripped:B", "clock:Q"),
    # MCU -> host events
    _spec(0x80, "started", "reason:B", "clock:Q"),
    _spec(0x81, "watchdog_tripped", "clock:Q", "silent_ms:I"),
    _spec(0x82, "input_edge", "pin:B", "value:B", "clock:Q", "count:q"),
    _spec(0x83, "encoder_report", "encoder:B", "count:q", "clock:Q"),
    _spec(0x84, "action_done", "action:H", "pin:B", "value:B", "clock:Q", "count:q"),
    _spec(0x85, "fault", "code:B", "message:s"),
    # arm events
    _spec(0x88, "motion_stopped", "reason:B", "seg:H", "clock:Q", *JOINT_FIELDS),
    _spec(0x89, "grip_changed", "gripped:B", "pressure_pa:I", "clock:Q"),
    _spec(0x8A, "vacuum_report", "pressure_pa:I", "valve:B", "clock:Q"),
    # vehicle drive (protocol 2, docs/mcu-protocol.md section 13; issue 15): timed wheel
    # velocity setpoints on the MCU clock (i32 um/s), wheel encoders (i64 counts), the
    # protective field (safety lidar OSSD) and e-stop inputs
    _spec(0x20, "config_drive", "req:H", "left:B", "right:B", "counts_per_m:I",
          "max_speed:I", "max_accel:I", "stop_decel:I", "field_pin:B", "field_level:B",
          "estop_pin:B", "estop_level:B"),
    _spec(0x21, "queue_wheel_setpoint", "req:H", "clock:Q", "left:i", "right:i", "hold_ms:H"),
    _spec(0x22, "stop_drive", "req:H"),
    _spec(0x23, "resume_drive", "req:H"),
    _spec(0x24, "get_drive", "req:H"),
    _spec(0x25, "config_wheel_report", "req:H", "interval_ms:H"),
    _spec(0x26, "config_battery_report", "req:H", "interval_ms:H"),
    _spec(0x58, "drive_state", "req:H", "state:B", "reason:B", "queued:B", "free:B",
          "safety:B", "clock:Q", "left_count:q", "right_count:q", "left:i", "right:i"),
    _spec(0x90, "wheel_report", "clock:Q", "left_count:q", "right_count:q", "left:i",
          "right:i", "safety:B"),
    _spec(0x91, "drive_stopped", "reason:B", "clock:Q", "left_count:q", "right_count:q"),
    _spec(0x92, "safety_changed", "safety:B", "clock:Q", "left_count:q", "right_count:q"),
    _spec(0x93, "battery_report", "clock:Q", "soc_permille:H", "voltage_mv:I", "current_ma:i",
          "charging:B"),
)
# fmt: on

BY_ID: dict[int, MessageSpec] = {s.id: s for s in SPECS}
BY_NAME: dict[str, MessageSpec] = {s.name: s for s in SPECS}

# error codes of the "error" response
ERR_UNKNOWN_COMMAND = 1
ERR_BAD_ARGUMENT = 2
ERR_IN_PAST = 3
ERR_BUSY = 4
ERR_NOT_FOUND = 5
ERR_NOT_CONFIGURED = 6  # an output used before any config_output declared it
ERR_HALTED = 7  # motion halted (safety input, watchdog, underrun) until resumed
ERR_QUEUE_FULL = 8  # a bounded command queue (the arm's segment queue) has no room

# arm: queue_joint_segment flags, motion_state.state, motion_stopped.reason (spec 12)
SEG_END = 0x01  # the move ends at rest with this segment: the queue running empty is normal
MOTION_IDLE = 0
MOTION_WAITING = 1  # a segment is queued, its start is still ahead: holding position
MOTION_MOVING = 2
MOTION_STOPPING = 3  # a controlled stop is under way
MOTION_HALTED = 4  # stopped by a safety input, the watchdog or an underrun: resume_motion
STOP_END_OF_MOVE = 0
STOP_UNDERRUN = 1
STOP_SAFETY = 2
STOP_WATCHDOG = 3
STOP_COMMAND = 4
STOP_NAMES = ("end of move", "queue underrun", "safety input", "watchdog", "stop command")
NO_PIN = 0xFF  # config_motion.safety_pin: no safety input

# vehicle drive (section 13; issue 15): drive_state.state, drive_stopped.reason, safety bits
DRIVE_IDLE = 0
DRIVE_WAITING = 1  # a setpoint is queued, its clock is still ahead: standing
DRIVE_MOVING = 2
DRIVE_STOPPING = 3  # a stop ramp is under way
DRIVE_HALTED = 4  # stopped by underrun, a safety input or the watchdog: resume_drive
DRIVE_STOP_UNDERRUN = 1
DRIVE_STOP_FIELD = 2
DRIVE_STOP_WATCHDOG = 3
DRIVE_STOP_COMMAND = 4
DRIVE_STOP_ESTOP = 5
DRIVE_STOP_NAMES = {
    1: "setpoint underrun", 2: "protective field", 3: "watchdog", 4: "stop command", 5: "e-stop",
}
SAFETY_FIELD = 0x01  # safety bit: the protective field is violated (OSSD off)
SAFETY_ESTOP = 0x02  # safety bit: the e-stop circuit is open

# reasons of the "started" event
START_POWER_ON = 0
START_RESET_COMMAND = 1
START_WATCHDOG = 2
START_SIMULATED = 3

# fault codes
FAULT_BAD_PAYLOAD = 1
FAULT_LATE_ACTION = 2
FAULT_INPUT = 3
FAULT_QUEUE_OVERFLOW = 4  # the MCU's bounded send queue dropped messages

_FIXED = {"B": "B", "H": "H", "I": "I", "i": "i", "Q": "Q", "q": "q"}


@dataclass(frozen=True, slots=True)
class Message:
    """A decoded message: its name and its fields by name."""

    name: str
    fields: dict[str, Any]

    def __getitem__(self, key: str) -> Any:
        return self.fields[key]


class _Codec:
    """Precompiled struct for messages without strings; a generic path for the rest."""

    def __init__(self, spec: MessageSpec) -> None:
        self.spec = spec
        self.names = tuple(n for n, _ in spec.fields)
        self.fixed: struct.Struct | None = None
        if not spec.has_strings:
            self.fixed = struct.Struct("<B" + "".join(_FIXED[t] for _, t in spec.fields))

    def encode(self, values: dict[str, Any]) -> bytes:
        spec = self.spec
        try:
            args = [values[n] for n in self.names]
        except KeyError as exc:
            raise MessageError(f"{spec.name}: missing field {exc.args[0]!r}") from None
        extra = set(values) - set(self.names)
        if extra:
            raise MessageError(f"{spec.name}: unknown field(s) {sorted(extra)}")
        if self.fixed is not None:
            try:
                return self.fixed.pack(spec.id, *args)
            except struct.error as exc:
                raise MessageError(f"{spec.name}: {exc} (fields {values})") from None
        out = bytearray((spec.id,))
        for (name, kind), value in zip(spec.fields, args, strict=True):
            if kind == "s":
                raw = str(value).encode()
                if len(raw) > MAX_STRING:
                    raise MessageError(f"{spec.name}.{name}: string longer than {MAX_STRING}")
                out.append(len(raw))
                out += raw
            else:
                try:
                    out += struct.pack("<" + _FIXED[kind], value)
                except struct.error as exc:
                    raise MessageError(f"{spec.name}.{name}={value!r}: {exc}") from None
        return bytes(out)

    def decode(self, data: bytes, offset: int) -> tuple[Message, int]:
        spec = self.spec
        if self.fixed is not None:
            end = offset + self.fixed.size
            if end > len(data):
                raise MessageError(
                    f"byte {offset}: {spec.name} needs {self.fixed.size} bytes, "
                    f"{len(data) - offset} left"
                )
            values = self.fixed.unpack_from(data, offset)
            return Message(spec.name, dict(zip(self.names, values[1:], strict=True))), end
        pos = offset + 1
        fields: dict[str, Any] = {}
        for name, kind in spec.fields:
            if kind == "s":
                if pos >= len(data):
                    raise MessageError(f"byte {pos}: {spec.name}.{name}: length byte missing")
                n = data[pos]
                if pos + 1 + n > len(data):
                    raise MessageError(
                        f"byte {pos}: {spec.name}.{name}: string of {n} bytes runs past the end"
                    )
                try:
                    fields[name] = data[pos + 1 : pos + 1 + n].decode()
                except UnicodeDecodeError as exc:
                    raise MessageError(f"byte {pos}: {spec.name}.{name}: {exc}") from None
                pos += 1 + n
            else:
                st = struct.Struct("<" + _FIXED[kind])
                if pos + st.size > len(data):
                    raise MessageError(f"byte {pos}: {spec.name}.{name}: truncated")
                (fields[name],) = st.unpack_from(data, pos)
                pos += st.size
        return Message(spec.name, fields), pos


_CODECS_BY_ID: dict[int, _Codec] = {s.id: _Codec(s) for s in SPECS}
_CODECS_BY_NAME: dict[str, _Codec] = {s.name: _Codec(s) for s in SPECS}


def encode(name: str, **fields: Any) -> bytes:
    """Encode one message by name; raises MessageError naming the bad field."""
    codec = _CODECS_BY_NAME.get(name)
    if codec is None:
        raise MessageError(f"unknown message {name!r}")
    return codec.encode(fields)


def decode_payload(payload: bytes) -> list[Message]:
    """All messages of one payload; raises MessageError with the byte offset of the problem."""
    out: list[Message] = []
    pos = 0
    n = len(payload)
    while pos < n:
        codec = _CODECS_BY_ID.get(payload[pos])
        if codec is None:
            raise MessageError(f"byte {pos}: unknown message id 0x{payload[pos]:02x}")
        msg, pos = codec.decode(payload, pos)
        out.append(msg)
    return out


def decode_one(payload: bytes, offset: int = 0) -> tuple[Message, int]:
    """One message at ``offset`` and the offset after it (for a receiver that stops on error)."""
    if offset >= len(payload):
        raise MessageError(f"byte {offset}: no message here")
    codec = _CODECS_BY_ID.get(payload[offset])
    if codec is None:
        raise MessageError(f"byte {offset}: unknown message id 0x{payload[offset]:02x}")
    return codec.decode(payload, offset)
