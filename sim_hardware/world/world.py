"""The simulated sorting cell: belt, induction, photo-eyes, diverters, chutes and the truth.

Time is explicit: ``advance_to(t)`` moves the world to time ``t`` and nothing moves
otherwise. Inputs (belt commands, e-stop, diverter outputs) are queued at the time they
happen and applied in time order; between inputs the belt's motion is exact, and every
position event (a parcel inducted, a beam blocked or cleared, a parcel taken by a diverter or
riding off the end) is found at the belt position where it happens, then timed from the
belt's motion. So the outcome does not depend on how finely the runner steps.
"""

from __future__ import annotations

import heapq
import itertools
import threading
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from sim_hardware.brain.sort_plan import chute_for_label
from sim_hardware.world.arrivals import ArrivalProcess
from sim_hardware.world.belt import Belt
from sim_hardware.world.chutes import Chute, Diverter
from sim_hardware.world.config import WorldConfig
from sim_hardware.world.parcels import Parcel
from sim_hardware.world.photo_eyes import PhotoEye
from sim_hardware.world.truth import END, ParcelRecord, Scoreboard

EyeListener = Callable[[int, bool, float], None]  # eye index, blocked, time
ChuteListener = Callable[[int, bool, float], None]  # station, sensor blocked, time
ScanListener = Callable[[int, int, "str | None", float], None]  # scanner, parcel, text, time


@dataclass
class _OnBelt:
    parcel: Parcel
    record: ParcelRecord
    induct_mm: float  # belt position when the head crossed the induction point
    eyes: set[int] = field(default_factory=set)
    scanned: set[int] = field(default_factory=set)  # scanners its centre has passed

    def centre_at(self, belt_mm: float) -> float:
        return belt_mm - self.induct_mm - self.parcel.length_mm / 2


@dataclass(frozen=True)
class WorldEvent:
    t: float
    kind: str  # inducted, eye, scan, diverted, chute, end, stroke, estop, late_input
    data: dict[str, Any]


class WorldError(ValueError):
    pass


class CellWorld:
    def __init__(
        self,
        config: WorldConfig | None = None,
        start_s: float = 0.0,
        *,
        arrivals: bool = True,
        event_log: int = 100_000,
    ) -> None:
        """``arrivals`` False: no parcels arrive by themselves (tests place them with
        ``add_parcel``)."""
        self.config = config or WorldConfig()
        c = self.config
        self.t = start_s
        self.belt = Belt(c.belt.max_speed_mm_s, c.belt.estop_decel_mm_s2, start_s)
        self.arrivals = ArrivalProcess(c.arrivals, c.seed, start_s) if arrivals else None
        self.eyes = [PhotoEye(i, a, b) for i, (a, b) in enumerate(c.photo_eyes_mm)]
        self.diverters = [
            Diverter(i, s.position_mm, s.capture_mm) for i, s in enumerate(c.stations)
        ]
        self.chutes = [Chute(i, s) for i, s in enumerate(c.stations)]
        self.score = Scoreboard(reject=c.reject_index)
        self.events: deque[WorldEvent] = deque(maxlen=event_log)
        self.eye_listeners: list[EyeListener] = []
        # Called with the world's time after each advance (under its lock, after every edge
        # listener of that advance): how far the field side's inputs have been delivered.
        self.advance_listeners: list[Callable[[float], None]] = []
        # Called with each chute eye edge: the drop (rising) and sensor_ms later (falling).
        self.chute_listeners: list[ChuteListener] = []
        # Called when a parcel's centre passes a scanner: its label text, None if unreadable.
        self.scan_listeners: list[ScanListener] = []
        self.late_inputs = 0  # inputs that arrived after the world had passed their time
        self.late_input_max_s = 0.0  # the latest of them: how far the world's truth is smeared
        self.left_belt = 0  # parcels diverted or run off the end
        # The safety truth, kept whole (the event log above is bounded): each stroke's start
        # (time, station, driver) and each e-stop edge (time, pressed). A long run's report
        # checks every stroke against the node's state and every e-stop against standstill.
        self.stroke_starts: list[tuple[float, int, str]] = []
        self.estop_edges: list[tuple[float, bool]] = []
        self._eye_count = [0] * len(self.eyes)
        self._chute_clear_at: list[float | None] = [None] * len(self.chutes)
        self._on_belt: list[_OnBelt] = []
        self._waiting: deque[Parcel] = deque()
        self._last: _OnBelt | None = None
        self._inputs: list[tuple[float, int, Callable[[float], None]]] = []
        self._seq = itertools.count()
        self._next_id = 1_000_000  # ids of hand-placed parcels
        # Armed compare outputs (an MCU's hardware compare on the encoder): key -> (belt
        # position, station, on, pulse seconds). Each fires at the exact time the belt
        # reaches its position, whenever the thread that armed it runs (mcu_link.py).
        self._compares: dict[Any, tuple[float, int, bool, float, str]] = {}
        self.compares_fired = 0
        self._lock = threading.RLock()

    # ---- inputs ----------------------------------------------------------------------------
    def _queue(self, at: float | None, apply: Callable[[float], None]) -> None:
        with self._lock:
            t = self.t if at is None else at
            if t < self.t:
                self.late_inputs += 1
                self.late_input_max_s = max(self.late_input_max_s, self.t - t)
                self._log(self.t, "late_input", {"by_s": self.t - t})
                t = self.t
            heapq.heappush(self._inputs, (t, next(self._seq), apply))

    def command_belt(
        self, run: bool, setpoint_mm_s: float, ramp_mm_s2: float = 1000.0, at: float | None = None
    ) -> None:
        """What the PLC tells the VFD."""

        def apply(t: float) -> None:
            self.belt.command(t, run, setpoint_mm_s, ramp_mm_s2)

        self._queue(at, apply)

    def set_estop(self, pressed: bool, at: float | None = None) -> None:
        def apply(t: float) -> None:
            if pressed != self.belt.estopped:
                self.estop_edges.append((t, pressed))
            self.belt.set_estop(t, pressed)
            self._log(t, "estop", {"pressed": pressed, "speed_mm_s": self.belt.speed_at(t)})

        self._queue(at, apply)

    def set_diverter(
        self, station: int, on: bool, at: float | None = None, source: str = "direct"
    ) -> None:
        """Drive diverter ``station``'s output (from the MCU, the PLC's coils or a test)."""
        if not 0 <= station < len(self.diverters):
            raise WorldError(f"station {station} does not exist (0..{len(self.diverters) - 1})")

        self._queue(at, lambda t: self._drive_diverter(station, on, t, source))

    def _drive_diverter(self, station: int, on: bool, t: float, source: str) -> None:
        d = self.diverters[station]
        was = d.active
        d.set(source, on, t, self.belt.position_at(t))
        if d.active != was:
            self._log(t, "stroke", {"station": station, "on": d.active, "source": source})
            if d.active:
                self.stroke_starts.append((t, station, source))

    def arm_compare(
        self, key: Any, station: int, on: bool, position_mm: float, duration_s: float,
        source: str = "mcu",
    ) -> None:  # fmt: skip
        """Drive diverter ``station`` at the instant the belt reaches ``position_mm`` (for
        ``duration_s``, then back; 0: stay): an MCU's compare output, exact in world time
        however late the simulated MCU's loop runs."""
        if not 0 <= station < len(self.diverters):
            raise WorldError(f"station {station} does not exist (0..{len(self.diverters) - 1})")
        with self._lock:
            self._compares[key] = (position_mm, station, on, duration_s, source)

    def disarm_compare(self, key: Any, at: float | None = None) -> bool:
        """Cancel compare ``key`` as of ``at``. False if it has fired already (the world has
        passed ``at`` and its position came first): it stays fired, and the caller reports it."""
        with self._lock:
            if key not in self._compares:
                return False
            if at is None or at <= self.t:
                del self._compares[key]  # not reached by now, so not by ``at`` either
            else:
                self._queue(at, lambda _t: self._compares.pop(key, None))
            return True

    def _next_compare(self, t_end: float) -> float:
        """The earliest time <= ``t_end`` an armed compare fires (``t_end`` if none)."""
        best = t_end
        motion = self.belt.motion
        for pos, *_ in self._compares.values():
            at = motion.time_of(pos)
            if at is not None:
                best = min(best, max(at, self.t))
        return best

    def _fire_compares(self, t: float) -> None:
        motion = self.belt.motion
        due = []
        for key, c in self._compares.items():
            at = motion.time_of(c[0])
            if at is not None and max(at, self.t) <= t:
                due.append((key, c))
        for key, (_pos, station, on, duration_s, source) in sorted(due, key=lambda kc: kc[1][0]):
            del self._compares[key]
            self.compares_fired += 1
            self._drive_diverter(station, on, t, source)
            if duration_s > 0:
                self._queue(t + duration_s,
                            lambda t2, st=station, v=not on, src=source:
                            self._drive_diverter(st, v, t2, src))  # fmt: skip

    def stroke(self, station: int, at: float, duration_s: float = 0.1) -> None:
        self.set_diverter(station, True, at)
        self.set_diverter(station, False, at + duration_s)

    def add_parcel(self, parcel: Parcel | None = None, **fields: Any) -> Parcel:
        """Put a parcel at the induction now (tests); it enters when the gap allows."""
        with self._lock:
            if parcel is None:
                base: dict[str, Any] = dict(
                    id=self._next_id, cls="box", length_mm=300.0, width_mm=200.0,
                    height_mm=150.0, label_format="Code128", label_text="000001",
                    label_legible=True, arrival_s=self.t,
                )  # fmt: skip
                base.update(fields)
                parcel = Parcel(**base)
                self._next_id += 1
            if parcel.id in self.score.records:
                raise WorldError(f"parcel id {parcel.id} is already in this world")
            self._arrive(parcel)
            self._sweep(self.t)
            return parcel

    # ---- queries ---------------------------------------------------------------------------
    def count_at(self, t: float) -> int:
        """The encoder count at ``t`` (belt travel x counts/mm)."""
        return int(self.belt.position_at(t) * self.config.belt.counts_per_mm // 1)

    def count_when_centre_at(self, parcel_id: int, x_mm: float) -> int:
        """Encoder count at which a parcel on the belt has its centre at ``x_mm``: what the
        cell controller computes from a photo-eye edge, given here from the truth."""
        p = self._find(parcel_id)
        pos = p.induct_mm + p.parcel.length_mm / 2 + x_mm
        return round(pos * self.config.belt.counts_per_mm)

    def centre_mm(self, parcel_id: int) -> float:
        return self._find(parcel_id).centre_at(self.belt.position_at(self.t))

    def on_belt(self) -> list[int]:
        return [p.parcel.id for p in self._on_belt]

    def view(self, lo_mm: float, hi_mm: float) -> tuple[float, int, list[tuple[Parcel, float]]]:
        """One consistent look at the belt: time, encoder count, and each parcel that may reach
        into ``(lo_mm, hi_mm)`` in any pose (centre within its length + width of it) with its
        centre. Taken under the world's lock, so a runner moving the world from another thread
        cannot tear it: what a camera snapshot needs."""
        with self._lock:
            belt_mm = self.belt.position_at(self.t)
            found = []
            for ob in self._on_belt:
                centre = ob.centre_at(belt_mm)
                reach = ob.parcel.length_mm + ob.parcel.width_mm
                if lo_mm - reach < centre < hi_mm + reach:
                    found.append((ob.parcel, centre))
            return self.t, self._count(belt_mm), found

    def safety_log(self, since_s: float = float("-inf")) -> dict[str, Any]:
        """Strokes begun and e-stop edges at or after ``since_s`` (picklable: the sim's report
        fetches it over the cell process's pipe)."""
        with self._lock:
            return {
                "strokes": [s for s in self.stroke_starts if s[0] >= since_s],
                "estop_edges": [e for e in self.estop_edges if e[0] >= since_s],
            }

    def standstill_after(self, t: float) -> float | None:
        """When the belt came to rest at or after ``t`` (None: not yet)."""
        return self.belt.standstill_after(t)

    def standstills_after(self, times: list[float]) -> list[float | None]:
        """``standstill_after`` for each of ``times``: one call over a pipe."""
        return [self.belt.standstill_after(t) for t in times]

    @property
    def waiting(self) -> int:
        return len(self._waiting)

    def eye_blocked(self, index: int) -> bool:
        return self._eye_count[index] > 0

    def _find(self, parcel_id: int) -> _OnBelt:
        for p in self._on_belt:
            if p.parcel.id == parcel_id:
                return p
        raise WorldError(f"parcel {parcel_id} is not on the belt")

    # ---- time ------------------------------------------------------------------------------
    def advance_to(self, t: float) -> None:
        with self._lock:
            if t < self.t:
                raise WorldError(f"cannot go back in time from {self.t} to {t}")
            while True:
                nxt = t
                if self._inputs:
                    nxt = min(nxt, self._inputs[0][0])
                if self.arrivals is not None:
                    nxt = min(nxt, self.arrivals.next_arrival_s)
                if self._compares:
                    nxt = self._next_compare(nxt)
                self._sweep(nxt)
                if self._compares:
                    self._fire_compares(nxt)
                while self._inputs and self._inputs[0][0] <= nxt:
                    _, _, apply = heapq.heappop(self._inputs)
                    apply(nxt)
                if self.arrivals is not None:
                    for parcel in self.arrivals.until(nxt):
                        self._arrive(parcel)
                self._sweep(nxt)  # captures at a stroke's start, inductions at an arrival
                if nxt >= t:
                    for listener in self.advance_listeners:
                        listener(t)
                    return

    def close_induction(self) -> None:
        """No more arrivals; what waits at the induction still enters the belt."""
        with self._lock:
            self.arrivals = None

    def catch_up(self, t: float) -> None:
        """Move to ``t`` unless the world is there already: for several real-time drivers
        (the runner, the PLC's ticker) that each move it to "now" from their own thread."""
        with self._lock:
            if t > self.t:
                self.advance_to(t)

    def advance(self, dt: float) -> None:
        self.advance_to(self.t + dt)

    def _arrive(self, parcel: Parcel) -> None:
        c = self.config
        if parcel.label_legible:
            intended = chute_for_label(parcel.label_text, c.sort_stations, c.routes)
        else:
            intended = c.reject_index
        self.score.records[parcel.id] = ParcelRecord(parcel, intended)
        self._waiting.append(parcel)

    def _sweep(self, t_end: float) -> None:
        """Process every position event between the belt's position now and at ``t_end``."""
        motion = self.belt.motion
        p_end = motion.position_at(t_end)
        p_cur = motion.position_at(self.t)
        while (event := self._next_event(p_cur, p_end)) is not None:
            pos, action = event
            t_evt = motion.time_of(pos)
            action(min(max(self.t if t_evt is None else t_evt, self.t), t_end), pos)
            p_cur = pos
        self.t = t_end

    def _next_event(
        self, p_cur: float, p_end: float
    ) -> tuple[float, Callable[[float, float], None]] | None:
        """The first position event in [p_cur, p_end]: its belt position and its action.
        An event already due (its position passed while its condition was false, e.g. a
        stroke starting with a parcel inside the window) happens at ``p_cur``."""
        offers: list[tuple[float, Callable[[float, float], None]]] = []
        if self._waiting:
            last = self._last
            gap = self.config.arrivals.min_gap_mm
            offers.append(
                (last.induct_mm + last.parcel.length_mm + gap if last else p_cur, self._induct)
            )
        length = self.config.belt.length_mm
        for ob in self._on_belt:
            size = ob.parcel.length_mm
            for eye in self.eyes:
                clear_at = ob.induct_mm + eye.end_mm + size
                if eye.index in ob.eyes:
                    offers.append((clear_at, _bind(self._eye_clear, ob, eye.index)))
                elif clear_at > p_cur:
                    offers.append(
                        (ob.induct_mm + eye.start_mm, _bind(self._eye_block, ob, eye.index))
                    )
            for i, sc in enumerate(self.config.scanners):
                if i not in ob.scanned:
                    at = ob.induct_mm + sc.position_mm + size / 2
                    offers.append((at, _bind(self._scan, ob, i)))
            for d in self.diverters:
                lo, hi = d.window()
                if d.active and ob.induct_mm + hi + size / 2 >= p_cur:
                    offers.append((ob.induct_mm + lo + size / 2, _bind(self._divert, ob, d.index)))
            offers.append((ob.induct_mm + length + size / 2, _bind(self._ride_off, ob, None)))
        best: tuple[float, Callable[[float, float], None]] | None = None
        for pos, action in offers:
            pos = max(pos, p_cur)
            if pos <= p_end and (best is None or pos < best[0]):
                best = (pos, action)
        return best

    # ---- position events -------------------------------------------------------------------
    def _induct(self, t: float, pos: float) -> None:
        parcel = self._waiting.popleft()
        rec = self.score.records[parcel.id]
        rec.inducted_s, rec.induct_travel_mm = t, pos
        ob = _OnBelt(parcel, rec, pos)
        self._on_belt.append(ob)
        self._last = ob
        self._log(t, "inducted", {"parcel": parcel.id, "count": self._count(pos)})

    def _eye_block(self, ob: _OnBelt, eye: int, t: float, pos: float) -> None:
        ob.eyes.add(eye)
        self._eye_count[eye] += 1
        if self._eye_count[eye] == 1:
            self._eye_edge(eye, True, t, pos)

    def _eye_clear(self, ob: _OnBelt, eye: int, t: float, pos: float) -> None:
        ob.eyes.discard(eye)
        self._eye_count[eye] -= 1
        if self._eye_count[eye] == 0:
            self._eye_edge(eye, False, t, pos)

    def _eye_edge(self, eye: int, blocked: bool, t: float, pos: float) -> None:
        self._log(t, "eye", {"eye": eye, "blocked": blocked, "count": self._count(pos)})
        for listener in self.eye_listeners:
            listener(eye, blocked, t)

    def _scan(self, ob: _OnBelt, scanner: int, t: float, pos: float) -> None:
        ob.scanned.add(scanner)
        p = ob.parcel
        text = p.label_text if p.label_legible else None
        self._log(t, "scan", {"scanner": scanner, "parcel": p.id, "text": text,
                              "count": self._count(pos)})  # fmt: skip
        for listener in self.scan_listeners:
            listener(scanner, p.id, text, t)

    def _divert(self, ob: _OnBelt, station: int, t: float, pos: float) -> None:
        d = self.diverters[station]
        d.took()
        assert d.rose_mm is not None
        ob.record.divert_error_mm = ob.centre_at(d.rose_mm) - d.position_mm
        chute = self.chutes[station]
        chute.receive(ob.parcel.id, t)
        # The chute eye clears sensor_ms after the last drop. The clearing is a timed input
        # carrying its own time, so its edge is exact whatever the step (a coarse step may
        # find a clearing only at the next drop: it is reported first, at its time).
        pending = self._chute_clear_at[station]
        if pending is not None and pending <= t:
            self._chute_clear(station, pending)
            pending = None
        if pending is None:
            self._chute_edge(station, True, t)
        clear_at = self._chute_clear_at[station] = t + chute.config.sensor_ms / 1000.0
        self._queue(clear_at, lambda _now: self._chute_clear(station, clear_at))
        self._finish(ob, station, t, pos)

    def _chute_clear(self, station: int, at: float) -> None:
        if self._chute_clear_at[station] == at:  # not moved on by a later drop
            self._chute_clear_at[station] = None
            self._chute_edge(station, False, at)

    def _chute_edge(self, station: int, blocked: bool, t: float) -> None:
        self._log(t, "chute", {"station": station, "blocked": blocked})
        for listener in self.chute_listeners:
            listener(station, blocked, t)

    def _ride_off(self, ob: _OnBelt, _none: None, t: float, pos: float) -> None:
        self._finish(ob, END, t, pos)

    def _finish(self, ob: _OnBelt, actual: int | str, t: float, pos: float) -> None:
        for eye in sorted(ob.eyes):
            self._eye_clear(ob, eye, t, pos)
        self._on_belt.remove(ob)
        self.left_belt += 1
        ob.record.actual, ob.record.ended_s = actual, t
        kind = "end" if actual == END else "diverted"
        self._log(t, kind, {"parcel": ob.parcel.id, "station": actual,
                            "error_mm": ob.record.divert_error_mm})  # fmt: skip

    def _count(self, pos: float) -> int:
        return int(pos * self.config.belt.counts_per_mm // 1)

    def _log(self, t: float, kind: str, data: dict[str, Any]) -> None:
        self.events.append(WorldEvent(t, kind, data))


def _bind(
    fn: Callable[[_OnBelt, Any, float, float], None], ob: _OnBelt, arg: Any
) -> Callable[[float, float], None]:
    return lambda t, pos: fn(ob, arg, t, pos)
