"""One `wolfpack sim` run: the simulated cell, a broker, the reference brain and the real node
(`wolfpack run` in its own process, as on a board), faults on a schedule, live progress and
the report.

Processes: this one (orchestrator, broker, brain, the report's MQTT consumer), the simulated
cell (world + PLC + MCU + scanner, so its timing does not share a GIL with anything), and the
node. The node sees only what a board sees: a pty, a Modbus TCP port, a scanner TCP port and
the broker.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import re
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from edge.config import load_board_config
from edge.config.board import BoardConfig
from edge.sim.faults import Fault
from edge.sim.report import build_report
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
    camera: bool = False  # the simulated camera as a second label source (vision: section)
    camera_fps: float = 5.0


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
        self.got = _Collected()
        self.broker: Any = None
        self.broker_url = ""
        self.cell: Any = None
        self.camera: Any = None
        self.brain: Any = None
        self.consumer: Brain | None = None
        self.node: subprocess.Popen[bytes] | None = None
        self.workdir = Path(options.workdir or tempfile.mkdtemp(prefix="wolfpack-sim-"))
        self.t0 = 0.0
        self.fault_log: list[str] = []
        self._stop = threading.Event()

    # ---- the run ---------------------------------------------------------------------------------
    def run(self) -> dict[str, Any]:
        try:
            self.start()
            usage0 = self._usage()
            self._say(f"belt running; feeding parcels at {self.o.rate_pph:g} pph for "
                      f"{self.o.duration_s:g} s")  # fmt: skip
            self._run_schedule()
            self.cell.call("world.close_induction")
            self._say("induction closed; waiting for the belt to clear and the records")
            self._drain()
            usage = self._usage(usage0)
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
        self.broker_url = self.o.broker or self._start_embedded_broker()
        self._say(f"broker {self.broker_url}")
        world_cfg = self._world_config()
        noise = max((f.value or 0.0 for f in self.o.faults if f.kind == "serial-noise"
                     and f.start_s == 0 and f.duration_s is None), default=0.0)  # fmt: skip
        self.cell = SimCellProcess(
            world_cfg,
            self.workdir / "mcu",
            scanner_tcp_port=0,
            scanner_options={"no_read_rate": self.o.scanner_no_read, "seed": self.o.seed},
            mcu_options={"baud": self.board.mcus[0].baud, "noise": noise},
        ).start()
        self._say(
            f"simulated cell: PLC 127.0.0.1:{self.cell.plc_port}, MCU {self.workdir / 'mcu'}, "
            f"scanner 127.0.0.1:{self.cell.scanner_port}"
        )
        if self.o.camera:
            from sim_hardware.world.camera_feed import SimCameraProcess

            self.camera = SimCameraProcess(self.cell, fps=self.o.camera_fps).start()
            self._say(f"simulated camera: 127.0.0.1:{self.camera.port}, {self.o.camera_fps:g} fps")
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
        self._start_node(config_path)
        self._wait_node_running()
        self.t0 = time.monotonic()

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
        path = self.workdir / "node.yaml"
        path.write_text(
            "# written by `wolfpack sim` from "
            + str(self.o.config)
            + "\n"
            + json.dumps(data, indent=1)
        )
        BoardConfig.model_validate(data)
        return path

    def _start_node(self, config: Path) -> None:
        log_file = open(self.workdir / "node.log", "wb")
        self._node_log = log_file
        cmd = [sys.executable, "-m", "edge.cli.main", "run", str(config), "--start",
               "--health-file", str(self.workdir / "health.json")]  # fmt: skip
        self.node = subprocess.Popen(cmd, stdout=log_file, stderr=subprocess.STDOUT, cwd=REPO)
        self._say(
            f"node pid {self.node.pid}: {' '.join(cmd[2:])}  (log {self.workdir / 'node.log'})"
        )

    def _wait_node_running(self, timeout: float = 60.0) -> None:
        deadline = time.monotonic() + timeout
        health: dict[str, Any] = {}
        while time.monotonic() < deadline:
            assert self.node is not None
            if self.node.poll() is not None:
                raise SimError(f"the node exited with {self.node.returncode}: {self._node_tail()}")
            with contextlib.suppress(OSError, ValueError):
                health = json.loads((self.workdir / "health.json").read_text())
                if health.get("state") == "running":
                    return
            time.sleep(0.1)
        raise SimError(f"the node did not reach 'running' in {timeout:g} s (health: {health}); "
                       f"{self._node_tail()}")  # fmt: skip

    def _final_counters(self) -> dict[str, Any]:
        """The node's own counters, written to its health file when it stops."""
        if self.node is not None and self.node.poll() is None:
            self.node.terminate()
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.node.wait(15)
        return dict(self._node_health().get("counters", {}))

    def _node_health(self) -> dict[str, Any]:
        with contextlib.suppress(OSError, ValueError):
            return dict(json.loads((self.workdir / "health.json").read_text()))
        return {}

    def _node_tail(self, lines: int = 15) -> str:
        with contextlib.suppress(OSError):
            text = (self.workdir / "node.log").read_text(errors="replace").splitlines()
            return "node log:\n" + "\n".join(text[-lines:])
        return "(no node log)"

    # ---- faults and progress ---------------------------------------------------------------------
    def _run_schedule(self) -> None:
        todo: list[tuple[float, str, Fault]] = []
        for f in self.o.faults:
            if f.kind == "serial-noise" and f.start_s == 0 and f.duration_s is None:
                self.fault_log.append(f"{f}: on the MCU line for the whole run")
                continue
            todo.append((f.start_s, "begin", f))
            if f.duration_s is not None:
                todo.append((f.start_s + f.duration_s, "end", f))
        todo.sort(key=lambda x: x[0])
        next_progress = 0.0
        while True:
            now = time.monotonic() - self.t0
            while todo and todo[0][0] <= now:
                _, phase, fault = todo.pop(0)
                self._apply(fault, phase == "begin")
            if now >= next_progress:
                next_progress = now + self.o.progress_every_s
                self._say(self._progress_line(now))
            if now >= self.o.duration_s:
                for _, phase, fault in todo:  # faults still due: end them cleanly
                    if phase == "end":
                        self._apply(fault, False)
                return
            assert self.node is not None
            if self.node.poll() is not None:
                raise SimError(f"the node exited with {self.node.returncode}: {self._node_tail()}")
            time.sleep(0.05)

    def _apply(self, fault: Fault, begin: bool) -> None:
        kind, what = fault.kind, "begins" if begin else "ends"
        self.fault_log.append(f"t={time.monotonic() - self.t0:6.1f}s {fault} {what}")
        self._say(f"fault {fault} {what}")
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
        elif kind == "estop":
            self.cell.call("world.set_estop", begin)
        elif kind == "broker-restart":
            if self.o.broker is not None:
                raise SimError("broker-restart needs the embedded broker (no --broker)")
            if begin:
                self.broker.stop()
            else:
                self._start_embedded_broker(self.broker.port)
        if not begin:
            threading.Thread(target=self._recover, daemon=True).start()

    def _recover(self) -> None:
        """What the operator does when a fault has passed: if the cell stopped (e-stop, a
        device lost), wait for standstill, then reset and start it."""
        assert self.consumer is not None
        time.sleep(1.0)
        state = self._node_health().get("state")
        if state not in ("estop", "fault"):
            return
        for name in ("reset", "start"):
            try:
                result = self.consumer.command(self.node_id, name, timeout=5.0)
                self._say(f"operator: {name} -> {result.result if result.ok else result.error}")
                self.fault_log.append(f"operator {name}: {'ok' if result.ok else result.error}")
            except Exception as exc:  # reported, the run goes on
                self._say(f"operator: {name} failed: {exc}")

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
        deadline = time.monotonic() + self.o.drain_timeout_s
        while time.monotonic() < deadline:
            world = self.cell.call("world.score.summary")
            if world["on_belt_or_waiting"] == 0:
                break
            time.sleep(0.2)
        # the node's records follow the parcels: wait until each finished parcel has one
        deadline = time.monotonic() + self.o.drain_timeout_s
        while time.monotonic() < deadline:
            world = self.cell.call("world.score.summary")
            with self.got.lock:
                if len(self.got.records) >= world["finished"]:
                    break
            time.sleep(0.2)

    def _report(self, usage: dict[str, float]) -> dict[str, Any]:
        cell = self.board.cell
        assert cell is not None
        scanner_stats = None
        with contextlib.suppress(Exception):
            stats = self.cell.get("scanner.stats")
            scanner_stats = {"scans": stats.scans, "reads": stats.reads,
                             "no_reads": stats.no_reads}  # fmt: skip
        world_records = self.cell.get("world.score.records")
        summary = self.cell.call("world.score.summary")
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
        extra["scanner"] = scanner_stats
        extra["node_counters"] = self._final_counters()
        if self.camera is not None:
            with contextlib.suppress(Exception):
                st = self.camera.stats
                extra["camera"] = {
                    "frames_rendered": st.frames,
                    "frames_per_s": round(st.frames / max(st.wall_s, 1e-9), 2),
                    "skipped_by_node": st.skipped,
                    "render_ms_mean": round(st.render_ms_mean, 1),
                }
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
                "camera_fps": self.o.camera_fps if self.o.camera else None,
            },
            extra=extra,
        )

    def close(self) -> None:
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
        from fleet_link.embedded import EmbeddedBroker

        self.broker = EmbeddedBroker(port=port or _free_port()).start()
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
            elif msg.name == "alarm":
                self.got.alarms.append(msg.data)
            elif msg.name == "task_crashed":
                self.got.crashes.append(msg.data)

    def _usage(self, since: dict[str, float] | None = None) -> dict[str, float]:
        assert self.node is not None
        pid = self.node.pid
        try:
            stat = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
            status = Path(f"/proc/{pid}/status").read_text()
        except OSError:
            return {"cpu_percent": 0.0, "rss_mb": 0.0, "rss_peak_mb": 0.0}
        ticks = os.sysconf("SC_CLK_TCK")
        cpu_s = (int(stat[11]) + int(stat[12])) / ticks
        fields = dict(
            line.split()[:2] for line in status.splitlines() if line.startswith(("VmRSS", "VmHWM"))
        )
        now = time.monotonic()
        out = {
            "cpu_s": cpu_s,
            "wall_s": now,
            "rss_mb": int(fields.get("VmRSS:", 0)) / 1024,
            "rss_peak_mb": int(fields.get("VmHWM:", 0)) / 1024,
        }
        if since is not None:
            out["cpu_percent"] = round(
                100 * (cpu_s - since["cpu_s"]) / max(1e-9, now - since["wall_s"]), 1
            )
            out = {k: round(v, 1) for k, v in out.items() if k not in ("cpu_s", "wall_s")}
        return out

    def _say(self, text: str) -> None:
        if self.o.progress is not None:
            self.o.progress(text)


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])
