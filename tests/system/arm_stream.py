"""What the motion-stream tests share: the simulated arm MCU and world in a thread on a pty,
run as `wolfpack sim --machine arm` runs them, quintic test moves, and a stream on a live
link (tests/system/test_arm_motion_stream.py, test_arm_stream_seal_gate.py)."""

from __future__ import annotations

import asyncio
import gc
import math
import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from edge.arm.adapter_mcu import MotionStream
from edge.arm.events import Move
from edge.arm.trajectory import Trajectory
from firmware_bridge.mcu import McuLink
from firmware_bridge.mcu.motion import ArmMotion
from sim_hardware.arm.config import ArmWorldConfig
from sim_hardware.arm.mcu import ArmSimThread
from sim_hardware.mcu import SimMcuOptions
from sim_hardware.mcu.device import request_realtime

DT = 0.008
HOST_RT_PRIORITY = 5  # the node's (edge/cli/sim_arm.py, ArmSimOptions.node_rt_priority)


@contextmanager
def arm_cell(
    tmp_path: Path, watchdog_ms: int = 500
) -> Iterator[tuple[ArmSimThread, str, ArmWorldConfig]]:
    """The simulated arm MCU and world in a thread, on a pty. As `wolfpack sim --machine arm`
    runs them (the node's motion stream with FIFO real-time priority 5, as a board's unit
    gives it; the MCU 10, a CPU of its own), the test's thread (the stream, the link) and
    the sim's ask for the same where permitted: at nice 19 under a load of 10-14 they were
    starved for 50 ms to seconds (46-58 segments refused as late, an identify unanswered in
    3 s, a stop's event heard 205 ms after it), the host's lateness and not the stream's.
    And as the node does (edge/arm/node.py, GcWatch), the collector's objects are frozen: a
    full collection of this test process (pytest, MuJoCo, the link) held the GIL ~0.8 s."""
    cfg = ArmWorldConfig()
    path = str(tmp_path / "arm-mcu")
    interval = sys.getswitchinterval()
    sys.setswitchinterval(0.0001)  # the sim shares this process with the host link
    gc.collect()
    gc.freeze()
    host_rt = request_realtime(HOST_RT_PRIORITY)  # this (the test's) thread only
    sim = ArmSimThread(
        cfg, SimMcuOptions(link=path, inputs=16, seed=1, watchdog_ms=watchdog_ms), rt_priority=10
    )
    try:
        yield sim.start(), path, cfg
    finally:
        sim.stop()
        gc.unfreeze()
        sys.setswitchinterval(interval)
        if host_rt:
            os.sched_setscheduler(0, os.SCHED_OTHER, os.sched_param(0))


def deg(cfg: ArmWorldConfig, x: float, y: float, z: float) -> tuple[float, float, float, float]:
    """The joints (deg, deg, mm, deg) that put the cup at (x, y, z) mm."""
    q = cfg.ik(x, y, z, 0.0)
    return (math.degrees(q[0]), math.degrees(q[1]), q[2] * 1000, math.degrees(q[3]))


def move(
    move_id: int,
    t0: float,
    a: Any,
    b: Any,
    seconds: float,
    kind: str = "pick",
    replace_from: float | None = None,
) -> Move:
    """A quintic (minimum-jerk shaped) move from joints ``a`` to ``b`` starting at ``t0``."""
    n = round(seconds / DT)
    q = []
    for k in range(n + 1):
        s = k / n
        s = s * s * s * (10 - 15 * s + 6 * s * s)
        q.append(tuple(pa + (pb - pa) * s for pa, pb in zip(a, b, strict=True)))
    return Move(move_id, kind, None, Trajectory(t0, DT, tuple(q)), replace_from)  # type: ignore[arg-type]


async def open_stream(
    path: str, cfg: ArmWorldConfig, horizon_s: float, carry_after_s: float | None = None
) -> tuple[McuLink, MotionStream, list[Any]]:
    """A link to the simulated MCU, the arm's setup sent, its clock synced, and a stream on
    it; the facts the stream gives back are collected in the list."""
    link = McuLink(path, watchdog_ms=500)
    await link.connect()
    motion = ArmMotion(
        link,
        4,
        stop_ms=100,
        safety_pin=cfg.curtain_input,
        safety_level=cfg.curtain_broken_level,
        grip_pa=40_000,
    )
    await motion.setup()
    for _ in range(50):  # the clock sync is ready after a few samples
        if link.clock.ready:
            break
        await asyncio.sleep(0.02)
    facts: list[Any] = []
    stream = MotionStream(link, motion, horizon_s, facts.append, carry_after_s=carry_after_s)
    link.on_event(stream.on_event)
    return link, stream, facts
