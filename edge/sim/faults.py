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
    outbox-full@10+20        the node's outbox storage refuses to grow ("database or disk is
                             full") from 10 s for 20 s
    node-kill@35             kill -9 of the node at 35 s; restarted 1 s later as systemd does
                             (same command, without --start); the operator then starts it
    node-kill@35+4           ... restarted after 4 s
    scanner-noise=0.05       garbage on the scanner's line: 5 % of its readings come with a
                             garbage line (printable junk, NUL-only lines, control bytes,
                             over-long lines), the whole run
    command-flood@20+3       an operator tool gone wrong floods the node with `status`
                             commands (1000/s by default) from 20 s for 3 s
    command-flood=4000@20+1  ... 4000 commands/s
    random=7                 a random schedule of every kind above, drawn from seed 7, over
                             the whole run (``random:7`` works too); ``random=7@60+600``
                             confines it to that window

Items are separated by commas. Without ``@`` a fault starts at 0; without ``+`` it lasts the
whole run (broker-restart and node-kill: their default down time).
"""

from __future__ import annotations

import math
import random
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
    "outbox-full": (False, "", (0, 0)),
    "node-kill": (False, "", (0, 0)),
    "scanner-noise": (True, "share of readings that come with a garbage line", (0, 1)),
    "command-flood": (True, "commands per second", (1, 20_000)),
    "random": (True, "seed of the random schedule", (0, 2**32 - 1)),
}
# kinds whose value may be left out, and what it then is
DEFAULT_VALUES: dict[str, float] = {"command-flood": 1000.0}
BROKER_DOWN_S = 5.0
NODE_RESTART_S = 1.0  # systemd's RestartSec in configs/wolfpack-node.service's spirit
DEFAULT_DURATIONS: dict[str, float] = {
    "broker-restart": BROKER_DOWN_S,
    "node-kill": NODE_RESTART_S,
}
# kinds whose value is a whole number (printed without a decimal point)
INTEGER_VALUES = frozenset({"random"})

_ITEM = re.compile(
    r"^(?P<name>[a-z-]+)(?:[=:](?P<value>[^@+]+))?(?:@(?P<start>[^+]+))?(?:\+(?P<duration>.+))?$"
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
            text += f"={self.value:g}" if self.kind not in INTEGER_VALUES else f"={self.value:.0f}"
        text += f"@{self.start_s:g}"
        if self.duration_s is not None:
            text += f"+{self.duration_s:g}"
        return text

    @property
    def end_s(self) -> float | None:
        return None if self.duration_s is None else self.start_s + self.duration_s


def _number(text: str, what: str, item: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise FaultSpecError(f"{item!r}: {what} {text!r} is not a number") from None
    if not value >= 0 or value == float("inf"):
        raise FaultSpecError(f"{item!r}: {what} must be a finite number >= 0, not {text}")
    return value


def parse_faults(spec: str) -> list[Fault]:
    """``"brain-absent@10+20,serial-noise=0.001"`` -> faults, sorted by start time. A
    ``random=SEED`` item stays as it is: ``expand_random`` turns it into a schedule once the
    run's length is known."""
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
                if name not in DEFAULT_VALUES:
                    raise FaultSpecError(f"{item!r}: {name} needs a value ({meaning}): {name}=V")
                value = DEFAULT_VALUES[name]
            else:
                value = _number(match["value"], meaning, item)
            if not lo <= value <= hi:
                raise FaultSpecError(f"{item!r}: {meaning} must be within [{lo:g}, {hi:g}]")
            if name in INTEGER_VALUES and value != int(value):
                raise FaultSpecError(f"{item!r}: {meaning} must be a whole number")
        elif match["value"] is not None:
            raise FaultSpecError(f"{item!r}: {name} takes no value")
        start = _number(match["start"], "start", item) if match["start"] is not None else 0.0
        duration = None
        if match["duration"] is not None:
            duration = _number(match["duration"], "duration", item)
            if duration == 0:
                raise FaultSpecError(f"{item!r}: a duration must be > 0")
        if duration is None:
            duration = DEFAULT_DURATIONS.get(name)
        faults.append(Fault(name, start, duration, value))
    return sorted(faults, key=lambda f: f.start_s)


# ---- the random schedule ----------------------------------------------------------------------
# Per kind: (duration range s, value range or None). Each is a fault a correct node survives
# without losing or mis-sorting a parcel (it may reject some, or stop the cell safely).
RANDOM_RANGES: dict[str, tuple[tuple[float, float], tuple[float, float] | None]] = {
    "brain-absent": ((3, 10), None),
    "brain-slow": ((3, 10), (100, 1000)),
    "plc-timeouts": ((3, 8), (0.05, 0.3)),
    "plc-silent": ((0.5, 3), None),
    "serial-noise": ((5, 15), (1e-4, 2e-3)),
    "broker-restart": ((2, 8), None),
    "scanner-silent": ((2, 6), None),
    "estop": ((1, 5), None),
    "outbox-full": ((5, 20), None),
    "node-kill": ((0.5, 3), None),
    "scanner-noise": ((5, 20), (0.01, 0.1)),
    "command-flood": ((1, 4), (200, 2000)),
}
RANDOM_SLOT_S = 25.0  # one fault per slot: its window, then time for the cell to recover
RANDOM_MIN_SLOT_S = 10.0


def random_schedule(seed: int, start_s: float, end_s: float) -> list[Fault]:
    """One fault per slot of ~25 s between ``start_s`` and ``end_s`` (at least 10 s each, so
    that every kind fits in 120 s), kinds in shuffled rounds so each appears before any
    repeats; each starts in the first fifth of its slot and lasts at most half of it, leaving
    the rest for recovery (the operator's reset and start, a restarted node). A span too
    short for one slot per kind gets the first kinds of the shuffle only."""
    rng = random.Random(seed)
    kinds = sorted(RANDOM_RANGES)
    span = max(0.0, end_s - start_s)
    n_slots = max(int(span // RANDOM_SLOT_S), min(len(kinds), int(span // RANDOM_MIN_SLOT_S)))
    if n_slots == 0:
        return []
    slot = span / n_slots
    order: list[str] = []
    while len(order) < n_slots:
        rnd = kinds[:]
        rng.shuffle(rnd)
        order += rnd
    faults = []
    for i, kind in enumerate(order[:n_slots]):
        (d_lo, d_hi), values = RANDOM_RANGES[kind]
        at = start_s + i * slot + rng.uniform(0, 0.2 * slot)
        duration = min(rng.uniform(d_lo, d_hi), 0.5 * slot)
        value = None
        if values is not None:
            lo, hi = values
            value = math.exp(rng.uniform(math.log(lo), math.log(hi)))
        faults.append(Fault(kind, round(at, 1), round(max(duration, 0.1), 1), _round_value(value)))
    return faults


def _round_value(value: float | None) -> float | None:
    """Three significant digits: the schedule prints and reads back the same."""
    if value is None:
        return None
    return float(f"{value:.3g}")


def expand_random(faults: list[Fault], duration_s: float) -> list[Fault]:
    """Replace each ``random=SEED`` item by its schedule within its window (default: the
    whole run of ``duration_s``); other faults are kept. Sorted by start time."""
    out: list[Fault] = []
    for f in faults:
        if f.kind != "random":
            out.append(f)
            continue
        assert f.value is not None
        end = f.end_s if f.end_s is not None else duration_s
        out += random_schedule(int(f.value), f.start_s, min(end, duration_s))
    return sorted(out, key=lambda f: f.start_s)
