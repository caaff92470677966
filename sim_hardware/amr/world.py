"""The simulated warehouse with N vehicles, each with its drive MCU on its own pty.

``AmrWorld`` runs on one asyncio loop (the simulator's): for every vehicle a ``SimMcu``
(the real MCU protocol on a pty, exactly as the diverter line's MCU) with the drive firmware
``DriveFirmware`` registered, and a ``VehicleBody`` moved every ``step_s`` by the wheel
travel the firmware reports. Each step it also: drops a vehicle's protective-field input
(the OSSD) when an obstacle, a rack or another vehicle is in its field; closes the charging
contacts when the charging output is on at a charger; reads floor codes under each camera;
and records ground truth: collisions (footprints overlapping each other or a rack) and
vehicles off the map (centre further than ``aisleHalfWidth`` from every aisle).

A vehicle node reaches it only as hardware is reached: the pty of its drive MCU. The floor
code camera is the exception for now: readings are delivered to ``code_listeners`` (the
AMR simulation passes them to the node as its camera source would; see docs/amr-drive.md).
``AmrWorldThread`` runs a world in a background thread for tests and the CLI.
"""

from __future__ import annotations

import asyncio
import math
import random
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from sim_hardware.amr.vehicle import BodySpec, FloorCodeSeen, VehicleBody
from sim_hardware.amr.warehouse import WarehouseMap
from sim_hardware.loop_call import call_on_loop
from sim_hardware.mcu.device import SimMcu, SimMcuOptions
from sim_hardware.mcu.drive import BatteryReading, DriveFirmware, DriveLimits
from sim_hardware.mcu.firmware import OutputChange

T = TypeVar("T")

ESTOP_PIN = 0  # MCU inputs, active low (1 = healthy): the AMR config's defaults
FIELD_PIN = 1
CHARGE_PIN = 0  # MCU output: the charging contactor
CHARGER_REACH_M = 0.05  # contacts touch when the vehicle stands this close to a charger node
CAMERA_PERIOD_S = 0.05  # the floor-code camera's frame period


@dataclass(frozen=True)
class WorldOptions:
    vehicles: int = 3
    workdir: str = "."  # where the pty symlinks go: <workdir>/amr-mcu-NN
    map_path: str | None = None  # None: the default map
    seed: int = 1
    step_s: float = 0.01
    watchdog_ms: int = 300
    baud: int | None = None
    scale_error: float = 0.003  # each wheel's true radius within +-0.3 % of nominal
    slip_sigma: float = 0.002
    soc: float = 0.9
    limits: DriveLimits = field(default_factory=lambda: DriveLimits(2.0, 4.0, 3.0))


@dataclass
class Collision:
    t: float
    a: str  # vehicle name
    b: str  # vehicle name or "rack"


@dataclass
class SimVehicle:
    """One vehicle: its body (truth), its MCU and pty, and its fault overrides."""

    name: str
    index: int
    body: VehicleBody
    link: str
    start_node: str
    mcu: SimMcu | None = None
    drive: DriveFirmware | None = None
    travel: tuple[float, float] = (0.0, 0.0)
    field_blocked: bool = False  # a fault: an obstacle in the field
    estop: bool = False  # a fault: the e-stop circuit open
    camera_blind: bool = False  # a fault: the floor-code camera reads nothing
    field_violated: bool = False
    colliding: set[str] = field(default_factory=set)
    off_map: bool = False
    last_code_t: float = 0.0
    edge_hint: list[int] = field(default_factory=lambda: [0])

    def truth(self) -> dict[str, Any]:
        b = self.body
        return {
            "name": self.name, "x": b.x, "y": b.y, "theta": b.theta, "v": b.v,
            "omega": b.omega, "battery_percent": b.soc * 100, "charging": b.charging,
            "field_violated": self.field_violated, "estop": self.estop,
            "off_map": self.off_map, "distance_m": b.distance,
        }  # fmt: skip


class AmrWorld:
    """The warehouse and its vehicles; create and ``start()`` inside the running loop."""

    def __init__(self, options: WorldOptions) -> None:
        self.options = options
        self.map = WarehouseMap.load(options.map_path) if options.map_path else WarehouseMap.load()
        if options.vehicles > len(self.map.vehicles):
            raise ValueError(
                f"{options.vehicles} vehicles: the map {self.map.map_id} has start nodes for "
                f"{len(self.map.vehicles)}"
            )
        self.rng = random.Random(options.seed)
        self.codes = {
            n.floor_code: (n.x, n.y, 0.0) for n in self.map.nodes.values() if n.floor_code
        }
        self.vehicles: list[SimVehicle] = []
        for i in range(options.vehicles):
            node = self.map.nodes[self.map.vehicles[i]]
            theta = self._start_heading(node.id)
            spec = BodySpec(
                left_scale=1 + self.rng.uniform(-1, 1) * options.scale_error,
                right_scale=1 + self.rng.uniform(-1, 1) * options.scale_error,
                slip_sigma=options.slip_sigma,
            )
            body = VehicleBody(spec, node.x, node.y, theta, random.Random(self.rng.random()),
                               soc=options.soc)  # fmt: skip
            link = str(Path(options.workdir) / f"amr-mcu-{i + 1:02d}")
            self.vehicles.append(SimVehicle(f"v{i + 1:02d}", i, body, link, node.id))
        self.collisions: list[Collision] = []
        self.off_map_events: list[tuple[float, str]] = []
        self.obstacles: list[tuple[float, float, float]] = []  # circles: x, y, radius
        self.code_listeners: list[Callable[[int, FloorCodeSeen, float, int], None]] = []
        self.step_listeners: list[Callable[[float], None]] = []
        self.steps = 0
        self.late_steps = 0
        self._task: asyncio.Task[None] | None = None
        self._last_t: float | None = None

    def _start_heading(self, node_id: str) -> float:
        """Face along the first edge out of the start node (x first), like a parked vehicle."""
        node = self.map.nodes[node_id]
        for a, b in self.map.edges:
            other = b if a == node_id else a if b == node_id else None
            if other is not None:
                o = self.map.nodes[other]
                if abs(o.y - node.y) < 1e-9:
                    return math.atan2(o.y - node.y, o.x - node.x)
        return 0.0

    # ---- lifecycle -------------------------------------------------------------------------
    def start(self) -> None:
        loop = asyncio.get_running_loop()
        for v in self.vehicles:
            opts = SimMcuOptions(
                link=v.link, baud=self.options.baud, seed=self.rng.randrange(1 << 30),
                watchdog_ms=self.options.watchdog_ms, inputs=8, outputs=8,
            )  # fmt: skip
            v.mcu = SimMcu(opts)
            v.drive = DriveFirmware(self.options.limits, battery=self._battery_of(v))
            v.mcu.firmware.register_extension(v.drive)
            v.mcu.firmware.output_listeners.append(self._charging_of(v))
            v.mcu.start()
            v.mcu.firmware.set_input(ESTOP_PIN, 1)
            v.mcu.firmware.set_input(FIELD_PIN, 1)
            v.travel = v.drive.travel_at()
        self._last_t = time.monotonic()
        self._task = loop.create_task(self._run())

    def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
        for v in self.vehicles:
            if v.mcu is not None:
                v.mcu.stop()

    def _battery_of(self, v: SimVehicle) -> Callable[[float], BatteryReading]:
        def read(t: float) -> BatteryReading:
            b = v.body
            return BatteryReading(b.soc, b.voltage, b.current, b.charging)

        return read

    def _charging_of(self, v: SimVehicle) -> Callable[[OutputChange], None]:
        def on_change(change: OutputChange) -> None:
            if change.pin == CHARGE_PIN:
                v.body.charging = bool(change.value) and self._at_charger(v)

        return on_change

    def _at_charger(self, v: SimVehicle) -> bool:
        b = v.body
        return any(
            math.dist((n.x, n.y), (b.x, b.y)) <= CHARGER_REACH_M
            for n in self.map.nodes.values()
            if n.kind == "charger"
        )

    async def _run(self) -> None:
        period = self.options.step_s
        next_t = time.monotonic()
        while True:
            next_t += period
            await asyncio.sleep(max(0.0, next_t - time.monotonic()))
            now = time.monotonic()
            if now - next_t > period:
                self.late_steps += 1
                next_t = now
            self.step(now)

    # ---- the step ------------------------------------------------------------------------------
    def step(self, now: float) -> None:
        """Advance every vehicle to host time ``now`` and apply the world's rules."""
        dt = now - (self._last_t if self._last_t is not None else now)
        self._last_t = now
        self.steps += 1
        for v in self.vehicles:
            if v.drive is None or dt <= 0:
                continue
            travel = v.drive.travel_at(now)
            dl, dr = travel[0] - v.travel[0], travel[1] - v.travel[1]
            v.travel = travel
            v.body.step(dl, dr, dt)
            if v.body.charging and not self._at_charger(v):
                v.body.charging = False  # drove off the contacts
        for v in self.vehicles:
            self._safety(v, now)
            self._camera(v, now)
        self._truth(now)
        for listener in self.step_listeners:
            listener(now)

    def _safety(self, v: SimVehicle, now: float) -> None:
        b = v.body
        violated = v.field_blocked
        if not violated:
            for o in self.vehicles:
                if o is not v and b.in_field(o.body.x, o.body.y, o.body.spec.radius):
                    violated = True
                    break
        if not violated:
            violated = any(b.in_field(x, y, r) for x, y, r in self.obstacles)
        if not violated:
            _, x1, hw = b.field_rect()
            reach = math.hypot(x1, hw)  # nothing further from the centre is in the field
            violated = any(
                b.rect_in_field(r) for r in self.map.racks if _circle_rect(b.x, b.y, reach, r)
            )
        fw = v.mcu.firmware if v.mcu is not None else None
        if violated != v.field_violated:
            v.field_violated = violated
            if fw is not None:
                fw.set_input(FIELD_PIN, 0 if violated else 1, now)
        if fw is not None and bool((fw.inputs >> ESTOP_PIN) & 1) == v.estop:
            fw.set_input(ESTOP_PIN, 0 if v.estop else 1, now)

    def _camera(self, v: SimVehicle, now: float) -> None:
        if v.camera_blind or now - v.last_code_t < CAMERA_PERIOD_S or not self.code_listeners:
            return
        b = v.body
        for code, (cx, cy, cth) in self.codes.items():
            if abs(cx - b.x) > 0.1 or abs(cy - b.y) > 0.1:
                continue
            seen = b.read_code(code, cx, cy, cth)
            if seen is not None:
                v.last_code_t = now
                clock = v.mcu.firmware.clock(now) if v.mcu is not None else 0
                for listener in self.code_listeners:
                    listener(v.index, seen, now, clock)
                return

    def _truth(self, now: float) -> None:
        vs = self.vehicles
        for i, a in enumerate(vs):
            for b in vs[i + 1 :]:
                touching = (
                    math.dist((a.body.x, a.body.y), (b.body.x, b.body.y))
                    < a.body.spec.radius + b.body.spec.radius
                )
                if touching and b.name not in a.colliding:
                    a.colliding.add(b.name)
                    self.collisions.append(Collision(now, a.name, b.name))
                elif not touching:
                    a.colliding.discard(b.name)
            in_rack = any(
                _circle_rect(a.body.x, a.body.y, a.body.spec.radius, r) for r in self.map.racks
            )
            if in_rack and "rack" not in a.colliding:
                a.colliding.add("rack")
                self.collisions.append(Collision(now, a.name, "rack"))
            elif not in_rack:
                a.colliding.discard("rack")
            off = not self.map.on_map(a.body.x, a.body.y, a.edge_hint)
            if off and not a.off_map:
                self.off_map_events.append((now, a.name))
            a.off_map = off

    # ---- faults and truth, on the loop's thread ---------------------------------------------
    def set_field_blocked(self, index: int, blocked: bool) -> None:
        self.vehicles[index].field_blocked = blocked

    def set_estop(self, index: int, pressed: bool) -> None:
        self.vehicles[index].estop = pressed

    def set_camera_blind(self, index: int, blind: bool) -> None:
        self.vehicles[index].camera_blind = blind

    def set_battery(self, index: int, percent: float) -> None:
        self.vehicles[index].body.soc = percent / 100

    def unplug_mcu(self, index: int, replug_after_s: float | None = None) -> None:
        mcu = self.vehicles[index].mcu
        if mcu is not None:
            mcu.unplug(replug_after_s)

    def replug_mcu(self, index: int) -> None:
        mcu = self.vehicles[index].mcu
        if mcu is not None:
            mcu.replug()

    def add_obstacle(self, x: float, y: float, radius: float = 0.25) -> int:
        self.obstacles.append((x, y, radius))
        return len(self.obstacles) - 1

    def clear_obstacles(self) -> None:
        self.obstacles.clear()

    def truth(self) -> dict[str, Any]:
        return {
            "vehicles": [v.truth() for v in self.vehicles],
            "collisions": [(c.t, c.a, c.b) for c in self.collisions],
            "off_map": list(self.off_map_events),
            "steps": self.steps,
            "late_steps": self.late_steps,
        }


def _circle_rect(x: float, y: float, r: float, rect: tuple[float, float, float, float]) -> bool:
    nx, ny = min(max(x, rect[0]), rect[2]), min(max(y, rect[1]), rect[3])
    return math.hypot(x - nx, y - ny) < r


class AmrWorldThread:
    """Runs an AmrWorld in a background thread with its own loop (tests, the CLI)."""

    def __init__(self, options: WorldOptions) -> None:
        self.options = options
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._run, name="amr-world", daemon=True)
        self._ready = threading.Event()
        self.world: AmrWorld | None = None
        self._error: BaseException | None = None

    def _run(self) -> None:
        asyncio.set_event_loop(self._loop)
        try:
            self._loop.call_soon(self._start)
            self._loop.run_forever()
        finally:
            if self.world is not None:
                self.world.stop()
            self._loop.run_until_complete(asyncio.sleep(0.01))
            self._loop.close()

    def _start(self) -> None:
        try:
            self.world = AmrWorld(self.options)
            self.world.start()
        except BaseException as exc:  # surfaced by start()
            self._error = exc
            self._loop.stop()
        self._ready.set()

    def start(self) -> AmrWorldThread:
        self._thread.start()
        self._ready.wait(10)
        if self._error:
            raise self._error
        return self

    def call(self, fn: Callable[..., T], *args: Any) -> T:
        """Run ``fn(*args)`` on the world's loop and return its result."""
        return call_on_loop(self._loop, fn, *args)

    def stop(self) -> None:
        if self._thread.is_alive():
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(5)

    def __enter__(self) -> AmrWorldThread:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
