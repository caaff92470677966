"""The C reference firmware's host build (firmware/) as a simulated MCU process.

``CFirmwareProcess`` runs ``firmware/build/host/wolfpack-mcu-host`` on a pty, like
``SimMcuProcess`` runs the Python firmware, and gives tests and the simulated cell the same
view: the world drives its encoder and inputs over the process's stdin (``--control``), output
changes come back on its stdout, and what it executed is read from its ``--trace`` file. The
line protocol is documented in docs/firmware.md ("Host build").
"""

from __future__ import annotations

import contextlib
import json
import os
import queue
import subprocess
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from firmware_bridge.mcu import messages as m
from sim_hardware.mcu.device import SimMcuOptions
from sim_hardware.mcu.firmware import ActionRecord, OutputChange

FIRMWARE_DIR = Path(__file__).resolve().parents[2] / "firmware"
HOST_BINARY = FIRMWARE_DIR / "build" / "host" / "wolfpack-mcu-host"
CAUSES = {"command", "action", "watchdog", "reset", "config"}


class CFirmwareError(RuntimeError):
    """The C host firmware could not be built, started or asked."""


def host_binary(build: bool = True) -> Path:
    """The host firmware's path (``WOLFPACK_MCU_HOST`` overrides it); with ``build``, runs
    ``make -C firmware host`` first (incremental: nothing to do when it is current)."""
    env = os.environ.get("WOLFPACK_MCU_HOST")
    if env:
        return Path(env)
    if build and (FIRMWARE_DIR / "Makefile").exists():
        out = subprocess.run(
            ["make", "-s", "-C", str(FIRMWARE_DIR), "host"], capture_output=True, text=True
        )
        if out.returncode != 0:
            raise CFirmwareError(f"make -C {FIRMWARE_DIR} host failed: {out.stderr.strip()}")
    if not HOST_BINARY.exists():
        raise CFirmwareError(f"{HOST_BINARY}: no host firmware; build it with make -C firmware")
    return HOST_BINARY


class CFirmwareProcess:
    """The C firmware on a pty in its own process. ``output_listeners`` are called (from a
    reader thread) with each ``OutputChange``; ``sync()`` waits until the process has handled
    every earlier control line and returns its counters."""

    def __init__(
        self, options: SimMcuOptions, *, binary: Path | None = None, realtime: bool = False
    ) -> None:
        self.options = options
        self._binary = binary
        self._realtime = realtime
        self._trace_dir = tempfile.TemporaryDirectory(prefix="wp-cfw-")
        self.trace_path = Path(self._trace_dir.name) / "trace"
        self._proc: subprocess.Popen[str] | None = None
        self._reader: threading.Thread | None = None
        self._replies: queue.Queue[str] = queue.Queue()
        self._lock = threading.Lock()
        self._sync_n = 0
        self.output_listeners: list[Callable[[OutputChange], None]] = []
        self.describe_line = ""
        # the trace, parsed incrementally
        self._trace_pos = 0
        self.executed: list[tuple[str, dict[str, Any]]] = []
        self.actions_log: list[ActionRecord] = []
        self.output_log: list[OutputChange] = []
        self.watchdog_trips: list[float] = []
        self.last_host_frame: float | None = None
        self.held_sent = 0

    def command_line(self) -> list[str]:
        o = self.options
        binary = self._binary or host_binary()
        args = [str(binary), "--link", o.link, "--control", "--trace", str(self.trace_path)]
        args += ["--noise", repr(o.noise), "--drop", repr(o.drop)]
        args += ["--watchdog-ms", str(o.watchdog_ms), "--belt-speed", repr(o.belt_speed_mm_s)]
        args += ["--counts-per-mm", repr(o.counts_per_mm), "--drift-ppm", repr(o.drift_ppm)]
        args += ["--outputs", str(o.outputs), "--inputs", str(o.inputs)]
        args += ["--protocol", str(o.protocol)]
        if o.baud:
            args += ["--baud", str(o.baud)]
        if o.seed is not None:
            args += ["--seed", str(o.seed)]
        if o.clock_freq != 1_000_000:
            raise CFirmwareError("the C host firmware's clock is 1 MHz")
        if self._realtime:
            args.append("--realtime")
        return args

    def start(self, timeout: float = 10.0) -> CFirmwareProcess:
        self._proc = subprocess.Popen(
            self.command_line(),
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            bufsize=1,
        )
        self._reader = threading.Thread(target=self._read, name="c-mcu-reader", daemon=True)
        self._reader.start()
        deadline = time.monotonic() + timeout
        while not os.path.islink(self.options.link):
            if self._proc.poll() is not None or time.monotonic() > deadline:
                err = self._proc.stderr.read() if self._proc.stderr else ""
                self.stop()
                raise CFirmwareError(f"the C host firmware did not start: {err.strip()}")
            time.sleep(0.01)
        return self

    def _read(self) -> None:
        assert self._proc is not None and self._proc.stdout is not None
        for line in self._proc.stdout:
            line = line.rstrip("\n")
            if line.startswith("out "):
                _, t, pin, value, cause = line.split()
                change = OutputChange(float(t), int(pin), int(value), cause)
                for listener in self.output_listeners:
                    listener(change)
            elif line.startswith(("stats ", "sync")):
                self._replies.put(line)
            elif line.startswith("simulated MCU"):
                self.describe_line = line

    # ---- control ---------------------------------------------------------------------------
    def _send(self, line: str) -> None:
        proc = self._proc
        if proc is None or proc.stdin is None or proc.poll() is not None:
            raise CFirmwareError("the C host firmware is not running")
        with self._lock:
            proc.stdin.write(line + "\n")
            proc.stdin.flush()

    def sync(self, timeout: float = 10.0) -> dict[str, Any]:
        """Wait until every earlier control line was handled; the firmware's counters."""
        self._sync_n += 1
        tag = f"sync {self._sync_n}"
        self._send(tag)
        stats: dict[str, Any] = {}
        deadline = time.monotonic() + timeout
        while True:
            try:
                line = self._replies.get(timeout=max(0.01, deadline - time.monotonic()))
            except queue.Empty:
                raise CFirmwareError(f"the C host firmware did not answer {tag}") from None
            if line.startswith("stats "):
                stats = json.loads(line[6:])
            elif line == tag:
                return stats

    def set_input(self, pin: int, value: int, at: float | None = None) -> None:
        self._send(f"input {pin} {int(bool(value))}" + ("" if at is None else f" {at:.6f}"))

    def set_belt(self, t: float, position_counts: float, counts_per_s: float) -> None:
        """The encoder's count from ``t`` on: ``position_counts + counts_per_s * (now - t)``."""
        self._send(f"belt {t:.6f} {position_counts:.6f} {counts_per_s:.6f}")

    def set_belt_speed(self, speed_mm_s: float) -> None:
        self._send(f"speed {speed_mm_s}")

    def set_noise(self, corrupt_rate: float, drop_rate: float | None = None) -> None:
        self._send(f"noise {corrupt_rate}" + ("" if drop_rate is None else f" {drop_rate}"))

    def unplug(self, replug_after_s: float | None = None) -> None:
        self._send("unplug" if replug_after_s is None else f"unplug {replug_after_s}")

    def replug(self) -> None:
        self._send("replug")

    def stall(self, seconds: float) -> None:
        self._send(f"stall {seconds}")

    def reset(self) -> None:
        self._send("reset")

    # ---- the trace -------------------------------------------------------------------------
    def refresh(self) -> None:
        """Read what the firmware logged since the last call (after a ``sync``)."""
        self.sync()
        with open(self.trace_path, encoding="ascii") as f:
            f.seek(self._trace_pos)
            data = f.read()
        end = data.rfind("\n") + 1
        self._trace_pos += end
        for line in data[:end].splitlines():
            self._trace_line(line.split())

    def _trace_line(self, p: list[str]) -> None:
        kind = p[0] if p else ""
        if kind == "cmd":
            msg, _ = m.decode_one(bytes.fromhex(p[2]), 0)
            self.executed.append((msg.name, dict(msg.fields)))
        elif kind == "out":
            self.output_log.append(OutputChange(float(p[1]), int(p[2]), int(p[3]), p[4]))
        elif kind == "act":
            self.actions_log.append(
                ActionRecord(
                    action=int(p[1]), pin=int(p[2]), value=int(p[3]), target_kind=p[4],
                    target=int(p[5]), fired_clock=int(p[6]), fired_count=int(p[7]),
                    fired_at=float(p[8]),
                )
            )  # fmt: skip
        elif kind == "wd":
            self.watchdog_trips.append(float(p[1]))
            self.last_host_frame = float(p[2])
        elif kind == "held":
            self.held_sent += int(p[1])

    # ---- life ------------------------------------------------------------------------------
    def stop(self) -> None:
        proc = self._proc
        if proc is not None and proc.poll() is None:
            with contextlib.suppress(OSError, ValueError, CFirmwareError):
                self.refresh()  # the trace stays readable after stop
                self._send("quit")
            try:
                proc.wait(5)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(5)
        if self._reader is not None:
            self._reader.join(2)  # it ends at the process's EOF
        if proc is not None:
            for stream in (proc.stdin, proc.stdout, proc.stderr):
                with contextlib.suppress(Exception):
                    if stream is not None:
                        stream.close()
        self._trace_dir.cleanup()

    def __enter__(self) -> CFirmwareProcess:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
