"""Telemetry and the faults list as an operator sees them: a real mosquitto, the simulated
cell (world, PLC over Modbus TCP, MCU on a pty, scanner) and the real node in its own process
(`wolfpack run`, started by edge.sim.run). Everything is read from the broker through the
brain SDK, which checks each message against its schema."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from edge.sim.run import CellSimulation, SimOptions
from fleet_link.brain import Brain, Message, NodeState
from tests.fleet_link.mosquitto import Mosquitto

NOMINAL_MM_S = 2500.0  # configs/sim-cell.yaml cell.belt.nominal_speed_mm_s


class Watch:
    """Telemetry by group, fault events and the latest retained state of the sim node."""

    def __init__(self, node: str) -> None:
        self.node = node
        self.lock = threading.Lock()
        self.telemetry: dict[str, list[tuple[float, str, dict[str, Any]]]] = {}
        self.faults: list[dict[str, Any]] = []
        self.state: dict[str, Any] = {}

    def on_message(self, m: Message) -> None:
        if m.node != self.node:
            return
        with self.lock:
            if m.kind == "telemetry":
                entry = (time.monotonic(), m.body["reason"], dict(m.data))
                self.telemetry.setdefault(m.name, []).append(entry)
            elif m.channel == "events/fault":
                self.faults.append(dict(m.data))

    def on_state(self, s: NodeState) -> None:
        if s.node == self.node:
            with self.lock:
                self.state = dict(s.body)

    def latest(self, group: str) -> dict[str, Any]:
        with self.lock:
            return dict(self.telemetry[group][-1][2]) if self.telemetry.get(group) else {}

    def active_faults(self) -> list[str]:
        with self.lock:
            return list(self.state.get("faults", []))

    def until(self, what: str, check: Callable[[], bool], timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self.lock:
                pass
            if check():
                return
            time.sleep(0.05)
        raise AssertionError(
            f"timed out after {timeout} s waiting for {what}; faults {self.active_faults()}, "
            f"belt {self.latest('belt')}"
        )


def test_telemetry_groups_and_faults_through_estop_and_plc_loss(tmp_path: Path) -> None:
    broker = Mosquitto(tmp_path).start()
    sim = CellSimulation(
        SimOptions(broker=broker.url, rate_pph=3000, duration_s=60, workdir=tmp_path / "run")
    )
    watch = Watch(sim.node_id)
    watcher = Brain(broker.url, sim.site, on_message=watch.on_message, on_state=watch.on_state,
                    request_replays=False)  # fmt: skip
    try:
        watcher.start()
        sim.start()  # returns with the cell running
        assert sim.consumer is not None

        # every group of a cell without a camera, with plausible values while running: the
        # PLC's speed and the encoder's (a second measure) near nominal once the belt is up
        def at_speed() -> bool:
            belt = watch.latest("belt")
            plc, enc = belt.get("speed_mm_s"), belt.get("encoder_speed_mm_s")
            return (
                belt.get("running") is True
                and plc is not None and abs(plc - NOMINAL_MM_S) < 0.05 * NOMINAL_MM_S
                and enc is not None and abs(enc - NOMINAL_MM_S) < 0.1 * NOMINAL_MM_S
            )  # fmt: skip

        watch.until("a running belt near nominal speed", at_speed, 12)
        watch.until(
            "the belt, plc, mcu, chutes and system groups",
            lambda: {"belt", "plc", "mcu", "chutes", "system"} <= set(watch.telemetry),
            6,
        )
        belt = watch.latest("belt")
        assert belt["state"] == "running" and belt["moving"] is True, belt
        assert isinstance(belt["encoder_count"], int) and belt["encoder_count"] > 0
        plc = watch.latest("plc")
        assert plc["conveyor.online"] is True and plc["conveyor.estop"] is False, plc
        assert abs(plc["conveyor.speed"] - 2.5) < 0.15, plc  # the tag is in m/s
        mcu = watch.latest("mcu")
        assert mcu["state"] in ("connected", "resynced") and mcu["up"] is True, mcu
        assert mcu["rtt_ms"] is not None and 0 < mcu["rtt_ms"] < 200, mcu
        assert mcu["frames_sent"] > 0 and mcu["crc_errors"] >= 0
        chutes = watch.latest("chutes")
        assert chutes["chute-0.full"] is False and chutes["chute-0.strokes"] >= 0, chutes
        system = watch.latest("system")
        assert 0 < system["rss_mb"] < 1000 and system["cpu_percent"] is not None, system
        assert "vision" not in watch.telemetry  # no camera in this run
        assert watch.active_faults() == [], watch.state
        # a group is not re-sent on every sample: periodic plus real changes only
        assert len(watch.telemetry["system"]) <= 3

        # e-stop: a fault while pressed, and until the reset
        sim.cell.call("world.set_estop", True)
        watch.until("the estop fault", lambda: "estop" in watch.active_faults(), 3)
        watch.until("the belt at standstill", lambda: watch.latest("belt").get("moving") is False,
                    3)  # fmt: skip
        assert watch.latest("belt")["state"] == "estop"
        raised = [f for f in watch.faults if f["code"] == "estop" and f["active"]]
        assert raised and raised[0]["severity"] == "critical"
        assert raised[0]["message"] == "e-stop pressed"
        sim.cell.call("world.set_estop", False)
        watch.until("the released e-stop still a fault",
                    lambda: any(f["code"] == "estop" and "reset" in f.get("message", "")
                                for f in watch.faults), 3)  # fmt: skip
        assert "estop" in watch.active_faults()
        result = sim.consumer.command(sim.node_id, "reset", timeout=5)
        assert result.ok, result
        watch.until("the estop fault cleared", lambda: watch.active_faults() == [], 3)
        # the fault's own 'cleared' event is a message of its own, after or before the state's
        watch.until("the estop fault's cleared event",
                    lambda: any(f["code"] == "estop" and not f["active"] for f in watch.faults),
                    3)  # fmt: skip

        # PLC loss: plc_lost and the fault it causes; belt values null with the reason
        sim.cell.call("set_plc_faults", 0.0, True)
        watch.until("plc_lost", lambda: {"plc_lost", "cell_fault"} <= set(watch.active_faults()),
                    5)  # fmt: skip
        watch.until("belt speed unknown", lambda: watch.latest("belt").get("speed_mm_s", 0) is None,
                    3)  # fmt: skip
        belt = watch.latest("belt")
        assert belt["plc_error"] and belt["moving"] is None, belt
        lost = [f for f in watch.faults if f["code"] == "plc_lost" and f["active"]][-1]
        assert lost["device"] == "plc" and lost["severity"] == "error" and lost["message"]
        cell_fault = [f for f in watch.faults if f["code"] == "cell_fault" and f["active"]][-1]
        assert "plc lost" in cell_fault["message"]
        sim.cell.call("set_plc_faults", 0.0, False)
        watch.until("plc_lost cleared", lambda: "plc_lost" not in watch.active_faults(), 5)
        assert "cell_fault" in watch.active_faults()  # until an operator resets it
        result = sim.consumer.command(sim.node_id, "reset", timeout=5)
        assert result.ok, result
        watch.until("no faults", lambda: watch.active_faults() == [], 3)
    finally:
        sim.close()
        watcher.stop()
        broker.stop()
