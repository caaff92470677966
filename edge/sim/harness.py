"""What every ``wolfpack sim`` (the diverter line, the arm, the AMR fleet) does around the
node it runs as a process: a loopback port, the embedded broker, the node's health file and
log, its CPU and memory, waiting for it to run. One copy, so a fix reaches every machine's
simulation (``edge/sim/run.py``, ``edge/cli/sim_arm.py``, ``edge/cli/sim_amr.py``)."""

from __future__ import annotations

import contextlib
import json
import os
import socket
import subprocess
import time
from collections.abc import Callable, Mapping, Sequence
from datetime import datetime
from pathlib import Path
from typing import Any, TypeVar

F = TypeVar("F")  # a fault of a machine's own kind


def free_port() -> int:
    """A free TCP port on the loopback interface (for a broker, a camera, /metrics)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def epoch(stamp: str) -> float:
    """RFC 3339 (an envelope's ts) -> seconds since the epoch."""
    return datetime.fromisoformat(stamp.replace("Z", "+00:00")).timestamp()


def start_embedded_broker(port: int = 0) -> Any:
    """The embedded MQTT broker on ``port`` (0: a free one), started; ``.url``, ``.stop()``."""
    from fleet_link.embedded import EmbeddedBroker

    return EmbeddedBroker(port=port or free_port()).start()


def read_health(path: Path) -> dict[str, Any]:
    """The node's health file (``--health-file``); {} while it is missing or half written."""
    with contextlib.suppress(OSError, ValueError):
        return dict(json.loads(path.read_text()))
    return {}


def log_tail(path: Path, lines: int = 15) -> str:
    """The last ``lines`` of a node's log, for an error message."""
    with contextlib.suppress(OSError):
        text = path.read_text(errors="replace").splitlines()
        return "node log:\n" + "\n".join(text[-lines:])
    return "(no node log)"


def wait_running(
    node: subprocess.Popen[bytes],
    health_file: Path,
    fail: Callable[[str], Exception],
    tail: Callable[[], str],
    timeout: float = 60.0,
) -> None:
    """Until the node's health file says ``running``; ``fail(why)`` is raised when the node
    exits first or ``timeout`` passes (``tail()``: its log, for the message)."""
    deadline = time.monotonic() + timeout
    health: dict[str, Any] = {}
    while time.monotonic() < deadline:
        if node.poll() is not None:
            raise fail(f"the node exited with {node.returncode}: {tail()}")
        health = read_health(health_file)
        if health.get("state") == "running":
            return
        time.sleep(0.1)
    raise fail(f"the node did not reach 'running' in {timeout:g} s (health: {health}); {tail()}")


def process_usage(pid: int, since: Mapping[str, float] | None = None) -> dict[str, float]:
    """CPU and RSS of ``pid`` from /proc; with ``since`` (an earlier call's result) the CPU %
    over the time between them, rounded."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        status = Path(f"/proc/{pid}/status").read_text()
    except (OSError, IndexError):
        return {"cpu_percent": 0.0, "rss_mb": 0.0, "rss_peak_mb": 0.0}
    cpu_s = (int(stat[11]) + int(stat[12])) / os.sysconf("SC_CLK_TCK")
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
    if since is not None and "cpu_s" in since:
        out["cpu_percent"] = 100 * (cpu_s - since["cpu_s"]) / max(1e-9, now - since["wall_s"])
        return {k: round(v, 1) for k, v in out.items() if k not in ("cpu_s", "wall_s")}
    return out


def run_schedule(
    windows: Sequence[tuple[float, float, F]],
    duration_s: float,
    t0: float,
    apply: Callable[[F, bool], None],
    periodic: Sequence[tuple[float, Callable[[float], None]]] = (),
    check: Callable[[], None] = lambda: None,
    tick_s: float = 0.05,
) -> None:
    """The run's arrivals, ``duration_s`` from ``t0`` (monotonic): each fault of ``windows``
    (start, end, fault: seconds from ``t0``) begun and ended on time (``apply(fault, begin)``;
    an end before a begin at the same instant), each ``periodic`` (every_s, fn(now_s)) on its
    own period from the start, ``check()`` on every pass (it raises to end the run: a node
    that exited). At ``duration_s`` the faults still open end, and it returns."""
    todo = sorted(
        [(start, True, f) for start, _, f in windows]
        + [(max(end, start), False, f) for start, end, f in windows],
        key=lambda x: (x[0], x[1]),
    )
    due = [0.0] * len(periodic)
    while True:
        now = time.monotonic() - t0
        while todo and todo[0][0] <= now:
            _, begin, fault = todo.pop(0)
            apply(fault, begin)
        for i, (every, fn) in enumerate(periodic):
            if now >= due[i]:
                due[i] = now + every
                fn(now)
        if now >= duration_s:
            for _, begin, fault in todo:
                if not begin:
                    apply(fault, False)
            return
        check()
        time.sleep(tick_s)
