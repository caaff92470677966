"""`wolfpack sim --machine amr --vehicles N`: a simulated fleet of VDA 5050 vehicles on a
warehouse map, each driven by the real vehicle node, directed by a reference master control,
with live progress and a report.

Processes: this one (orchestrator, broker unless --broker, the master control on MQTT, the
report's measurements), the simulated warehouse (map, vehicles, each vehicle's MCU on its own
pty) and the vehicle nodes (``wolfpack run`` of a generated config per vehicle). A node sees
what a board on a real vehicle sees: a pty and the broker.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import os
import re
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

from edge.sim.harness import run_schedule, start_embedded_broker

REPO = Path(__file__).resolve().parents[2]
DEFAULT_CONFIG = REPO / "configs" / "sim-amr.yaml"

# fault name -> what it does (docs/sim-amr.md, "Faults")
FAULTS: dict[str, str] = {
    "estop": "the vehicle's e-stop circuit opens (its MCU input)",
    "field": "an obstacle in the vehicle's protective field (the safety lidar's OSSD drops)",
    "mcu-unplug": "the vehicle's MCU link vanishes (USB unplugged) while it drives",
    "battery-low": "the vehicle's battery drops to the value (default 15 %)",
    "floorcode-unreadable": "the vehicle's floor-code camera reads no code",
    "link-loss": "the vehicle's network path to the broker goes silent (a black hole)",
    "broker-restart": "the broker is killed and started again (embedded broker only)",
}
_FAULT_RE = re.compile(
    r"^(?P<kind>[a-z-]+)(?::(?P<vehicle>\d+))?(?:=(?P<value>[0-9.]+))?"
    r"(?:@(?P<start>[0-9.]+))?(?:\+(?P<dur>[0-9.]+))?$"
)


class AmrSimError(RuntimeError):
    """The run could not be set up or went wrong in a way the report cannot describe."""


@dataclass(frozen=True)
class AmrFault:
    """``KIND[:VEHICLE][=VALUE][@START_S][+DURATION_S]``; VEHICLE is 1-based (default 1)."""

    kind: str
    vehicle: int = 1
    value: float | None = None
    start_s: float = 0.0
    duration_s: float | None = None

    def __str__(self) -> str:
        text = f"{self.kind}:{self.vehicle}"
        if self.value is not None:
            text += f"={self.value:g}"
        text += f"@{self.start_s:g}"
        if self.duration_s is not None:
            text += f"+{self.duration_s:g}"
        return text

    @property
    def end_s(self) -> float | None:
        return None if self.duration_s is None else self.start_s + self.duration_s


def parse_faults(text: str, vehicles: int) -> list[AmrFault]:
    """The --faults list; ValueError with the item and why."""
    out: list[AmrFault] = []
    for item in (t.strip() for t in text.split(",")):
        if not item:
            continue
        m = _FAULT_RE.match(item)
        if m is None:
            raise ValueError(f"{item!r}: expected KIND[:VEHICLE][=VALUE][@START_S][+DURATION_S]")
        kind = m["kind"]
        if kind not in FAULTS:
            raise ValueError(f"{item!r}: unknown fault {kind!r}; known: {', '.join(FAULTS)}")
        vehicle = int(m["vehicle"] or 1)
        if not 1 <= vehicle <= vehicles:
            raise ValueError(f"{item!r}: vehicle {vehicle} is not in 1..{vehicles}")
        value = float(m["value"]) if m["value"] else None
        if kind == "battery-low" and value is not None and not 0 <= value <= 100:
            raise ValueError(f"{item!r}: battery-low takes a percentage 0..100")
        out.append(
            AmrFault(
                kind, vehicle, value, float(m["start"] or 0), float(m["dur"]) if m["dur"] else None
            )
        )
    return out


# ---- measurements ------------------------------------------------------------------------------
def percentiles(values: list[float], digits: int = 1) -> dict[str, Any]:
    """p50 / p99 / max by nearest rank; None when there is nothing to rank (never a 0)."""
    if not values:
        return {"p50": None, "p99": None, "max": None, "n": 0}
    s = sorted(values)

    def rank(p: float) -> float:
        return s[min(len(s) - 1, max(0, math.ceil(p / 100 * len(s)) - 1))]

    return {
        "p50": round(rank(50), digits),
        "p99": round(rank(99), digits),
        "max": round(s[-1], digits),
        "n": len(s),
    }


def proc_usage(pid: int) -> tuple[float, float, float] | None:
    """(cpu seconds, RSS MB, peak RSS MB) of a live process from /proc; None if gone."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return None
    ticks = os.sysconf("SC_CLK_TCK")
    fields = dict(
        line.split()[:2] for line in status.splitlines() if line.startswith(("VmRSS", "VmHWM"))
    )
    return (
        (int(stat[11]) + int(stat[12])) / ticks,
        int(fields.get("VmRSS:", 0)) / 1024,
        int(fields.get("VmHWM:", 0)) / 1024,
    )


def angle_diff(a: float, b: float) -> float:
    return abs((a - b + math.pi) % (2 * math.pi) - math.pi)


def segment_distance(
    p: tuple[float, float], a: tuple[float, float], b: tuple[float, float]
) -> float:
    ax, ay = a
    bx, by = b
    dx, dy = bx - ax, by - ay
    length2 = dx * dx + dy * dy
    t = 0.0 if length2 == 0 else max(0.0, min(1.0, ((p[0] - ax) * dx + (p[1] - ay) * dy) / length2))
    return math.dist(p, (ax + t * dx, ay + t * dy))


@dataclass
class Measures:
    """What the report is built from, gathered while the run goes."""

    arrival_mm: list[float] = field(default_factory=list)
    arrival_deg: list[float] = field(default_factory=list)
    pass_mm: list[float] = field(default_factory=list)
    path_mm: list[float] = field(default_factory=list)
    state_errors: Counter[str] = field(default_factory=Counter)  # errorType -> vehicles seen
    battery_min: dict[str, float] = field(default_factory=dict)
    battery_last: dict[str, float] = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock)


def build_report(
    *,
    vehicles: int,
    duration_s: float,
    stats: Any,
    latencies_ms: list[float],
    measures: Measures,
    truth: dict[str, Any],
    usage: dict[str, dict[str, float]],
    allowed_xy_m: float,
    allowed_theta_rad: float,
    fault_log: list[str],
    processes: str,
    connections: list[tuple[str, str, bool, float]],
) -> dict[str, Any]:
    """The report's JSON (docs/sim-amr.md, "The report")."""
    cpu = [u["cpu_percent"] for u in usage.values()]
    rss = [u["rss_mb"] for u in usage.values()]
    completed = int(stats.orders_completed)
    return {
        "vehicles": vehicles,
        "duration_s": round(duration_s, 1),
        "orders_completed": completed,
        "orders_per_hour": round(completed * 3600 / max(duration_s, 1e-9), 1),
        "orders_failed": dict(stats.orders_failed),
        "action_failures": dict(stats.action_failures),
        "vehicle_errors": dict(measures.state_errors),
        "collisions": int(truth.get("collisions", 0)),
        "off_map": int(truth.get("off_map", 0)),
        "arrival_error_mm": percentiles(measures.arrival_mm),
        "arrival_error_deg": percentiles(measures.arrival_deg, 2),
        "pass_error_mm": percentiles(measures.pass_mm),
        "path_error_mm": percentiles(measures.path_mm),
        "allowed_deviation": {
            "xy_mm": round(allowed_xy_m * 1000, 1),
            "theta_deg": round(math.degrees(allowed_theta_rad), 2),
        },
        "state_latency_ms": percentiles(latencies_ms, 2),
        "battery_percent": {
            "min": round(min(measures.battery_min.values()), 1) if measures.battery_min else None,
            "end": {k: round(v, 1) for k, v in sorted(measures.battery_last.items())},
            "charges": int(stats.charges_done),
        },
        "master": {
            "reroutes": stats.reroutes,
            "resends": stats.resends,
            "parks": stats.parks_sent,
            "cancels": stats.cancels,
            "conflicts": stats.conflicts,
            "step_asides": stats.step_asides,
            "given_up": list(stats.given_up),
            "charges_sent": stats.charges_sent,
            "transport_s": percentiles(list(stats.transport_s)),
            "rejections": stats.rejections[:20],
        },
        "connection_events": Counter(s for _, s, _, _ in connections),
        "node": {
            "processes": processes,
            "cpu_percent": round(sum(cpu) / len(cpu), 1) if cpu else None,
            "cpu_percent_max": round(max(cpu), 1) if cpu else None,
            "rss_mb": round(max(rss), 1) if rss else None,
            "per_vehicle": usage,
        },
        "faults": fault_log,
    }


def render_text(r: dict[str, Any]) -> str:
    def p(d: dict[str, Any], unit: str) -> str:
        if not d.get("n"):
            return "none measured"
        return f"p50 {d['p50']} {unit}, p99 {d['p99']} {unit}, max {d['max']} {unit} (n={d['n']})"

    failed = ", ".join(f"{k}: {v}" for k, v in r["orders_failed"].items()) or "none"
    lines = [
        f"vehicles              {r['vehicles']} for {r['duration_s']} s ({r['node']['processes']})",
        f"transport orders      {r['orders_completed']} completed "
        f"({r['orders_per_hour']}/h); failed: {failed}",
        f"action failures       {r['action_failures'] or 'none'}",
        f"vehicle errors seen   {r['vehicle_errors'] or 'none'}",
        f"collisions / off map  {r['collisions']} / {r['off_map']}",
        f"arrival error         {p(r['arrival_error_mm'], 'mm')}; "
        f"allowed {r['allowed_deviation']['xy_mm']} mm",
        f"arrival heading error {p(r['arrival_error_deg'], 'deg')}; "
        f"allowed {r['allowed_deviation']['theta_deg']} deg",
        f"passing nodes         {p(r['pass_error_mm'], 'mm')}",
        f"path-following error  {p(r['path_error_mm'], 'mm')}",
        f"state latency         {p(r['state_latency_ms'], 'ms')}",
        f"battery               min {r['battery_percent']['min']} %, "
        f"{r['battery_percent']['charges']} charges",
        f"master                {r['master']['reroutes']} reroutes, {r['master']['parks']} parks, "
        f"{r['master']['resends']} resends, {r['master']['cancels']} cancels",
        f"node per vehicle      CPU {r['node']['cpu_percent']} % "
        f"(max {r['node']['cpu_percent_max']} %), RSS {r['node']['rss_mb']} MB",
    ]
    for f in r["faults"]:
        lines.append(f"fault                 {f}")
    return "\n".join(lines)


# ---- the CLI ----------------------------------------------------------------------------------
def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Arguments of `python -m edge.cli.sim_amr` (the `wolfpack sim` parser has its own, with
    the same names: --vehicles, --duration, --faults, --broker, --report, --config, --seed,
    --workdir, --quiet)."""
    parser.add_argument("--vehicles", type=int, default=3, metavar="N")
    parser.add_argument("--duration", type=float, default=60.0, metavar="S")
    parser.add_argument("--faults", default="", metavar="LIST")
    parser.add_argument("--broker", metavar="URL")
    parser.add_argument("--report", metavar="FILE")
    parser.add_argument("--config", metavar="FILE")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--workdir", metavar="DIR")
    parser.add_argument("--quiet", action="store_true")
    parser.add_argument(
        "--per-process",
        type=int,
        default=None,
        metavar="K",
        help="vehicles per node process (default: see docs/sim-amr.md, 'Processes')",
    )


def run_amr(args: argparse.Namespace) -> int:
    """The entry point `wolfpack sim --machine amr` calls."""
    given = getattr(args, "vehicles", None)
    vehicles = 3 if given is None else int(given)
    duration = float(getattr(args, "duration", 60.0))
    if not 1 <= vehicles <= 50:
        print("wolfpack sim: --vehicles must be 1..50", file=sys.stderr)
        return 2
    if not duration > 0:
        print("wolfpack sim: --duration must be > 0", file=sys.stderr)
        return 2
    try:
        faults = parse_faults(getattr(args, "faults", "") or "", vehicles)
    except ValueError as exc:
        print(f"wolfpack sim: --faults: {exc}", file=sys.stderr)
        return 2
    broker = getattr(args, "broker", None)
    if broker and any(f.kind == "broker-restart" for f in faults):
        print(
            "wolfpack sim: broker-restart needs the embedded broker (drop --broker)",
            file=sys.stderr,
        )
        return 2
    config = getattr(args, "config", None)
    workdir = getattr(args, "workdir", None)
    quiet = bool(getattr(args, "quiet", False))

    def progress(text: str) -> None:
        print(text, file=sys.stderr, flush=True)

    per_process = getattr(args, "per_process", None)
    options = AmrSimOptions(
        per_process=int(per_process) if per_process else AmrSimOptions.per_process,
        vehicles=vehicles,
        duration_s=duration,
        faults=faults,
        broker=broker,
        config=Path(config) if config else DEFAULT_CONFIG,
        seed=int(getattr(args, "seed", 1) or 1),
        workdir=Path(workdir) if workdir else None,
        progress=None if quiet else progress,
    )
    previous = None
    if threading.current_thread() is threading.main_thread():
        # SIGTERM ends the run like Ctrl-C: the vehicles, the world and the broker are stopped
        previous = signal.signal(signal.SIGTERM, signal.default_int_handler)
    try:
        sim = AmrSimulation(options)
        report = sim.run()
    except AmrSimError as exc:
        print(f"wolfpack sim: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("wolfpack sim: interrupted; everything it started is stopped", file=sys.stderr)
        return 130
    finally:
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)
    print(render_text(report))
    print(f"(node configs, logs: {sim.workdir})")
    target = getattr(args, "report", None)
    if target:
        Path(target).write_text(json.dumps(report, indent=2) + "\n")
        print(f"report written to {target}")
    return 0


@dataclass
class AmrSimOptions:
    vehicles: int = 3
    duration_s: float = 60.0
    faults: list[AmrFault] = field(default_factory=list)
    broker: str | None = None
    config: Path = DEFAULT_CONFIG
    seed: int = 1
    workdir: Path | None = None
    progress: Callable[[str], None] | None = None
    progress_every_s: float = 2.0
    sample_every_s: float = 0.25  # truth sampling for the path-following error
    per_process: int = 5  # vehicles per node process (edge.amr.node_host when > 1)
    allowed_xy_m: float = 0.05  # the master's allowedDeviationXY at stop nodes
    allowed_theta_rad: float = 0.05
    # the simulated floor-code camera (20 frames/s, a 4 cm reading radius) reads every code
    # it passes at 0.5 m/s; at 0.8 m/s with ten vehicles it missed some and vehicles stopped
    # with localizationError (docs/sim-amr.md, "Measured")
    edge_max_speed: float | None = 0.5
    map_path: str | None = None  # None: sim_hardware/amr/maps/default.json
    mcu_watchdog_ms: int = 1000
    # each wheel's true radius within +-0.1 % of the config's (a commissioned vehicle; the
    # node trims the remaining left/right ratio from floor codes)
    wheel_scale_error: float = 0.001
    action_duration_s: float | None = None  # pick/drop time (None: the vehicle's, 2 s)
    # real-time (FIFO) scheduling where the OS grants it, as the sorting cell's simulated MCU
    # and the arm's run have: the simulated MCUs and each vehicle's node stand for hardware
    # with CPUs of their own; on a shared, loaded 2-core machine they were starved for
    # seconds (MCU watchdogs tripping). 0: ordinary scheduling. The kernel's RT throttling
    # keeps them from starving the machine.
    rt_priority: int = 10
    world_step_s: float = 0.01  # physics, protective fields, floor-code cameras, truth


@dataclass
class _Vehicle:
    index: int  # 1-based
    serial: str
    node_id: str
    config: Path
    mcu_path: str
    start_node: str


class AmrSimulation:
    """One run: broker, simulated warehouse, master control, vehicle nodes, report."""

    def __init__(self, options: AmrSimOptions) -> None:
        from edge.config import ConfigError, load_board_config

        self.o = options
        try:
            self.board = load_board_config(options.config)
        except ConfigError as exc:
            raise AmrSimError(" ".join(exc.render().split())) from None
        except OSError as exc:
            raise AmrSimError(f"{options.config}: {exc}") from None
        amr = getattr(self.board, "amr", None)
        if self.board.machine != "amr" or amr is None or self.board.mqtt is None:
            raise AmrSimError(
                f"{options.config}: a vehicle sim config needs 'machine: amr', 'amr:' and 'mqtt:'"
            )
        self.cfg = amr
        self.workdir = Path(options.workdir or tempfile.mkdtemp(prefix="wolfpack-sim-amr-"))
        self.vehicles: list[_Vehicle] = []
        self.broker: Any = None
        self.broker_url = ""
        self.world: Any = None
        self.master: Any = None
        self.operator: Any = None
        self.procs: list[tuple[subprocess.Popen[bytes], list[str]]] = []
        self.measures = Measures()
        self.fault_log: list[str] = []
        self.t0 = 0.0
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self._seen: set[tuple[str, str, int]] = set()
        self._queue: list[tuple[str, str, int, bool]] = []  # serial, node, seq, stop node
        self._queue_cv = threading.Condition()
        self._logs: list[Any] = []
        self.edges: list[tuple[tuple[float, float], tuple[float, float]]] = []
        self.latest: dict[str, dict[str, Any]] = {}
        self.proxies: dict[int, LinkProxy] = {}
        self.realtime: dict[str, bool] = {}

    # ---- the run -------------------------------------------------------------------------------
    def run(self) -> dict[str, Any]:
        try:
            self.start()
            usage0 = self._usage()
            self._say(f"{len(self.vehicles)} vehicles online; running for {self.o.duration_s:g} s")
            self._run_schedule()
            usage = self._usage(usage0)
            return self._report(usage)
        except OSError as exc:
            raise AmrSimError(str(exc)) from exc
        finally:
            self.close()

    def start(self) -> None:
        """Broker, world, master, vehicle nodes up and ONLINE (tests drive from here)."""
        from sim_hardware.amr.master import MasterControl, MasterSettings

        self.workdir.mkdir(parents=True, exist_ok=True)
        if self.o.rt_priority:  # the broker and the master stand for machines of their own
            self.realtime["orchestrator"] = _realtime(0, max(1, self.o.rt_priority - 4))
        self.broker_url = self.o.broker or self._start_embedded_broker()
        self._say(f"broker {self.broker_url}")
        self.world = _World(self.o, self.workdir)
        starts = self.world.start()
        self._say(
            f"simulated warehouse: map {self.world.map.map_id}, "
            f"{len(self.world.map.nodes)} nodes, {self.o.vehicles} vehicles"
        )
        mp = self.world.map
        for a in mp.adj:
            for b in mp.adj[a]:
                if a < b:
                    na, nb = mp.nodes[a], mp.nodes[b]
                    self.edges.append(((na.x, na.y), (nb.x, nb.y)))
        v = self.cfg.vda5050
        for i, (mcu_path, node, code_port) in enumerate(starts, start=1):
            serial = _numbered(v.serial_number, i)
            node_id = _numbered(self.board.node.id, i)
            cfg = self._write_config(i, serial, node_id, mcu_path, code_port)
            self.vehicles.append(_Vehicle(i, serial, node_id, cfg, mcu_path, node))
        d = self.cfg.deviation
        settings = MasterSettings(
            seed=self.o.seed,
            allowed_deviation_xy=self.o.allowed_xy_m,
            allowed_deviation_theta=self.o.allowed_theta_rad,
            pass_deviation_xy=max(0.25, d.default_xy_m),
            edge_max_speed=self.o.edge_max_speed,
            action_duration_s=self.o.action_duration_s,
        )
        self.master = MasterControl(
            self.broker_url,
            mp,
            [x.serial for x in self.vehicles],
            v.manufacturer,
            v.interface_name,
            settings,
            on_state=self._on_state,
        ).start()
        if self.board.mqtt is not None:
            from fleet_link.brain import Brain

            self.operator = Brain(self.broker_url, self.board.node.site).start()
        self._start_nodes()
        self._wait_online()
        self.t0 = time.monotonic()
        self._watch(self._measure_worker, "sim-amr-measure")
        self._watch(self._sampler, "sim-amr-sampler")

    def _start_embedded_broker(self, port: int = 0) -> str:
        self.broker = start_embedded_broker(port)
        return str(self.broker.url)

    def _write_config(
        self, i: int, serial: str, node_id: str, mcu_path: str, code_port: int
    ) -> Path:
        data = self.board.model_dump(mode="json", exclude_none=True)
        data["node"]["id"] = node_id
        data["amr"]["vda5050"]["serial_number"] = serial
        data["amr"]["floor_codes"]["camera"] = f"tcp://127.0.0.1:{code_port}"
        map_id = self.world.map.map_id
        if not any(m["id"] == map_id for m in data["amr"]["maps"]):
            data["amr"]["maps"] = [{"id": map_id, "version": "1"}]
            data["amr"].pop("initial_map", None)
        drive = data["amr"]["drive"]["mcu"]
        for mcu in data["mcus"]:
            if mcu["name"] == drive:
                mcu["port"] = mcu_path
        data["mqtt"]["broker"] = self.broker_url
        if any(f.kind == "link-loss" and f.vehicle == i for f in self.o.faults):
            url = urlparse(self.broker_url)
            proxy = LinkProxy(url.hostname or "127.0.0.1", url.port or 1883).start()
            self.proxies[i] = proxy
            data["mqtt"]["broker"] = f"mqtt://127.0.0.1:{proxy.port}"
        data["mqtt"].pop("brokers", None)
        data["mqtt"]["outbox"]["path"] = str(self.workdir / f"outbox-{i:02d}.sqlite")
        data.pop("metrics", None)
        path = self.workdir / f"vehicle-{i:02d}.yaml"
        path.write_text(
            f"# written by `wolfpack sim --machine amr` from {self.o.config}\n"
            + json.dumps(data, indent=1)
        )
        return path

    def _start_nodes(self) -> None:
        per = max(1, self.o.per_process)
        groups = [self.vehicles[i : i + per] for i in range(0, len(self.vehicles), per)]
        for n, group in enumerate(groups, start=1):
            log = open(self.workdir / f"node-{n:02d}.log", "ab")
            self._logs.append(log)
            if per == 1:
                v = group[0]
                cmd = [
                    sys.executable,
                    "-m",
                    "edge.cli.main",
                    "run",
                    str(v.config),
                    "--start",
                    "--health-file",
                    str(self.workdir / f"{v.node_id}.health.json"),
                ]
            else:
                cmd = [
                    sys.executable,
                    "-m",
                    "edge.amr.node_host",
                    "--start",
                    "--health-dir",
                    str(self.workdir),
                    *(str(v.config) for v in group),
                ]
            proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, cwd=REPO)
            self.procs.append((proc, [v.serial for v in group]))
            if self.o.rt_priority:
                self.realtime["nodes"] = _realtime(proc.pid, max(1, self.o.rt_priority - 2))
        self._say(
            f"{len(self.procs)} node processes ({per} vehicle(s) each); logs in {self.workdir}"
        )

    def _wait_online(self, timeout: float = 90.0) -> None:
        deadline = time.monotonic() + timeout
        missing: list[str] = []
        while time.monotonic() < deadline:
            for proc, _ in self.procs:
                if proc.poll() is not None:
                    raise AmrSimError(
                        f"a node process exited with {proc.returncode}: {self._node_tail()}"
                    )
            states = self.master.core.vehicles
            missing = [s for s, v in states.items() if v.state is None or v.node is None]
            if not missing:
                return
            time.sleep(0.2)
        raise AmrSimError(
            f"vehicles {', '.join(missing)} published no state with a position "
            f"in {timeout:g} s; {self._node_tail()}"
        )

    def _node_tail(self, lines: int = 12) -> str:
        out = []
        for path in sorted(self.workdir.glob("node-*.log"))[:2]:
            with contextlib.suppress(OSError):
                text = path.read_text(errors="replace").splitlines()
                out.append(f"{path.name}:\n" + "\n".join(text[-lines:]))
        return "\n".join(out) or "(no node log)"

    # ---- schedule, faults, the operator --------------------------------------------------------
    def _run_schedule(self) -> None:
        d = self.o.duration_s
        windows = [(f.start_s, f.end_s if f.end_s is not None else d, f) for f in self.o.faults]
        progress = (self.o.progress_every_s, lambda now: self._say(self._progress_line(now)))
        run_schedule(windows, d, self.t0, self._apply, [progress], self._check_nodes)

    def _check_nodes(self) -> None:
        for proc, serials in self.procs:
            if proc.poll() is not None:
                raise AmrSimError(
                    f"the node process of {', '.join(serials)} exited with "
                    f"{proc.returncode}; {self._node_tail()}"
                )

    def _apply(self, fault: AmrFault, begin: bool) -> None:
        t = time.monotonic() - self.t0
        what = "begins" if begin else "ends"
        self.fault_log.append(f"t={t:6.1f}s {fault} {what}")
        self._say(f"fault {fault} {what}")
        i = fault.vehicle
        if fault.kind == "broker-restart":
            if begin:
                self.broker.stop()
            else:
                self._start_embedded_broker(self.broker.port)
            return
        if fault.kind == "estop":
            self.world.estop(i, begin)
        elif fault.kind == "field":
            self.world.field(i, begin)
        elif fault.kind == "mcu-unplug":
            self.world.unplug(i, begin)
        elif fault.kind == "battery-low":
            if begin:
                self.world.battery(i, fault.value if fault.value is not None else 15.0)
        elif fault.kind == "link-loss":
            self.proxies[i].cut = begin
        elif fault.kind == "floorcode-unreadable":
            self.world.floor_codes(i, readable=not begin)
        if not begin and fault.kind in ("estop", "mcu-unplug"):
            self._watch(lambda: self._reset_and_start(i), f"sim-amr-operator-{i}")

    def _reset_and_start(self, i: int) -> None:
        """The operator, after the cause is gone: reset and start the vehicle's node."""
        node = self.vehicles[i - 1].node_id
        if self.operator is None:
            return
        for _ in range(10):
            if self._stop.wait(1.5):
                return
            said = []
            ok = True
            for name in ("reset", "start"):
                try:
                    res = self.operator.command(node, name, timeout=5.0)
                    said.append(f"{name}: {'ok' if res.ok else res.error}")
                    ok = ok and (res.ok or name == "reset")
                except Exception as exc:  # no answer yet (the MCU coming back): try again
                    said.append(f"{name}: {exc}")
                    ok = False
            t = time.monotonic() - self.t0
            self.fault_log.append(f"t={t:6.1f}s operator {node}: {'; '.join(said)}")
            if ok:
                return

    def _progress_line(self, t: float) -> str:
        st = self.master.core.stats
        failed = sum(st.orders_failed.values())
        parts = []
        for v in self.vehicles:
            s = self.latest.get(v.serial, {})
            mark = "D" if s.get("driving") else ("P" if s.get("paused") else "-")
            errors = s.get("errors") or []
            bat = (s.get("batteryState") or {}).get("batteryCharge")
            err = (
                "!" + ",".join(sorted({e.get("errorType", "?") for e in errors})) if errors else ""
            )
            parts.append(
                f"{v.index}:{s.get('lastNodeId') or '?'}{mark}"
                f"{'' if bat is None else f'{bat:.0f}%'}{err}"
            )
        lat = percentiles(self.master.latencies_ms[-2000:], 1)
        return (
            f"t={t:5.0f}s orders {st.orders_completed} done, {failed} failed, "
            f"state p99 {lat['p99']} ms | " + " ".join(parts)
        )

    # ---- measurements --------------------------------------------------------------------------
    def _on_state(self, serial: str, st: dict[str, Any], now: float) -> None:
        """Every state message (master's MQTT thread): what the report counts from states."""
        prev = self.latest.get(serial)
        self.latest[serial] = st
        m = self.measures
        bat = (st.get("batteryState") or {}).get("batteryCharge")
        with m.lock:
            if bat is not None:
                m.battery_last[serial] = float(bat)
                m.battery_min[serial] = min(float(bat), m.battery_min.get(serial, 100.0))
            old = {e.get("errorType") for e in (prev or {}).get("errors", [])}
            for e in st.get("errors", []):
                if e.get("errorType") not in old:
                    m.state_errors[str(e.get("errorType"))] += 1
        node = st.get("lastNodeId")
        if not node or self.t0 == 0.0:
            return
        seq = int(st.get("lastNodeSequenceId", 0))
        vv = self.master.core.vehicles.get(serial)
        job = vv.job if vv is not None else None
        stop = False
        if job is not None and job.order_id == st.get("orderId"):
            idx = seq // 2
            stop = idx in job.actions or idx == len(job.path) - 1
        if stop and st.get("driving"):
            return  # measured once it stands
        key = (serial, node, seq if st.get("orderId") else -1)
        if key in self._seen or (prev is not None and prev.get("lastNodeId") == node and not stop):
            return
        self._seen.add(key)
        with self._queue_cv:
            self._queue.append((serial, node, seq, stop))
            self._queue_cv.notify()

    def _measure_worker(self) -> None:
        mp = self.master.core.map
        while not self._stop.is_set():
            with self._queue_cv:
                if not self._queue:
                    self._queue_cv.wait(0.2)
                    continue
                serial, node, seq, stop = self._queue.pop(0)
            index = next(v.index for v in self.vehicles if v.serial == serial)
            pose = self.world.pose(index)
            n = mp.nodes.get(node)
            if pose is None or n is None:
                continue
            err = math.dist((pose[0], pose[1]), (n.x, n.y)) * 1000
            with self.measures.lock:
                if stop:
                    self.measures.arrival_mm.append(err)
                    theta = self._stop_theta(serial, node, seq)
                    if theta is not None:
                        self.measures.arrival_deg.append(math.degrees(angle_diff(pose[2], theta)))
                else:
                    self.measures.pass_mm.append(err)

    def _stop_theta(self, serial: str, node: str, seq: int) -> float | None:
        """The theta the master asked for at this node (from what it sent)."""
        for _, s, topic, body in reversed(self.master.sent[-400:]):
            if s != serial or topic != "order":
                continue
            for n in body.get("nodes", []):
                if n["nodeId"] == node and n["sequenceId"] == seq:
                    theta = (n.get("nodePosition") or {}).get("theta")
                    return None if theta is None else float(theta)
        return None

    def _sampler(self) -> None:
        """Truth every sample_every_s: the distance of driving vehicles from the map's edges."""
        while not self._stop.wait(self.o.sample_every_s):
            poses = self.world.poses()
            for v in self.vehicles:
                st = self.latest.get(v.serial)
                pose = poses.get(v.index)
                if st is None or pose is None or not st.get("driving"):
                    continue
                d = min(segment_distance((pose[0], pose[1]), a, b) for a, b in self.edges)
                with self.measures.lock:
                    self.measures.path_mm.append(d * 1000)

    def _usage(self, since: dict[int, tuple[float, float]] | None = None) -> dict[str, Any]:
        now = time.monotonic()
        out: dict[str, Any] = {}
        others = {
            "world": self.world.proc.pid if self.world and self.world.proc else None,
            "orchestrator": os.getpid(),
        }
        for name, pid in others.items():
            u = proc_usage(pid) if pid else None
            if u is None:
                continue
            if since is None:
                out[name] = (u[0], now)
            else:
                cpu0, t0 = since.get(name, (u[0], now))  # type: ignore[call-overload]
                out[name] = {
                    "cpu_percent": round(100 * (u[0] - cpu0) / max(1e-9, now - t0), 1),
                    "rss_mb": round(u[1], 1),
                }
        for proc, serials in self.procs:
            u = proc_usage(proc.pid)
            if u is None:
                continue
            if since is None:
                out[str(proc.pid)] = (u[0], now)
                continue
            cpu0, t0 = since.get(str(proc.pid), (u[0], now))  # type: ignore[call-overload]
            cpu = 100 * (u[0] - cpu0) / max(1e-9, now - t0)
            n = len(serials)
            for s in serials:
                out[s] = {
                    "cpu_percent": round(cpu / n, 1),
                    "rss_mb": round(u[1] / n, 1),
                    "process_rss_mb": round(u[1], 1),
                    "process_cpu_percent": round(cpu, 1),
                    "vehicles_in_process": n,
                }
        return out

    def _report(self, usage: dict[str, Any]) -> dict[str, Any]:
        truth = self.world.truth()
        per = max(1, self.o.per_process)
        processes = (
            f"{len(self.procs)} processes, one vehicle each"
            if per == 1
            else f"{len(self.procs)} processes of up to {per} vehicles"
        )
        with self.measures.lock:
            report = build_report(
                vehicles=len(self.vehicles),
                duration_s=time.monotonic() - self.t0,
                stats=self.master.core.stats,
                latencies_ms=list(self.master.latencies_ms),
                measures=self.measures,
                truth=truth,
                usage={k: v for k, v in usage.items() if k not in ("world", "orchestrator")},
                allowed_xy_m=self.o.allowed_xy_m,
                allowed_theta_rad=self.o.allowed_theta_rad,
                fault_log=self.fault_log,
                processes=processes,
                connections=list(self.master.connections),
            )
        report["truth"] = {k: v for k, v in truth.items() if k not in ("collisions", "off_map")}
        report["errors_at_end"] = {
            serial: [
                f"{e.get('errorType')} ({e.get('errorLevel')}): {e.get('errorDescription', '')}"
                for e in st.get("errors", [])
            ]
            for serial, st in sorted(self.latest.items())
            if st.get("errors")
        }
        report["simulator"] = {k: usage.get(k) for k in ("world", "orchestrator")}
        report["simulator"]["realtime"] = dict(self.realtime) or False
        with contextlib.suppress(OSError):
            report["load_average"] = [round(x, 1) for x in os.getloadavg()]
        return report

    # ---- the end --------------------------------------------------------------------------------
    def close(self) -> None:
        self._stop.set()
        with self._queue_cv:
            self._queue_cv.notify_all()
        for proc, _ in self.procs:
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        for proc, _ in self.procs:
            try:
                proc.wait(15)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(5)
        for t in self._threads:
            t.join(3)
        for part in (self.master, self.operator):
            if part is not None:
                with contextlib.suppress(Exception):
                    part.stop()
        if self.world is not None:
            with contextlib.suppress(Exception):
                self.world.stop()
        for proxy in self.proxies.values():
            proxy.stop()
        if self.broker is not None:
            with contextlib.suppress(Exception):
                self.broker.stop()
        for f in self._logs:
            f.close()
        if self.realtime.get("orchestrator"):
            with contextlib.suppress(OSError, AttributeError):
                os.sched_setscheduler(0, os.SCHED_OTHER, os.sched_param(0))

    def _watch(self, target: Callable[[], None], name: str) -> None:
        t = threading.Thread(target=target, name=name, daemon=True)
        t.start()
        self._threads.append(t)

    def _say(self, text: str) -> None:
        if self.o.progress is not None:
            self.o.progress(text)


def _realtime(pid: int, priority: int) -> bool:
    """FIFO real-time scheduling for ``pid`` (0: this process) where permitted."""
    try:
        os.sched_setscheduler(pid, os.SCHED_FIFO, os.sched_param(priority))
    except (AttributeError, OSError):
        return False
    return True


def _numbered(template: str, i: int) -> str:
    """'sim-amr-01' -> 'sim-amr-07'; a name without a number gets '-07'."""
    m = re.match(r"^(.*?)(\d+)$", template)
    return f"{m[1]}{i:0{len(m[2])}d}" if m else f"{template}-{i:02d}"


class LinkProxy:
    """A vehicle's network path to the broker, for the ``link-loss`` fault: a TCP proxy on a
    loopback port. ``cut = True`` makes it a black hole (bytes dropped both ways, sockets left
    open; new connections refused), as a vehicle that drives out of Wi-Fi coverage sees it:
    the broker learns of the loss only by the vehicle's keepalive expiring, and publishes its
    last will. ``cut = False`` closes the connections that lost bytes (TCP would reset them)
    and forwards new ones again."""

    def __init__(self, target_host: str, target_port: int) -> None:
        import selectors
        import socket

        self.target = (target_host, target_port)
        self.sel = selectors.DefaultSelector()
        self.server = socket.socket()
        self.server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.server.bind(("127.0.0.1", 0))
        self.server.listen(16)
        self.server.setblocking(False)
        self.port = int(self.server.getsockname()[1])
        self.sel.register(self.server, selectors.EVENT_READ, None)
        self._cut = False
        self._heal = False
        self._dirty: set[Any] = set()  # sockets that lost bytes while cut
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="sim-amr-link", daemon=True)

    def start(self) -> LinkProxy:
        self._thread.start()
        return self

    @property
    def cut(self) -> bool:
        return self._cut

    @cut.setter
    def cut(self, value: bool) -> None:
        self._heal = self._cut and not value
        self._cut = value

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(2)
        for key in list(self.sel.get_map().values()):
            with contextlib.suppress(OSError):
                key.fileobj.close()  # type: ignore[union-attr]
        self.sel.close()

    def _run(self) -> None:
        import selectors
        import socket

        while not self._stop.is_set():
            if self._heal:
                self._heal = False
                for sock in list(self._dirty):
                    with contextlib.suppress(KeyError, ValueError, OSError):
                        self.sel.unregister(sock)
                    with contextlib.suppress(OSError):
                        sock.close()
                self._dirty.clear()
            for key, _ in self.sel.select(0.1):
                if key.data is None:
                    with contextlib.suppress(OSError):
                        client, _ = self.server.accept()
                        if self._cut:
                            client.close()
                            continue
                        try:
                            upstream = socket.create_connection(self.target, timeout=2)
                        except OSError:
                            client.close()
                            continue
                        for s in (client, upstream):
                            s.setblocking(False)
                        self.sel.register(client, selectors.EVENT_READ, upstream)
                        self.sel.register(upstream, selectors.EVENT_READ, client)
                    continue
                src, dst = key.fileobj, key.data
                try:
                    data = src.recv(65536)  # type: ignore[union-attr]
                except OSError:
                    data = b""
                if not data:
                    for s in (src, dst):
                        with contextlib.suppress(KeyError, ValueError, OSError):
                            self.sel.unregister(s)
                        with contextlib.suppress(OSError):
                            s.close()  # type: ignore[union-attr]
                    continue
                if self._cut:
                    self._dirty.update((src, dst))
                else:
                    with contextlib.suppress(OSError):
                        dst.sendall(data)


class _CodeServers:
    """Each vehicle's floor-code reader as the node reaches it: a TCP port serving one line
    per code the world's camera decodes (``edge.amr.adapter_floorcode`` documents the line)."""

    def __init__(self, count: int, codes: dict[str, tuple[float, float, float]]) -> None:
        import socket

        self.codes = codes
        self.servers: list[socket.socket] = []
        self.clients: list[list[socket.socket]] = [[] for _ in range(count)]
        for _ in range(count):
            s = socket.socket()
            s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            s.bind(("127.0.0.1", 0))
            s.listen(4)
            s.settimeout(0.2)
            self.servers.append(s)
        self.ports = [int(s.getsockname()[1]) for s in self.servers]
        self.lines = 0
        self.seen: dict[int, tuple[str, float]] = {}
        self.log: list[tuple[int, str, float, float, float]] = []  # first reading of each pass
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._accept, name="sim-amr-codes", daemon=True)
        self._thread.start()

    def _accept(self) -> None:
        import select

        while not self._stop.is_set():
            ready, _, _ = select.select(self.servers, [], [], 0.2)
            for s in ready:
                with contextlib.suppress(OSError):
                    conn, _ = s.accept()
                    conn.setblocking(False)
                    with self._lock:
                        self.clients[self.servers.index(s)].append(conn)

    def on_code(self, index: int, seen: Any, _now: float, clock: int) -> None:
        """The world's camera listener (on the world's loop): the line to the vehicle's node."""
        pose = self.codes.get(seen.code)
        if pose is None:
            return
        last = self.seen.get(index)
        if last is None or last[0] != seen.code:
            self.log.append(
                (index, seen.code, round(_now, 3), round(seen.dx, 4), round(seen.dy, 4))
            )
        self.seen[index] = (seen.code, _now)
        line = (
            f"FC {seen.code} {pose[0]!r} {pose[1]!r} {pose[2]!r} {seen.dx!r} {seen.dy!r} "
            f"{seen.dtheta!r} {clock}\n"
        ).encode("ascii")
        with self._lock:
            for conn in list(self.clients[index]):
                try:
                    conn.send(line)
                    self.lines += 1
                except BlockingIOError:
                    pass  # a node that does not read loses readings, as from a real reader
                except OSError:
                    self.clients[index].remove(conn)
                    conn.close()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(2)
        for s in self.servers:
            s.close()
        with self._lock:
            for group in self.clients:
                for conn in group:
                    conn.close()


class _World:
    """The simulated warehouse as this run uses it: a child process (its MCUs' timers and the
    physics must not share an interpreter lock with the master and the measurements: in a
    thread here, half the world's steps of a 10-vehicle run came late) answering calls over a
    pipe; the map is read here too, for the master."""

    def __init__(self, options: AmrSimOptions, workdir: Path) -> None:
        import json as _json

        from sim_hardware.amr.master import MasterMap
        from sim_hardware.amr.warehouse import DEFAULT_MAP

        self.o = options
        self.workdir = workdir
        path = Path(options.map_path) if options.map_path else DEFAULT_MAP
        try:
            self.map = MasterMap.from_dict(_json.loads(path.read_text(encoding="utf-8")))
        except (OSError, ValueError, KeyError) as exc:
            raise AmrSimError(f"map {path}: {exc}") from None
        self.map_path = path
        self.proc: Any = None
        self.conn: Any = None
        self._lock = threading.Lock()

    def start(self) -> list[tuple[str, str, int]]:
        """[(pty path, start node, floor-code reader port)] per vehicle."""
        import multiprocessing

        ctx = multiprocessing.get_context("spawn")
        self.conn, child = ctx.Pipe()
        params = {
            "vehicles": self.o.vehicles,
            "workdir": str(self.workdir),
            "map_path": str(self.map_path),
            "seed": self.o.seed,
            "watchdog_ms": self.o.mcu_watchdog_ms,
            "scale_error": self.o.wheel_scale_error,
            "step_s": self.o.world_step_s,
            "rt_priority": self.o.rt_priority,
        }
        self.proc = ctx.Process(
            target=_world_child, args=(child, params), name="sim-amr-world", daemon=True
        )
        self.proc.start()
        child.close()
        if not self.conn.poll(60):
            raise AmrSimError("the simulated warehouse did not start in 60 s")
        status, value = self.conn.recv()
        if status != "ok":
            raise AmrSimError(f"the simulated warehouse: {value}")
        return [tuple(x) for x in value]  # type: ignore[misc]

    def _call(self, name: str, *args: Any) -> Any:
        with self._lock:
            self.conn.send((name, args))
            if not self.conn.poll(10):
                raise AmrSimError(f"the simulated warehouse did not answer {name}")
            status, value = self.conn.recv()
        if status != "ok":
            raise AmrSimError(f"the simulated warehouse: {name}: {value}")
        return value

    def estop(self, i: int, on: bool) -> None:
        self._call("estop", i, on)

    def field(self, i: int, on: bool) -> None:
        self._call("field", i, on)

    def unplug(self, i: int, on: bool) -> None:
        self._call("unplug", i, on)

    def battery(self, i: int, percent: float) -> None:
        self._call("battery", i, percent)

    def floor_codes(self, i: int, readable: bool) -> None:
        self._call("floor_codes", i, readable)

    def poses(self) -> dict[int, tuple[float, float, float]]:
        return dict(self._call("poses"))

    def pose(self, i: int) -> tuple[float, float, float] | None:
        return self.poses().get(i)

    def truth(self) -> dict[str, Any]:
        return dict(self._call("truth"))

    def code_log(self) -> list[Any]:
        return list(self._call("code_log"))

    def stop(self) -> None:
        if self.proc is None:
            return
        with contextlib.suppress(Exception):
            with self._lock:
                self.conn.send(("stop", ()))
        self.proc.join(10)
        if self.proc.is_alive():
            self.proc.terminate()
            self.proc.join(5)


def _world_child(conn: Any, params: dict[str, Any]) -> None:
    """The world's process: start it, answer calls until told to stop."""
    sys.setswitchinterval(0.0005)  # the MCUs' timers share this interpreter with the physics
    if params.get("rt_priority"):
        with contextlib.suppress(OSError, AttributeError):
            os.sched_setscheduler(0, os.SCHED_FIFO, os.sched_param(params["rt_priority"]))
    world = _LocalWorld(params)
    try:
        try:
            conn.send(("ok", world.start()))
        except Exception as exc:
            conn.send(("error", f"{type(exc).__name__}: {exc}"))
            return
        while True:
            try:
                name, args = conn.recv()
            except EOFError:
                return
            if name == "stop":
                return
            try:
                conn.send(("ok", getattr(world, name)(*args)))
            except Exception as exc:  # answered, the run decides
                conn.send(("error", f"{type(exc).__name__}: {exc}"))
    finally:
        world.stop()


class _LocalWorld:
    """``sim_hardware.amr.world`` in a thread of the world's process, with the floor-code
    reader ports; its calls made on the world's own loop."""

    def __init__(self, params: dict[str, Any]) -> None:
        self.p = params
        self.thread: Any = None
        self.codes: _CodeServers | None = None

    def start(self) -> list[tuple[str, str, int]]:
        from sim_hardware.amr.world import AmrWorldThread, WorldOptions

        p = self.p
        self.thread = AmrWorldThread(
            WorldOptions(
                vehicles=p["vehicles"],
                workdir=p["workdir"],
                map_path=p["map_path"],
                seed=p["seed"],
                watchdog_ms=p["watchdog_ms"],
                scale_error=p["scale_error"],
                step_s=p["step_s"],
            )
        ).start()
        world = self.thread.world
        self.codes = _CodeServers(len(world.vehicles), dict(world.codes))
        self.thread.call(world.code_listeners.append, self.codes.on_code)
        return [(v.link, v.start_node, self.codes.ports[i]) for i, v in enumerate(world.vehicles)]

    def _call(self, name: str, *args: Any) -> Any:
        return self.thread.call(getattr(self.thread.world, name), *args)

    def estop(self, i: int, on: bool) -> None:
        self._call("set_estop", i - 1, on)

    def field(self, i: int, on: bool) -> None:
        self._call("set_field_blocked", i - 1, on)

    def unplug(self, i: int, on: bool) -> None:
        self._call("unplug_mcu" if on else "replug_mcu", i - 1)

    def battery(self, i: int, percent: float) -> None:
        self._call("set_battery", i - 1, percent)

    def floor_codes(self, i: int, readable: bool) -> None:
        self._call("set_camera_blind", i - 1, not readable)

    def poses(self) -> dict[int, tuple[float, float, float]]:
        t = self._call("truth")
        return {k + 1: (v["x"], v["y"], v["theta"]) for k, v in enumerate(t["vehicles"])}

    def pose(self, i: int) -> tuple[float, float, float] | None:
        return self.poses().get(i)

    def truth(self) -> dict[str, Any]:
        t = self._call("truth")
        return {
            "collisions": len(t["collisions"]),
            "collision_events": [list(c) for c in t["collisions"][:20]],
            "off_map": len(t["off_map"]),
            "off_map_events": [list(e) for e in t["off_map"][:20]],
            "world_steps": t["steps"],
            "world_late_steps": t["late_steps"],
            "distance_m": {v["name"]: round(v["distance_m"], 1) for v in t["vehicles"]},
            "floor_code_lines": self.codes.lines if self.codes else 0,
            "floor_code_passes": len(self.codes.log) if self.codes else 0,
        }

    def code_log(self) -> list[tuple[int, str, float, float, float]]:
        return list(self.codes.log) if self.codes else []

    def stop(self) -> None:
        if self.codes is not None:
            self.codes.stop()
        if self.thread is not None:
            self.thread.stop()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m edge.cli.sim_amr", description=__doc__)
    add_arguments(parser)
    return run_amr(parser.parse_args(argv))


if __name__ == "__main__":
    with contextlib.suppress(KeyboardInterrupt):
        signal.signal(signal.SIGTERM, signal.default_int_handler)
        raise SystemExit(main())
    raise SystemExit(130)
