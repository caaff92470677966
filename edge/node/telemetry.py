"""Periodic, deadbanded telemetry of a cell node: what an operator charts.

A supervised task on the node's loop samples the cell every ``SAMPLE_S`` and hands each group
to ``fleet_link.telemetry.Deadband``: a group is sent every ``interval_s`` (a heartbeat) and,
between, when a value moved past its deadband (``mqtt.telemetry.<group>``). Sampling reads
what the node already holds (the PLC's last status, the MCU link's counters, the camera's
figures); only the ``system`` group reads files (``/proc``, ``/sys``), in a worker thread.
Publishing goes through the node's reporting thread (``FleetBridge.telemetry``), so a slow
disk or broker never holds up the loop.

Values are flat ``name: number | string | bool | null`` maps (``telemetry.json``). A value
that could not be read is never a stand-in 0: it is ``null`` with ``<source>_error`` saying
why, or absent where the machine has no such thing (no PLC, no camera, no thermal sensor).

Groups (docs/mqtt.md, "telemetry/<group>"): ``belt``, ``plc``, ``mcu``, ``chutes``,
``vision`` (with a camera), ``system``. ``DEFAULTS`` holds their default periods and
deadbands; a group in the config overrides the fields it names (deadbands merged by field).
"""

from __future__ import annotations

import asyncio
import glob
import logging
import math
import os
import re
import time
from collections import Counter, deque
from collections.abc import Callable
from pathlib import Path
from typing import Any

from edge.cell.record import ParcelRecord
from edge.safety.machine import State
from firmware_bridge.modbus.quality import Quality, TagValue
from fleet_link.config import TelemetryGroupConfig
from fleet_link.telemetry import Deadband

log = logging.getLogger("wolfpack.node.telemetry")

Scalar = float | int | str | bool | None
Values = dict[str, Scalar]

SAMPLE_S = 0.5  # how often the loop-side groups are sampled (deadband checks)
SYSTEM_SAMPLE_S = 2.0  # the system group (files, in a thread) at most this often
RATE_WINDOW_S = 5.0  # rates (frames/s, fps) are taken over this much time
BELT_RATE_WINDOW_S = 1.0  # the encoder's rate over this much time
GROUPS = ("belt", "plc", "mcu", "chutes", "vision", "system")

DEFAULTS: dict[str, TelemetryGroupConfig] = {
    "belt": TelemetryGroupConfig(
        interval_s=5.0, min_interval_s=0.5,
        deadbands={"speed_mm_s": 50.0, "encoder_speed_mm_s": 50.0, "encoder_rate_cps": 50.0},
    ),
    "plc": TelemetryGroupConfig(interval_s=5.0, min_interval_s=0.5),
    "mcu": TelemetryGroupConfig(
        interval_s=5.0, min_interval_s=1.0,
        deadbands={"rtt_ms": 5.0, "rttvar_ms": 5.0, "rto_ms": 50.0, "in_flight": 5,
                   "queued": 20},
    ),
    "chutes": TelemetryGroupConfig(interval_s=5.0, min_interval_s=1.0),
    "vision": TelemetryGroupConfig(
        interval_s=5.0, min_interval_s=2.0,
        deadbands={"fps": 1.0, "frames_per_s": 1.0, "process_ms": 20.0},
    ),
    "system": TelemetryGroupConfig(
        interval_s=10.0, min_interval_s=5.0,
        deadbands={"cpu_percent": 25.0, "host_cpu_percent": 25.0, "rss_mb": 20.0,
                   "mem_available_mb": 100.0, "load_1m": 1.0, "load_5m": 1.0, "load_15m": 1.0,
                   "temp_c": 3.0, "outbox_disk_free_mb": 100.0},
    ),
}  # fmt: skip


def unknown_groups(configured: dict[str, TelemetryGroupConfig]) -> list[str]:
    """Groups the config names that the node does not publish (a typo, most likely)."""
    return sorted(set(configured) - set(GROUPS))


def effective_groups(
    configured: dict[str, TelemetryGroupConfig],
) -> dict[str, TelemetryGroupConfig]:
    """The enabled groups: each default with the fields its config entry sets (deadbands merged
    by field), in GROUPS order. Unknown names are left out (see ``unknown_groups``)."""
    out: dict[str, TelemetryGroupConfig] = {}
    for name in GROUPS:
        cfg = DEFAULTS[name]
        user = configured.get(name)
        if user is not None:
            update = {f: getattr(user, f) for f in user.model_fields_set}
            if "deadbands" in update:
                update["deadbands"] = {**cfg.deadbands, **user.deadbands}
            cfg = cfg.model_copy(update=update)
        if cfg.enabled:
            out[name] = cfg
    return out


def _num(value: float, digits: int = 3) -> float | None:
    """A float fit for JSON (no NaN / infinity), rounded for the wire."""
    if not math.isfinite(value):
        return None
    return round(value, digits)


def tag_value(v: TagValue | None) -> tuple[Scalar, str | None]:
    """(value, None) for a tag read good or stale, (None, why) when there is no reading."""
    if v is None:
        return None, "not read yet"
    if v.quality is Quality.BAD or v.value is None:
        return None, v.cause or "bad quality"
    value = v.value
    if isinstance(value, float):
        if not math.isfinite(value):
            return None, f"not a finite number ({value})"
        return float(f"{value:.6g}"), None
    if isinstance(value, bool | int | str):
        return value, None
    return str(value), None


class RateWindow:
    """Rates of running totals over the last ``window_s`` seconds (at least two samples)."""

    def __init__(self, window_s: float = RATE_WINDOW_S) -> None:
        self.window_s = window_s
        self._samples: deque[tuple[float, dict[str, float]]] = deque()

    def add(self, now: float, totals: dict[str, float]) -> None:
        self._samples.append((now, dict(totals)))
        while len(self._samples) > 2 and now - self._samples[1][0] >= self.window_s:
            self._samples.popleft()

    def clear(self) -> None:
        self._samples.clear()

    def span(self) -> tuple[float, dict[str, float], dict[str, float]] | None:
        """(seconds, oldest totals, newest totals), or None before two samples."""
        if len(self._samples) < 2:
            return None
        (t0, a), (t1, b) = self._samples[0], self._samples[-1]
        return (t1 - t0, a, b) if t1 > t0 else None


# ---- the groups -------------------------------------------------------------------------------
def sample_belt(
    node: Any, window: RateWindow | None = None, now: float | None = None
) -> tuple[Values, frozenset[str]]:
    """The belt as the PLC reports it, the encoder as the MCU reports it, the cell's state.
    With ``window`` the encoder rate is taken over it (the node's own 0.1 s estimate jitters
    with the arrival of the MCU's reports on a busy host); before two samples, that estimate."""
    state = node.safety.state
    v: Values = {"state": state.value, "running": state is State.RUNNING}
    if node.plc is not None:
        st = node._plc_last
        if st is None or not st.online:
            v.update(
                speed_mm_s=None,
                moving=None,
                run_command=None,
                plc_error=st.why if st is not None else "no status from the PLC yet",
            )
        else:
            v.update(speed_mm_s=_num(st.speed_mm_s, 1), moving=st.moving,
                     run_command=st.run_coil)  # fmt: skip
    count = node.encoder.count
    mcu = node.mcu
    if count is None:
        v.update(encoder_count=None, encoder_rate_cps=None, encoder_speed_mm_s=None,
                 encoder_error="no encoder report yet")  # fmt: skip
    elif mcu is None or not mcu.state.up:
        v.update(encoder_count=None, encoder_rate_cps=None, encoder_speed_mm_s=None,
                 encoder_error=f"MCU link {mcu.state.value if mcu else 'not opened'}")  # fmt: skip
    else:
        rate = node.encoder.counts_per_s
        if window is not None:
            window.add(time.monotonic() if now is None else now, {"count": count})
            span = window.span()
            if span is not None and span[2]["count"] < span[1]["count"]:
                window.clear()  # the count went back (an MCU reset): start again
            elif span is not None:
                rate = (span[2]["count"] - span[1]["count"]) / span[0]
        v.update(encoder_count=count, encoder_rate_cps=_num(rate, 1),
                 encoder_speed_mm_s=_num(rate / node.cell.belt.counts_per_mm, 1))  # fmt: skip
    return v, frozenset({"encoder_count"})


def sample_plc(node: Any, keys: list[tuple[str, str]]) -> tuple[Values, frozenset[str]]:
    """The Modbus tags marked ``telemetry: true``, as ``<device>.<tag>``, and each device's
    link state as ``<device>.online``."""
    v: Values = {}
    if node.plc is None:
        return v, frozenset()
    poller = node.plc.poller
    snapshot = poller.snapshot()
    for device in sorted({d for d, _ in keys}):
        dev = poller.devices.get(device)
        v[f"{device}.online"] = bool(dev.online) if dev is not None else None
    for device, tag in keys:
        value, why = tag_value(snapshot.get(device, {}).get(tag))
        v[f"{device}.{tag}"] = value
        if why is not None:
            v[f"{device}.{tag}_error"] = why
    return v, frozenset()


_MCU_TOTALS = ("frames_sent", "frames_received", "retransmits", "timeouts", "naks_sent",
               "naks_received", "duplicates", "out_of_order")  # fmt: skip


def sample_mcu(node: Any) -> tuple[Values, frozenset[str]]:
    """The serial link to the MCU: state, round-trip time, retransmissions and errors."""
    link = node.mcu
    if link is None:
        return {"state": None, "up": False, "error": "MCU link not opened"}, frozenset()
    v: Values = {"state": link.state.value, "up": link.state.up}
    rtt = link.endpoint.rtt
    if rtt.srtt is None:
        v.update(rtt_ms=None, rttvar_ms=None, rtt_error="no round trip measured yet")
    else:
        v.update(rtt_ms=_num(rtt.srtt * 1000), rttvar_ms=_num(rtt.rttvar * 1000))
    v["rto_ms"] = _num(rtt.rto * 1000)
    v["in_flight"] = link.endpoint.in_flight
    v["queued"] = link.endpoint.queued
    counters = link.endpoint.counters
    for name in _MCU_TOTALS:
        v[name] = getattr(counters, name)
    d = link.decoder.stats
    v.update(crc_errors=d.crc_errors, bad_frames=d.bad_frames, garbage_bytes=d.garbage_bytes,
             reconnects=link.stats.reconnects, mcu_resets=link.stats.mcu_resets,
             payload_errors=link.stats.payload_errors)  # fmt: skip
    totals = {*_MCU_TOTALS, "crc_errors", "bad_frames", "garbage_bytes", "payload_errors"}
    return v, frozenset(totals)


class ChuteCounts:
    """Per chute: strokes fired for it and parcels confirmed in it, from the parcel records."""

    def __init__(self) -> None:
        self.strokes: Counter[str] = Counter()
        self.arrived: Counter[str] = Counter()

    def record(self, rec: ParcelRecord) -> None:
        if rec.fired_count is not None:
            self.strokes[rec.chute] += 1
        if rec.actual_chute is not None:
            self.arrived[rec.actual_chute] += 1


def sample_chutes(node: Any, counts: ChuteCounts) -> tuple[Values, frozenset[str]]:
    """Per chute ``<id>.full`` (PLC; null while the PLC is not read), ``<id>.blocked`` (its
    entry sensor covered), ``<id>.strokes`` and ``<id>.parcels`` (totals)."""
    cell = node.cell
    ids = [c.id for c in cell.chutes] + [cell.reject.id]
    sensed = {c.id for c in cell.chutes if c.confirm_input is not None}
    if cell.reject.confirm_input is not None:
        sensed.add(cell.reject.id)
    full_tags = cell.plc.chute_full if cell.plc is not None else {}
    st = node._plc_last
    plc_ok = st is not None and st.online
    blocked = getattr(node.core, "_sensor_blocked", set())
    v: Values = {}
    totals: set[str] = set()
    for cid in ids:
        if cid in full_tags:
            v[f"{cid}.full"] = bool(st.full[cid]) if plc_ok and cid in st.full else None
        if cid in sensed:
            v[f"{cid}.blocked"] = cid in blocked
        v[f"{cid}.strokes"] = counts.strokes[cid]
        v[f"{cid}.parcels"] = counts.arrived[cid]
        totals |= {f"{cid}.strokes", f"{cid}.parcels"}
    if full_tags and not plc_ok:
        v["full_error"] = st.why if st is not None and st.why else "no status from the PLC yet"
    return v, frozenset(totals)


class VisionSampler:
    """The camera pipeline's rates and processing time over the last ``RATE_WINDOW_S``."""

    def __init__(self) -> None:
        self.window = RateWindow()

    def sample(self, node: Any, now: float) -> tuple[Values, frozenset[str]]:
        stats = dict(node.camera.stats)
        frames, processed = stats.get("frames", 0.0), stats.get("processed", 0.0)
        busy_ms = stats.get("process_ms_mean", 0.0) * processed  # total processing time
        self.window.add(now, {"frames": frames, "processed": processed, "busy_ms": busy_ms})
        v: Values = {"up": "camera" in node.safety.up}
        span = self.window.span()
        if span is None:
            v.update(frames_per_s=None, fps=None, process_ms=None,
                     rate_error="one sample so far")  # fmt: skip
        else:
            dt, a, b = span
            done = b["processed"] - a["processed"]
            v["frames_per_s"] = _num((b["frames"] - a["frames"]) / dt, 2)
            v["fps"] = _num(done / dt, 2)
            if done > 0:
                v["process_ms"] = _num((b["busy_ms"] - a["busy_ms"]) / done, 2)
            else:
                v["process_ms"] = None
                v["process_error"] = f"no frame processed in the last {dt:.1f} s"
        for name in ("frames", "processed", "skipped", "labels", "unlabelled"):
            v[name] = int(stats.get(name, 0))
        return v, frozenset({"frames", "processed", "skipped", "labels", "unlabelled"})


_ZONE_NAME = re.compile(r"[^a-z0-9]+")


class SystemSampler:
    """The board: CPU, memory, load, temperatures, free space for the outbox. Reads files;
    run it in a worker thread. Every value that cannot be read is null with its reason."""

    def __init__(self, outbox_dir: str | None = None, thermal_glob: str | None = None,
                 proc: str = "/proc") -> None:  # fmt: skip
        self.outbox_dir = outbox_dir
        self.thermal_glob = thermal_glob or "/sys/class/thermal/thermal_zone*"
        self.proc = Path(proc)
        self._cpu = (time.monotonic(), self._process_cpu())
        self._host = self._host_cpu()

    @staticmethod
    def _process_cpu() -> float:
        t = os.times()
        return t.user + t.system

    def _host_cpu(self) -> tuple[int, int] | None:
        """(busy, total) jiffies of the whole host from /proc/stat, None when unreadable."""
        try:
            fields = (self.proc / "stat").read_text().split("\n", 1)[0].split()
            ticks = [int(x) for x in fields[1:]]
        except (OSError, ValueError, IndexError):
            return None
        idle = ticks[3] + (ticks[4] if len(ticks) > 4 else 0)  # idle + iowait
        return sum(ticks) - idle, sum(ticks)

    def sample(self) -> Values:
        v: Values = {}
        now, cpu = time.monotonic(), self._process_cpu()
        t0, cpu0 = self._cpu
        self._cpu = (now, cpu)
        v["cpu_percent"] = _num((cpu - cpu0) / (now - t0) * 100, 1) if now > t0 else None
        host, before = self._host_cpu(), self._host
        self._host = host
        if host is None or before is None:
            v["host_cpu_percent"] = None
            v["host_cpu_error"] = f"{self.proc / 'stat'} not readable"
        elif host[1] > before[1]:
            v["host_cpu_percent"] = _num((host[0] - before[0]) / (host[1] - before[1]) * 100, 1)
        else:
            v["host_cpu_percent"] = None
            v["host_cpu_error"] = "no time passed since the last sample"
        self._memory(v)
        try:
            load = os.getloadavg()
            v.update(load_1m=_num(load[0], 2), load_5m=_num(load[1], 2),
                     load_15m=_num(load[2], 2))  # fmt: skip
        except OSError as exc:
            v.update(load_1m=None, load_error=f"load average not available: {exc}")
        self._temperatures(v)
        if self.outbox_dir is not None:
            try:
                st = os.statvfs(self.outbox_dir)
                v["outbox_disk_free_mb"] = _num(st.f_bavail * st.f_frsize / 2**20, 1)
            except OSError as exc:
                v["outbox_disk_free_mb"] = None
                v["outbox_disk_error"] = f"{self.outbox_dir}: {exc.strerror or exc}"
        return v

    def _memory(self, v: Values) -> None:
        try:
            pages = int((self.proc / "self" / "statm").read_text().split()[1])
            v["rss_mb"] = _num(pages * os.sysconf("SC_PAGE_SIZE") / 2**20, 1)
        except (OSError, ValueError, IndexError) as exc:
            v["rss_mb"] = None
            v["rss_error"] = f"{self.proc / 'self' / 'statm'} not readable: {exc}"
        try:
            for line in (self.proc / "meminfo").read_text().splitlines():
                if line.startswith("MemAvailable:"):
                    v["mem_available_mb"] = _num(int(line.split()[1]) / 1024, 1)
                    break
            else:
                raise ValueError("no MemAvailable line")
        except (OSError, ValueError, IndexError) as exc:
            v["mem_available_mb"] = None
            v["mem_error"] = f"{self.proc / 'meminfo'}: {exc}"

    def _temperatures(self, v: Values) -> None:
        """``temp_<zone type>_c`` per thermal zone and ``temp_c``, the hottest; absent on a
        machine without thermal zones (a VM, a container)."""
        temps: dict[str, float] = {}
        errors: list[str] = []
        for zone in sorted(glob.glob(self.thermal_glob)):
            base = Path(zone)
            try:
                kind = (base / "type").read_text().strip().lower() or base.name
            except OSError:
                kind = base.name
            name = _ZONE_NAME.sub("_", kind).strip("_") or base.name
            if f"temp_{name}_c" in v:  # two zones of one type: told apart by their number
                name = f"{name}_{base.name.removeprefix('thermal_zone')}"
            try:
                milli = int((base / "temp").read_text().strip())
            except (OSError, ValueError) as exc:
                errors.append(f"{base.name}: {exc}")
                v[f"temp_{name}_c"] = None
                continue
            temps[name] = milli / 1000
            v[f"temp_{name}_c"] = _num(milli / 1000, 1)
        if temps:
            v["temp_c"] = _num(max(temps.values()), 1)
        if errors:
            v["temp_error"] = "; ".join(errors)[:200]


# ---- the task ---------------------------------------------------------------------------------
Publish = Callable[[str, Values, str], None]


class NodeTelemetry:
    """Samples a ``CellNode``'s groups and publishes what the deadbands let through."""

    def __init__(self, node: Any, groups: dict[str, TelemetryGroupConfig],
                 publish: Publish) -> None:  # fmt: skip
        self.node = node
        self.groups = groups
        self.publish = publish
        self.deadband = Deadband(groups)
        self.chute_counts = ChuteCounts()
        self.vision = VisionSampler()
        self.belt_window = RateWindow(BELT_RATE_WINDOW_S)
        outbox = node.board.mqtt.outbox.path if node.board.mqtt is not None else None
        self.system = SystemSampler(os.path.dirname(os.path.abspath(outbox)) if outbox else None)
        self.plc_keys = [
            (dev.name, tag.name) for dev in node.board.modbus.devices for tag in dev.tags
            if tag.telemetry
        ]  # fmt: skip
        self.sent: Counter[str] = Counter()
        self.errors: Counter[str] = Counter()
        self._system_due = 0.0
        self._logged: set[str] = set()

    @property
    def tick_s(self) -> float:
        shortest = min((g.interval_s for g in self.groups.values()), default=SAMPLE_S)
        return max(0.05, min(SAMPLE_S, shortest))

    def samplers(self, now: float) -> dict[str, Callable[[], tuple[Values, frozenset[str]]]]:
        node = self.node
        out: dict[str, Callable[[], tuple[Values, frozenset[str]]]] = {
            "belt": lambda: sample_belt(node, self.belt_window, now),
            "mcu": lambda: sample_mcu(node),
            "chutes": lambda: sample_chutes(node, self.chute_counts),
        }
        if self.plc_keys and node.plc is not None:
            out["plc"] = lambda: sample_plc(node, self.plc_keys)
        if node.camera is not None:
            out["vision"] = lambda: self.vision.sample(node, now)
        return {name: fn for name, fn in out.items() if name in self.groups}

    def step(self, now: float) -> None:
        """Sample every loop-side group once; publish what the deadbands let through."""
        for name, sample in self.samplers(now).items():
            try:
                values, quiet = sample()
            except Exception as exc:  # a bug in one group must not silence the others
                self._failed(name, exc)
                continue
            self._offer(name, values, quiet, now)

    async def run(self) -> None:
        while True:
            now = time.monotonic()
            self.step(now)
            if "system" in self.groups and now >= self._system_due:
                cfg = self.groups["system"]
                self._system_due = now + max(SAMPLE_S, min(cfg.interval_s, SYSTEM_SAMPLE_S))
                try:
                    values = await asyncio.to_thread(self.system.sample)
                except Exception as exc:
                    self._failed("system", exc)
                else:
                    zones = frozenset(k for k in values if k.startswith("temp_") and k != "temp_c")
                    self._offer("system", values, zones, time.monotonic())  # temp_c is news
            await asyncio.sleep(self.tick_s)

    def _offer(self, group: str, values: Values, quiet: frozenset[str], now: float) -> None:
        reason = self.deadband.decide(group, values, now, quiet)
        if reason is not None:
            self.sent[group] += 1
            self.publish(group, values, reason)

    def _failed(self, group: str, exc: Exception) -> None:
        self.errors[group] += 1
        if group not in self._logged:  # once per group: a broken sampler must not flood
            self._logged.add(group)
            log.error("telemetry group %s could not be sampled: %s: %s", group,
                      type(exc).__name__, exc)  # fmt: skip


def start_telemetry(node: Any) -> NodeTelemetry | None:
    """Start the telemetry task of a ``CellNode`` with a fleet link (None without one, or
    when every group is disabled)."""
    fleet = node.fleet
    if fleet is None:
        return None
    configured = dict(node.board.mqtt.telemetry)
    for name in unknown_groups(configured):  # not worth refusing to run the cell over
        log.error("mqtt.telemetry.%s: no such telemetry group, ignored; the node publishes %s",
                  name, ", ".join(GROUPS))  # fmt: skip
    groups = effective_groups(configured)
    if not groups:
        return None
    try:
        telemetry = NodeTelemetry(node, groups, fleet.telemetry)
    except Exception:  # telemetry is never a reason for the cell not to run
        log.exception("telemetry could not be set up; the node runs without it")
        return None
    fleet.on_record = telemetry.chute_counts.record
    node.supervisor.start("telemetry", telemetry.run)
    live = {*telemetry.samplers(0.0), "system"} & set(groups)  # no camera: no vision, ...
    log.info("telemetry: %s", ", ".join(f"{n} every {g.interval_s:g} s"
                                         for n, g in groups.items() if n in live))  # fmt: skip
    return telemetry
