"""The whole simulated sorting-arm cell: the MuJoCo world, the arm MCU on a pty, the belt
camera's frame stream. A node reaches it only as it reaches a real arm cell: through the pty
and the camera's TCP port.

    cell = SimArmCellProcess(settings, workdir / "mcu").start()
    ...  # McuLink(workdir / "mcu"), wpcf://127.0.0.1:{cell.camera_port}
    cell.call("summary"); cell.call("truth", t0); cell.call("set_fault", "drop", True)

Three processes, as the diverter cell: the cell (world physics in real time, the simulated
MCU, the parcel stream), the camera (rendering costs ~100-200 ms a frame: away from the
MCU's timers) and the caller. ``settings`` is a plain dict (``sim_hardware`` never imports
``edge``): ``edge.cli.sim_arm.cell_settings`` writes it from the node's arm config, so the
world is built from the same numbers the node is configured with.

The world's truth of each parcel (``truth``): its label and whether it is legible, class,
size and mass, whether a cup can hold it (and why not), where the sort plan says it goes,
where it ended (``dest:<id>``, ``belt_end``, ``floor``), whether it was gripped or dropped,
the cup's offset from the grasp point at the grip (the tracking error), and its belt
coordinate at encoder count 0 (``belt_mm0``, which joins it to the node's record).
"""

from __future__ import annotations

import contextlib
import math
import multiprocessing
import os
import time
from dataclasses import dataclass
from typing import Any

import numpy as np

from sim_hardware.pipe_rpc import PipeClient, resolve_path
from sim_hardware.world.parcels import Parcel

# ---- the camera -------------------------------------------------------------------------------
# 1024 x 768 over the 800 mm view (1.28 px/mm, the diverter camera's): at 640 px (0.8 px/mm)
# the finest Code 128 of the parcel mix has modules under 2 px, never legible (3 of 58
# readable labels at 1,800/h were never shown legibly, and their parcels were passed on)
FRAME_W, FRAME_H = 1024, 768


@dataclass(frozen=True)
class ArmSnapshot:
    """What is under the camera at one instant (no pixels): each parcel's pose on the belt
    in the camera's belt frame (``along`` with the travel, ``across`` to its left), mm."""

    time_s: float
    encoder_count: int
    centre_mm: float  # the camera's centre line, belt coordinate u
    fov_mm: float
    parcels: tuple[tuple[Parcel, float, float, float], ...]  # parcel, u, across, yaw (deg)


def camera_calibration(fov_mm: float) -> dict[str, Any]:
    """The vision calibration of this camera (``vision.calibration`` of the node's config):
    pixel -> (along, across) mm from the camera's centre, image +x along the travel and
    image up to the left of it."""
    s = fov_mm / FRAME_W
    points = [(0.0, 0.0), (FRAME_W, 0.0), (FRAME_W, FRAME_H), (0.0, FRAME_H)]
    points.append((FRAME_W / 2, FRAME_H / 2))
    return {
        "reference_points": [
            {
                "pixel": [px, py],
                "belt_mm": [round((px - FRAME_W / 2) * s, 4), round((FRAME_H / 2 - py) * s, 4)],
            }
            for px, py in points
        ]
    }


def _camera_main(snapshots: Any, control: Any, kwargs: dict[str, Any], nice: int) -> None:
    """Child process: the diverter camera's frame server with the arm's renderer."""
    from sim_hardware.world.camera_feed import CameraFeed

    with contextlib.suppress(OSError, AttributeError):  # never real-time: it is the heavy part
        os.sched_setscheduler(0, os.SCHED_OTHER, os.sched_param(0))
    # A camera is hardware of its own: at the normal priority (0) the renderer is not
    # starved by background work niced to 19 (1-1.5 frames/s instead of 5 were seen, and
    # parcels never seen are lost); ``nice`` > 0 lowers it (permitted: raising needs root).
    with contextlib.suppress(OSError, AttributeError):
        os.setpriority(os.PRIO_PROCESS, 0, max(0, nice))
    try:
        feed = CameraFeed(snapshots, control, **kwargs)
        from sim_hardware.arm.camera import ArmRenderer

        feed.renderer = ArmRenderer(
            kwargs["centre_mm"], kwargs["fov_mm"], kwargs["seed"], size=kwargs["size"]
        )
    except Exception as exc:
        control.send(("error", f"{type(exc).__name__}: {exc}"))
        return
    control.send(("ok", feed.port))
    feed.run()


class ArmCameraProcess(PipeClient):
    """The belt camera in its own process, serving the frame stream (docs/sim-world.md,
    "Camera frame stream") on ``127.0.0.1:port``; ``snapshots`` is the cell's pipe end."""

    rpc_name = "simulated arm camera"

    def __init__(
        self,
        snapshots: Any,
        *,
        fps: float,
        centre_mm: float,
        fov_mm: float,
        seed: int = 0,
        nice: int = 0,
        size: tuple[int, int] = (FRAME_W, FRAME_H),
    ) -> None:
        ctx = multiprocessing.get_context("spawn")
        self._conn, child = ctx.Pipe()
        kwargs = dict(
            fps=fps,
            host="127.0.0.1",
            port=0,
            centre_mm=centre_mm,
            fov_mm=fov_mm,
            seed=seed,
            truth=True,
            size=(int(size[0]), int(size[1])),
        )
        self._proc = ctx.Process(
            target=_camera_main, args=(snapshots, child, kwargs, nice), daemon=True
        )
        self.port = 0

    def start(self, timeout: float = 30.0) -> ArmCameraProcess:
        self._proc.start()
        if not self._conn.poll(timeout):
            self._proc.kill()
            raise RuntimeError("the simulated arm camera did not start")
        status, value = self._conn.recv()
        if status != "ok":
            raise RuntimeError(f"the simulated arm camera failed to start: {value}")
        self.port = int(value)
        return self

    def stop(self) -> None:
        if self._proc.is_alive():
            with contextlib.suppress(OSError, EOFError, TimeoutError, RuntimeError):
                self._ask("stop", "", ())
            self._proc.join(10)
            if self._proc.is_alive():
                self._proc.kill()
                self._proc.join(5)


# ---- the cell -----------------------------------------------------------------------------------
WORLD_PERIOD_S = 0.002  # the world is stepped to the wall clock this often (on the MCU's loop)
POOL = 16  # parcels the MuJoCo world holds at once
INDUCTION_GAP_MM = 80.0  # the induction leaves at least this between parcels
EDGE_MARGIN_MM = 25.0  # parcels are put on at least this far from the belt's edges
# Heights of the simulated parcels, by class: within 4 mm of the class's default_height_mm
# in configs/sim-arm.yaml. A single camera looking down does not measure height; this stands
# in for a height sensor good to +-4 mm (docs/sim-arm.md).
CLASSES: dict[str, dict[str, Any]] = {
    "box": {
        "weight": 0.5,
        "length": (200, 450),
        "width": (150, 350),
        "height": (146, 154),
        "kg_per_litre": 0.2,
    },
    "polybag": {
        "weight": 0.25,
        "length": (200, 400),
        "width": (200, 320),
        "height": (56, 64),
        "kg_per_litre": 0.25,
        "flatness": 0.6,
    },
    "envelope": {
        "weight": 0.15,
        "length": (200, 350),
        "width": (130, 250),
        "height": (11, 19),
        "kg_per_litre": 0.5,
    },
    "irregular": {
        "weight": 0.10,
        "length": (200, 380),
        "width": (150, 300),
        "height": (80, 250),
        "kg_per_litre": 0.2,
        "flatness": 0.3,
    },
}


class ArmEncoder:
    """The belt's encoder as the simulated MCU reads it: the world's exact belt travel."""

    def __init__(self, cell: SimArmCell) -> None:
        self.cell = cell
        self.cpm = cell.cfg.counts_per_mm

    def count_at(self, t: float) -> int:
        return math.floor(self.cell.world.belt_mm(t - self.cell.t_start) * self.cpm)

    def eta(self, count: int, now: float) -> float | None:
        when = self.cell.world.belt_time_of(count / self.cpm)
        return None if when is None else max(when + self.cell.t_start, now)


class SimArmCell:
    """World, MCU (pty) and the parcel stream in this process; the world is stepped on the
    simulated MCU's loop, so the firmware's segment queue and the servos share one thread."""

    def __init__(self, settings: dict[str, Any], mcu_link: str) -> None:
        from sim_hardware.arm.config import ArmWorldConfig
        from sim_hardware.arm.world import ArmWorld
        from sim_hardware.brain.config import BrainConfig
        from sim_hardware.brain.policy import ReferenceBrain
        from sim_hardware.mcu import SimMcuOptions, SimMcuThread
        from sim_hardware.world.arrivals import ArrivalProcess
        from sim_hardware.world.config import ArrivalConfig, ParcelClass, Range

        self.settings = settings
        arm = settings["arm"]
        self.cfg = ArmWorldConfig.from_arm_section(
            arm,
            belt_start_u_mm=settings["induction_u_mm"],
            belt_end_u_mm=settings["belt_end_u_mm"],
            pool=POOL,
        )
        self.t_start = time.monotonic()
        self.world = ArmWorld(self.cfg, setpoints=self._setpoints)
        self.rng = np.random.default_rng([settings["seed"], 7])
        classes = {
            name: ParcelClass(
                weight=c["weight"],
                length_mm=Range(lo=c["length"][0], hi=c["length"][1]),
                width_mm=Range(lo=c["width"][0], hi=c["width"][1]),
                height_mm=Range(lo=c["height"][0], hi=c["height"][1]),
            )
            for name, c in CLASSES.items()
        }
        self.arrival_cfg = ArrivalConfig(
            rate_pph=settings["rate_pph"],
            classes=classes,
            unreadable_fraction=settings["unreadable_fraction"],
        )
        self._arrival_cls = ArrivalProcess
        self.arrivals: Any = None  # opened by open_induction
        self.closed = False
        self.waiting: list[Parcel] = []
        self.inducted = 0
        self._last_put: tuple[int, float] | None = None  # parcel id, its length
        routes = settings["brain_routes"]
        self.brain = ReferenceBrain(
            BrainConfig(
                sort_chutes=routes["sort"], reject_chute=routes["reject"], routes=routes["prefixes"]
            )
        )
        self.dest_ids = [d["id"] for d in arm["destinations"]]
        self.camera_silent = False
        self.valve_trace: list[tuple[float, ...]] = []  # while the valve is open (diagnosis)
        self.curtain_breaks: list[dict[str, Any]] = []
        self._q_prev: Any = None
        # parcel id -> its centre's belt coordinate at encoder count 0 while the camera last
        # showed it (a parcel pushed along the belt after induction keeps its first
        # ``belt_mm0`` no longer: this is what the node's record was placed from)
        self.camera_mm0: dict[int, float] = {}
        mcu = settings["mcu"]
        self.mcu = SimMcuThread(
            SimMcuOptions(
                link=mcu_link,
                baud=None,
                watchdog_ms=mcu["watchdog_ms"],
                counts_per_mm=self.cfg.counts_per_mm,
                inputs=16,
                outputs=8,
            ),
            encoder=ArmEncoder(self),
        )
        self.arm_fw: Any = None
        self.loop: Any = None
        self._task: Any = None

    # ---- wiring -------------------------------------------------------------------------------
    def start(self) -> SimArmCell:
        from sim_hardware.mcu.motion import ArmFirmware

        self.mcu.start()
        sim = self.mcu

        def wire() -> Any:
            import asyncio

            assert sim.sim is not None
            fw = sim.sim.firmware
            w = self.world
            self.arm_fw = ArmFirmware(
                measured=lambda: [v * 1e6 for v in w.joints()], vacuum=lambda t: w.vacuum_pa
            )
            fw.register_extension(self.arm_fw)
            # at the MCU's instant: the world may step behind its clock (world.set_valve)
            self.arm_fw.valve_listeners.append(lambda on, t: w.set_valve(on, t - self.t_start))
            w.input_listeners.append(
                lambda pin, value, tw: fw.set_input(pin, value, tw + self.t_start)
            )
            # the curtain's input at its safe level from the start (OSSD energised)
            w.set_curtain(False)
            loop = asyncio.get_running_loop()
            self._task = loop.create_task(self._world_loop())
            return loop

        self.loop = sim.call(wire)
        return self

    def _setpoints(self, tw: float) -> list[float]:
        fw = self.arm_fw
        if fw is None:
            return list(self.world.home_q)
        p = fw.setpoint_at(tw + self.t_start)
        return [p[0] / 1e6, p[1] / 1e6, p[2] / 1e6, p[3] / 1e6]

    async def _world_loop(self) -> None:
        import asyncio

        while True:
            await asyncio.sleep(WORLD_PERIOD_S)
            now = time.monotonic()
            self.world.step_to(now - self.t_start)
            self._induct(now)
            self._watch_stops(now)
            if self.world.valve and len(self.valve_trace) < 20000:
                self.valve_trace.append(self._trace_row())

    # ---- parcels ------------------------------------------------------------------------------
    def open_induction(self, t0: float) -> None:
        """Parcels arrive from ``t0`` (monotonic) on."""
        self.t0 = t0

        def go() -> None:
            self.arrivals = self._arrival_cls(self.arrival_cfg, self.settings["seed"], t0)

        self._on_loop(go)

    def close_induction(self) -> None:
        def go() -> None:
            self.closed = True

        self._on_loop(go)

    def _induct(self, now: float) -> None:
        if self.arrivals is not None and not self.closed:
            self.waiting += self.arrivals.until(now)
        if not self.waiting or len(self.world.active) >= POOL:
            return
        start = self.cfg.belt_start_u_mm
        p = self.waiting[0]
        if self._last_put is not None:
            pose = self.world.parcel_pose(self._last_put[0])
            rear = None if pose is None else pose[0] - self._last_put[1] / 2
            if rear is not None and rear < start + 5 + p.length_mm + INDUCTION_GAP_MM:
                return  # the last one has not cleared the induction yet
        p = self.waiting.pop(0)
        spec = CLASSES.get(p.cls, CLASSES["box"])
        half_w = self.cfg.belt_width_mm / 2 - EDGE_MARGIN_MM - p.width_mm / 2
        across = float(self.rng.uniform(-half_w, half_w)) if half_w > 0 else 0.0
        yaw = float(self.rng.uniform(-15, 15))
        litres = p.length_mm * p.width_mm * p.height_mm / 1e6
        mass = litres * spec["kg_per_litre"] * float(self.rng.uniform(0.7, 1.3))
        self.world.put_parcel(
            p,
            mass,
            u_mm=start + p.length_mm / 2 + 5,
            across_mm=across,
            yaw_deg=yaw,
            flatness=spec.get("flatness", 1.0),
        )
        self._last_put = (p.id, p.length_mm)
        self.inducted += 1

    # ---- truth -----------------------------------------------------------------------------------
    def intended(self, label: str | None) -> str | None:
        """The destination the sort plan gives a legible label (None: pass it on)."""
        if not label:
            return None
        index, _ = self.brain.chute_for(label)
        return self.dest_ids[index] if 0 <= index < len(self.dest_ids) else None

    def judge(self, t: Any) -> tuple[bool, str | None]:
        """Can a cup hold it, and does it have somewhere to go (the truth's 'pickable')."""
        p = t.parcel
        arm = self.settings["arm"]
        rule = arm["suction"]["classes"].get(p.cls)
        if not p.label_legible:
            return False, "label unreadable"
        if self.intended(p.label_text) is None:
            return False, "no destination in the sort plan"
        if rule is None or not rule.get("pickable", False):
            return False, f"class {p.cls}: no face for a cup"
        if t.mass_kg > self.cfg.max_load_kg:
            return False, "heavier than the cup holds"
        if t.flatness * min(p.length_mm, p.width_mm) < self.cfg.cup_diameter_mm:
            return False, "flat face narrower than the cup"
        return True, None

    def truth(self, t0: float) -> list[dict[str, Any]]:
        return self._on_loop(self._truth, t0)

    def _truth(self, t0: float) -> list[dict[str, Any]]:
        out = []
        cpm = self.cfg.counts_per_mm
        for pid, t in self.world.truth.items():
            p = t.parcel
            ok, why = self.judge(t)
            ended = None if t.end_t is None else round(t.end_t + self.t_start - t0, 3)
            out.append(
                {
                    "id": pid,
                    "label": p.label_text,
                    "legible": p.label_legible,
                    "cls": p.cls,
                    "size_mm": [round(p.length_mm, 1), round(p.width_mm, 1), round(p.height_mm, 1)],
                    "mass_kg": round(t.mass_kg, 2),
                    "pickable": ok,
                    "why_not": why,
                    "intended": self.intended(p.label_text) if p.label_legible else None,
                    "end": t.end,
                    "ended_s": ended,
                    "gripped": len(t.grips),
                    "dropped": bool(t.drops) and not str(t.end).startswith("dest:"),
                    "drops": [[round(v, 1) for v in d] for d in t.drops],
                    "drop_causes": list(t.drop_causes),
                    "grip_error_mm": round(t.grips[0][1], 2) if t.grips else None,
                    "inducted_s": round(t.put_on_t + self.t_start - t0, 3),
                    # its centre's belt coordinate at encoder count 0 (joins the node's record)
                    "belt_mm0": round(t.put_on_u_mm - self.world.belt_mm(t.put_on_t), 1),
                    "camera_mm0": self.camera_mm0.get(pid),  # the same, as the camera saw it
                    "counts_per_mm": cpm,
                }
            )
        return out

    def _trace_row(self) -> tuple[float, ...]:
        """World time, cup x y z, the nearest parcel's top centre x y z, vacuum kPa."""
        w = self.world
        cx, cy, cz, _ = w.cup_pose()
        best = (0.0, 0.0, 0.0)
        dist = 1e9
        for p, u, across, _yaw in w.on_belt():
            x = self.cfg.belt_sign * u
            y = self.cfg.belt_centre_y_mm + self.cfg.belt_sign * across
            d = (x - cx) ** 2 + (y - cy) ** 2
            if d < dist:
                dist = d
                best = (x, y, self.cfg.belt_surface_z_mm + p.height_mm)
        return (
            round(w.t, 3),
            round(cx, 1),
            round(cy, 1),
            round(cz, 1),
            *(round(v, 1) for v in best),
            round(w.vacuum_pa / 1000, 1),
        )

    def trace(self) -> list[tuple[float, ...]]:
        return self._on_loop(lambda: list(self.valve_trace))

    def summary(self) -> dict[str, Any]:
        return self._on_loop(self._summary)

    def _summary(self) -> dict[str, Any]:
        ends = [t.end for t in self.world.truth.values()]
        finished = sum(1 for e in ends if e is not None)
        waiting = len(self.waiting)
        return {
            "inducted": self.inducted,
            "waiting": waiting,
            "on_belt": len(self.world.active),
            "picked": sum(1 for t in self.world.truth.values() if t.grips),
            "placed": sum(1 for e in ends if str(e).startswith("dest:")),
            "dropped": sum(1 for t in self.world.truth.values() if t.drops),
            "passed": sum(1 for e in ends if e == "belt_end"),
            "floor": sum(1 for e in ends if e == "floor"),
            "finished": finished,
            "in_cell": len(self.world.active) + waiting,
            "world_t": round(self.world.t, 2),
            # physics steps MuJoCo found diverging and reset: the truth after one is not
            # physics (sim_hardware/arm/world.py); a sound run has none
            "unstable_steps": self.world.unstable_steps,
            "unstable_at": list(self.world.unstable_at),
            # the largest share of the cup's holding force a held load asked (1: a drop)
            "grip_use_max": round(self.world.grip_use_max, 3),
        }

    # ---- faults ----------------------------------------------------------------------------------
    def set_fault(self, kind: str, on: bool) -> None:
        if kind == "mcu-unplug":
            sim = self.mcu.sim
            assert sim is not None
            self.mcu.call(sim.unplug if on else sim.replug)
            return
        self._on_loop(self._set_fault, kind, on)

    def _set_fault(self, kind: str, on: bool) -> None:
        w = self.world
        if kind == "vacuum-leak":
            w.leak = 1.0 if on else 0.0
        elif kind == "drop":
            w.drop_g = 0.3 if on else None
        elif kind == "light-curtain":
            w.set_curtain(on)
            if on:
                self.curtain_breaks.append({"t": time.monotonic(), "rest_t": None})
        elif kind == "estop":
            w.set_estop(on)
        elif kind == "camera-silent":
            self.camera_silent = on
        else:
            raise ValueError(f"unknown arm fault {kind!r}")

    def _watch_stops(self, now: float) -> None:
        """After each curtain break: when the arm's joints came to rest (the truth the
        report's stop time is judged by)."""
        q = self.world.joints()
        prev, self._q_prev = self._q_prev, (now, q)
        pending = [b for b in self.curtain_breaks if b["rest_t"] is None]
        if not pending or prev is None or now <= prev[0]:
            return
        speed = float(np.max(np.abs(q - prev[1]))) / (now - prev[0])
        if speed < 0.005:  # rad/s (or m/s): at rest
            for b in pending:
                b["rest_t"] = now

    def motion_stops(self, t0: float) -> list[dict[str, Any]]:
        return [
            {
                "cause": "light-curtain",
                "t_s": round(b["t"] - t0, 3),
                "stop_ms": None if b["rest_t"] is None else round(1000 * (b["rest_t"] - b["t"])),
            }
            for b in self.curtain_breaks
        ]

    # ---- camera --------------------------------------------------------------------------------
    def snapshot(self, centre_mm: float, fov_mm: float) -> ArmSnapshot:
        def take() -> ArmSnapshot:
            now = time.monotonic()
            count = math.floor(self.world.belt_mm(now - self.t_start) * self.cfg.counts_per_mm)
            parcels = tuple(self.world.on_belt())
            for p, u, _, _ in parcels:
                if abs(u - centre_mm) <= fov_mm / 2:
                    self.camera_mm0[p.id] = round(u - count / self.cfg.counts_per_mm, 1)
            return ArmSnapshot(now, count, centre_mm, fov_mm, parcels)

        return self._on_loop(take)

    def _on_loop(self, fn: Any, *args: Any) -> Any:
        from sim_hardware.loop_call import call_on_loop

        return call_on_loop(self.loop, fn, *args)

    def stop(self) -> None:
        if self.loop is not None and self._task is not None:
            with contextlib.suppress(Exception):
                self._on_loop(self._task.cancel)
        self.mcu.stop()


def _serve_snapshots(conn: Any, cell: SimArmCell) -> None:
    """Answer the camera's snapshot requests (a thread); while the camera-silent fault is on
    the answer waits, so the camera sends nothing."""
    import threading

    def run() -> None:
        while True:
            try:
                centre, fov = conn.recv()
                while cell.camera_silent:
                    time.sleep(0.05)
                conn.send(cell.snapshot(centre, fov))
            except (EOFError, OSError):
                return
            except Exception:  # the cell is stopping
                return

    threading.Thread(target=run, name="arm-camera-snapshots", daemon=True).start()


def _cell_main(settings: dict[str, Any], mcu_link: str, conn: Any, snapshots: Any) -> None:
    """Child process: run a SimArmCell, serve snapshots, answer (kind, path, args) requests."""
    from sim_hardware.mcu.device import request_realtime

    request_realtime()
    try:
        cell = SimArmCell(settings, mcu_link).start()
    except Exception as exc:
        conn.send(("error", f"{type(exc).__name__}: {exc}"))
        return
    try:
        _serve_snapshots(snapshots, cell)
        conn.send(("ok", None))
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
            except Exception as exc:  # raised again on the caller's side
                conn.send(("error", f"{type(exc).__name__}: {exc}"))
    finally:
        cell.stop()


class SimArmCellProcess(PipeClient):
    """A SimArmCell in its own process, and its camera in another. Control and truth over a
    pipe: ``call("summary")``, ``call("truth", t0)``, ``call("set_fault", "drop", True)``,
    ``call("open_induction", t0)``, ``call("close_induction")``, ``call("motion_stops", t0)``.
    ``camera_port``: the frame stream (wpcf) on 127.0.0.1."""

    rpc_name = "simulated arm cell"

    def __init__(self, settings: dict[str, Any], mcu_link: Any) -> None:
        ctx = multiprocessing.get_context("spawn")
        self._conn, child = ctx.Pipe()
        self._snapshots, child_snapshots = ctx.Pipe()
        self.settings = settings
        self.mcu_link = str(mcu_link)
        self._proc = ctx.Process(
            target=_cell_main, args=(settings, self.mcu_link, child, child_snapshots), daemon=True
        )
        self.camera: ArmCameraProcess | None = None
        self.camera_port = 0

    def start(self, timeout: float = 60.0) -> SimArmCellProcess:
        self._proc.start()
        if not self._conn.poll(timeout):
            self._proc.kill()
            raise RuntimeError("the simulated arm cell did not start")
        status, value = self._conn.recv()
        if status != "ok":
            raise RuntimeError(f"the simulated arm cell failed to start: {value}")
        cam = self.settings["camera"]
        self.camera = ArmCameraProcess(
            self._snapshots,
            fps=cam["fps"],
            centre_mm=cam["centre_u_mm"],
            fov_mm=cam["fov_mm"],
            seed=self.settings["seed"],
            size=tuple(cam.get("size", (FRAME_W, FRAME_H))),
        ).start()
        self.camera_port = self.camera.port
        return self

    def camera_stats(self) -> dict[str, Any]:
        if self.camera is None:
            return {}
        st = self.camera.get("stats")
        return {
            "frames": st.frames,
            "frames_per_s": round(st.frames / max(st.wall_s, 1e-9), 2),
            "skipped_by_node": st.skipped,
            "render_ms_mean": round(st.render_ms_mean, 1),
        }

    def camera_ids(self) -> dict[str, list[int]]:
        """World ids of the parcels the camera showed (``seen``) and of those whose label
        was legible in at least one frame (``legible``)."""
        if self.camera is None:
            return {"seen": [], "legible": []}
        return {
            "seen": sorted(self.camera.get("seen")),
            "legible": sorted(self.camera.get("legible")),
        }

    def stop(self) -> None:
        if self.camera is not None:
            self.camera.stop()
        if self._proc.is_alive():
            with contextlib.suppress(OSError, TimeoutError, RuntimeError, EOFError):
                self._ask("stop", "", ())
            self._proc.join(10)
            if self._proc.is_alive():
                self._proc.kill()
                self._proc.join(5)
