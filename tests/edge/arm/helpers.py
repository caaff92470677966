"""A small pure bench for the arm core: a belt at constant speed with its encoder, the MCU's
timed-segment queue as the protocol defines it (append, replace the unsent rest, end at rest,
controlled stop), a suction cup that seals some milliseconds after it sits on a parcel's top,
destination sensors, and the real shared safety state machine (edge/safety/). Nothing here
stands in for a driver: the core is pure, and this is the world its facts describe."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path

from ruamel.yaml import YAML

from edge.arm.config import ArmConfig
from edge.arm.controller import ArmCore, feed_safety
from edge.arm.events import (
    ArmAction,
    ArmFact,
    AskBrain,
    BrainAnswer,
    CameraFrame,
    Grip,
    JointState,
    MotionEnded,
    MotionHalted,
    Move,
    ParcelSeen,
    PlaceSensor,
    PublishPick,
    SafetyInput,
    StopMotion,
    Suction,
    Tick,
)
from edge.arm.kinematics import Joints
from edge.arm.trajectory import Trajectory
from edge.safety.machine import SafetyAction, SafetyMachine

EXAMPLE = Path(__file__).resolve().parents[3] / "configs" / "examples" / "arm-scara.yaml"


def example_dict() -> dict:
    return YAML(typ="safe").load(EXAMPLE.read_text())


def example_cfg(**arm_changes: object) -> ArmConfig:
    d = example_dict()["arm"]
    d.update(arm_changes)
    return ArmConfig.model_validate(d)


DEVICES = frozenset({"mcu", "camera", "brain"})


@dataclass
class Bench:
    cfg: ArmConfig
    speed: float = 800.0  # belt mm/s
    dt: float = 0.01
    seal_ms: float = 20.0  # the cup seals this long after it sits on a top
    leak: bool = False  # the cup never seals
    drop_after_ms: float | None = None  # the seal breaks this long into the carry
    brain: dict[str, str] | None = None  # label -> destination; None: the brain never answers
    camera: bool = True  # frames arrive (False: the camera is silent)
    travel_mm: float = 0.0  # the belt's travel since t = 0
    t: float = 0.0
    core: ArmCore = field(init=False)
    safety: SafetyMachine = field(init=False)
    actions: list[ArmAction] = field(default_factory=list)
    log: list[tuple[float, object]] = field(default_factory=list)
    queue: list[tuple[int, Trajectory]] = field(default_factory=list)  # MCU's executing plan
    suction: bool = False
    sealed: bool = False
    halted_until: float | None = None
    stop_q: Joints | None = None
    pending: list[tuple[float, ArmFact]] = field(default_factory=list)
    parcels: dict[int, tuple[float, float, float]] = field(default_factory=dict)  # track: u0,y,h
    placed: list[tuple[float, str]] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.core = ArmCore(self.cfg)
        self.safety = SafetyMachine(self.cfg.safety, DEVICES)
        h = self.cfg.home
        self.q = self.core.mover.kin.ik_xyz(h.x_mm, h.y_mm, h.z_mm, 0.0)
        self.feed(JointState(self.q, 0.0))
        for d in sorted(DEVICES):
            self.on_safety(self.safety.device_up(d, 0.0))
        self.on_safety(self.safety.start(0.0))
        for _ in range(3):
            self.step()

    # ---- the world ---------------------------------------------------------------------------
    @property
    def count(self) -> int:
        return int(self.travel_mm * self.cfg.belt.counts_per_mm)

    def belt_u(self, u0: float, t: float, t_seen: float) -> float:
        return u0 + self.speed * (t - t_seen)

    def see(
        self,
        track: int,
        along: float,
        *,
        label: str | None = "DE-10",
        cls: str = "box",
        size: tuple[float, float, float] = (300.0, 200.0, 150.0),
        across: float = 0.0,
    ) -> None:
        """The camera sees a parcel now at ``along`` (camera belt mm)."""
        f = ParcelSeen(track, self.count, self.t, along, across, size[0], size[1], 0.0,
                       size[2], cls, label)  # fmt: skip
        self.feed(f)

    def step(self) -> None:
        self.t = round(self.t + self.dt, 9)
        self.travel_mm += self.speed * self.dt  # the belt's speed may change between steps
        due = [f for f in self.pending if f[0] <= self.t]
        self.pending = [f for f in self.pending if f[0] > self.t]
        for _, f in sorted(due, key=lambda x: x[0]):
            self.feed(f)
        self._mcu()
        self.feed(Tick(self.count, self.t))
        if self.camera:
            self.feed(CameraFrame(self.count, self.t))

    def run(self, seconds: float) -> None:
        for _ in range(round(seconds / self.dt)):
            self.step()

    def _mcu(self) -> None:
        """Ends of moves, seals and drops, as an MCU and a cup would report them."""
        while self.queue and self.t >= self.queue[0][1].t_end:
            move_id, traj = self.queue.pop(0)
            self.q = traj.q[-1]
            kind = self._kinds.get(move_id)
            if kind in ("carry", "place") and "release" in traj.marks:
                pid = self._parcel_of.get(move_id)
                dest = self._dest_of.get(pid) if pid is not None else None
                if dest is not None and self.sealed_at_release.get(move_id, True):
                    self.pending.append((self.t + 0.1, PlaceSensor(dest, self.t + 0.1)))
            self.feed(MotionEnded(move_id, self.q, self.t))
        if not self.queue:
            return
        move_id, traj = self.queue[0]
        kind = self._kinds.get(move_id)
        if kind == "pick" and self.suction and not self.leak and not self.sealed:
            t_c = traj.marks.get("contact", math.inf)
            if t_c + self.seal_ms / 1000 <= self.t < traj.marks["lift"]:
                self.sealed = True
                self.feed(Grip(True, 60.0, self.t))
        if kind in ("carry", "place") and self.sealed and self.drop_after_ms is not None:
            if self.t >= traj.t0 + self.drop_after_ms / 1000:
                self.sealed = False
                self.sealed_at_release[move_id] = False
                self.feed(Grip(False, 5.0, self.t))

    _kinds: dict[int, str] = field(default_factory=dict)
    _parcel_of: dict[int, int] = field(default_factory=dict)
    _dest_of: dict[int, str] = field(default_factory=dict)
    sealed_at_release: dict[int, bool] = field(default_factory=dict)

    # ---- the adapter -------------------------------------------------------------------------
    def feed(self, fact: ArmFact) -> None:
        self.log.append((self.t, fact))
        self._act(self.core.handle(fact))

    def on_safety(self, actions: list[SafetyAction]) -> None:
        self.log.extend((self.t, a) for a in actions)
        self._act(self.core.on_safety(actions, self.t))

    def _act(self, actions: list[ArmAction]) -> None:
        for a in actions:
            self.actions.append(a)
            self.log.append((self.t, a))
            if isinstance(a, Move):
                self._kinds[a.move_id] = a.kind
                if a.parcel_id is not None:
                    self._parcel_of[a.move_id] = a.parcel_id
                    p = self.core.parcels.get(a.parcel_id)
                    if p is not None and p.destination:
                        self._dest_of[a.parcel_id] = p.destination
                if a.replace_from is not None:
                    self.queue = [(a.move_id, a.trajectory)]
                else:
                    self.queue.append((a.move_id, a.trajectory))
            elif isinstance(a, StopMotion):
                if self.queue:
                    _, traj = self.queue[-1]
                    q = traj.at(self.t)
                    self.queue.clear()
                    self.pending.append(
                        (self.t + 0.05, MotionHalted("stop command", q, self.t + 0.05))
                    )
            elif isinstance(a, Suction):
                self.suction = a.on
                if not a.on:
                    self.sealed = False
            elif isinstance(a, AskBrain) and self.brain is not None:
                dest = self.brain.get(a.label)
                self.pending.append((self.t + 0.02, BrainAnswer(a.parcel_id, dest, self.t + 0.02)))
            elif isinstance(a, SafetyInput):
                self.on_safety(feed_safety(self.safety, a))

    # ---- views -------------------------------------------------------------------------------
    def records(self) -> list:
        return [a.record for a in self.actions if isinstance(a, PublishPick)]

    def moves(self, kind: str | None = None) -> list[Move]:
        return [a for a in self.actions if isinstance(a, Move) and (kind is None or a.kind == kind)]
