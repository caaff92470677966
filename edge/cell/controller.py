"""The cell controller core: facts in, actions out, no I/O and no clock of its own.

``CellCore.handle(event)`` takes one fact (with its time and encoder count) and returns the
actions it implies: ask the brain, schedule or cancel a diverter stroke at an encoder count,
raise an alarm, publish a parcel's final record. Being pure and deterministic, the same
event sequence always gives the same actions, which is what its property tests rely on; the
adapters around it (MCU, brain, vision, PLC) only translate.
"""

from __future__ import annotations

from edge.cell.config import CellConfig
from edge.cell.divert import TooLate, plan_stroke
from edge.cell.events import (
    Alarm,
    AskBrain,
    BrainAnswer,
    BrainUnavailable,
    CancelStroke,
    CellAction,
    CellEvent,
    ChuteFull,
    ChuteSensor,
    EyeEdge,
    Halt,
    PublishRecord,
    Resume,
    ScheduleStroke,
    Sighting,
    StrokeAccepted,
    StrokeDone,
    StrokeRefused,
    Tick,
)
from edge.cell.record import DecisionSource, Outcome, ParcelRecord, stage_latencies
from edge.cell.routing import RoutingTable
from edge.cell.tracking import Parcel, Tracker

LAG_SAMPLES = 2  # reports matched in order before a reader's lag is trusted
JITTER_FLOOR = 0.25  # a report this share of the read window late is still taken in order


class CellCore:
    def __init__(self, cfg: CellConfig) -> None:
        self.cfg = cfg
        self.cpm = cfg.belt.counts_per_mm
        self.eye_mm = cfg.induction.position_mm
        self.table = RoutingTable(cfg)
        self.tracker = Tracker(self.eye_mm, self.cpm, cfg.match_tolerance_mm)
        self.reject = cfg.reject.id
        self.now_count: int | None = None
        self.now_t = 0.0
        self.halted: str | None = None  # the cause while diverting is not allowed
        self.full: set[str] = set()
        self.finished: set[int] = set()
        self._eye_blocked: dict[str, int] = {}
        self._sensor_blocked: set[str] = set()  # chute sensors between a drop and clearing
        self._jam_raised: set[str] = set()
        self._eyes = {e.id: e for e in cfg.photo_eyes}
        self._chute_ids = {c.id for c in cfg.chutes} | {self.reject}
        self._out: list[CellAction] = []
        self._readers = {s.name for s in cfg.scanners}  # fixed readers: reports, not sightings
        self._last_report: dict[str, float] = {}  # reader -> time of its last report
        self._lags: dict[str, list[float]] = {}  # reader -> recent report lags (mm)
        self.reader_resyncs = 0  # reports matched by their lag after a silence
        self.unmatched_reads = 0  # reports (labels and no-reads) that matched no parcel

    # ---- entry point ---------------------------------------------------------------------
    def handle(self, event: CellEvent) -> list[CellAction]:
        self._out = []
        self.now_t = max(self.now_t, event.t)
        count = getattr(event, "count", None)
        if isinstance(count, int):
            self.now_count = count if self.now_count is None else max(self.now_count, count)
        handler = getattr(self, f"_on_{type(event).__name__}")
        handler(event)
        self._advance()
        return self._out

    @property
    def active(self) -> dict[int, Parcel]:
        return self.tracker.active

    # ---- inputs ---------------------------------------------------------------------------
    def _on_Tick(self, ev: Tick) -> None:
        pass  # _advance does the time- and position-driven work

    def _on_EyeEdge(self, ev: EyeEdge) -> None:
        eye = self._eyes.get(ev.eye)
        if eye is None:
            raise ValueError(f"unknown photo-eye {ev.eye!r}; configured: {', '.join(self._eyes)}")
        if ev.blocked:
            self._eye_blocked[ev.eye] = ev.count
        else:
            since = self._eye_blocked.pop(ev.eye, None)
            self._jam_raised.discard(ev.eye)
            if since is not None and (ev.count - since) / self.cpm > eye.jam_mm:
                self._alarm("jam", f"photo-eye {ev.eye} was blocked for {ev.count - since} counts")
        if ev.eye != self.cfg.induction_eye:
            return
        if ev.blocked:
            parcel = self.tracker.match_leading_edge(ev.count)
            if parcel is None:
                parcel = self.tracker.new(ev.count, f"eye {ev.eye}")
                parcel.mark("seen", ev.t)
            parcel.note(ev.t, ev.count, "leading_edge", f"eye {ev.eye}")
        else:
            parcel = self.tracker.match_trailing_edge(ev.count)
            if parcel is not None:
                parcel.trail_count = ev.count
                length = (ev.count - parcel.lead_count) / self.cpm
                parcel.note(ev.t, ev.count, "trailing_edge", f"length {length:.0f} mm")
                if parcel.awaiting_length:
                    self._schedule(parcel, ev.t)

    def _on_Sighting(self, ev: Sighting) -> None:
        if ev.in_order_mm > 0 or ev.source in self._readers:
            self._on_read(ev)
            return
        if ev.no_read:
            return  # a no-read never creates a parcel
        if ev.extent_mm > 0:
            parcel = self.tracker.match_body(ev.count, ev.position_mm, ev.extent_mm)
            if parcel is None and ev.position_mm > self.tracker.eye_mm:
                # its leading edge is past the eye, which saw (or is about to report) every
                # parcel there: nobody's (a part, a sighting between touching parcels, an edge
                # not yet handled on a busy node); a phantom or a neighbour's label is worse
                self.unmatched_reads += 1
                if ev.label is not None:
                    self._alarm("unmatched_read", f"{_describe(ev)} at count {ev.count} "
                                "matched no parcel past the eye; dropped")  # fmt: skip
                return
        else:
            parcel = self.tracker.match_point(ev.count, ev.position_mm)
        if parcel is None:  # the camera may see a parcel before the induction eye does
            lead = self.tracker.lead_count_for(ev.count, ev.position_mm)
            parcel = self.tracker.new(lead, ev.source)
            parcel.mark("seen", ev.t)
        parcel.note(ev.t, ev.count, "sighting", _describe(ev))
        if ev.class_name is not None and parcel.class_name is None:
            parcel.class_name = ev.class_name
        if ev.size_mm is not None and parcel.size_mm is None:
            parcel.size_mm = ev.size_mm
        self._label(parcel, ev)

    def _on_read(self, ev: Sighting) -> None:
        """A fixed reader's report (a label or a no-read). It reports each parcel once, so:
        the oldest parcel still awaiting its report within the read window takes it (or the
        parcel under the reader, for a report that comes early). A report with no parcel
        there is dropped and counted (``unmatched_read``): a read never creates a parcel, so
        line noise or a stray label cannot make a phantom. A further report for a parcel the
        reader already reported is a second opinion: the same label changes nothing, another
        label is a conflict (to reject); it never replaces the first."""
        parcel = None
        gap = ev.t - self._last_report.get(ev.source, float("-inf"))
        self._last_report[ev.source] = ev.t
        if ev.in_order_mm > 0 and len(self._lags.get(ev.source, ())) >= LAG_SAMPLES:
            self._resync_reader(ev, gap)
        if ev.in_order_mm > 0:
            parcel = self.tracker.match_in_order(
                ev.count, ev.position_mm, ev.source, ev.in_order_mm
            )
        if parcel is None:
            parcel = self.tracker.match_point(ev.count, ev.position_mm)
            if parcel is not None and ev.source in parcel.read_by:
                self._read_again(parcel, ev)
                return
        if parcel is None:
            self.unmatched_reads += 1
            if not ev.no_read:
                self._alarm(
                    "unmatched_read",
                    f"{ev.source} read {_shown(ev.label)} at count {ev.count} with no parcel "
                    "awaiting it; dropped",
                )
            return
        parcel.read_by.add(ev.source)
        if ev.in_order_mm > 0:
            self._learn_lag(parcel, ev)
        if ev.no_read:
            parcel.note(ev.t, ev.count, "no_read", ev.source)
            return
        parcel.note(ev.t, ev.count, "sighting", _describe(ev))
        self._label(parcel, ev)

    def _resync_reader(self, ev: Sighting, gap: float) -> None:
        """A report when some parcels may never be reported (the reader fell silent, a line
        was lost): passing order alone would give it to the oldest parcel awaiting a report,
        and every report after it to the parcel before its own (a mis-sort per parcel until
        the queue drains). The reader's reports trail its parcels by a steady lag (decode
        time, the line, the host) that varies within a learned spread. When the oldest parcel
        awaiting a report has passed the reader by more than that lag and spread, its report
        is not coming: the awaiting parcel whose middle is nearest the lag is the one read,
        and the older ones are marked as never reported (they go to reject). Within the
        spread, passing order decides, which rides out a busy host's late reports."""
        waiting = self.tracker.awaiting(ev.count, ev.position_mm, ev.source, ev.in_order_mm)
        if len(waiting) <= 1:
            return
        lags = self._lags.get(ev.source) or [0.0]
        lag = sorted(lags)[len(lags) // 2]
        spread = max(abs(x - lag) for x in lags) + self.tracker.tolerance_mm
        allowance = max(spread, ev.in_order_mm * JITTER_FLOOR)
        if self.tracker.middle(waiting[0], ev.count) - ev.position_mm <= lag + allowance:
            return  # the oldest is within the reader's usual lag and its jitter: in order
        best = min(
            waiting,
            key=lambda p: abs(self.tracker.middle(p, ev.count) - ev.position_mm - lag),
        )
        skipped = [p for p in waiting if p.lead_count < best.lead_count]
        for p in skipped:
            p.read_by.add(ev.source)
            p.note(ev.t, ev.count, "no_report",
                   f"{ev.source} never reported it (last report {gap:.2f} s before)")  # fmt: skip
        self.reader_resyncs += 1

    def _learn_lag(self, parcel: Parcel, ev: Sighting) -> None:
        lags = self._lags.setdefault(ev.source, [])
        lags.append(self.tracker.middle(parcel, ev.count) - ev.position_mm)
        del lags[:-16]

    def _read_again(self, parcel: Parcel, ev: Sighting) -> None:
        if ev.no_read or ev.label == parcel.label:
            parcel.note(ev.t, ev.count, "read_again", _describe(ev) + (" no-read" * ev.no_read))
            return
        if parcel.label is None:  # it reported a no-read first: a late label is not trusted
            parcel.note(ev.t, ev.count, "read_again", f"{_describe(ev)} after its no-read; ignored")
            return
        self._label(parcel, ev)  # a different label: a conflict

    def _label(self, parcel: Parcel, ev: Sighting) -> None:
        if ev.label is None:
            return
        if parcel.label is None:
            parcel.label, parcel.label_source = ev.label, ev.source
            parcel.mark("label", ev.t)
            if parcel.phase == "tracking":
                self._ask(parcel, ev.t)
        elif ev.label != parcel.label and parcel.conflict is None:
            parcel.conflict = (
                f"labels disagree: {parcel.label_source} read {parcel.label!r}, "
                f"{ev.source} read {ev.label!r}"
            )
            parcel.note(ev.t, ev.count, "label_conflict", parcel.conflict)
            if parcel.phase == "decided" and parcel.chute != self.reject:
                self._reroute(parcel, parcel.conflict, ev.t)

    def _on_BrainAnswer(self, ev: BrainAnswer) -> None:
        parcel = self.active.get(ev.parcel_id)
        if parcel is None:
            return
        if parcel.phase != "asking":
            parcel.note(ev.t, self._count(), "brain_late", f"answer {ev.chute!r} ignored")
            return
        if ev.chute is None or ev.chute not in self._chute_ids:
            why = "brain does not know it" if ev.chute is None else f"unknown chute {ev.chute!r}"
            self._fallback(parcel, why, ev.t)
            return
        self._decide(parcel, ev.chute, "brain", "brain", ev.t)

    def _on_BrainUnavailable(self, ev: BrainUnavailable) -> None:
        parcel = self.active.get(ev.parcel_id)
        if parcel is not None and parcel.phase == "asking":
            self._fallback(parcel, f"brain unavailable: {ev.why}", ev.t)

    def _on_StrokeDone(self, ev: StrokeDone) -> None:
        parcel = self.active.get(ev.parcel_id)
        if parcel is None:
            return
        parcel.stroke_pending = False
        parcel.fired_count = ev.count
        parcel.sensor_busy = parcel.stroke_chute in self._sensor_blocked
        parcel.mark("fired", ev.t)
        parcel.note(ev.t, ev.count, "fired", f"chute {parcel.stroke_chute}")

    def _on_StrokeAccepted(self, ev: StrokeAccepted) -> None:
        parcel = self.active.get(ev.parcel_id)
        if parcel is not None and parcel.stroke_pending:
            parcel.mark("accepted", ev.t)

    def _on_StrokeRefused(self, ev: StrokeRefused) -> None:
        parcel = self.active.get(ev.parcel_id)
        if parcel is None or not parcel.stroke_pending:
            return
        parcel.stroke_pending = False
        parcel.note(ev.t, self._count(), "stroke_refused", ev.why)
        if parcel.stroke_chute != self.reject:
            self._reroute(parcel, f"MCU refused the stroke: {ev.why}", ev.t)

    def _on_ChuteSensor(self, ev: ChuteSensor) -> None:
        if ev.chute not in self._chute_ids:
            raise ValueError(f"unknown chute {ev.chute!r}")
        if not ev.blocked:
            self._sensor_blocked.discard(ev.chute)
            return
        self._sensor_blocked.add(ev.chute)
        at = self._chute_mm(ev.chute)
        tol = self.cfg.match_tolerance_mm
        window = self.cfg.confirm_window_mm
        candidates = []
        for p in self.active.values():
            pos = self.tracker.position(p, ev.count)
            if at - tol <= pos <= at + window:
                candidates.append((p.chute != ev.chute, abs(pos - at), p.id, p))
        if not candidates:
            self._alarm("unmatched_chute_event", f"chute {ev.chute} saw a parcel none expected")
            return
        parcel = min(candidates, key=lambda c: c[:3])[3]
        parcel.mark("confirmed", ev.t)
        parcel.note(ev.t, ev.count, "chute_sensor", f"chute {ev.chute}")
        if parcel.chute == ev.chute:
            outcome: Outcome = "rejected" if ev.chute == self.reject else "sorted"
            self._finish(parcel, outcome, actual=ev.chute)
            return
        if ev.chute in parcel.cancelled_chutes and ev.chute != self.reject:
            # its stroke fired before the cancel (a halt, a reroute) reached the MCU: it went
            # where it was first decided to go, which is a sort, not a mis-sort
            parcel.note(ev.t, ev.count, "fired_before_cancel", f"chute {ev.chute}")
            self._cancel_pending(parcel, ev.t)
            parcel.chute = ev.chute
            parcel.reason = f"its stroke fired before the cancel reached the MCU ({parcel.reason})"
            self._finish(parcel, "sorted", actual=ev.chute)
            return
        self._cancel_pending(parcel, ev.t)
        self._alarm("mis_sort", f"parcel {parcel.id} meant for {parcel.chute} fell into {ev.chute}")
        self._finish(parcel, "mis_sorted", actual=ev.chute)

    def _on_ChuteFull(self, ev: ChuteFull) -> None:
        if ev.full and ev.chute not in self.full:
            self.full.add(ev.chute)
            self._alarm("chute_full", f"chute {ev.chute} is full; its parcels go to reject")
            for p in list(self.active.values()):
                if p.chute == ev.chute and ev.chute != self.reject and p.fired_count is None:
                    self._reroute(p, f"chute {ev.chute} full", ev.t)
        elif not ev.full and ev.chute in self.full:
            self.full.discard(ev.chute)
            self._alarm("chute_free", f"chute {ev.chute} is free again")

    def _on_Halt(self, ev: Halt) -> None:
        self.halted = ev.cause
        for p in list(self.active.values()):
            if p.stroke_pending:
                self._cancel_pending(p, ev.t)
            if p.phase == "decided" and p.chute != self.reject and p.fired_count is None:
                self._reroute(p, f"halted: {ev.cause}", ev.t)
            if p.chute == self.reject and p.fired_count is None:
                p.stopped_past = (
                    f"the cell halted ({ev.cause}) with its reject stroke unfired and the "
                    f"belt's stopping distance carried it past {self.reject}: it leaves at "
                    "the belt's end (run-out)"
                )

    def _on_Resume(self, ev: Resume) -> None:
        self.halted = None
        for p in sorted(self.active.values(), key=lambda p: p.id):
            if p.phase == "decided" and not p.stroke_pending and p.fired_count is None:
                self._schedule(p, ev.t)  # what halting left unscheduled (reject strokes)

    # ---- decisions and strokes -------------------------------------------------------------
    def _ask(self, parcel: Parcel, t: float) -> None:
        assert parcel.label is not None
        parcel.phase = "asking"
        parcel.ask_deadline = t + self.cfg.brain_deadline_ms / 1000
        parcel.note(t, self._count(), "ask_brain", f"label {parcel.label!r}")
        self._out.append(
            AskBrain(
                parcel.id, parcel.label, parcel.class_name, parcel.size_mm, parcel.ask_deadline
            )
        )

    def _fallback(self, parcel: Parcel, why: str, t: float) -> None:
        route = self.table.route(parcel.label, parcel.class_name, parcel.size_mm)
        self._decide(parcel, route.chute, "routing_table", f"{why}; {route.reason}", t)

    def _decide(
        self, parcel: Parcel, chute: str, source: DecisionSource, reason: str, t: float
    ) -> None:
        parcel.phase = "decided"
        parcel.decision_source = source
        parcel.mark("decided", t)
        parcel.note(t, self._count(), "decided", f"{chute} by {source}: {reason}")
        parcel.chute, parcel.reason = chute, reason
        if chute != self.reject:
            override = self._why_not(parcel, chute)
            if override:
                self._reroute(parcel, override, t)
                return
        self._schedule(parcel, t)

    def _why_not(self, parcel: Parcel, chute: str) -> str | None:
        if self.halted is not None:
            return f"halted: {self.halted}"
        if chute in self.full:
            return f"chute {chute} full"
        return parcel.conflict

    def _reroute(self, parcel: Parcel, why: str, t: float) -> None:
        """Send ``parcel`` to reject instead, cancelling a stroke that has not fired."""
        self._cancel_pending(parcel, t)
        parcel.note(t, self._count(), "to_reject", why)
        parcel.chute, parcel.reason = self.reject, why
        self._schedule(parcel, t)

    def _schedule(self, parcel: Parcel, t: float, length_unknown_ok: bool = False) -> None:
        assert parcel.chute is not None
        parcel.awaiting_length = False
        if parcel.chute == self.reject:
            output, at, stroke_ms = (
                self.cfg.reject.output,
                self._chute_mm(self.reject),
                (self.cfg.reject.stroke_ms),
            )
            if output is None:
                return  # a run-off: nothing to fire
        else:
            chute = self.cfg.chute(parcel.chute)
            assert chute is not None
            output, at, stroke_ms = (
                chute.output,
                chute.diverter_mm + chute.fire_offset_mm,
                (chute.stroke_ms),
            )
        if self.halted is not None:
            return  # only a reject stroke can get here; nothing fires while halted
        if self.cfg.aim == "centre":
            length = parcel.length_mm(self.cpm)
            if length is None and not length_unknown_ok:
                parcel.awaiting_length = True
                parcel.note(t, self._count(), "waiting_length", "stroke aims at the centre")
                return
            if length is None:
                parcel.note(t, self._count(), "length_unknown", "aiming at the leading edge")
            else:
                at += length / 2
        now = self._count()
        plan = plan_stroke(
            parcel.lead_count, self.eye_mm, at, self.cpm, now, self.cfg.min_lead_counts
        )
        if isinstance(plan, TooLate):
            parcel.note(t, now, "too_late", f"{parcel.chute}: {plan.reason}")
            if parcel.chute != self.reject:
                self._reroute(parcel, f"{parcel.chute} {plan.reason}", t)
            return
        parcel.stroke_count, parcel.stroke_output = plan.count, output
        parcel.stroke_chute, parcel.stroke_pending = parcel.chute, True
        parcel.fired_count = None
        parcel.mark("scheduled", t)
        parcel.note(t, now, "scheduled", f"output {output} at count {plan.count}")
        self._out.append(
            ScheduleStroke(
                parcel.id, parcel.chute, output, plan.count, stroke_ms, self.cfg.belt.encoder
            )
        )

    def _cancel_pending(self, parcel: Parcel, t: float) -> None:
        if not parcel.stroke_pending:
            return
        assert parcel.stroke_chute is not None and parcel.stroke_output is not None
        assert parcel.stroke_count is not None
        parcel.stroke_pending = False
        parcel.cancelled_chutes.add(parcel.stroke_chute)
        parcel.note(t, self._count(), "cancelled", f"stroke at count {parcel.stroke_count}")
        self._out.append(
            CancelStroke(parcel.id, parcel.stroke_chute, parcel.stroke_output, parcel.stroke_count)
        )

    # ---- time and position ------------------------------------------------------------------
    def _advance(self) -> None:
        """Deadlines and positions: brain deadlines, the decision point, confirmation windows,
        jams. Runs after every event, so no separate timer is needed beyond Ticks."""
        t, now = self.now_t, self.now_count
        for p in sorted(self.active.values(), key=lambda p: p.id):
            if p.phase == "asking" and p.ask_deadline is not None and t >= p.ask_deadline:
                self._fallback(p, f"brain late (deadline {self.cfg.brain_deadline_ms} ms)", t)
            if now is None:
                continue
            pos = self.tracker.position(p, now)
            if p.phase != "decided" and pos >= self.cfg.decision_point_mm:
                if p.phase == "tracking":
                    self._decide(p, self.reject, "unreadable", "label unreadable", t)
                else:
                    self._fallback(p, "decision point reached before the brain answered", t)
            if p.awaiting_length and pos >= self.cfg.decision_point_mm:
                self._schedule(p, t, length_unknown_ok=True)
            if p.phase == "decided":
                self._expire(p, pos)
        if now is not None:
            for eye_id, since in self._eye_blocked.items():
                if eye_id in self._jam_raised:
                    continue
                if (now - since) / self.cpm > self._eyes[eye_id].jam_mm:
                    self._jam_raised.add(eye_id)
                    self._alarm("jam", f"photo-eye {eye_id} blocked for {now - since} counts")

    def _expire(self, p: Parcel, pos: float) -> None:
        """End a parcel whose confirmation window has passed without a chute sensor edge."""
        assert p.chute is not None
        if p.chute == self.reject:
            has_sensor = self.cfg.reject.confirm_input is not None
            limit = self._chute_mm(self.reject) + (self.cfg.confirm_window_mm if has_sensor else 0)
            if pos < limit:
                return
            if has_sensor and p.sensor_busy:
                self._finish(p, "rejected", reason=_BUSY)
            elif p.fired_count is None and not p.stroke_pending and p.stopped_past is not None:
                # the belt's stopping distance carried it past the reject diverter with its
                # stroke cancelled (as every stroke is at a stop): the belt's end is the
                # run-out, where an operator takes it (docs/cell.md "Run-out")
                self._alarm("run_out", f"parcel {p.id} (label {_shown(p.label)}) leaves at the "
                            "belt's end: take it to manual handling")  # fmt: skip
                self._finish(p, "run_out", reason=p.stopped_past)
            elif has_sensor:
                self._finish(p, "lost", reason="the reject sensor never saw it")
            else:
                self._finish(p, "rejected")
            return
        chute = self.cfg.chute(p.chute)
        assert chute is not None
        if pos < chute.diverter_mm + self.cfg.confirm_window_mm:
            return
        if p.fired_count is None:
            self._finish(p, "lost", reason=f"stroke for {p.chute} never reported as fired")
        elif chute.confirm_input is not None and p.sensor_busy:
            self._finish(p, "sorted", reason=_BUSY)
        elif chute.confirm_input is not None:
            self._finish(p, "lost", reason=f"chute {p.chute} sensor never saw it")
        else:
            self._finish(p, "sorted")

    # ---- helpers -----------------------------------------------------------------------------
    def _finish(
        self, p: Parcel, outcome: Outcome, actual: str | None = None, reason: str | None = None
    ) -> None:
        self._cancel_pending(p, self.now_t)
        if reason:
            p.note(
                self.now_t, self._count(),
                outcome if outcome in ("lost", "run_out") else "unconfirmed", reason,
            )
        error = None
        if p.fired_count is not None and p.stroke_count is not None:
            error = round((p.fired_count - p.stroke_count) / self.cpm, 3)
        record = ParcelRecord(
            parcel_id=p.id,
            outcome=outcome,
            chute=p.chute or self.reject,
            actual_chute=actual,
            confirmed=actual is not None,
            reason=reason or p.reason,
            decision_source=p.decision_source,
            label=p.label,
            label_source=p.label_source,
            class_name=p.class_name,
            size_mm=p.size_mm,
            lead_count=p.lead_count,
            scheduled_count=p.stroke_count,
            fired_count=p.fired_count,
            divert_error_mm=error,
            latency_ms=stage_latencies(p.milestones),
            story=p.full_story(),
        )
        del self.active[p.id]
        self.finished.add(p.id)
        self._out.append(PublishRecord(record))

    def _alarm(self, kind: str, detail: str) -> None:
        self._out.append(Alarm(kind, detail, self.now_t, fault=kind == "jam"))  # type: ignore[arg-type]

    def _chute_mm(self, chute_id: str) -> float:
        if chute_id == self.reject:
            return self.cfg.reject_position_mm
        chute = self.cfg.chute(chute_id)
        assert chute is not None
        return chute.diverter_mm

    def _count(self) -> int:
        return self.now_count if self.now_count is not None else 0


_BUSY = "unconfirmed: the chute sensor was still blocked by the parcel before"


def _shown(label: str | None) -> str:
    return "a no-read" if label is None else repr(label[:40]) + ("..." if len(label) > 40 else "")


def _describe(ev: Sighting) -> str:
    parts = [ev.source]
    if ev.label is not None:
        parts.append(f"label {ev.label!r}")
    if ev.class_name is not None:
        parts.append(ev.class_name)
    if ev.size_mm is not None:
        parts.append("x".join(f"{v:.0f}" for v in ev.size_mm) + " mm")
    if ev.measured_mm is not None:
        parts.append("measured " + "x".join(f"{v:.0f}" for v in ev.measured_mm) + " mm")
    return ", ".join(parts)
