"""One `wolfpack sim` run: the simulated cell, a broker, the reference brain and the real node
(`wolfpack run` in its own process, as on a board), faults on a schedule, live progress and
the report.

Processes: this one (orchestrator, broker, brain, the report's MQTT consumer), the simulated
cell (world + PLC + MCU + scanner, so its timing does not share a GIL with anything), and the
node. The node sees only what a board sees: a pty, a Modbus TCP port, a scanner TCP port and
the broker.

This process also plays the operator (after a fault that stopped the cell, and after a node
restart, it resets and starts the cell) and keeps the safety time line the report judges
strokes against (``edge.sim.safety_truth``).
"""

from __future__ import annotations

import contextlib
import json
import logging
import math
import os
import re
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from edge.config import load_board_config
from edge.config.board import BoardConfig
from edge.sim.faults import Fault, expand_random
from edge.sim.harness import (
    epoch,
    free_port,
    log_tail,
    process_usage,
    read_health,
    run_schedule,
    start_embedded_broker,
    wait_running,
)
from edge.sim.report import build_report
from edge.sim.safety_truth import DEAD, StateTimeline, belt_stops, judge_strokes, rss_growth
from fleet_link.brain import Brain, Message

log = logging.getLogger("wolfpack.sim")

REPO = Path(__file__).resolve().parents[2]
DEFAULT_CONFIG = REPO / "configs" / "sim-cell.yaml"


class SimError(RuntimeError):
    """The run could not be set up or went wrong in a way the report cannot describe."""


@dataclass
class SimOptions:
    rate_pph: float = 12_000.0
    duration_s: float = 60.0
    faults: list[Fault] = field(default_factory=list)
    broker: str | None = None  # None: the embedded broker
    config: Path = DEFAULT_CONFIG
    seed: int = 1
    unreadable_fraction: float = 0.02
    scanner_no_read: float = 0.0
    brain_latency_ms: float = 5.0
    drain_timeout_s: float = 20.0
    workdir: Path | None = None
    keep_workdir: bool = False
    progress: Callable[[str], None] | None = None
    progress_every_s: float = 2.0
    # the simulated camera as a second label source (vision: section); None: when the config
    # has a vision: section (the CLI's default)
    camera: bool | None = False
    camera_fps: float = 15.0
    camera_only: bool = False  # the camera as the only label source: the node has no scanner
    rss_every_s: float = 2.0  # node RSS sampling period (the report's node_rss.samples)
    health_poll_s: float = 0.01  # how often the node's health file (its state) is read
    operator_settle_s: float = 1.0  # how long the operator waits before resetting/starting
    # The simulated PLC's communication watchdog (with a cell.plc.heartbeat in the config):
    # a quick stop when the node's heartbeat (every 100 ms) has not changed for this long.
    # 400 ms + the 0.25 s quick stop from 2.5 m/s keeps a node's death within the 800 ms the
    # e-stop is allowed, and rides out 3 lost heartbeats (a flaky PLC link, a busy host).
    plc_watchdog_ms: int = 400
    mcu_firmware: str = "python"  # or "c": the C firmware's host build (firmware/, issue 19)


# Faults during whose window the operator does not restart the cell (it would stop again).
_BLOCKING = frozenset({"estop", "plc-silent", "plc-timeouts", "node-kill"})
OUTBOX_FULL_ENV = "WOLFPACK_FAULT_OUTBOX_FULL"


@dataclass
class _Collected:
    records: list[dict[str, Any]] = field(default_factory=list)
    safety: list[dict[str, Any]] = field(default_factory=list)
    alarms: list[dict[str, Any]] = field(default_factory=list)
    crashes: list[dict[str, Any]] = field(default_factory=list)
    events: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)


class CellSimulation:
    def __init__(self, options: SimOptions) -> None:
        self.o = options
        self.board = load_board_config(options.config)
        if self.board.cell is None or self.board.mqtt is None:
            raise SimError(f"{options.config}: a sim config needs 'cell:' and 'mqtt:' sections")
        self.site, self.node_id = self.board.node.site, self.board.node.id
        if options.camera is None:
            options = replace(options, camera=self.board.vision is not None)
            self.o = options
        self.got = _Collected()
        self.broker: Any = None
        self.broker_url = ""
        self.cell: Any = None
        self.camera: Any = None
        self._camera_node: dict[str, Any] = {}
        self.brain: Any = None
        self.consumer: Brain | None = None
        self.node: subprocess.Popen[bytes] | None = None
        self.workdir = Path(options.workdir or tempfile.mkdtemp(prefix="wolfpack-sim-"))
        self.faults = expand_random(options.faults, options.duration_s)
        if options.broker and any(f.kind == "broker-restart" for f in self.faults):
            raise SimError("broker-restart (also drawn by random=SEED) needs the embedded "
                           "broker: drop --broker")  # fmt: skip
        self.t0 = 0.0
        self.fault_log: list[str] = []
        self._stop = threading.Event()
        # the safety time line: the node's state (health file, events/safety, kills)
        self.timeline = StateTimeline()
        self._wall_offset = time.time() - time.monotonic()
        self._node_cmd: list[str] = []
        self.metrics_url = ""  # the node's Prometheus endpoint (docs/metrics.md)
        self._node_dead = False
        self._open_windows: dict[Fault, float] = {}  # blocking faults now open -> since
        self._last_blocking_end = 0.0
        self.kills: list[float] = []
        self.restarts: list[dict[str, Any]] = []
        self.operator_log: list[str] = []
        self.rss_samples: list[dict[str, Any]] = []
        self.counters: dict[str, Any] = {
            "outbox_full_windows": 0,
            "outbox_full_s": 0.0,
            "node_kills": 0,
            "node_restarts": 0,
            "scanner_noise_windows": 0,
        }
        self._flood: _Flood | None = None
        self._threads: list[threading.Thread] = []

    # ---- the run ---------------------------------------------------------------------------------
    def run(self) -> dict[str, Any]:
        try:
            return self._run()
        except SimError:
            raise
        except RuntimeError as exc:  # from the simulated cell's process, over its pipe
            raise SimError(f"the simulated cell failed: {exc}") from exc
        except OSError as exc:  # a broker that cannot be reached, a port, a pty
            raise SimError(str(exc)) from exc

    def _run(self) -> dict[str, Any]:
        try:
            self.start()
            usage0 = self._usage()
            camera0 = self._camera_scrape()
            self._say(f"belt running; feeding parcels at {self.o.rate_pph:g} pph for "
                      f"{self.o.duration_s:g} s")  # fmt: skip
            self._watch(self._operator, "sim-operator")  # not in start(): tests drive by hand
            self._run_schedule()
            self.cell.call("world.close_induction")
            self._say("induction closed; waiting for the belt to clear and the records")
            self._drain()
            usage = self._usage(usage0)
            self._camera_node = self._camera_rate(camera0)
            return self._report(usage)
        finally:
            self.close()

    def start(self) -> None:
        """Broker, cell, brain, consumer and node up, the belt running (tests drive from here)."""
        from sim_hardware.brain.config import BrainConfig
        from sim_hardware.brain.policy import ReferenceBrain
        from sim_hardware.brain.service import BrainService
        from sim_hardware.world.cell import SimCellProcess

        self.workdir.mkdir(parents=True, exist_ok=True)
        if self.o.mcu_firmware == "c":  # build it now: a failed build is one line, not a trace
            from sim_hardware.mcu.c_firmware import CFirmwareError, host_binary

            try:
                host_binary(build=True)
            except CFirmwareError as exc:
                raise SimError(f"--mcu-firmware c: {exc}") from None
        self.broker_url = self.o.broker or self._start_embedded_broker()
        self._say(f"broker {self.broker_url}")
        world_cfg = self._world_config()
        noise = max((f.value or 0.0 for f in self.faults if f.kind == "serial-noise"
                     and f.start_s == 0 and f.duration_s is None), default=0.0)  # fmt: skip
        self.cell = SimCellProcess(
            world_cfg,
            self.workdir / "mcu",
            scanner_tcp_port=0,
            scanner_options={"no_read_rate": self.o.scanner_no_read, "seed": self.o.seed},
            mcu_options={"baud": self.board.mcus[0].baud, "noise": noise},
            plc_comm_watchdog_ms=self.o.plc_watchdog_ms if self._heartbeat else 0,
            mcu_firmware=self.o.mcu_firmware,
        ).start()
        self._say(
            f"simulated cell: PLC 127.0.0.1:{self.cell.plc_port}, MCU {self.workdir / 'mcu'} "
            f"({self.o.mcu_firmware} firmware), "
            f"scanner 127.0.0.1:{self.cell.scanner_port}"
        )
        if self.o.camera or self.o.camera_only:
            from sim_hardware.world.camera_feed import SimCameraProcess

            # the camera the config's vision.source describes (its calibration is in px of it)
            src = self.board.vision.source if self.board.vision is not None else None
            size = (src.width, src.height) if src and src.width and src.height else None
            self.camera = SimCameraProcess(self.cell, fps=self.o.camera_fps, size=size).start()
            w, h = size or (640, 480)
            self._say(f"simulated camera: 127.0.0.1:{self.camera.port}, "
                      f"{self.o.camera_fps:g} fps, {w} x {h} px")  # fmt: skip
        policy = ReferenceBrain(
            BrainConfig(
                sort_chutes=world_cfg.sort_stations,
                reject_chute=world_cfg.reject_index,
                routes=world_cfg.routes,
                latency_ms=self.o.brain_latency_ms,
                seed=self.o.seed,
            )
        )
        cell = self.board.cell
        assert cell is not None
        self.brain = BrainService(
            self.broker_url,
            self.site,
            policy,
            request_event=cell.brain.request_event,
            answer_command=cell.brain.answer_command,
        ).start()
        self.consumer = Brain(self.broker_url, self.site, on_message=self._on_message).start()
        config_path = self._write_node_config()
        self._say(f"node metrics {self.metrics_url}")
        self._start_node(config_path, start=True)
        self._watch(self._poll_health, "sim-health")
        self._wait_node_running()
        self.t0 = time.monotonic()

    @property
    def _heartbeat(self) -> bool:
        """The node writes a PLC heartbeat (cell.plc.heartbeat), so the PLC may watch it."""
        cell = self.board.cell
        return bool(cell and cell.plc and getattr(cell.plc, "heartbeat", None))

    def _world_config(self) -> Any:
        from sim_hardware.world.config import ArrivalConfig, ScannerStation, WorldConfig

        cell = self.board.cell
        assert cell is not None
        return WorldConfig(
            seed=self.o.seed,
            routes=self._routes(),
            arrivals=ArrivalConfig(
                rate_pph=self.o.rate_pph, unreadable_fraction=self.o.unreadable_fraction
            ),
            scanners=[ScannerStation(position_mm=s.position_mm) for s in cell.scanners],
        )

    def _routes(self) -> dict[str, int]:
        """The routing table's plain prefix rules ("1.*" -> chute-0) as the sort plan's routes,
        so the world's truth, the brain and the node's fallback agree on those labels."""
        cell = self.board.cell
        assert cell is not None
        prefix = cell.brain.chute_prefix
        routes: dict[str, int] = {}
        for rule in cell.routing:
            others = (rule.classes, rule.min_length_mm, rule.max_length_mm, rule.max_width_mm,
                      rule.max_height_mm)  # fmt: skip
            match = re.fullmatch(r"([A-Za-z0-9-]+)\.\*", rule.label or "")
            number = rule.chute.removeprefix(prefix)
            if match and all(o is None for o in others) and number.isdigit():
                routes.setdefault(match[1], int(number))
        return routes

    def _write_node_config(self) -> Path:
        data = self.board.model_dump(mode="json", exclude_none=True)
        data["mcus"][0]["port"] = str(self.workdir / "mcu")
        plc = self.board.cell.plc if self.board.cell else None
        for dev in data["modbus"]["devices"]:
            if plc is not None and dev["name"] == plc.device:
                dev["tcp"]["port"] = self.cell.plc_port
        for dev in data["line_devices"]:
            if "tcp" in dev:
                dev["tcp"]["port"] = self.cell.scanner_port
        data["mqtt"]["broker"] = self.broker_url
        data["mqtt"]["outbox"]["path"] = str(self.workdir / "outbox.sqlite")
        if self.camera is not None:
            if "vision" not in data:
                raise SimError(f"{self.o.config}: --camera needs a 'vision:' section")
            data["vision"].setdefault("source", {})["uri"] = f"wpcf://127.0.0.1:{self.camera.port}"
            data["cell"].setdefault("camera", {"max_fps": self.o.camera_fps})
        else:
            data["cell"].pop("camera", None)
        if self.o.camera_only:  # no scanner on this node: the camera is its only label source
            readers = {s["device"] for s in data["cell"].get("scanners", [])}
            data["cell"]["scanners"] = []
            data["line_devices"] = [d for d in data["line_devices"] if d["name"] not in readers]
            loss = data["cell"].get("safety", {}).get("device_loss", {})
            for name in readers:
                loss.pop(name, None)
        if "metrics" not in data:  # /metrics on a free loopback port, unless the config says
            data["metrics"] = {"listen": f"127.0.0.1:{free_port()}"}
        self.metrics_url = f"http://{data['metrics']['listen']}/metrics"
        path = self.workdir / "node.yaml"
        path.write_text(
            "# written by `wolfpack sim` from "
            + str(self.o.config)
            + "\n"
            + json.dumps(data, indent=1)
        )
        BoardConfig.model_validate(data)
        return path

    def _start_node(self, config: Path, start: bool) -> None:
        """``start``: with ``--start`` (the first start); a restart is without it, as systemd
        restarts the unit: the node must then wait for the operator's ``start``."""
        if getattr(self, "_node_log", None) is None:
            self._node_log = open(self.workdir / "node.log", "ab")
        cmd = [sys.executable, "-m", "edge.cli.main", "run", str(config),
               "--health-file", str(self.workdir / "health.json")]  # fmt: skip
        if start:
            cmd.insert(5, "--start")
        env = dict(os.environ)
        env[OUTBOX_FULL_ENV] = str(self._outbox_full_flag)
        self._node_cmd = cmd
        self.node = subprocess.Popen(
            cmd, stdout=self._node_log, stderr=subprocess.STDOUT, cwd=REPO, env=env
        )
        self._say(
            f"node pid {self.node.pid}: {' '.join(cmd[2:])}  (log {self.workdir / 'node.log'})"
        )

    @property
    def _outbox_full_flag(self) -> Path:
        """While this file exists the node's outbox refuses to grow (the outbox-full fault)."""
        return self.workdir / "outbox-full"

    def _wait_node_running(self, timeout: float = 60.0) -> None:
        assert self.node is not None
        wait_running(self.node, self.workdir / "health.json", SimError, self._node_tail, timeout)

    def _final_counters(self) -> dict[str, Any]:
        """The node's own counters, written to its health file when it stops."""
        if self.node is not None and self.node.poll() is None:
            self.node.terminate()
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.node.wait(15)
        return dict(self._node_health().get("counters", {}))

    def _camera_scrape(self) -> tuple[float, float] | None:
        """(time, frames the node's pipeline processed) from its /metrics, or None."""
        if self.camera is None or not self.metrics_url:
            return None
        import urllib.request

        with contextlib.suppress(OSError, ValueError):
            with urllib.request.urlopen(self.metrics_url, timeout=2) as page:
                text = page.read().decode()
            for line in text.splitlines():
                if line.startswith('wolfpack_camera_frames_total{result="processed"}'):
                    return time.monotonic(), float(line.split()[-1])
        return None

    def _camera_rate(self, start: tuple[float, float] | None) -> dict[str, Any]:
        """The node's processed frames/s over the run (the report's ``camera.fps``)."""
        end = self._camera_scrape()
        if start is None or end is None or end[0] <= start[0]:
            return {}
        return {"fps": round((end[1] - start[1]) / (end[0] - start[0]), 2),
                "frames_processed": int(end[1] - start[1])}  # fmt: skip

    def _node_health(self) -> dict[str, Any]:
        return read_health(self.workdir / "health.json")

    def _node_tail(self, lines: int = 15) -> str:
        return log_tail(self.workdir / "node.log", lines)

    # ---- faults and progress ---------------------------------------------------------------------
    def _run_schedule(self) -> None:
        windows = []
        for f in self.faults:
            if f.kind == "serial-noise" and f.start_s == 0 and f.duration_s is None:
                self.fault_log.append(f"{f}: on the MCU line for the whole run")
                continue
            # a fault without a duration lasts while parcels arrive: it ends before the drain
            windows.append((f.start_s, f.end_s if f.end_s is not None else self.o.duration_s, f))
        periodic = [
            (self.o.rss_every_s, self._sample_rss),
            (self.o.progress_every_s, lambda now: self._say(self._progress_line(now))),
        ]
        run_schedule(windows, self.o.duration_s, self.t0, self._apply, periodic, self._check_node)

    def _check_node(self) -> None:
        """A node that exits by itself (not killed by a fault) ends the run with its log."""
        node = self.node
        if node is not None and not self._node_dead and node.poll() is not None:
            raise SimError(f"the node exited with {node.returncode}: {self._node_tail()}")

    def _apply(self, fault: Fault, begin: bool) -> None:
        kind, what = fault.kind, "begins" if begin else "ends"
        if kind == "node-kill":
            what = "(kill -9)" if begin else "(restart)"
        self.fault_log.append(f"t={time.monotonic() - self.t0:6.1f}s {fault} {what}")
        self._say(f"fault {fault} {what}")
        if kind in _BLOCKING:
            if begin:
                self._open_windows[fault] = time.monotonic()
            else:
                self._open_windows.pop(fault, None)
                self._last_blocking_end = time.monotonic()
        if kind == "brain-absent":
            self.brain.policy.set_absent(begin)
        elif kind == "brain-slow":
            self.brain.policy.set_latency(fault.value if begin else self.o.brain_latency_ms)
        elif kind == "plc-timeouts":
            self.cell.call("set_plc_faults", fault.value if begin else 0.0, False)
        elif kind == "plc-silent":
            self.cell.call("set_plc_faults", 0.0, begin)
        elif kind == "serial-noise":
            self.cell.call("set_mcu_noise", fault.value if begin else 0.0)
        elif kind == "scanner-silent":
            self.cell.call("scanner.set_silent", begin)
        elif kind == "scanner-noise":
            self.cell.call("scanner.set_noise", fault.value if begin else 0.0)
            self.counters["scanner_noise_windows"] += int(begin)
        elif kind == "estop":
            self.cell.call("world.set_estop", begin)
        elif kind == "broker-restart":
            if self.o.broker is not None:
                raise SimError("broker-restart needs the embedded broker (no --broker)")
            if begin:
                self.broker.stop()
            else:
                self._start_embedded_broker(self.broker.port)
        elif kind == "outbox-full":
            self._outbox_full(begin)
        elif kind == "node-kill":
            self._kill_node() if begin else self._restart_node()
        elif kind == "command-flood":
            self._command_flood(begin, fault.value or 0.0)

    def _outbox_full(self, begin: bool) -> None:
        flag = self._outbox_full_flag
        if begin:
            flag.touch()
            self._outbox_full_since = time.monotonic()
            self.counters["outbox_full_windows"] += 1
        elif flag.exists():
            flag.unlink()
            self.counters["outbox_full_s"] = round(
                self.counters["outbox_full_s"] + time.monotonic() - self._outbox_full_since, 1
            )

    def _kill_node(self) -> None:
        """kill -9 of the node process (the one this run started), as a crash or a power cut
        of its board would; the field side (PLC watchdog, MCU watchdog) must stop the cell."""
        node = self.node
        if node is None or self._node_dead or node.poll() is not None:
            self._say("node-kill: no node running to kill")
            return
        self._node_dead = True
        t = time.monotonic()
        os.kill(node.pid, signal.SIGKILL)
        node.wait(10)
        self.kills.append(t)
        self.timeline.add(t, DEAD, "sim")
        self.counters["node_kills"] += 1

    def _restart_node(self) -> None:
        """Start the node again as systemd would (same command, without ``--start``)."""
        if not self._node_dead:
            return
        t = time.monotonic()
        self._start_node(Path(self._node_cmd[4]), start=False)
        self.timeline.add(t, "boot", "sim")
        self._node_dead = False
        self.counters["node_restarts"] += 1
        assert self.node is not None
        self.restarts.append({"pid": self.node.pid, "at_s": round(t - self.t0, 2),
                              "down_s": round(t - self.kills[-1], 2)})  # fmt: skip

    def _command_flood(self, begin: bool, rate: float) -> None:
        if begin:
            if self._flood is None:
                self._flood = _Flood(self.broker_url, self.site, self.node_id)
            self._flood.begin(rate)
        elif self._flood is not None:
            self._flood.end()

    # ---- the node's state, the operator, RSS -----------------------------------------------
    def _watch(self, target: Callable[[], None], name: str) -> None:
        thread = threading.Thread(target=target, name=name, daemon=True)
        thread.start()
        self._threads.append(thread)

    def _poll_health(self) -> None:
        """The node's state from its health file (rewritten on every change, with its pid and
        the time of writing), onto the safety time line."""
        seen: tuple[int, str, float] | None = None
        path = self.workdir / "health.json"
        while not self._stop.wait(self.o.health_poll_s):
            node = self.node
            try:
                health = json.loads(path.read_text())
                key = (int(health["pid"]), str(health["state"]), float(health["t"]))
            except (OSError, ValueError, KeyError, TypeError):
                continue
            if node is None or key[0] != node.pid or self._node_dead or key == seen:
                continue
            if seen is None or key[1] != seen[1] or key[0] != seen[0]:
                self.timeline.add(key[2] - self._wall_offset, key[1], "health")
            seen = key

    def _state_now(self) -> tuple[str | None, float]:
        """The current node's state and for how long (from the health file, this pid's)."""
        health = self._node_health()
        node = self.node
        if node is None or self._node_dead or health.get("pid") != node.pid:
            return None, 0.0
        state, since = self.timeline.state_at(time.monotonic())
        if state != health.get("state") or since is None:
            return health.get("state"), 0.0
        return state, time.monotonic() - since

    def _operator(self) -> None:
        """What the operator does: when no fault that stops the cell is on (e-stop pressed,
        PLC silent or flaky, node down) and the cell has stood still for a second (e-stop
        released, a fault passed, a node restarted), reset it if it needs it and start it."""
        settle = self.o.operator_settle_s
        next_try = 0.0
        while not self._stop.wait(0.1):
            now = time.monotonic()
            if self._open_windows or now - self._last_blocking_end < settle or now < next_try:
                continue
            state, for_s = self._state_now()
            if state not in ("estop", "fault", "ready") or for_s < settle:
                continue
            next_try = now + 2.0
            names = ("reset", "start") if state in ("estop", "fault") else ("start",)
            for name in names:
                if not self._operator_command(name):
                    break

    def _operator_command(self, name: str) -> bool:
        assert self.consumer is not None
        t = time.monotonic() - self.t0
        try:
            result = self.consumer.command(self.node_id, name, timeout=5.0)
            said = "ok" if result.ok else str((result.error or {}).get("message", result.error))
        except Exception as exc:  # reported, the run goes on
            result, said = None, f"no answer: {exc}"
        self._say(f"operator: {name} -> {said}")
        self.operator_log.append(f"t={t:6.1f}s {name}: {said}")
        return result is not None and result.ok

    def _sample_rss(self, now: float) -> None:
        node = self.node
        if node is None or self._node_dead:
            return
        usage = self._usage()
        if usage.get("rss_mb"):
            self.rss_samples.append(
                {"t_s": round(now, 1), "pid": node.pid, "rss_mb": round(usage["rss_mb"], 1)}
            )

    def _progress_line(self, now: float) -> str:
        with self.got.lock:
            recs = list(self.got.records)
        outcomes: dict[str, int] = {}
        sources: dict[str, int] = {}
        for r in recs:
            outcomes[r["outcome"]] = outcomes.get(r["outcome"], 0) + 1
            src = r.get("decision_source") or "none"
            sources[src] = sources.get(src, 0) + 1
        world = self.cell.call("world.score.summary")
        node = self._usage()
        return (
            f"t={now:5.1f}s  inducted {world['inducted']:5d}"
            f"  on belt {world['on_belt_or_waiting']:3d}"
            f"  | node: "
            + " ".join(f"{k} {v}" for k, v in sorted(outcomes.items()))
            + "  | decided by "
            + " ".join(f"{k} {v}" for k, v in sorted(sources.items()))
            + f"  | node rss {node['rss_mb']:.0f} MB"
        )

    # ---- the end ---------------------------------------------------------------------------------
    def _drain(self) -> None:
        """Wait until the belt is empty (parcels queued at a saturated induction still enter
        it), giving up after ``drain_timeout_s`` without a parcel leaving the belt; then
        until each parcel that left has its record, or ``drain_timeout_s`` more."""
        deadline = time.monotonic() + self.o.drain_timeout_s
        next_rss = next_progress = 0.0
        finished = -1
        while time.monotonic() < deadline:
            world = self.cell.call("world.score.summary")
            if world["on_belt_or_waiting"] == 0:
                break
            if world["finished"] > finished:
                finished = world["finished"]
                deadline = time.monotonic() + self.o.drain_timeout_s
            now = time.monotonic() - self.t0
            if now >= next_rss:
                next_rss = now + self.o.rss_every_s
                self._sample_rss(now)
            if now >= next_progress:
                next_progress = now + max(self.o.progress_every_s, 10.0)
                self._say(self._progress_line(now))
            self._check_node()
            time.sleep(0.2)
        # the node's records follow the parcels: wait until each finished parcel has one
        deadline = time.monotonic() + self.o.drain_timeout_s
        while time.monotonic() < deadline:
            world = self.cell.call("world.score.summary")
            with self.got.lock:
                if len(self.got.records) >= world["finished"]:
                    break
            time.sleep(0.2)

    def _safety(self) -> dict[str, Any]:
        """Strokes against the node's state, the belt's stop after each e-stop press, fault
        and node death (edge.sim.safety_truth), with the run's fault counters and RSS."""
        cell = self.board.cell
        assert cell is not None
        log_ = self.cell.call("world.safety_log", self.t0 - 5.0)
        watchdog_s = self.board.mcus[0].watchdog_ms / 1000.0 if self.board.mcus else 0.5
        strokes = judge_strokes(log_["strokes"], self.timeline, self.kills, watchdog_s)
        causes = [("estop", t) for t, pressed in log_["estop_edges"] if pressed]
        causes += [("node-kill", t) for t in self.kills]
        causes += [("fault", t) for t in self.timeline.entries_into("fault") if t >= self.t0]
        causes.sort(key=lambda c: c[1])
        rests = self.cell.call("world.standstills_after", [t for _, t in causes])
        stops = belt_stops(causes, rests, cell.safety.estop_stop_ms, self.t0)
        counters: dict[str, Any] = dict(self.counters)
        counters["restarts"] = list(self.restarts)
        with contextlib.suppress(Exception):
            counters["plc_comm_watchdog_trips"] = self.cell.call("plc_comm_trips")
        if self._flood is not None:
            counters["command_flood"] = self._flood.tally()
        return {
            "strokes_while_not_running": strokes["while_not_running"],
            "belt_stop_ms": stops["belt_stop_ms"],
            "safety": {
                "strokes": strokes,
                "belt_stops": stops,
                "node_states": [(round(t - self.t0, 3), s) for t, s in self.timeline.transitions()],
            },
            "fault_counters": counters,
            "operator": list(self.operator_log),
            "node_rss": {**rss_growth(self.rss_samples), "samples": list(self.rss_samples)},
        }

    def _report(self, usage: dict[str, float]) -> dict[str, Any]:
        cell = self.board.cell
        assert cell is not None
        scanner_stats = None
        with contextlib.suppress(Exception):
            stats = self.cell.get("scanner.stats")
            scanner_stats = {"scans": stats.scans, "reads": stats.reads,
                             "no_reads": stats.no_reads}  # fmt: skip
            scanner_stats["noise_lines"] = stats.noise  # the scanner-noise fault's lines
            scanner_stats["noise_kinds"] = self.cell.get("scanner.noise_kinds")
        world_records = self.cell.get("world.score.records")
        summary = self.cell.call("world.score.summary")
        with open(self.workdir / "world.jsonl", "w") as out:  # the truth, beside the records
            for pid, rec in world_records.items():
                out.write(json.dumps({
                    "id": pid, "label": rec.parcel.label_text, "legible": rec.parcel.label_legible,
                    "length_mm": round(rec.parcel.length_mm, 1), "intended": rec.intended,
                    "actual": rec.actual, "inducted_s": _rel(rec.inducted_s, self.t0),
                    "ended_s": _rel(rec.ended_s, self.t0),
                    "divert_error_mm": rec.divert_error_mm,
                }) + "\n")  # fmt: skip
        with self.got.lock:
            records = list(self.got.records)
            with open(self.workdir / "records.jsonl", "w") as out:
                for rec in records:
                    out.write(json.dumps(rec) + "\n")
            extra = {
                "safety_transitions": list(self.got.safety),
                "alarms": len(self.got.alarms),
                "task_crashes": list(self.got.crashes),
            }
        assert self.consumer is not None
        extra["delivery"] = {
            "records_received": len(records),
            "duplicates_dropped": self.consumer.duplicates,
            "gaps": [str(g) for g in self.consumer.gaps],
        }
        extra["faults"] = list(self.fault_log)
        with contextlib.suppress(Exception):  # an input the world got after its time (a
            # diverter's retract applied late keeps it out longer than the MCU had it)
            extra["world_late_inputs"] = {
                "count": self.cell.get("world.late_inputs"),
                "max_ms": round(1000 * self.cell.get("world.late_input_max_s"), 1),
            }
        extra["scanner"] = scanner_stats
        extra["node_counters"] = self._final_counters()
        self._stop.set()  # the health poller and the operator
        for thread in self._threads:
            thread.join(5)
        extra.update(self._safety())
        camera: dict[str, Any] | None = None
        if self.camera is not None:
            camera = {"fps": None}
            with contextlib.suppress(Exception):
                st = self.camera.stats
                camera.update({
                    "frames_rendered": st.frames,
                    # over the time the node watched (the camera renders only then)
                    "frames_per_s": round(st.frames / max(st.streaming_s, 1e-9), 2),
                    "skipped_by_node": st.skipped,
                    "render_ms_mean": round(st.render_ms_mean, 1),
                    "prepare_ms_mean": round(st.prepare_ms_mean, 1),
                })  # fmt: skip
            camera.update(self._camera_node)
            with contextlib.suppress(Exception):
                camera["legible_ids"] = set(self.camera.get("legible"))
                camera["seen_ids"] = set(self.camera.get("seen"))
        world_cfg = self._world_config()
        return build_report(
            world_records=world_records,
            world_summary=summary,
            reject_station=world_cfg.reject_index,
            node_records=records,
            eye_mm=cell.induction.position_mm,
            counts_per_mm=cell.belt.counts_per_mm,
            node_usage=usage,
            settings={
                "rate_pph": self.o.rate_pph,
                "duration_s": self.o.duration_s,
                "seed": self.o.seed,
                "broker": self.broker_url,
                "config": str(self.o.config),
                "faults": [str(f) for f in self.o.faults],
                "fault_schedule": [str(f) for f in self.faults],
                "camera_fps": self.o.camera_fps if self.camera is not None else None,
                "camera_only": self.o.camera_only,
            },
            extra=extra,
            camera=camera,
            camera_source=cell.camera.name if cell.camera else "camera",
        )

    def close(self) -> None:
        self._stop.set()
        if self._flood is not None:
            self._flood.stop()
        with contextlib.suppress(OSError):
            self._outbox_full_flag.unlink()
        if self.node is not None and self.node.poll() is None:
            self.node.terminate()
            try:
                self.node.wait(15)
            except subprocess.TimeoutExpired:
                self.node.kill()
                self.node.wait(5)
        for part in (self.consumer, self.brain, self.camera, self.cell):
            if part is not None:
                with contextlib.suppress(Exception):
                    part.stop()
        if self.broker is not None:
            with contextlib.suppress(Exception):
                self.broker.stop()
        if getattr(self, "_node_log", None) is not None:
            self._node_log.close()

    # ---- helpers ---------------------------------------------------------------------------------
    def _start_embedded_broker(self, port: int = 0) -> str:
        self.broker = start_embedded_broker(port)
        return str(self.broker.url)

    def _on_message(self, msg: Message) -> None:
        if msg.node != self.node_id or msg.kind != "events":
            return
        with self.got.lock:
            self.got.events += 1
            if msg.name == "parcel":
                self.got.records.append(msg.data)
            elif msg.name == "safety":
                self.got.safety.append(msg.data)
                with contextlib.suppress(ValueError, KeyError, TypeError):
                    self.timeline.add(epoch(msg.ts) - self._wall_offset, msg.data["to"], "event")
            elif msg.name == "alarm":
                self.got.alarms.append(msg.data)
            elif msg.name == "task_crashed":
                self.got.crashes.append(msg.data)

    def _usage(self, since: dict[str, float] | None = None) -> dict[str, float]:
        assert self.node is not None
        return process_usage(self.node.pid, since)

    def _say(self, text: str) -> None:
        if self.o.progress is not None:
            self.o.progress(text)


class _Flood:
    """An operator tool gone wrong: ``status`` commands at ``rate`` per second through the
    broker, from a client of its own; each one's answer (ok, refused, none) is tallied. A
    window sends rate x its length in all: what a starved sender thread still owes when the
    window closes goes out then, so the count does not depend on the machine's load."""

    def __init__(self, broker_url: str, site: str, node: str) -> None:
        self.client = Brain(broker_url, site, request_replays=False,
                            client_id=f"wolfpack-flood-{os.getpid()}").start()  # fmt: skip
        self.node = node
        self.futures: list[Any] = []
        self._on = threading.Event()
        self._thread: threading.Thread | None = None
        self._closed = threading.Event()
        self._lock = threading.Lock()
        self._windows: list[list[float]] = []  # [begin, end (inf while open), rate, sent]

    def begin(self, rate: float) -> None:
        with self._lock:
            self._windows.append([time.monotonic(), math.inf, rate, 0])
        self._on.set()
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name="sim-flood", daemon=True)
            self._thread.start()

    def end(self) -> None:
        with self._lock:
            if self._windows and self._windows[-1][1] == math.inf:
                self._windows[-1][1] = time.monotonic()
        self._on.clear()

    def _owed(self) -> int:
        """Commands due by now and not yet sent, over the windows still owing (a closed
        window is owed in full, then forgotten)."""
        now, owed = time.monotonic(), 0
        with self._lock:
            for w in list(self._windows):
                began, ended, rate, sent = w
                due = int((min(now, ended) - began) * rate)
                owed += max(0, due - int(sent))
                w[3] = max(due, int(sent))
                if ended <= now:
                    self._windows.remove(w)
        return owed

    def _run(self) -> None:
        while not self._closed.is_set():
            self._on.wait(0.1)
            for _ in range(self._owed()):
                self.futures.append(self.client.send_command(self.node, "status"))
            time.sleep(0.005)

    def tally(self) -> dict[str, Any]:
        answered = refused = 0
        why: dict[str, int] = {}
        for f in list(self.futures):
            if not f.done():
                continue
            result = f.result()
            if result.ok:
                answered += 1
            else:
                refused += 1
                code = str((result.error or {}).get("code", result.error))
                why[code] = why.get(code, 0) + 1
        sent = len(self.futures)
        return {"sent": sent, "answered": answered, "refused": refused,
                "refused_by_code": why, "no_answer": sent - answered - refused}  # fmt: skip

    def stop(self) -> None:
        self._closed.set()
        self._on.set()
        if self._thread is not None:
            self._thread.join(2)
        with contextlib.suppress(Exception):
            self.client.stop()


def _rel(t: float | None, t0: float) -> float | None:
    return None if t is None else round(t - t0, 3)
