"""A whole simulated cell in one object: the world in real time, the simulated PLC (Modbus
TCP) as its conveyor, the simulated MCU (a pty) as its encoder, diverter outputs, photo-eye
and chute-eye inputs, and optionally a fixed barcode scanner (TCP and/or pty). A node reaches
it only through the TCP ports and the ptys, as on a real cell.

    with SimCell(WorldConfig(seed=1), mcu_link=tmp / "mcu") as cell:
        ...  # Modbus on 127.0.0.1:cell.plc_port, McuLink(cell.mcu_link); truth: cell.world
"""

from __future__ import annotations

import asyncio
import dataclasses
import sys
import threading
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, TypeVar

from sim_hardware.loop_call import call_on_loop
from sim_hardware.mcu import SimMcuOptions, SimMcuThread
from sim_hardware.pipe_rpc import PipeClient, resolve_path
from sim_hardware.plc import PlcSimulator
from sim_hardware.scanner import ScannerOptions, SimScanner
from sim_hardware.scanner.device import ScannerStats
from sim_hardware.world.camera import CameraSnapshot, take_snapshot
from sim_hardware.world.clock import RealClock
from sim_hardware.world.config import WorldConfig
from sim_hardware.world.mcu_link import (
    WorldEncoder,
    connect_chutes,
    connect_eyes,
    connect_outputs,
)
from sim_hardware.world.plc_link import PlcWorldAdapter
from sim_hardware.world.runner import RealTimeRunner
from sim_hardware.world.world import CellWorld

T = TypeVar("T")


class CellScanner:
    """The cell's simulated scanner, safe to control from any thread (the pipe's): each call
    runs on the simulated MCU's loop, where the scanner lives."""

    def __init__(self, scanner: SimScanner, loop: asyncio.AbstractEventLoop) -> None:
        self._scanner = scanner
        self._loop = loop

    @property
    def port(self) -> int | None:
        return self._scanner.tcp_port

    @property
    def link(self) -> str | None:
        return self._scanner.options.link

    def _on_loop(self, fn: Callable[..., T], *args: Any) -> T:
        return call_on_loop(self._loop, fn, *args)

    def scan(self, text: str | None) -> bool:
        """A label (None: unreadable) passes the scanner now; the world does this itself."""
        return self._on_loop(self._scanner.scan, text)

    def set_silent(self, silent: bool) -> None:
        """The scanner hangs: it sends nothing and ignores triggers."""
        self._on_loop(self._scanner.set_silent, silent)

    def unplug(self, seconds: float) -> None:
        """Pty gone and TCP clients dropped; back (same path, same port) after ``seconds``."""
        self._on_loop(self._scanner.unplug, seconds)

    def send_raw(self, data: bytes) -> None:
        """Garbage on the line."""
        self._on_loop(self._scanner.send_raw, data)

    def set_noise(self, rate: float) -> None:
        """Line noise: each reading comes with a garbage line at ``rate`` (0 stops it)."""
        self._on_loop(self._scanner.set_noise, rate)

    @property
    def noise_kinds(self) -> dict[str, int]:
        """Garbage lines sent so far, by kind (printable junk, NUL-only, control, long)."""
        return self._on_loop(lambda: dict(self._scanner.noise_kinds))

    def set_no_read_rate(self, rate: float) -> None:
        """Share of legible labels the scanner fails to read from now on."""

        def apply() -> None:
            s = self._scanner
            s.options = dataclasses.replace(s.options, no_read_rate=rate)

        self._on_loop(apply)

    @property
    def stats(self) -> ScannerStats:
        return self._on_loop(lambda: dataclasses.replace(self._scanner.stats))

    @property
    def sent(self) -> list[str]:
        """Every reading the scanner sent, label or no-read token, in order."""
        return self._on_loop(lambda: list(self._scanner.sent))

    @property
    def connected_clients(self) -> int:
        return self._on_loop(lambda: self._scanner.connected_clients)


class SimCell:
    def __init__(
        self,
        config: WorldConfig,
        mcu_link: str | Path,
        *,
        plc_port: int = 0,
        diverter_pins: Mapping[int, int] | None = None,
        eye_pins: Mapping[int, int] | None = None,
        chute_pins: Mapping[int, int] | None = None,
        scanner_tcp_port: int | None = None,
        scanner_link: str | Path | None = None,
        scanner_options: Mapping[str, Any] | None = None,
        arrivals: bool = True,
        mcu_options: Mapping[str, Any] | None = None,
        plc_comm_watchdog_ms: int = 0,
        mcu_firmware: str = "python",
    ) -> None:
        """``diverter_pins``: MCU output pin -> station (default pin i drives station i);
        ``eye_pins``: photo-eye -> MCU input pin (default eye i on input i);
        ``chute_pins``: station -> MCU input pin of its chute eye (default station i on input
        8 + i). ``scanner_tcp_port`` (0: any free port) and/or ``scanner_link`` (a pty
        symlink) put a simulated scanner (``sim_hardware.scanner``: CRLF lines, "NoRead")
        at ``config.scanners[0]``; ``scanner_options`` are further ``ScannerOptions`` fields
        (``no_read_rate``, ``framing``, ``decode_ms``, ``seed``, ``trigger_command``...).
        ``mcu_firmware``: "python" (sim_hardware/mcu) or "c" (the host build of firmware/)."""
        self.clock = RealClock()
        self.world = CellWorld(config, start_s=self.clock.now(), arrivals=arrivals)
        self.mcu_link = str(mcu_link)
        n_stations = len(config.stations)
        self.diverter_pins = dict(diverter_pins or {i: i for i in range(n_stations)})
        self.eye_pins = dict(eye_pins or {i: i for i in range(len(config.photo_eyes_mm))})
        self.chute_pins = dict(
            chute_pins if chute_pins is not None else {i: 8 + i for i in range(n_stations)}
        )
        shared = set(self.eye_pins.values()) & set(self.chute_pins.values())
        if shared:
            raise ValueError(f"MCU inputs {sorted(shared)} are both photo-eyes and chute eyes")
        self.scanner_options: ScannerOptions | None = None
        if scanner_tcp_port is not None or scanner_link is not None:
            if not config.scanners:
                raise ValueError("a scanner port or link needs a scanner in config.scanners")
            self.scanner_options = ScannerOptions(
                link=None if scanner_link is None else str(scanner_link),
                tcp_port=scanner_tcp_port,
                **dict(scanner_options or {}),
            )
        self.scanner: CellScanner | None = None
        world, clock = self.world, self.clock
        lag = self.runner_lag_s = 0.005
        self.plc = PlcSimulator(
            port=plc_port,
            world_factory=lambda: PlcWorldAdapter(world, clock, lag_s=lag),
            comm_watchdog_ms=plc_comm_watchdog_ms,  # the node's heartbeat (docs/modbus.md)
        )
        mcu = dict(mcu_options or {})
        inputs = [*self.eye_pins.values(), *self.chute_pins.values()]
        mcu.setdefault("inputs", max([16, *(p + 1 for p in inputs)]))
        mcu.setdefault("outputs", max([8, *(p + 1 for p in self.diverter_pins)]))
        options = SimMcuOptions(link=self.mcu_link, **mcu)
        if mcu_firmware == "c":
            from sim_hardware.world.c_mcu import CMcuThread

            self.mcu: Any = CMcuThread(options, world)
        elif mcu_firmware == "python":
            self.mcu = SimMcuThread(options, encoder=WorldEncoder(world))
        else:
            raise ValueError(f"MCU firmware {mcu_firmware!r}: 'python' or 'c'")
        self.runner = RealTimeRunner(world, clock, lag_s=lag)
        self._switch_interval: float | None = None

    @property
    def plc_port(self) -> int:
        return self.plc.port

    @property
    def scanner_port(self) -> int | None:
        return None if self.scanner is None else self.scanner.port

    @property
    def ports(self) -> dict[str, int | None]:
        """TCP ports on 127.0.0.1: ``plc`` (Modbus) and ``scanner`` (None without one)."""
        return {"plc": self.plc_port, "scanner": self.scanner_port}

    def camera_snapshot(self, centre_mm: float = 1_000.0, fov_mm: float = 800.0) -> CameraSnapshot:
        """What a camera over ``centre_mm`` sees now, without pixels (tens of microseconds):
        render it in another process (``camera_feed.SimCameraProcess``)."""
        return take_snapshot(self.world, centre_mm, fov_mm)

    def camera_channel(self) -> Any:
        """A pipe end that answers snapshot requests from this cell (a thread serves it);
        pass it to ``SimCameraProcess``."""
        import multiprocessing

        ours, theirs = multiprocessing.get_context("spawn").Pipe()
        serve_snapshots(ours, self)
        return theirs

    def start(self) -> SimCell:
        # The MCU shares this process's GIL with the world and the PLC: switch threads often
        # so its timers are not held up for the default 5 ms.
        self._switch_interval = sys.getswitchinterval()
        sys.setswitchinterval(0.0001)
        self.mcu.start()
        sim = self.mcu

        def wire() -> asyncio.AbstractEventLoop:
            assert sim.sim is not None
            loop, firmware = asyncio.get_running_loop(), sim.sim.firmware
            connect_outputs(firmware, self.world, self.diverter_pins)
            connect_eyes(loop, firmware, self.world, self.eye_pins)
            connect_chutes(loop, firmware, self.world, self.chute_pins)
            return loop

        loop = sim.call(wire)
        if self.scanner_options is not None:
            self._start_scanner(loop, self.scanner_options)
        self.plc.start()
        self.runner.start()
        return self

    def _start_scanner(self, loop: asyncio.AbstractEventLoop, options: ScannerOptions) -> None:
        """The scanner shares the MCU's loop: one reading per parcel costs the MCU's timers
        less than another thread contending for the interpreter lock."""

        async def start() -> SimScanner:
            return await SimScanner(options).start()

        scanner = asyncio.run_coroutine_threadsafe(start(), loop).result(5)
        self.scanner = CellScanner(scanner, loop)

        def on_scan(index: int, _parcel: int, text: str | None, _t: float) -> None:
            if index == 0:
                loop.call_soon_threadsafe(scanner.scan, text)

        self.world.scan_listeners.append(on_scan)

    # ---- faults a run injects over the pipe ---------------------------------------------------
    def set_plc_faults(self, drop_rate: float = 0.0, silent: bool = False) -> None:
        """The PLC leaves ``drop_rate`` of its requests unanswered, or all while ``silent``."""
        plan = self.plc.fault()
        plan.drop_rate, plan.no_answer = drop_rate, silent

    def plc_comm_trips(self) -> int:
        """How often the PLC's communication watchdog stopped the belt (the node's heartbeat
        stopped changing for ``plc_comm_watchdog_ms``)."""
        return sum(image.comm_trips for image in self.plc.engine.images.values())

    def set_mcu_noise(self, corrupt_rate: float) -> None:
        """Corrupt this share of the bytes on the MCU's serial line, both directions."""
        sim = self.mcu
        sim.call(lambda: sim.sim.set_noise(corrupt_rate) if sim.sim is not None else None)

    def stop(self) -> None:
        try:
            self.runner.stop()
        finally:
            self.plc.stop()
            if self.scanner is not None:
                self.scanner._on_loop(self.scanner._scanner.stop)
            self.mcu.stop()
            if self._switch_interval is not None:
                sys.setswitchinterval(self._switch_interval)

    def __enter__(self) -> SimCell:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def serve_snapshots(conn: Any, cell: SimCell) -> threading.Thread:
    """Answer ``(centre_mm, fov_mm)`` requests on ``conn`` with ``cell.camera_snapshot`` in a
    daemon thread until the other end closes. The thread waits in ``recv`` without the
    interpreter lock, so a camera at 10-30 frames/s costs the cell almost nothing."""

    def run() -> None:
        while True:
            try:
                centre_mm, fov_mm = conn.recv()
                conn.send(cell.camera_snapshot(centre_mm, fov_mm))
            except (EOFError, OSError):
                return

    thread = threading.Thread(target=run, name="sim-camera-snapshots", daemon=True)
    thread.start()
    return thread


def _cell_main(
    config: WorldConfig, mcu_link: str, kwargs: dict[str, Any], conn: Any, snapshots: Any
) -> None:
    """Child process: run a SimCell, serve camera snapshots on ``snapshots`` and answer
    ``(kind, path, args)`` requests on ``conn`` until 'stop'."""
    from sim_hardware.mcu.device import request_realtime

    request_realtime()  # as a real MCU has a CPU to itself; a no-op where not permitted
    with SimCell(config, mcu_link, **kwargs) as cell:
        serve_snapshots(snapshots, cell)
        conn.send(("ok", cell.ports))
        while True:
            try:
                kind, path, args = conn.recv()
            except EOFError:
                return
            if kind == "stop":
                conn.send(("ok", None))
                return
            try:
                target = resolve_path(cell, path)
                conn.send(("ok", target(*args) if kind == "call" else target))
            except Exception as exc:  # sent back to the caller, raised there
                conn.send(("error", f"{type(exc).__name__}: {exc}"))


class SimCellProcess(PipeClient):
    """A SimCell in its own process, so the node under test does not share its GIL (the
    simulated MCU's timing then does not suffer from the node's load). Control and truth over
    a pipe: ``call("world.set_estop", True)``, ``call("world.score.summary")``,
    ``get("world.late_inputs")``, ``call("scanner.set_silent", True)``; every argument and
    result must be picklable. ``start()`` fills ``ports`` (``plc``, ``scanner``),
    ``plc_port`` and ``scanner_port``."""

    rpc_name = "simulated cell"

    def __init__(self, config: WorldConfig, mcu_link: str | Path, **kwargs: Any) -> None:
        import multiprocessing

        ctx = multiprocessing.get_context("spawn")
        self._conn, child = ctx.Pipe()
        self._snapshots, child_snapshots = ctx.Pipe()
        self.mcu_link = str(mcu_link)
        self._proc = ctx.Process(
            target=_cell_main,
            args=(config, self.mcu_link, kwargs, child, child_snapshots),
            daemon=True,
        )
        self.ports: dict[str, int | None] = {}
        self.plc_port = 0
        self.scanner_port: int | None = None

    def start(self, timeout: float = 30.0) -> SimCellProcess:
        self._proc.start()
        if not self._conn.poll(timeout):
            self._proc.kill()
            raise RuntimeError("the simulated cell process did not start")
        status, value = self._conn.recv()
        if status != "ok":
            raise RuntimeError(f"the simulated cell process failed to start: {value}")
        self.ports = dict(value)
        self.plc_port = int(value["plc"])
        self.scanner_port = value["scanner"]
        return self

    def camera_channel(self) -> Any:
        """The pipe end on which the cell's process answers camera snapshot requests (one
        camera per cell); pass it to ``SimCameraProcess``."""
        return self._snapshots

    def stop(self) -> None:
        if self._proc.is_alive():
            try:
                self._ask("stop", "", ())
            except (OSError, TimeoutError, RuntimeError):
                pass
            self._proc.join(10)
            if self._proc.is_alive():
                self._proc.kill()
                self._proc.join(5)

    def __enter__(self) -> SimCellProcess:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
