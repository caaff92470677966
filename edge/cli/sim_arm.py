"""`wolfpack sim --machine arm`: the whole simulated sorting-arm cell with the real node.

Processes: this one (orchestrator, embedded broker, reference brain, the report's MQTT
consumer, the live view), the simulated arm cell (MuJoCo world + the arm MCU firmware on a
pty + the belt camera's frame stream, ``sim_hardware.arm.cell``) and the node (`wolfpack run`
on a config with ``machine: arm``, as on a board). The node sees only what a board sees: a
pty, a camera stream on a TCP port and the broker.

The report joins the world's truth (where each parcel ended, whether a cup could hold it,
the cup's offset from the grasp point at the grip) with the node's pick records received over
MQTT (docs/sim-arm.md).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import os
import re
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from edge.sim.harness import (
    epoch,
    log_tail,
    process_usage,
    read_health,
    run_schedule,
    start_embedded_broker,
    wait_running,
)
from edge.sim.report import percentiles

REPO = Path(__file__).resolve().parents[2]
DEFAULT_CONFIG = REPO / "configs" / "sim-arm.yaml"

# ---- faults ---------------------------------------------------------------------------------
# name -> (takes a value, what the value means, its valid range)
ARM_FAULTS: dict[str, tuple[bool, str, tuple[float, float]]] = {
    "vacuum-leak": (False, "", (0, 0)),
    "drop": (False, "", (0, 0)),
    "light-curtain": (False, "", (0, 0)),
    "mcu-unplug": (False, "", (0, 0)),
    "brain-absent": (False, "", (0, 0)),
    "camera-silent": (False, "", (0, 0)),
    "estop": (False, "", (0, 0)),
}
FAULT_HELP = """\
faults (NAME[@START_S][+DURATION_S], comma separated; without @ from 0, without + to the end):
  vacuum-leak@20+10     the cup leaks: vacuum never reaches the grip threshold
  drop@20+10            the grip fails in transfer: each parcel held in the window falls
  light-curtain@30+2    the light curtain is broken for 2 s (motion must stop in time)
  mcu-unplug@30+3       the MCU's pty vanishes for 3 s mid-trajectory, then comes back
  brain-absent@10+20    the brain answers nothing (the routing table decides)
  camera-silent@15+5    the camera sends no frames (nothing may be picked blind)
  estop@30+2            the e-stop is pressed for 2 s (an operator's reset is needed)"""
DEFAULT_DURATIONS: dict[str, float] = {"mcu-unplug": 3.0}
_ITEM = re.compile(r"^(?P<name>[a-z-]+)(?:@(?P<start>[^+]+))?(?:\+(?P<duration>.+))?$")
# Faults during whose window the operator does not restart the cell (it would stop again).
_BLOCKING = frozenset({"estop", "light-curtain"})


class ArmSimError(RuntimeError):
    """The arm run could not be set up or went wrong in a way the report cannot describe."""


class ArmFaultError(ValueError):
    pass


@dataclass(frozen=True)
class ArmFault:
    kind: str
    start_s: float = 0.0
    duration_s: float | None = None  # None: to the end of the run

    def __str__(self) -> str:
        text = f"{self.kind}@{self.start_s:g}"
        return text if self.duration_s is None else f"{text}+{self.duration_s:g}"

    @property
    def end_s(self) -> float:
        return math.inf if self.duration_s is None else self.start_s + self.duration_s


def _seconds(text: str, what: str, item: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise ArmFaultError(f"{item!r}: {what} {text!r} is not a number") from None
    if not (value >= 0 and math.isfinite(value)):
        raise ArmFaultError(f"{item!r}: {what} must be a finite number >= 0, not {text}")
    return value


def parse_arm_faults(spec: str) -> list[ArmFault]:
    """``"light-curtain@30+2,brain-absent@10+20"`` -> faults sorted by start; each error says
    which item and why."""
    faults: list[ArmFault] = []
    for raw in spec.split(","):
        item = raw.strip()
        if not item:
            continue
        match = _ITEM.match(item)
        if match is None:
            raise ArmFaultError(f"{item!r}: expected NAME[@START_S][+DURATION_S]")
        name = match["name"]
        if name not in ARM_FAULTS:
            raise ArmFaultError(
                f"{item!r}: unknown arm fault {name!r}; known: {', '.join(ARM_FAULTS)}"
            )
        start = _seconds(match["start"], "start", item) if match["start"] else 0.0
        duration = DEFAULT_DURATIONS.get(name)
        if match["duration"] is not None:
            duration = _seconds(match["duration"], "duration", item)
            if duration == 0:
                raise ArmFaultError(f"{item!r}: a duration must be > 0")
        faults.append(ArmFault(name, start, duration))
    return sorted(faults, key=lambda f: f.start_s)


# ---- the report -------------------------------------------------------------------------------
REPORT_KEYS = (
    "parcels_in",
    "pickable",
    "placed_right",
    "misplaced",
    "dropped",
    "skipped",
    "lost",
    "picks_per_hour",
    "cycle_ms",
    "tracking_error_mm",
    "node",
)
JOIN_TOLERANCE_MM = 60.0  # a node record and a world parcel are the same parcel within this


def record_key(rec: Mapping[str, Any]) -> tuple[str | None, float | None]:
    """What joins a node record to a world parcel: its label, else its belt position at
    encoder count 0 (``belt_mm0``, where the node predicted the parcel's centre)."""
    label = rec.get("label")
    x0 = rec.get("belt_mm0")
    return (
        label if isinstance(label, str) and label else None,
        float(x0) if isinstance(x0, (int, float)) else None,
    )


def join_records(
    world: Mapping[int, Mapping[str, Any]], records: list[Mapping[str, Any]]
) -> tuple[dict[int, Mapping[str, Any]], list[Mapping[str, Any]]]:
    """World parcel id -> the node's record of it, and the records no parcel took. A record
    with a label joins the legible parcel with that label; the others join the nearest parcel
    by belt position (within ``JOIN_TOLERANCE_MM``) that has no record yet, else the parcel
    whose footprint the record's centre lies on (a camera that boxed part of a parcel, an
    irregular item's lobe, places it off the parcel's centre but on it). A record on a parcel
    that has one already is a second record of it (the camera's tracker split it in two):
    neither joined nor unmatched, counted by the caller as a duplicate."""
    by_label: dict[str, list[int]] = {}
    for pid, p in world.items():
        if p.get("legible") and p.get("label"):
            by_label.setdefault(str(p["label"]), []).append(pid)
    joined: dict[int, Mapping[str, Any]] = {}
    rest: list[Mapping[str, Any]] = []
    for rec in records:
        label, _ = record_key(rec)
        pids = [pid for pid in by_label.get(label or "", []) if pid not in joined]
        if pids:
            joined[pids[0]] = rec
        elif label is None or label not in by_label:
            rest.append(rec)
        # else: a second record of a parcel already joined (split track): a duplicate
    unmatched: list[Mapping[str, Any]] = []
    for rec in rest:
        _, x0 = record_key(rec)
        pid = None if x0 is None else _nearest(world, x0, joined, JOIN_TOLERANCE_MM)
        if pid is None and x0 is not None:
            on = _on_footprint(world, x0)
            if on is not None and on in joined:
                continue  # a second record of a parcel: a duplicate
            pid = on
        if pid is None:
            unmatched.append(rec)
        else:
            joined[pid] = rec
    return joined, unmatched


def _mm0(p: Mapping[str, Any]) -> float | None:
    """A parcel's centre at encoder count 0 as the camera last showed it (``camera_mm0``),
    else as it was put on the belt (``belt_mm0``: a parcel pushed along the belt since, by
    the arm or a neighbour, is no longer there)."""
    x = p.get("camera_mm0")
    x = p.get("belt_mm0") if x is None else x
    return None if x is None else float(x)


def _nearest(
    world: Mapping[int, Mapping[str, Any]], x0: float, taken: Mapping[int, Any], within: float
) -> int | None:
    """The parcel without a record whose ``_mm0`` is nearest ``x0``, within ``within``."""
    best, best_d = None, within
    for pid, p in world.items():
        at = _mm0(p)
        if pid in taken or at is None:
            continue
        d = abs(at - x0)
        if d <= best_d:
            best, best_d = pid, d
    return best


def _on_footprint(world: Mapping[int, Mapping[str, Any]], x0: float) -> int | None:
    """The parcel whose footprint along the belt (its centre +- half its larger side) holds
    ``x0``, the nearest centre where two do."""
    best, best_d = None, math.inf
    for pid, p in world.items():
        size, at = p.get("size_mm"), _mm0(p)
        if at is None or not size:
            continue
        d = abs(at - x0)
        if d <= max(float(size[0]), float(size[1])) / 2 and d < best_d:
            best, best_d = pid, d
    return best


def build_arm_report(
    *,
    world: Mapping[int, Mapping[str, Any]],
    records: list[Mapping[str, Any]],
    node_usage: Mapping[str, float],
    span_s: float,
    settings: Mapping[str, Any],
    extra: Mapping[str, Any] | None = None,
    camera_ids: Mapping[str, Iterable[int]] | None = None,
) -> dict[str, Any]:
    """The run's report from the world's truth (parcel id -> ``ParcelTruth`` as a dict, see
    ``sim_hardware.arm.cell``) and the node's pick records. ``span_s``: the time over which
    picks per hour are counted (arrivals on). ``camera_ids``: the camera's ``seen`` and
    ``legible`` world ids (parcels in at least one frame; with a legible label in one)."""
    done = {pid: p for pid, p in world.items() if p.get("end") is not None}
    joined, unmatched = join_records(done, records)
    pickable = [pid for pid, p in done.items() if p.get("pickable")]
    right = [
        pid
        for pid, p in done.items()
        if p.get("intended") is not None and p["end"] == f"dest:{p['intended']}"
    ]
    mis = [pid for pid, p in done.items() if str(p["end"]).startswith("dest:") and pid not in right]
    dropped = [pid for pid, p in done.items() if p.get("dropped")]
    passed = [pid for pid, p in done.items() if p["end"] == "belt_end"]
    skipped: Counter[str] = Counter()
    for pid in passed:
        rec = joined.get(pid)
        if rec is None:
            continue
        skipped[str(rec.get("reason") or rec.get("outcome") or "unknown")] += 1
    # lost: a parcel that ended without a record of the node, or that fell where no
    # record said it did (dropped and the node did not report the drop)
    no_record = sorted(pid for pid in done if pid not in joined)
    unreported_drop = sorted(
        pid
        for pid in dropped
        if pid in joined and "drop" not in str(joined[pid].get("outcome", ""))
    )
    lost = sorted(set(no_record) | set(unreported_drop))
    placed_times = [
        float(p["ended_s"])
        for p in done.values()
        if str(p["end"]).startswith("dest:") and p.get("ended_s") is not None
    ]
    placed_in_span = [t for t in placed_times if 0.0 <= t <= span_s]
    cycle = [float(r["cycle_ms"]) for r in records if isinstance(r.get("cycle_ms"), (int, float))]
    tracking = [
        float(p["grip_error_mm"])
        for p in done.values()
        if isinstance(p.get("grip_error_mm"), (int, float))
    ]
    outcomes = Counter(str(r.get("outcome")) for r in records)
    decisions = Counter(str(r.get("decision_source") or "none") for r in records)
    n_pickable = len(pickable)
    right_of_pickable = sum(1 for pid in right if pid in set(pickable))
    return {
        "parcels_in": len(done),
        "pickable": n_pickable,
        "not_pickable": {
            "total": len(done) - n_pickable,
            "by_reason": dict(
                Counter(
                    str(p.get("why_not")) for p in done.values() if not p.get("pickable")
                ).most_common()
            ),
        },
        "picked": sum(1 for p in done.values() if p.get("gripped")),
        "placed_right": len(right),
        "placed_right_of_pickable": round(right_of_pickable / n_pickable, 5)
        if n_pickable
        else None,
        "misplaced": len(mis),
        "dropped": len(dropped),
        "passed_to_belt_end": len(passed),
        "skipped": dict(skipped.most_common()),
        "lost": len(lost),
        "lost_detail": {
            "no_node_record": len(no_record),
            "no_record_why": dict(Counter(_why_no_record(pid, camera_ids) for pid in no_record)),
            "drop_not_reported": len(unreported_drop),
            "examples": lost[:10],
        },
        "still_in_cell": len(world) - len(done),
        "picks_per_hour": round(len(placed_in_span) * 3600.0 / span_s, 1) if span_s > 0 else 0.0,
        "cycle_ms": percentiles(cycle),
        "tracking_error_mm": percentiles(tracking),
        "node": dict(node_usage),
        "node_records": len(records),
        "node_outcomes": dict(outcomes.most_common()),
        "decisions": dict(decisions.most_common()),
        "records_duplicate": len(records) - len(joined) - len(unmatched),
        "records_unmatched": {
            "count": len(unmatched),
            "examples": [dict(r) for r in unmatched[:3]],
        },
        "seeing": seeing_report(done, joined, camera_ids) if camera_ids is not None else None,
        "settings": dict(settings),
        **dict(extra or {}),
    }


def _why_no_record(pid: int, camera_ids: Mapping[str, Iterable[int]] | None) -> str:
    """Why a parcel may have ended without a node record, as far as the camera tells."""
    if camera_ids is None:
        return "unknown (no camera figures)"
    if pid not in set(camera_ids.get("seen", ())):
        return "in no camera frame"
    return "in camera frames, no node record"


def seeing_report(
    done: Mapping[int, Mapping[str, Any]],
    joined: Mapping[int, Mapping[str, Any]],
    camera_ids: Mapping[str, Iterable[int]],
) -> dict[str, Any]:
    """What the camera showed against what the node read: parcels in no frame at all, and
    labels the world could read, the camera showed legibly and the node did not read
    (``labels_missed``: no record, or a record without the label)."""
    seen = set(camera_ids.get("seen", ()))
    legible = set(camera_ids.get("legible", ()))
    readable = [pid for pid, p in done.items() if p.get("legible") and p.get("label")]
    missed = sorted(
        pid
        for pid in readable
        if pid in legible and (joined.get(pid) or {}).get("label") != done[pid].get("label")
    )
    return {
        "not_shown": sorted(pid for pid in done if pid not in seen),
        "labels_readable": len(readable),
        "labels_shown_legible": sum(1 for pid in readable if pid in legible),
        "labels_read": sum(
            1 for pid in readable if (joined.get(pid) or {}).get("label") == done[pid].get("label")
        ),
        "labels_missed": missed,
    }


def render_arm_text(r: Mapping[str, Any]) -> str:
    """The report for a person: the headline figures, then the details."""
    n_pick = r["pickable"]
    pct = f"{100 * r['placed_right_of_pickable']:.2f} %" if n_pick else "n/a"
    lines = [
        f"parcels in        {r['parcels_in']}  ({n_pick} pickable; not pickable: "
        + (", ".join(f"{k} {v}" for k, v in r["not_pickable"]["by_reason"].items()) or "none")
        + ")",
        f"picked            {r['picked']}",
        f"placed right      {r['placed_right']}  ({pct} of pickable)",
        f"mis-placed        {r['misplaced']}",
        f"dropped           {r['dropped']}",
        f"passed on         {r['passed_to_belt_end']}  (to the belt's end; skipped and why:)",
    ]
    for why, count in r["skipped"].items():
        lines.append(f"    {count:6d}  {why}")
    ld = r["lost_detail"]
    lines.append(
        f"lost              {r['lost']}  (no node record {ld['no_node_record']}, "
        f"drop not reported {ld['drop_not_reported']})"
    )
    for why, count in ld.get("no_record_why", {}).items():
        lines.append(f"    {count:6d}  no record: {why}")
    if r.get("still_in_cell"):
        lines.append(f"still in the cell {r['still_in_cell']}  (the run ended before they left)")
    lines.append(f"picks/h           {r['picks_per_hour']:.0f}")
    c, t = r["cycle_ms"], r["tracking_error_mm"]
    lines.append(f"cycle (ms)        p50 {_fmt(c['p50'])}  p99 {_fmt(c['p99'])}  (n {c['n']})")
    lines.append(
        f"tracking error    p50 {_fmt(t['p50'])}  p99 {_fmt(t['p99'])}  "
        f"max {_fmt(t['max'])} mm at the grip"
    )
    if r.get("decisions"):
        lines.append(
            "decided by        " + ", ".join(f"{k} {v}" for k, v in r["decisions"].items())
        )
    node = r["node"]
    lines.append(
        f"node              cpu {node.get('cpu_percent', 0):.1f} %  rss "
        f"{node.get('rss_mb', 0):.1f} MB (peak {node.get('rss_peak_mb', 0):.1f} MB)"
    )
    if r.get("records_duplicate"):
        lines.append(f"split tracks      {r['records_duplicate']} second record(s) of one parcel")
    if r["records_unmatched"]["count"]:
        lines.append(f"records           {r['records_unmatched']['count']} matching no parcel")
    see = r.get("seeing")
    if see:
        lines.append(
            f"seeing            labels read {see['labels_read']} of {see['labels_readable']} "
            f"readable ({see['labels_shown_legible']} shown legibly; missed "
            f"{len(see['labels_missed'])}); parcels in no frame {len(see['not_shown'])}"
        )
    if r.get("faults"):
        lines.append("faults            " + "; ".join(r["faults"]))
    safety = r.get("safety") or {}
    if safety.get("transitions"):
        lines.append(
            "safety            "
            + ", ".join(
                f"{x.get('t_s')}s {x.get('from')}->{x.get('to')}"
                for x in safety["transitions"][:12]
            )
        )
    if safety.get("motion_stops"):
        lines.append(
            "motion stops (ms) "
            + ", ".join(f"{s['cause']} {s['stop_ms']}" for s in safety["motion_stops"])
        )
    return "\n".join(lines)


def _fmt(v: float | None) -> str:
    return f"{v:8.2f}" if v is not None else "     n/a"


# ---- the run ------------------------------------------------------------------------------------
@dataclass
class ArmSimOptions:
    rate_pph: float = 1_800.0
    duration_s: float = 120.0
    faults: list[ArmFault] = field(default_factory=list)
    broker: str | None = None  # None: the embedded broker
    config: Path = DEFAULT_CONFIG
    seed: int = 1
    unreadable_fraction: float = 0.02
    brain_latency_ms: float = 5.0
    camera_fps: float = 5.0
    drain_timeout_s: float = 20.0
    workdir: Path | None = None
    progress: Callable[[str], None] | None = None
    live: bool = False  # a rich live table on stderr (a terminal) instead of progress lines
    progress_every_s: float = 2.0
    operator_settle_s: float = 1.0
    node_cmd: list[str] | None = None  # None: `wolfpack run` (python -m edge.cli.main run)
    # The node streams joint segments ~0.1-0.35 s ahead of the arm: on a machine shared with
    # other work it runs with real-time priority, as a board's systemd unit gives it
    # (CPUSchedulingPolicy=fifo); the simulated cell above it, the MCU's own CPU. 0: as is.
    node_rt_priority: int = 5


@dataclass
class _Got:
    records: list[dict[str, Any]] = field(default_factory=list)
    safety: list[dict[str, Any]] = field(default_factory=list)
    alarms: list[dict[str, Any]] = field(default_factory=list)
    events: Counter[str] = field(default_factory=Counter)
    lock: threading.Lock = field(default_factory=threading.Lock)


class ArmSimulation:
    """One run: broker, simulated arm cell, brain, consumer and node up; faults on their
    schedule; the induction closed after ``duration_s``; the cell drained; the report."""

    def __init__(self, options: ArmSimOptions) -> None:
        from edge.config import load_board_config

        self.o = options
        try:
            self.board: Any = load_board_config(options.config)
        except Exception as exc:  # a ConfigError prints where and why
            raise ArmSimError(f"{options.config}: {exc}") from None
        self.arm: Any = getattr(self.board, "arm", None)
        if self.arm is None or self.board.mqtt is None:
            raise ArmSimError(
                f"{options.config}: an arm sim config needs 'machine: arm', "
                "'arm:' and 'mqtt:' sections"
            )
        self.site, self.node_id = self.board.node.site, self.board.node.id
        self.workdir = Path(options.workdir or tempfile.mkdtemp(prefix="wolfpack-sim-arm-"))
        self.got = _Got()
        self.broker: Any = None
        self.broker_url = ""
        self.cell: Any = None
        self.brain: Any = None
        self.consumer: Any = None
        self.node: subprocess.Popen[bytes] | None = None
        self.t0 = 0.0
        self.fault_log: list[str] = []
        self.operator_log: list[str] = []
        self._open_blocking: set[ArmFault] = set()
        self._last_blocking_end = 0.0
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self._wall_offset = time.time() - time.monotonic()
        self._node_log: Any = None
        self._live: Any = None

    # ---- the run ---------------------------------------------------------------------------
    def run(self) -> dict[str, Any]:
        try:
            return self._run()
        except ArmSimError:
            raise
        except (RuntimeError, OSError, TimeoutError) as exc:  # a port, a pty, the cell's pipe
            raise ArmSimError(f"{type(exc).__name__}: {exc}") from exc
        finally:
            self.close()

    def _run(self) -> dict[str, Any]:
        self.start()
        usage0 = self.usage()
        self._say(f"arm running; parcels at {self.o.rate_pph:g}/h for {self.o.duration_s:g} s")
        self._thread(self._operator, "sim-arm-operator")
        self._run_schedule()
        self.cell.call("close_induction")
        self._say("induction closed; waiting for the cell to clear and the records")
        self._drain()
        usage = self.usage(usage0)
        return self.report(usage)

    def start(self) -> None:
        """Broker, simulated cell, brain, consumer and node up, the node running."""
        from fleet_link.brain import Brain
        from sim_hardware.arm.cell import SimArmCellProcess
        from sim_hardware.brain.config import BrainConfig
        from sim_hardware.brain.policy import ReferenceBrain
        from sim_hardware.brain.service import BrainService

        self.workdir.mkdir(parents=True, exist_ok=True)
        if self.o.node_rt_priority > 0:
            # the brain and the broker stand for machines of their own: on a shared machine
            # they run with real-time priority below the node's (the camera's renderer, the
            # heaviest part, does not: sim_hardware/arm/cell.py)
            with contextlib.suppress(OSError, AttributeError):
                os.sched_setscheduler(
                    0, os.SCHED_FIFO, os.sched_param(max(1, self.o.node_rt_priority - 2))
                )
                self._rt = True
        self.broker_url = self.o.broker or self._start_embedded_broker()
        self._say(f"broker {self.broker_url}")
        self.cell_settings = cell_settings(self.board, self.o)
        self.cell = SimArmCellProcess(self.cell_settings, self.workdir / "mcu").start()
        self._say(
            f"simulated arm cell: MCU {self.workdir / 'mcu'}, camera "
            f"127.0.0.1:{self.cell.camera_port} at {self.o.camera_fps:g} fps"
        )
        routes = self.cell_settings["brain_routes"]
        policy = ReferenceBrain(
            BrainConfig(
                sort_chutes=routes["sort"],
                reject_chute=routes["reject"],
                routes=routes["prefixes"],
                latency_ms=self.o.brain_latency_ms,
                seed=self.o.seed,
            )
        )
        brain = self.cell_settings["brain_binding"]
        self.brain = BrainService(
            self.broker_url,
            self.site,
            policy,
            request_event=brain["request_event"],
            answer_command=brain["answer_command"],
        ).start()
        self.consumer = Brain(self.broker_url, self.site, on_message=self._on_message).start()
        config = self._write_node_config()
        self._start_node(config)
        self._wait_running()
        self.t0 = time.monotonic()
        self.cell.call("open_induction", self.t0)

    def _write_node_config(self) -> Path:
        data = self.board.model_dump(mode="json", exclude_none=True)
        patch_node_config(
            data,
            mcu_port=str(self.workdir / "mcu"),
            camera_port=int(self.cell.camera_port),
            broker=self.broker_url,
            outbox=str(self.workdir / "outbox.sqlite"),
        )
        path = self.workdir / "node.yaml"
        path.write_text(
            f"# written by `wolfpack sim --machine arm` from {self.o.config}\n"
            + json.dumps(data, indent=1)
        )
        try:
            type(self.board).model_validate(data)
        except Exception as exc:
            raise ArmSimError(f"the node config written for the run is invalid: {exc}") from None
        return path

    def _start_node(self, config: Path) -> None:
        if self._node_log is None:
            self._node_log = open(self.workdir / "node.log", "ab")
        cmd = self.o.node_cmd or [sys.executable, "-m", "edge.cli.main"]
        cmd = [
            *cmd,
            "run",
            str(config),
            "--start",
            "--health-file",
            str(self.workdir / "health.json"),
        ]
        self.node = subprocess.Popen(cmd, stdout=self._node_log, stderr=subprocess.STDOUT, cwd=REPO)
        self._say(f"node pid {self.node.pid} (log {self.workdir / 'node.log'})")

    def _wait_running(self, timeout: float = 60.0) -> None:
        assert self.node is not None
        wait_running(self.node, self.workdir / "health.json", ArmSimError, self._node_tail,
                     timeout)  # fmt: skip

    def health(self) -> dict[str, Any]:
        return read_health(self.workdir / "health.json")

    def _node_tail(self, lines: int = 15) -> str:
        return log_tail(self.workdir / "node.log", lines)

    # ---- faults, operator, progress ----------------------------------------------------------
    def _run_schedule(self) -> None:
        windows = [(f.start_s, min(f.end_s, self.o.duration_s), f) for f in self.o.faults]
        run_schedule(windows, self.o.duration_s, self.t0, self.apply,
                     [(self.o.progress_every_s, self._show)], self._check_node)  # fmt: skip

    def apply(self, fault: ArmFault, begin: bool) -> None:
        """Begin or end ``fault`` now (tests drive this by hand)."""
        kind = fault.kind
        self.fault_log.append(
            f"t={time.monotonic() - self.t0:6.1f}s {fault} {'begins' if begin else 'ends'}"
        )
        self._say(f"fault {fault} {'begins' if begin else 'ends'}")
        if kind in _BLOCKING:
            if begin:
                self._open_blocking.add(fault)
            else:
                self._open_blocking.discard(fault)
                self._last_blocking_end = time.monotonic()
        if kind == "brain-absent":
            self.brain.policy.set_absent(begin)
        else:  # the world's and devices' faults live in the simulated cell
            self.cell.call("set_fault", kind, begin)

    def _check_node(self) -> None:
        node = self.node
        if node is not None and node.poll() is not None:
            raise ArmSimError(f"the node exited with {node.returncode}: {self._node_tail()}")

    def _operator(self) -> None:
        """The operator: once no blocking fault is on and the cell has stood in e-stop, fault
        or ready for a second, reset it if needed and start it."""
        next_try = 0.0
        while not self._stop.wait(0.1):
            now = time.monotonic()
            if (
                self._open_blocking
                or now - self._last_blocking_end < self.o.operator_settle_s
                or now < next_try
            ):
                continue
            state = self.health().get("state")
            if state not in ("estop", "fault", "ready"):
                continue
            time.sleep(self.o.operator_settle_s)
            if self.health().get("state") != state or self._open_blocking:
                continue
            next_try = time.monotonic() + 2.0
            for name in ("reset", "start") if state in ("estop", "fault") else ("start",):
                if not self._command(name):
                    break

    def _command(self, name: str) -> bool:
        t = time.monotonic() - self.t0
        try:
            result = self.consumer.command(self.node_id, name, timeout=5.0)
            said = "ok" if result.ok else str((result.error or {}).get("message", result.error))
        except Exception as exc:  # reported; the run goes on
            result, said = None, f"no answer: {exc}"
        self.operator_log.append(f"t={t:6.1f}s {name}: {said}")
        self._say(f"operator: {name} -> {said}")
        return result is not None and bool(result.ok)

    def _drain(self) -> None:
        """Until the cell is empty (no parcel on the belt, in the gripper or waiting), giving
        up after ``drain_timeout_s`` without a parcel finishing; then until each finished
        parcel has its record, or ``drain_timeout_s`` more."""
        deadline = time.monotonic() + self.o.drain_timeout_s
        finished = -1
        next_progress = 0.0
        while time.monotonic() < deadline:
            s = self.cell.call("summary")
            if s["in_cell"] == 0:
                break
            if s["finished"] > finished:
                finished = s["finished"]
                deadline = time.monotonic() + self.o.drain_timeout_s
            now = time.monotonic() - self.t0
            if now >= next_progress:
                next_progress = now + self.o.progress_every_s
                self._show(now)
            self._check_node()
            time.sleep(0.2)
        deadline = time.monotonic() + self.o.drain_timeout_s
        while time.monotonic() < deadline:
            s = self.cell.call("summary")
            with self.got.lock:
                if len(self.got.records) >= s["finished"]:
                    break
            time.sleep(0.2)

    def snapshot(self, now: float) -> dict[str, Any]:
        """The live view's figures now."""
        with self.got.lock:
            outcomes = Counter(str(r.get("outcome")) for r in self.got.records)
        world = self.cell.call("summary")
        usage = self.usage()
        return {
            "t": now,
            "world": world,
            "outcomes": dict(outcomes),
            "state": self.health().get("state"),
            "rss_mb": usage.get("rss_mb", 0.0),
        }

    def _show(self, now: float) -> None:
        if self.o.progress is None and self._live is None:
            return
        try:
            snap = self.snapshot(now)
        except Exception as exc:  # the view must never end the run
            self._say(f"t={now:5.1f}s (no figures: {exc})")
            return
        if self._live is not None:
            self._live.update(live_table(snap))
        else:
            self._say(progress_line(snap))

    # ---- the end -----------------------------------------------------------------------------
    def report(self, usage: Mapping[str, float]) -> dict[str, Any]:
        truth = {int(p["id"]): p for p in self.cell.call("truth", self.t0)}
        with self.got.lock:
            records = list(self.got.records)
            extra: dict[str, Any] = {
                "safety": {
                    "transitions": [
                        {
                            "t_s": round(epoch(s.get("_ts", "")) - self._wall_offset - self.t0, 2)
                            if s.get("_ts")
                            else None,
                            "from": s.get("from"),
                            "to": s.get("to"),
                            "cause": s.get("cause") or s.get("reason"),
                        }
                        for s in self.got.safety
                    ]
                },
                "alarms": len(self.got.alarms),
                "events": dict(self.got.events),
            }
        with contextlib.suppress(Exception):
            extra["safety"]["motion_stops"] = self.cell.call("motion_stops", self.t0)
        with contextlib.suppress(Exception):
            extra["world"] = self.cell.call("summary")
        camera_ids: dict[str, list[int]] | None = None
        with contextlib.suppress(Exception):
            extra["camera"] = self.cell.camera_stats()
            camera_ids = self.cell.camera_ids()
        with contextlib.suppress(Exception):  # where the cup was while the valve was open
            trace = self.cell.call("trace")
            (self.workdir / "valve-trace.jsonl").write_text(
                "".join(json.dumps(row) + "\n" for row in trace)
            )
        extra["faults"] = list(self.fault_log)
        extra["operator"] = list(self.operator_log)
        for name, rows in (("world.jsonl", truth.values()), ("records.jsonl", records)):
            with open(self.workdir / name, "w") as out:
                for row in rows:
                    out.write(json.dumps(row) + "\n")
        return build_arm_report(
            world=truth,
            records=records,
            node_usage=usage,
            span_s=self.o.duration_s,
            settings={
                "rate_pph": self.o.rate_pph,
                "duration_s": self.o.duration_s,
                "seed": self.o.seed,
                "broker": self.broker_url,
                "config": str(self.o.config),
                "faults": [str(f) for f in self.o.faults],
                "camera_fps": self.o.camera_fps,
            },
            extra=extra,
            camera_ids=camera_ids,
        )

    def close(self) -> None:
        self._stop.set()
        if getattr(self, "_rt", False):  # this process back to normal scheduling
            with contextlib.suppress(OSError, AttributeError):
                os.sched_setscheduler(0, os.SCHED_OTHER, os.sched_param(0))
        for thread in self._threads:
            thread.join(5)
        if self.node is not None and self.node.poll() is None:
            self.node.terminate()
            try:
                self.node.wait(15)
            except subprocess.TimeoutExpired:
                self.node.kill()
                self.node.wait(5)
        for part in (self.consumer, self.brain, self.cell):
            if part is not None:
                with contextlib.suppress(Exception):
                    part.stop()
        if self.broker is not None:
            with contextlib.suppress(Exception):
                self.broker.stop()
        if self._node_log is not None:
            self._node_log.close()
            self._node_log = None

    # ---- helpers -------------------------------------------------------------------------------
    def _start_embedded_broker(self) -> str:
        self.broker = start_embedded_broker()
        return str(self.broker.url)

    def _on_message(self, msg: Any) -> None:
        if msg.node != self.node_id or msg.kind != "events":
            return
        with self.got.lock:
            self.got.events[msg.name] += 1
            if msg.name == self.cell_settings["record_event"]:
                self.got.records.append(dict(msg.data))
            elif msg.name == "safety":
                self.got.safety.append({**msg.data, "_ts": msg.ts})
            elif msg.name == "alarm":
                self.got.alarms.append(dict(msg.data))

    def usage(self, since: Mapping[str, float] | None = None) -> dict[str, float]:
        node = self.node
        return process_usage(node.pid if node is not None else 0, since)

    def _thread(self, target: Callable[[], None], name: str) -> None:
        thread = threading.Thread(target=target, name=name, daemon=True)
        thread.start()
        self._threads.append(thread)

    def _say(self, text: str) -> None:
        if self.o.progress is not None:
            self.o.progress(text)


def progress_line(snap: Mapping[str, Any]) -> str:
    w = snap["world"]
    return (
        f"t={snap['t']:5.1f}s  in {w.get('inducted', 0):4d}  on belt {w.get('on_belt', 0):3d}"
        f"  picked {w.get('picked', 0):4d}  placed {w.get('placed', 0):4d}"
        f"  dropped {w.get('dropped', 0):3d}  passed {w.get('passed', 0):3d}"
        "  | node: "
        + " ".join(f"{k} {v}" for k, v in sorted(snap["outcomes"].items()))
        + f"  | {snap.get('state')}  rss {snap.get('rss_mb', 0):.0f} MB"
    )


def live_table(snap: Mapping[str, Any]) -> Any:
    """The live view: the world's counts beside the node's records (rich)."""
    from rich.table import Table

    w = snap["world"]
    table = Table(
        title=f"wolfpack sim --machine arm   t={snap['t']:.0f} s   node "
        f"{snap.get('state')}   rss {snap.get('rss_mb', 0):.0f} MB"
    )
    table.add_column("world (truth)")
    table.add_column("", justify="right")
    table.add_column("node (its pick records)")
    table.add_column("", justify="right")
    left = [
        (k, w.get(k, 0))
        for k in ("inducted", "on_belt", "picked", "placed", "dropped", "passed", "in_cell")
    ]
    right = sorted(snap["outcomes"].items())
    for i in range(max(len(left), len(right))):
        a = left[i] if i < len(left) else ("", "")
        b = right[i] if i < len(right) else ("", "")
        table.add_row(str(a[0]), str(a[1]), str(b[0]), str(b[1]))
    return table


# ---- the simulated cell's settings, from the node's config ---------------------------------
RECORD_EVENT = "pick"  # the node's pick record event (edge/arm/node.py)
INDUCTION_BEFORE_CAMERA_MM = 700.0  # parcels enter the belt this far upstream of the camera
BELT_END_AFTER_WINDOW_MM = 900.0  # the belt's end (reject / manual) past the tracking window


def cell_settings(board: Any, o: ArmSimOptions) -> dict[str, Any]:
    """The simulated cell as plain values (``sim_hardware`` never imports ``edge``), taken
    from the node's own config, so that the world is the cell the node is configured for."""
    arm = board.arm
    mcu = next((m for m in board.mcus if m.name == arm.mcu.name), board.mcus[0])
    fov = _camera_fov_mm(board)
    camera_u = arm.camera.along_offset_mm
    n_dest = len(arm.destinations)
    routes: dict[str, int] = {}
    for rule in arm.routing:  # plain "PREFIX.*" rules: the brain and the truth agree on them
        match = re.fullmatch(
            r"([A-Za-z0-9-]+)\.\*",
            rule.label.pattern if hasattr(rule.label, "pattern") else str(rule.label or ""),
        )
        index = next((i for i, d in enumerate(arm.destinations) if d.id == rule.chute), None)
        if match and index is not None and rule.classes is None:
            routes.setdefault(match[1], index)
    return {
        "seed": o.seed,
        "rate_pph": o.rate_pph,
        "unreadable_fraction": o.unreadable_fraction,
        "arm": arm.model_dump(mode="json"),
        "mcu": {"baud": mcu.baud, "watchdog_ms": mcu.watchdog_ms},
        "camera": {
            "centre_u_mm": camera_u,
            "fov_mm": fov,
            "fps": o.camera_fps,
            "size": list(_camera_size(board)),
        },
        "induction_u_mm": camera_u - fov / 2 - INDUCTION_BEFORE_CAMERA_MM,
        "belt_end_u_mm": arm.tracking.downstream_mm + BELT_END_AFTER_WINDOW_MM,
        # the reference brain answers destination indices; n_dest (no destination) = pass
        "brain_routes": {"sort": list(range(n_dest)), "reject": n_dest, "prefixes": routes},
        "brain_binding": {"request_event": "route_request", "answer_command": "route"},
        "record_event": RECORD_EVENT,
    }


def _camera_fov_mm(board: Any) -> float:
    """The belt length across the frame's width, from the vision calibration's points."""
    from vision.measure import Calibration

    vision = board.vision
    if vision is None or vision.calibration is None:
        raise ArmSimError("the arm sim config needs vision.calibration (the simulated camera)")
    cal = Calibration.from_config(vision.calibration)
    w, h = _camera_size(board)
    ends = cal.to_mm([[0.0, h / 2], [float(w), h / 2]])
    return float(abs(ends[1][0] - ends[0][0]))


def _camera_size(board: Any) -> tuple[int, int]:
    """The frame the simulated camera renders: the source's width x height (640 x 480 when
    the config does not ask for one, as a camera's default mode)."""
    source = board.vision.source if board.vision is not None else None
    if source is None:
        return 640, 480
    return int(source.width or 640), int(source.height or 480)


def patch_node_config(
    data: dict[str, Any], *, mcu_port: str, camera_port: int, broker: str, outbox: str
) -> None:
    """What changes from run to run in the node's config: the MCU's pty, the camera's port,
    the broker, the outbox; the rest is used as written."""
    name = data["arm"]["mcu"].get("name", "main")
    for mcu in data["mcus"]:
        if mcu["name"] == name:
            mcu["port"] = mcu_port
    data.setdefault("vision", {}).setdefault("source", {})["uri"] = (
        f"wpcf://127.0.0.1:{camera_port}"
    )
    data["mqtt"]["broker"] = broker
    data["mqtt"].setdefault("outbox", {})["path"] = outbox


# ---- the command ------------------------------------------------------------------------------
DIVERTER_DEFAULT_RATE = 12_000.0  # `wolfpack sim`'s --rate default, meant for the diverter
ARM_DEFAULT_RATE = 1_800.0


def run_arm(args: argparse.Namespace) -> int:
    """`wolfpack sim --machine arm ...` (the arguments are `wolfpack sim`'s): 0 after a run
    and its report, 1 when the run failed, 2 for bad arguments."""
    try:
        faults = parse_arm_faults(getattr(args, "faults", "") or "")
    except ArmFaultError as exc:
        print(f"wolfpack sim --machine arm: --faults: {exc}", file=sys.stderr)
        return 2
    rate = float(getattr(args, "rate", None) or ARM_DEFAULT_RATE)
    if rate == DIVERTER_DEFAULT_RATE and "--rate" not in " ".join(sys.argv):
        rate = ARM_DEFAULT_RATE  # the diverter's default is no arm's: 1,800/h unless asked
    duration = float(getattr(args, "duration", None) or 120.0)
    for name, value in (("--rate", rate), ("--duration", duration)):
        if not value > 0:
            print(f"wolfpack sim --machine arm: {name} must be > 0", file=sys.stderr)
            return 2
    quiet = bool(getattr(args, "quiet", False))
    live = not quiet and sys.stderr.isatty()

    def progress(text: str) -> None:
        print(text, file=sys.stderr, flush=True)

    options = ArmSimOptions(
        rate_pph=rate,
        duration_s=duration,
        faults=faults,
        broker=getattr(args, "broker", None),
        config=Path(args.config) if getattr(args, "config", None) else DEFAULT_CONFIG,
        seed=int(getattr(args, "seed", 1) or 1),
        unreadable_fraction=float(getattr(args, "unreadable", 0.02)),
        brain_latency_ms=float(getattr(args, "brain_latency", 5.0)),
        camera_fps=float(getattr(args, "camera_fps", 5.0) or 5.0),
        workdir=Path(args.workdir) if getattr(args, "workdir", None) else None,
        progress=None if quiet else progress,
        live=live,
    )
    try:
        sim = ArmSimulation(options)
        if live:
            from rich.console import Console
            from rich.live import Live

            with Live(console=Console(stderr=True), refresh_per_second=2) as view:
                sim._live = view
                report = sim.run()
        else:
            report = sim.run()
    except ArmSimError as exc:
        print(f"wolfpack sim --machine arm: {exc}", file=sys.stderr)
        return 1
    print(render_arm_text(report))
    print(f"(node config, log, records and the world's truth: {sim.workdir})")
    if getattr(args, "report", None):
        Path(args.report).write_text(json.dumps(report, indent=2) + "\n")
        print(f"report written to {args.report}")
    return 0
