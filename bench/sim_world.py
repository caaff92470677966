"""Simulated sorting-cell world benchmark: how fast the world runs, and how exactly a stroke
scheduled on the simulated MCU lands in it.

One command: ``.venv/bin/python bench/sim_world.py``. It measures:

1. Simulation speed: 60 simulated seconds of the default cell (8 stations, 2.5 m/s) with the
   ideal controller (``OracleController``: strokes at the exact positions, from the truth) at
   12,000 / 24,000 / 36,000 parcels/hour, stepped every 10 ms: wall time, times faster than
   real time, CPU per parcel, and the outcome (parcels in its intended chute; "waiting":
   still queued at the induction when the run ended, because the belt's capacity at the
   default mix, mean pitch ~ 330 mm, is ~27,000 parcels/hour at 2.5 m/s).
   Peer: the simulated PLC's own ``ConveyorWorld`` (a belt with photo-eyes, no diverting)
   stepped over the same 60 s at the same 10 ms (the model the world replaces behind the PLC).
2. Camera frames rendered from the world (``WorldCamera.frame``) against the renderer's own
   random scene (``render_scene``), ms per frame.
3. The timing chain, in real time: a host ``McuLink`` scheduling each parcel's stroke at its
   computed encoder count on the simulated MCU (a real pty) that the world drives, for
   ``--mcu-seconds`` at 12,000 parcels/hour and 2.5 m/s: parcels sorted right and the divert
   position error p50/p99/max; once with the cell in the host's process (GIL shared), once
   in its own (``SimCellProcess``, as a node meets it).

Each figure is the median of ``--repeat`` runs (the machine is shared: CPU figures move).
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import struct
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from pymodbus.client import ModbusTcpClient  # noqa: E402

from firmware_bridge.mcu import McuCommandError, McuLink  # noqa: E402
from sim_hardware.camera.randomisation import TRAINING  # noqa: E402
from sim_hardware.camera.scene import render_scene  # noqa: E402
from sim_hardware.plc.register_map import (  # noqa: E402
    COIL_RUN,
    HR_RAMP,
    HR_SPEED_SETPOINT,
    IR_SPEED_MM_S,
)
from sim_hardware.plc.world import ConveyorWorld, PlcCommands  # noqa: E402
from sim_hardware.world import CellWorld, WorldConfig  # noqa: E402
from sim_hardware.world.camera import WorldCamera  # noqa: E402
from sim_hardware.world.cell import SimCell, SimCellProcess  # noqa: E402
from sim_hardware.world.oracle import OracleController  # noqa: E402

SIM_S, STEP_S, SPEED = 60.0, 0.01, 2500.0


def world_run(rate: float) -> tuple[float, float, dict[str, object]]:
    world = CellWorld(WorldConfig(seed=1, arrivals={"rate_pph": rate}))
    world.command_belt(True, SPEED, 5000)
    oracle = OracleController(world)
    wall, cpu = time.perf_counter(), time.process_time()
    oracle.run(SIM_S, STEP_S)
    world.close_induction()
    oracle.run(SIM_S + 10, STEP_S)  # what is on the belt rides out
    return time.perf_counter() - wall, time.process_time() - cpu, world.score.summary()


def peer_run() -> tuple[float, float]:
    world = ConveyorWorld()
    go = PlcCommands(run=True, speed_setpoint=SPEED / 1000, ramp_mm_s2=5000)
    wall, cpu = time.perf_counter(), time.process_time()
    for k in range(int((SIM_S + 10) / STEP_S)):
        if k % 30 == 0:
            world.add_parcel()
        world.step(STEP_S, go)
    return time.perf_counter() - wall, time.process_time() - cpu


def camera_ms(frames: int = 20) -> tuple[float, float]:
    world = CellWorld(WorldConfig(seed=1, arrivals={"rate_pph": 24_000}))
    world.command_belt(True, SPEED, 5000)
    world.advance_to(5.0)
    cam = WorldCamera(world)
    t = time.perf_counter()
    for _ in range(frames):
        world.advance(1 / 30)
        cam.frame()
    ours = (time.perf_counter() - t) / frames * 1000
    t = time.perf_counter()
    for seed in range(frames):
        render_scene(seed, TRAINING)
    return ours, (time.perf_counter() - t) / frames * 1000


def start_belt(port: int) -> None:
    """Over Modbus TCP: setpoint, ramp, run; wait until the belt is at speed."""
    plc = ModbusTcpClient("127.0.0.1", port=port, timeout=2)
    if not plc.connect():
        raise RuntimeError(f"no simulated PLC on port {port}")
    try:
        hi, lo = struct.unpack(">HH", struct.pack(">f", SPEED / 1000))
        plc.write_registers(HR_SPEED_SETPOINT, [hi, lo], device_id=1)
        plc.write_register(HR_RAMP, 20_000, device_id=1)
        plc.write_coil(COIL_RUN, True, device_id=1)
        end = time.monotonic() + 5
        while plc.read_input_registers(IR_SPEED_MM_S, count=1, device_id=1).registers[0] < SPEED:
            if time.monotonic() > end:
                raise RuntimeError("the belt did not reach its speed")
            time.sleep(0.01)
    finally:
        plc.close()


def mcu_chain(seconds: float, own_process: bool) -> dict[str, object]:
    """Real time: the cell (world + sim PLC + sim MCU on a pty) and a host link scheduling each
    parcel's stroke at its computed count (from the truth: no vision here)."""
    config = WorldConfig(seed=2, arrivals={"rate_pph": 12_000})
    with tempfile.TemporaryDirectory() as tmp:
        link = str(Path(tmp) / "mcu")
        if own_process:
            cell: Any = SimCellProcess(config, link).start()
            ask, get = cell.call, cell.get
        else:
            cell = SimCell(config, link).start()

            def ask(path: str, *args: Any) -> Any:
                target = cell
                for part in path.split("."):
                    target = getattr(target, part)
                return target(*args)

            def get(path: str) -> Any:
                target = cell
                for part in path.split("."):
                    target = getattr(target, part)
                return target

        try:
            start_belt(cell.plc_port)  # the PLC drives the belt, as the node would

            async def host() -> int:
                refused = 0
                planned: set[int] = set()
                async with McuLink(link) as mcu:
                    for pin in range(len(config.stations)):
                        await mcu.configure_output(pin, safe_value=0)
                    start = time.monotonic()
                    closed = False
                    while time.monotonic() < start + seconds + 8.0:  # + 8 s: the belt empties
                        if not closed and time.monotonic() > start + seconds:
                            ask("world.close_induction")
                            closed = True
                        for pid in ask("world.on_belt"):
                            if pid in planned:
                                continue
                            planned.add(pid)
                            st = get("world.score.records")[pid].intended
                            count = ask(
                                "world.count_when_centre_at", pid, config.stations[st].position_mm
                            )
                            try:
                                await mcu.schedule_at_count(count, pin=st, duration_s=0.03)
                            except McuCommandError:
                                refused += 1
                        await asyncio.sleep(0.005)
                return refused

            refused = asyncio.run(host())
            summary = ask("world.score.summary")
        finally:
            cell.stop()
    summary["refused"] = refused
    return summary


def _mm(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f}"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--mcu-seconds", type=float, default=20.0, help="0 skips section 3")
    args = parser.parse_args()

    print(f"1. simulation speed: {SIM_S:.0f} s simulated (+10 s run-out), {STEP_S * 1000:.0f} ms "
          f"steps, {SPEED / 1000:g} m/s, ideal controller; median of {args.repeat}")  # fmt: skip
    peer = [peer_run() for _ in range(args.repeat)]
    peer_wall = statistics.median(w for w, _ in peer)
    print(f"{'model':<28}{'wall s':>8}{'x real':>9}{'CPU us/parcel':>15}{'vs peer':>9}"
          f"{'parcels':>9}{'right':>7}{'lost':>6}{'waiting':>9}{'err p99 mm':>12}")  # fmt: skip
    print(f"{'ConveyorWorld (peer)':<28}{peer_wall:>8.3f}{(SIM_S + 10) / peer_wall:>9.0f}"
          f"{'-':>15}{1.0:>9.2f}{'-':>9}{'-':>7}{'-':>6}{'-':>9}{'-':>12}")  # fmt: skip
    for rate in (12_000, 24_000, 36_000):
        runs = [world_run(rate) for _ in range(args.repeat)]
        wall = statistics.median(r[0] for r in runs)
        cpu = statistics.median(r[1] for r in runs)
        s = runs[0][2]
        right = int(s["sorted_correct"]) + int(s["rejected_correct"])  # type: ignore[call-overload]
        n = int(s["parcels_in"])  # type: ignore[call-overload]
        err = s["divert_error_mm"]["p99"]  # type: ignore[index]
        print(f"{f'CellWorld @ {rate} pph':<28}{wall:>8.3f}{(SIM_S + 10) / wall:>9.0f}"
              f"{cpu / n * 1e6:>15.0f}{wall / peer_wall:>9.2f}{n:>9}{right:>7}"
              f"{int(s['lost']):>6}{int(s['on_belt_or_waiting']):>9}{err:>12.2f}")  # type: ignore[call-overload]  # fmt: skip

    print("\n2. camera frames, ms per 640x480 frame (median of runs)")
    cams = [camera_ms() for _ in range(args.repeat)]
    ours, peer_ms = statistics.median(c[0] for c in cams), statistics.median(c[1] for c in cams)
    print(f"{'WorldCamera.frame':<28}{ours:>8.1f}")
    print(f"{'render_scene (peer)':<28}{peer_ms:>8.1f}   ratio {ours / peer_ms:.2f}")

    if args.mcu_seconds > 0:
        print(f"\n3. timing chain in real time: {args.mcu_seconds:g} s at 12000 pph, "
              f"{SPEED / 1000:g} m/s: host McuLink + the cell (world, sim PLC, sim MCU on a "
              f"pty)")  # fmt: skip
        print(f"{'cell':<30}{'parcels':>8}{'right':>7}{'mis':>5}{'lost':>6}{'refused':>8}"
              f"{'err p50':>9}{'err p99':>9}{'err max':>9}  (mm)")  # fmt: skip
        for own, name in ((False, "SimCell, host's process"), (True, "SimCellProcess (own)")):
            s = mcu_chain(args.mcu_seconds, own)
            e = s["divert_error_mm"]
            right = int(s["sorted_correct"]) + int(s["rejected_correct"])  # type: ignore[call-overload]
            print(f"{name:<30}{s['finished']:>8}{right:>7}{s['mis_sorted']:>5}{s['lost']:>6}"
                  f"{s['refused']:>8}{_mm(e['p50']):>9}{_mm(e['p99']):>9}{_mm(e['max']):>9}")  # type: ignore[index]  # fmt: skip
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
