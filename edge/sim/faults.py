"""The ``--faults`` schedule of `wolfpack sim`: what goes wrong, when, and for how long.

    brain-absent@10+20       the brain stops answering at t=10 s for 20 s
    brain-slow=200@5+10      the brain answers after 200 ms (past the deadline)
    plc-timeouts=0.3@20+10   30 % of the PLC's answers never come, from 20 s for 10 s
    plc-silent@30+2          the PLC answers nothing for 2 s (the node must stop the cell)
    serial-noise=0.001       1e-3 of the MCU line's bytes corrupted, the whole run
    broker-restart@40        the broker is killed and started again (5 s down by default)
    broker-restart@40+8      ... down for 8 s
    scanner-silent@15+5      the scanner sends nothing for 5 s
    estop@30+3               the e-stop is pressed for 3 s (a reset is needed after)

Items are separated by commas. Without ``@`` a fault starts at 0; without ``+`` it lasts the
whole run (or, for broker-restart, the default down time).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

# name -> (takes a value, what the value means, the value's valid range)
KINDS: dict[str, tuple[bool, str, tuple[float, float]]] = {
    "brain-absent": (False, "", (0, 0)),
    "brain-slow": (True, "answer latency in ms", (0, 60_000)),
    "plc-timeouts": (True, "share of PLC answers lost", (0, 1)),
    "plc-silent": (False, "", (0, 0)),
    "serial-noise": (True, "corrupted-byte rate on the MCU line", (0, 0.1)),
    "broker-restart": (False, "", (0, 0)),
    "scanner-silent": (False, "", (0, 0)),
    "estop": (False, "", (0, 0)),
}
BROKER_DOWN_S = 5.0

_ITEM = re.compile(
    r"^(?P<name>[a-z-]+)(?:=(?P<value>[^@+]+))?(?:@(?P<start>[^+]+))?(?:\+(?P<duration>.+))?$"
)


class FaultSpecError(ValueError):
    pass


@dataclass(frozen=True)
class Fault:
    kind: str
    start_s: float = 0.0
    duration_s: float | None = None  # None: until the end of the run
    value: float | None = None

    def __str__(self) -> str:
        text = self.kind
        if self.value is not None:
            text += f"={self.value:g}"
        text += f"@{self.start_s:g}"
        if self.duration_s is not None:
            text += f"+{self.duration_s:g}"
        return text


def _number(text: str, what: str, item: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise FaultSpecError(f"{item!r}: {what} {text!r} is not a number") from None
    if not value >= 0 or value == float("inf"):
        raise FaultSpecError(f"{item!r}: {what} must be a finite number >= 0, not {text}")
    return value


def parse_faults(spec: str) -> list[Fault]:
    """``"brain-absent@10+20,serial-noise=0.001"`` -> faults, sorted by start time."""
    faults: list[Fault] = []
    for raw in spec.split(","):
        item = raw.strip()
        if not item:
            continue
        match = _ITEM.match(item)
        if match is None:
            raise FaultSpecError(f"{item!r}: expected NAME[=VALUE][@START_S][+DURATION_S]")
        name = match["name"]
        if name not in KINDS:
            raise FaultSpecError(f"{item!r}: unknown fault {name!r}; known: {', '.join(KINDS)}")
        takes_value, meaning, (lo, hi) = KINDS[name]
        value = None
        if takes_value:
            if match["value"] is None:
                raise FaultSpecError(f"{item!r}: {name} needs a value ({meaning}): {name}=V")
            value = _number(match["value"], meaning, item)
            if not lo <= value <= hi:
                raise FaultSpecError(f"{item!r}: {meaning} must be within [{lo:g}, {hi:g}]")
        elif match["value"] is not None:
            raise FaultSpecError(f"{item!r}: {name} takes no value")
        start = _number(match["start"], "start", item) if match["start"] is not None else 0.0
        duration = None
        if match["duration"] is not None:
            duration = _number(match["duration"], "duration", item)
            if duration == 0:
                raise FaultSpecError(f"{item!r}: a duration must be > 0")
        if name == "broker-restart" and duration is None:
            duration = BROKER_DOWN_S
        faults.append(Fault(name, start, duration, value))
    return sorted(faults, key=lambda f: f.start_s)
