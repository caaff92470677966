"""The vehicle machine (``machine: amr``) on the shared node runtime.

It joins four pure cores and their adapters:

- the VDA 5050 vehicle core (:mod:`edge.amr.vehicle_state`): orders, actions, the state;
- the drive core (:mod:`edge.amr.drive`): path following, stops at nodes, limits;
- odometry and localisation (:mod:`edge.amr.odometry`, :mod:`edge.amr.localisation`):
  wheel counts and floor codes in, pose and its uncertainty out;
- the runtime's safety state machine (:mod:`edge.safety`): e-stop, the drive MCU lost,
  operator start / stop / reset;

and three adapters: the VDA 5050 session (:class:`fleet_link.vda5050.client.VehicleClient`),
the drive MCU (:mod:`edge.amr.adapter_mcu`: wheel setpoints on the MCU clock, encoder counts,
safety inputs, floor codes, battery) and the vehicle's actions (:mod:`edge.amr.adapter_actions`:
pick, drop, charging).

Everything runs on the node's one asyncio loop; the VDA session's callbacks (paho's thread)
hand their facts over with ``call_soon_threadsafe``. The safety path keeps the runtime's
contract: an e-stop, a protective field or a lost MCU stops the wheels FIRST (the MCU has
already stopped them on its own inputs; the node sends its urgent stop and drops its plan),
then the cores learn of it, then it is reported.

Broker loss: nothing changes in the motion. VDA 5050 (6.2) has a vehicle that loses the
broker keep its order and fulfil it up to the last released node: the master control
reserved that base for this vehicle, so the vehicle drives it and stops at its last released
node (it cannot receive more). It keeps its state up to date, and on reconnection the session
publishes ``connection`` ONLINE and a full state (the session does it on every connect).
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
from collections import deque
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from edge.amr.config import AmrConfig
from edge.amr.drive import (
    DriveController,
    DriveParams,
    Leg,
    NodeReached,
    NodeTarget,
    PathDeviation,
)
from edge.amr.localisation import FloorCodeReading, Localiser, UncertaintyModel
from edge.amr.odometry import Odometry, Pose, WheelGeometry, arc_step
from edge.amr.order import Pose as VdaPose
from edge.amr.path import PathSegment, wrap_angle
from edge.amr.vehicle_state import (
    CancelAction,
    Command,
    Drive,
    EndAction,
    PauseAction,
    PublishFactsheet,
    PublishState,
    ResumeAction,
    SetPose,
    StartAction,
    Stop,
    VehicleCore,
)
from edge.runtime.machine import Machine, MachineContext, MachineError
from edge.safety.config import DeviceLossPolicy, SafetyConfig
from edge.safety.machine import (
    AllowDiverting,
    CancelAllStrokes,
    SafetyAction,
    StartBelt,
    StopBelt,
)

if TYPE_CHECKING:
    from edge.amr.adapter_actions import ActionRunner
    from edge.amr.adapter_floorcode import FloorCodeLine, FloorCodeReader
    from edge.amr.adapter_mcu import DriveMcu
    from edge.config.board import BoardBase
    from fleet_link.vda5050.client import VehicleClient
    from fleet_link.vda5050.models import InstantActions, Order

log = logging.getLogger("wolfpack.amr")

# How fast the localisation's bound grows between floor codes: a commissioned vehicle (wheel
# radii known to 0.1 %, trimmed online below) drifts well inside 0.5 % of distance and 0.2 deg
# per metre; one leg of 3-4 m stays within a 0.10 m bound, two legs with a code missed between
# them do not (the vehicle then stops with a localizationError, as it must).
UNCERTAINTY = UncertaintyModel(
    xy_per_m=0.005,
    xy_per_rad=0.01,
    theta_per_m=math.radians(0.2),
    theta_per_rad=0.01,
)
CALIBRATE_MIN_M = 1.0  # a code fix after this much straight travel trims the wheel ratio
CALIBRATE_MAX_TURN_RAD = 0.2
CALIBRATE_GAIN = 0.5
CALIBRATE_LIMIT = 0.02  # never trim the wheels' ratio by more than 2 %
NODE_CHECK_S = 0.5  # after a node, how long before its floor code must have been read
MOVING_M_S = 0.005  # wheels turning faster than this (either wheel) count as driving
STATE_REFRESH_S = 0.5  # the snapshot the session's 30 s timer publishes is this fresh


class AmrMachine(Machine):
    """One VDA 5050 vehicle (see the module docstring)."""

    kind = "amr"
    label = "vehicle"

    def __init__(self, board: BoardBase, ctx: MachineContext) -> None:
        cfg: AmrConfig | None = getattr(board, "amr", None)
        if cfg is None:
            raise MachineError("machine amr needs an 'amr:' section")
        if board.mqtt is None:
            raise MachineError("machine amr needs an 'mqtt:' section (the master's broker)")
        names = [m.name for m in board.mcus]
        if cfg.drive.mcu not in names:
            raise MachineError(
                f"amr.drive.mcu: {cfg.drive.mcu!r} is not in mcus ({', '.join(names) or 'none'})"
            )
        self.board = board
        self.cfg = cfg
        self.ctx = ctx
        g, lim = cfg.geometry, cfg.limits
        self.params = DriveParams(
            track_m=g.wheel_track_m,
            max_speed=lim.max_speed_m_s,
            max_accel=lim.max_accel_m_s2,
            max_decel=lim.max_decel_m_s2,
            max_angular_speed=lim.max_angular_speed_rad_s,
            max_angular_accel=lim.max_angular_accel_rad_s2,
            setpoint_lead_s=cfg.drive.lookahead_ms / 1000 / 2,
            setpoint_hold_s=cfg.drive.lookahead_ms / 1000,
        )
        self.core = VehicleCore(cfg)
        self.drive = DriveController(self.params)
        self.odometry = Odometry(
            WheelGeometry.from_wheels(g.wheel_track_m, g.wheel_radius_m, g.encoder_counts_per_rev)
        )
        self.localiser: Localiser | None = None  # once the first floor code (or initPosition)
        self.map_id = cfg.start_map
        self.mcu: DriveMcu | None = None
        self.actions: ActionRunner | None = None
        self.codes: FloorCodeReader | None = None
        if cfg.floor_codes.camera:
            from edge.amr.adapter_floorcode import FloorCodeReader

            try:
                self.codes = FloorCodeReader(cfg.floor_codes.camera, self._on_code_line)
            except ValueError as exc:
                raise MachineError(f"amr.floor_codes.camera: {exc}") from None
        self.vda: VehicleClient | None = None
        # the drive's legs: (edge sequenceId, end node id, end node sequenceId)
        self._legs: list[tuple[int, str, int]] = []
        self._order_id = ""
        self._running = False  # the runtime's safety state allows motion
        self._estop = False
        self._field = False
        self._mcu_up = False
        self._wheels = (0.0, 0.0)  # measured rim speeds m/s
        self._driving = False
        self._last_counts: tuple[int, int, int] | None = None  # clock, left, right
        self._state: dict[str, Any] = {}
        self._state_at = 0.0
        self._vis: tuple[dict[str, Any] | None, dict[str, Any] | None] = (None, None)
        self.charging_wanted = False
        # setpoints sent and not yet surely applied: (host time it applies, v, omega)
        self._sent: deque[tuple[float, float, float]] = deque(maxlen=64)
        self._counts_t = 0.0  # host time of the last wheel report
        self.wheel_trim = 0.0  # right/left radius ratio - 1, learnt from floor codes
        self._localisation_lost = False
        self._cal_distance = 0.0
        self._cal_turned = 0.0
        self.counters: dict[str, int] = {
            "orders": 0,
            "instant_actions": 0,
            "refused": 0,
            "states": 0,
            "nodes": 0,
            "floor_codes": 0,
            "setpoints": 0,
            "path_deviations": 0,
            "mcu_lost": 0,
            "nodes_uncertain": 0,
        }

    # ---- the runtime's interface ---------------------------------------------------------------
    @property
    def safety_config(self) -> SafetyConfig:
        return SafetyConfig(
            estop_stop_ms=self.cfg.safety.stop_ms,
            device_loss=DeviceLossPolicy(mcu="stop", camera="degrade", brain="degrade"),
        )

    @property
    def devices(self) -> frozenset[str]:
        return frozenset({"mcu"})

    async def open(self) -> None:
        from edge.amr.adapter_actions import ActionRunner
        from edge.amr.adapter_mcu import DriveMcu
        from fleet_link.vda5050.client import VehicleClient
        from fleet_link.vda5050.topics import VehicleTopics

        loop = asyncio.get_running_loop()
        mcu_cfg = next(m for m in self.board.mcus if m.name == self.cfg.drive.mcu)
        self.mcu = DriveMcu(mcu_cfg, self.cfg, self)
        self.actions = ActionRunner(self.cfg, loop, self._action_progress, self.mcu)
        v = self.cfg.vda5050
        assert self.board.mqtt is not None
        self.vda = VehicleClient(
            self.board.mqtt,
            VehicleTopics(v.interface_name, v.manufacturer, v.serial_number),
            _Session(self, loop),
            state_interval_s=v.state_interval_s,
            visualization_interval_s=v.visualization_interval_s,
        )
        self._refresh_state(time.monotonic())
        self.host.supervisor.start("drive-mcu", self.mcu.run)
        self.host.supervisor.start("drive", self._control_loop)
        if self.codes is not None:
            self.host.supervisor.start("floor-codes", self.codes.run)
        self.vda.start()

    async def make_safe(self) -> None:
        self.drive.clear()
        if self.mcu is not None:
            self.mcu.stop_now()
            await self.mcu.settle(0.5)

    async def close(self) -> None:
        if self.vda is not None:
            await asyncio.to_thread(self.vda.stop)
        if self.actions is not None:
            self.actions.close()
        if self.mcu is not None:
            await self.mcu.close()

    def act_on_safety(self, actions: Sequence[SafetyAction]) -> None:
        """Wheels first: the urgent stop leaves for the MCU before this returns."""
        for a in actions:
            if isinstance(a, StopBelt | CancelAllStrokes):
                if self.mcu is not None:
                    self.mcu.stop_now()
                self.drive.hold(f"safety: {getattr(a, 'cause', 'stop')}")
                self._running = False
            elif isinstance(a, StartBelt | AllowDiverting):
                self._running = True
                if not self._estop:
                    self.drive.release()

    def tick(self, now: float) -> None:
        if now - self._state_at >= STATE_REFRESH_S:
            self._refresh_state(now)

    def status(self) -> dict[str, Any]:
        return {"vehicle": self.health()}

    def health(self) -> dict[str, Any]:
        pose = self.localiser.pose if self.localiser else None
        return {
            "order": self.core.progress.order_id,
            "last_node": self.core.progress.last_node_id,
            "driving": self._driving,
            "estop": self._estop,
            "field": self._field,
            "pose": None
            if pose is None
            else [round(pose.x, 3), round(pose.y, 3), round(pose.theta, 3)],
            "vda_connected": bool(self.vda and self.vda.connected),
        }

    def state_extra(self, health: dict[str, Any]) -> dict[str, Any]:
        return {"vehicle": health}

    def final_counters(self) -> dict[str, Any]:
        return {**dict(self.host.counters), **self.counters}

    # ---- facts from the VDA 5050 session (on the loop) ----------------------------------------
    def on_order(self, order: Order) -> None:
        self.counters["orders"] += 1
        self._carry_out(self.core.order_received(order))

    def on_instant_actions(self, message: InstantActions) -> None:
        self.counters["instant_actions"] += 1
        self._carry_out(self.core.instant_actions(message))

    def on_refused(self, topic: str, reason: str, detail: str, header_id: int | None) -> None:
        self.counters["refused"] += 1
        self._carry_out(self.core.message_refused(topic, reason, detail, header_id))

    # ---- facts from the drive MCU (on the loop) -------------------------------------------------
    def on_mcu_link(self, up: bool, why: str) -> None:
        """The drive MCU came up or went away (unplugged, reset, silent)."""
        now = time.monotonic()
        self._mcu_up = up
        if up:
            self.host.apply_safety(self.host.safety.device_up("mcu", now))
            self._carry_out(self.core.clear_error("mcu"))
        else:
            self.counters["mcu_lost"] += 1
            self._last_counts = None
            self.drive.hold("drive MCU lost")
            self.host.apply_safety(self.host.safety.device_lost("mcu", why, now))
            self._carry_out(
                self.core.raise_error(
                    "mcu",
                    "driveMcuLost",
                    "FATAL",
                    f"drive MCU lost: {why}",
                    hint="check the drive MCU's cable; reset on the vehicle",
                )
            )

    def on_inputs(self, estop: bool, field_violated: bool) -> None:
        """The safety inputs as the MCU reads them (it has already stopped the wheels)."""
        now = time.monotonic()
        changed_estop = estop != self._estop
        self._estop, self._field = estop, field_violated
        if estop or field_violated:
            self.drive.hold("e-stop" if estop else "protective field")
        if changed_estop:
            self.host.apply_safety(self.host.safety.estop(estop, now))
        self._carry_out(self.core.safety(estop, field_violated))
        if not estop and not field_violated and self._running:
            self.drive.release()

    def on_counts(self, clock: int, left: int, right: int, host_t: float) -> None:
        """Wheel encoder counts (absolute) at MCU ``clock``, received at ``host_t``."""
        prev = self._last_counts
        self._counts_t = host_t
        self._last_counts = (clock, left, right)
        try:
            odom = self.odometry.update(left, right)
        except ValueError as exc:
            log.warning("%s", exc)
            return
        if prev is not None and clock != prev[0]:
            per = self.odometry.geometry
            dt = (clock - prev[0]) / self.mcu_clock_hz
            if dt > 0:
                self._wheels = (
                    (left - prev[1]) * per.left_m_per_count / dt,
                    (right - prev[2]) * per.right_m_per_count / dt,
                )
        if self.localiser is not None:
            self.localiser.on_odometry(clock, odom)

    def on_floor_code(self, reading: FloorCodeReading, code_pose: Pose | None) -> None:
        """A floor code read under the vehicle; ``code_pose``: its map pose when the code
        itself says (the first fix needs it); else looked up in the localiser's table."""
        self.counters["floor_codes"] += 1
        if self.localiser is None:
            if code_pose is None:
                return
            seen = Pose(reading.dx, reading.dy, reading.dtheta)
            start = code_pose.compose(seen.inverse())
            self.localiser = Localiser({reading.code: code_pose}, start, UNCERTAINTY)
            self.localiser.on_odometry(reading.clock, self.odometry.pose)
            self.localiser.init_position(start)
            log.info(
                "position from floor code %s: %.3f %.3f %.1f deg",
                reading.code,
                start.x,
                start.y,
                math.degrees(start.theta),
            )
            return
        if code_pose is not None and reading.code not in self.localiser.codes:
            self.localiser.codes[reading.code] = code_pose
        before = self.localiser.pose
        err = self.localiser.on_code(reading)
        jump = math.dist((before.x, before.y), (self.localiser.pose.x, self.localiser.pose.y))
        if jump > 0.05:
            log.info("floor code %s moved the pose %.0f mm", reading.code, jump * 1000)
        if err is not None:
            log.warning("%s", err.message)
            return
        if self._localisation_lost:
            self._localisation_lost = False
            self._carry_out(self.core.clear_error("localization_node"))
        self._calibrate(wrap_angle(self.localiser.pose.theta - before.theta))

    def _calibrate(self, heading_fix: float) -> None:
        """Trim the wheels' radius ratio from the heading a floor code corrected after
        straight travel: on a straight line the heading drifts by d * (er - el) / track, so
        the fix says how much the right wheel's true radius exceeds the left's."""
        odo = self.odometry
        d = odo.distance_m - self._cal_distance
        turned = odo.turned_rad - self._cal_turned
        self._cal_distance, self._cal_turned = odo.distance_m, odo.turned_rad
        if d < CALIBRATE_MIN_M or turned > CALIBRATE_MAX_TURN_RAD:
            return
        g = self.cfg.geometry
        seen = heading_fix * g.wheel_track_m / d
        self.wheel_trim = max(
            -CALIBRATE_LIMIT, min(CALIBRATE_LIMIT, self.wheel_trim + CALIBRATE_GAIN * seen)
        )
        base = WheelGeometry.from_wheels(
            g.wheel_track_m, g.wheel_radius_m, g.encoder_counts_per_rev
        )
        odo.geometry = WheelGeometry(
            base.track_m,
            base.left_m_per_count * (1 - self.wheel_trim / 2),
            base.right_m_per_count * (1 + self.wheel_trim / 2),
        )

    def _on_code_line(self, line: FloorCodeLine) -> None:
        self.on_floor_code(line.reading, line.code_pose)

    def on_battery(self, percent: float, charging: bool, voltage: float | None = None) -> None:
        if self.actions is not None:
            self.actions.battery(percent, charging)
        self._carry_out(self.core.battery(percent, charging, voltage))

    def charging_requested(self, on: bool) -> None:
        """startCharging / stopCharging asked for the charging contacts."""
        self.charging_wanted = on

    @property
    def mcu_clock_hz(self) -> float:
        return self.mcu.clock_hz if self.mcu is not None else 1e6

    # ---- the control loop ---------------------------------------------------------------------
    async def _control_loop(self) -> None:
        period = self.cfg.drive.setpoint_period_ms / 1000
        nxt = time.monotonic()
        while True:
            nxt += period
            delay = nxt - time.monotonic()
            if delay < -period:  # a late loop: skip the missed steps, do not race
                nxt = time.monotonic()
                delay = 0.0
            await asyncio.sleep(max(0.0, delay))
            self.step(time.monotonic())

    def step(self, now: float) -> None:
        """One control step: pose, the drive core, the wheel setpoint, the cores' facts."""
        loc = self.localiser
        if loc is None:
            if self.mcu is not None and self._mcu_up:
                self.mcu.hold_still(now)
            return
        pose = loc.pose
        moving = max(abs(self._wheels[0]), abs(self._wheels[1])) > MOVING_M_S
        if moving != self._driving:
            self._driving = moving
            self.host.apply_safety(self.host.safety.belt(moving, now))
            self._carry_out(self.core.driving_changed(moving))
        v = (self._wheels[0] + self._wheels[1]) / 2
        w = (self._wheels[1] - self._wheels[0]) / self.cfg.geometry.wheel_track_m
        self._carry_out(
            self.core.position(
                VdaPose(pose.x, pose.y, pose.theta, self.map_id),
                velocity=(v, 0.0, w),
                localization_score=1.0 if loc.state.xy_bound < 0.05 else 0.5,
                deviation_range=round(loc.state.xy_bound, 4),
                distance_since_last_node=None,
            )
        )
        out = self.drive.step(
            now, self._predict(pose, now + self.params.setpoint_lead_s), self._field
        )
        for ev in out.events:
            log.debug("drive event %s", ev)
            if isinstance(ev, NodeReached):
                self._node_reached(ev)
            elif isinstance(ev, PathDeviation):
                log.warning("%s", ev.message)
                self.counters["path_deviations"] += 1
                self._carry_out(
                    self.core.raise_error(
                        "drive",
                        "pathDeviation",
                        "FATAL",
                        ev.message,
                        (("edgeId", ev.edge_id),),
                        hint="move the vehicle onto its path; send initPosition",
                    )
                )
        if self.mcu is not None and self._mcu_up and self._running and not self._estop:
            self.mcu.set_wheels(out.setpoint)
            self._sent.append((out.setpoint.at, out.v, out.omega))
            self.counters["setpoints"] += 1
        self._vis = (self.core.agv_position(), self.core.velocity_wire())

    def _predict(self, pose: Pose, until: float) -> Pose:
        """The pose when this step's setpoint applies: the measured pose (at the last wheel
        report) carried forward by the setpoints already on their way to the wheels. The
        MCU applies setpoints ``setpoint_lead_s`` after they are computed; without this the
        drive would steer on a pose that lags its commands by that much (overshoot at stop
        nodes, oscillating turns in place)."""
        t = self._counts_t
        if t <= 0.0 or until <= t:
            return pose
        track = self.cfg.geometry.wheel_track_m
        v = (self._wheels[0] + self._wheels[1]) / 2
        w = (self._wheels[1] - self._wheels[0]) / track
        while self._sent and self._sent[0][0] <= t - 1.0:
            self._sent.popleft()
        for at, cv, cw in self._sent:
            if at <= t:
                continue  # already applied: in the measured pose and speeds
            if at >= until:
                break
            pose = arc_step(
                pose, (v - w * track / 2) * (at - t), (v + w * track / 2) * (at - t), track
            )
            t, v, w = at, cv, cw
        dt = until - t
        return arc_step(pose, (v - w * track / 2) * dt, (v + w * track / 2) * dt, track)

    def _node_reached(self, ev: NodeReached) -> None:
        if not self._legs or self._legs[0][1] != ev.node_id:
            return
        allowed = self.drive.legs[0].end.allowed_xy if self.drive.legs else None
        _, node_id, seq = self._legs.pop(0)
        self.counters["nodes"] += 1
        self._carry_out(self.core.node_reached(node_id, seq))
        if allowed is not None and self.host.loop is not None:
            # the drive steers ahead of the wheels (the predicted pose) and the code under
            # the node is read as the vehicle crosses it: judge the position a moment later
            self.host.loop.call_later(NODE_CHECK_S, self._check_node_position, node_id, allowed)

    def _check_node_position(self, node_id: str, allowed: float) -> None:
        """At a node the position must be known within the node's allowedDeviationXY."""
        loc = self.localiser
        if loc is None or loc.state.xy_bound <= allowed or self._localisation_lost:
            return
        self.counters["nodes_uncertain"] += 1
        self._localisation_lost = True
        log.warning(
            "node %s passed with the position known to +-%.0f mm (allowed %.0f)",
            node_id,
            loc.state.xy_bound * 1000,
            allowed * 1000,
        )
        self._carry_out(
            self.core.raise_error(
                "localization_node",
                "localizationError",
                "FATAL",
                f"at node {node_id} the position is known to +-{loc.state.xy_bound * 1000:.0f} "
                f"mm only (allowed {allowed * 1000:.0f} mm): a floor code was missed",
                (("nodeId", node_id),),
                hint="drive the vehicle onto a floor code, or send initPosition",
            )
        )

    # ---- commands of the vehicle core ---------------------------------------------------------
    def _carry_out(self, commands: list[Command]) -> None:
        """The core's commands in its order: the drive first, reports last."""
        publish = False
        for c in commands:
            if isinstance(c, Drive):
                self._drive(c)
            elif isinstance(c, Stop):
                self._stop(c.reason)
            elif isinstance(c, SetPose):
                self._set_pose(c)
            elif isinstance(c, StartAction | CancelAction | PauseAction | ResumeAction | EndAction):
                if self.actions is not None:
                    self.actions.command(c)
            elif isinstance(c, PublishState):
                publish = True
            elif isinstance(c, PublishFactsheet) and self.vda is not None:
                self.vda.publish_factsheet()
        if publish:
            self._refresh_state(time.monotonic())
            if self.vda is not None and self.vda.connected:
                self.vda.publish_state()
                self.counters["states"] += 1

    def _drive(self, d: Drive) -> None:
        """A Drive replaces the route before it (the drive keeps its progress on the edge it
        is on when that edge stays first)."""
        same = bool(self._legs and d.steps and self._legs[0][0] == d.steps[0].edge.sequence_id)
        self._order_id = d.order_id
        self._legs = [(s.edge.sequence_id, s.node.node_id, s.node.sequence_id) for s in d.steps]
        self.drive.replace_legs([self._leg(s.edge, s.node) for s in d.steps])
        if self.drive.legs and not same and self.localiser is not None:
            # the vehicle may be part-way along the first edge (after a pause or a stop)
            seg = self.drive.legs[0].segment
            p = self.localiser.pose
            self.drive.s = seg.project((p.x, p.y), 0.0, window=seg.length + 1.0)[0]
        if self._running and not self._estop and not self._field:
            self.drive.release()

    def _leg(self, edge: Any, node: Any) -> Leg:
        start = self._node_xy(edge.start_node_id)
        pos = node.position
        end = (pos.x, pos.y) if pos is not None else self._node_xy(node.node_id)
        trajectory = getattr(edge, "trajectory", None)
        segment = PathSegment.from_vda(
            start, end, trajectory.to_json() if trajectory is not None else None
        )
        d = self.cfg.deviation
        target = NodeTarget(
            node.node_id,
            end[0],
            end[1],
            None if pos is None else pos.theta,
            d.default_xy_m
            if pos is None or pos.allowed_deviation_xy is None
            else pos.allowed_deviation_xy,
            d.default_theta_rad
            if pos is None or pos.allowed_deviation_theta is None
            else pos.allowed_deviation_theta,
        )
        return Leg(edge.edge_id, segment, target, edge.max_speed)

    def _node_xy(self, node_id: str) -> tuple[float, float]:
        """A node's position from the order the core holds (or the last node passed)."""
        p = self.core.progress
        for n in p.nodes:
            if n.node_id == node_id and n.position is not None:
                return (n.position.x, n.position.y)
        for leg in self.drive.legs:
            if leg.end.node_id == node_id:
                return (leg.end.x, leg.end.y)
        if self.localiser is not None:
            pose = self.localiser.pose
            return (pose.x, pose.y)
        raise MachineError(f"node {node_id!r} has no position")

    def _stop(self, reason: str) -> None:
        log.info("stop: %s", reason)
        self.drive.replace_legs([])
        self._legs = []

    def _set_pose(self, c: SetPose) -> None:
        pose = Pose(c.pose.x, c.pose.y, c.pose.theta)
        self.map_id = c.pose.map_id
        if self.localiser is None:
            self.localiser = Localiser({}, pose, UNCERTAINTY)
            self.localiser.on_odometry(
                self._last_counts[0] if self._last_counts else 0, self.odometry.pose
            )
        self.localiser.init_position(pose)

    def _action_progress(self, action_id: str, status: str, result: str | None) -> None:
        self._carry_out(self.core.action_progress(action_id, status, result))  # type: ignore[arg-type]

    # ---- state for the session's threads -------------------------------------------------------
    def _refresh_state(self, now: float) -> None:
        self._state = self.core.state_body()
        self._state_at = now

    def state_body(self) -> dict[str, Any]:
        return self._state

    def visualization_body(self) -> tuple[dict[str, Any] | None, dict[str, Any] | None]:
        return self._vis

    def factsheet_body(self) -> dict[str, Any]:
        return self.core.factsheet_body()


class _Session:
    """The VDA 5050 session's handler: its callbacks come on paho's thread and are handed to
    the loop; state and visualization are snapshots built on the loop."""

    def __init__(self, machine: AmrMachine, loop: asyncio.AbstractEventLoop) -> None:
        self.m = machine
        self.loop = loop

    def on_order(self, order: Order) -> None:
        self.loop.call_soon_threadsafe(self.m.on_order, order)

    def on_instant_actions(self, message: InstantActions) -> None:
        self.loop.call_soon_threadsafe(self.m.on_instant_actions, message)

    def on_refused(self, topic: str, reason: str, message: str, header_id: int | None) -> None:
        self.loop.call_soon_threadsafe(self.m.on_refused, topic, reason, message, header_id)

    def on_connection(self, connected: bool) -> None:
        log.info("VDA 5050 session %s", "connected" if connected else "lost")

    def state_body(self) -> dict[str, Any]:
        return self.m.state_body()

    def visualization_body(self) -> tuple[dict[str, Any] | None, dict[str, Any] | None]:
        return self.m.visualization_body()

    def factsheet_body(self) -> dict[str, Any]:
        return self.m.factsheet_body()


def create_machine(board: BoardBase, ctx: MachineContext) -> AmrMachine:
    """The registry's factory for ``machine: amr``."""
    return AmrMachine(board, ctx)
