"""The cell as a Sparkplug B edge node (docs/sparkplug.md), beside the native namespace.

The edge node is the Sparkplug node id; the cell is one device ``cell`` whose metrics are the
safety state, the belt, the parcel counts and the devices the safety machine watches. A task
on the node's loop looks at the cell every ``sample_interval_s`` (reading attributes only,
no I/O) and hands the values to the Sparkplug worker thread, which publishes a DDATA of the
metrics that changed (report by exception). Nothing here can block or fail the loop: the
hand-over is a queue put, and a failure in the sample is logged and the next one tried.

Commands: NCMD ``Node Control/Rebirth`` is answered by the library. With
``sparkplug.commands: true`` a DCMD to ``cell`` setting ``Command/Start``, ``Command/Stop``
or ``Command/Reset`` to true is handed to the node's operator path (the same safety checks
as a ``cmd/start`` on the native namespace).
"""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path
from typing import TYPE_CHECKING, Any

from fleet_link.sparkplug.edge_node import SparkplugEdgeNode
from fleet_link.sparkplug.payload import DataType, MetricDef

if TYPE_CHECKING:
    from edge.node.cell_node import CellNode

log = logging.getLogger("wolfpack.node.sparkplug")

DEVICE = "cell"
OUTCOMES = {"sorted": "Parcels/Sorted", "rejected": "Parcels/Rejected",
            "lost": "Parcels/Lost", "mis_sorted": "Parcels/Mis-sorted",
            "run_out": "Parcels/Run-out"}  # fmt: skip
COMMANDS = {"Command/Start": "start", "Command/Stop": "stop", "Command/Reset": "reset"}
_DEVICE_NAMES = {"mcu": "MCU", "plc": "PLC", "scanner": "Scanner", "camera": "Camera",
                 "brain": "Brain"}  # fmt: skip


def cell_metrics(devices: list[str], speed_deadband: float, commands: bool) -> list[MetricDef]:
    """The metrics of device ``cell`` (names and types are the contract: docs/sparkplug.md)."""
    out = [
        MetricDef("State", DataType.String),
        MetricDef("Healthy", DataType.Boolean),
        MetricDef("Cause", DataType.String),
        MetricDef("Belt/Running", DataType.Boolean),
        MetricDef("Belt/Speed", DataType.Float, deadband=speed_deadband),
        MetricDef("Belt/E-Stop", DataType.Boolean),
        *(MetricDef(name, DataType.UInt64) for name in OUTCOMES.values()),
        MetricDef("Parcels/Active", DataType.Int32),
        MetricDef("Decisions/Brain", DataType.UInt64),
        MetricDef("Decisions/Routing Table", DataType.UInt64),
        MetricDef("Devices/Up", DataType.Int32),
        MetricDef("Devices/Missing", DataType.String),
        MetricDef("Devices/Degraded", DataType.String),
        *(MetricDef(f"Devices/{_DEVICE_NAMES.get(d, d)}", DataType.Boolean) for d in devices),
    ]
    if commands:
        out += [MetricDef(name, DataType.Boolean) for name in COMMANDS]
    return out


def node_metrics() -> list[MetricDef]:
    return [
        MetricDef("Properties/Site", DataType.String),
        MetricDef("Properties/Node", DataType.String),
        MetricDef("Properties/Config Version", DataType.String),
    ]


class SparkplugBridge:
    def __init__(self, node: CellNode) -> None:
        board = node.board
        spb, mqtt_cfg = board.sparkplug, board.mqtt
        assert spb is not None and mqtt_cfg is not None
        self.node = node
        self.cfg = spb
        self.devices = sorted(node.safety.devices)
        creds: dict[str, Any] = {}
        if spb.username is not None:
            creds = {"username": spb.username, "password_file": spb.password_file}
        base_id = mqtt_cfg.client_id or f"wolfpack-{board.node.site}-{board.node.id}"
        bdseq = Path(spb.bdseq_file) if spb.bdseq_file else (
            Path(mqtt_cfg.outbox.path).with_name(f"{board.node.id}.sparkplug-bdseq"))  # fmt: skip
        self.edge = SparkplugEdgeNode(
            mqtt_cfg.model_copy(update=creds),
            spb.group_id or board.node.site,
            spb.edge_node_id or board.node.id,
            client_id=spb.client_id or f"{base_id}-spb",
            devices={DEVICE: cell_metrics(self.devices, spb.speed_deadband_mm_s, spb.commands)},
            node_metrics=node_metrics(),
            primary_host_id=spb.primary_host_id,
            bdseq_path=bdseq,
            on_command=self._on_command if spb.commands else None,
        )
        self.edge.update(None, {"Properties/Site": board.node.site,
                                "Properties/Node": board.node.id,
                                "Properties/Config Version": node.config_version})  # fmt: skip
        self.edge.update(DEVICE, self.sample())

    def start(self) -> None:
        self.edge.start()
        self.node.supervisor.start("sparkplug", self._sampler)

    def stop(self, timeout: float = 3.0) -> None:
        """From a thread (shutdown): NDEATH and disconnect. No last sample: this runs off the
        loop, and the NDEATH marks every metric stale for the host anyway."""
        self.edge.stop(timeout)

    def sample(self) -> dict[str, Any]:
        """What the cell looks like now (read on the node's loop: attributes only)."""
        node = self.node
        safety = node.safety
        plc = node._plc_last
        up = safety.up
        missing = sorted(safety.devices - up)
        values: dict[str, Any] = {
            "State": safety.state.value,
            "Healthy": not missing and safety.state.value in ("ready", "running", "stopping"),
            "Cause": safety.history[-1].cause if safety.history else "starting",
            "Belt/Running": bool(plc.moving) if plc is not None and plc.online else None,
            "Belt/Speed": float(plc.speed_mm_s) if plc is not None and plc.online else None,
            "Belt/E-Stop": bool(plc.estop) if plc is not None and plc.online else None,
            "Parcels/Active": len(node.core.active),
            "Decisions/Brain": node.decisions.get("brain", 0),
            "Decisions/Routing Table": node.decisions.get("routing_table", 0),
            "Devices/Up": len(up & safety.devices),
            "Devices/Missing": ",".join(missing),
            "Devices/Degraded": ",".join(sorted(safety.degraded)),
        }
        for outcome, name in OUTCOMES.items():
            values[name] = node.counters.get(outcome, 0)
        for d in self.devices:
            values[f"Devices/{_DEVICE_NAMES.get(d, d)}"] = d in up
        if self.cfg.commands:
            values.update(dict.fromkeys(COMMANDS, False))
        return values

    async def _sampler(self) -> None:
        while True:
            await asyncio.sleep(self.cfg.sample_interval_s)
            try:
                self.edge.update(DEVICE, self.sample())
            except Exception:  # logged; the next sample is tried
                log.exception("sparkplug: sampling the cell failed")

    def _on_command(self, device: str | None, metrics: dict[str, Any]) -> None:
        """DCMD from the Sparkplug worker thread: start/stop/reset through the operator path."""
        if device != DEVICE:
            return
        loop = self.node.loop
        for name, value in metrics.items():
            command = COMMANDS.get(name)
            if command is None or value is not True or loop is None:
                log.warning("sparkplug: DCMD %s=%r ignored (writable: %s set to true)",
                            name, value, ", ".join(COMMANDS))  # fmt: skip
                continue

            async def run(command: str = command) -> dict[str, Any]:
                return self.node._on_operator(command, {"source": "sparkplug"})

            future = asyncio.run_coroutine_threadsafe(run(), loop)
            try:
                result = future.result(timeout=5.0)
            except Exception as exc:
                log.warning("sparkplug: DCMD %s not acted on: %s", command, exc)
                continue
            log.info("sparkplug: DCMD %s -> %s", command, result)


def start_sparkplug(node: CellNode) -> SparkplugBridge | None:
    """The bridge when the board config enables Sparkplug (it needs the mqtt section)."""
    spb = node.board.sparkplug
    if spb is None or not spb.enabled or node.board.mqtt is None:
        return None
    bridge = SparkplugBridge(node)
    bridge.start()
    return bridge
