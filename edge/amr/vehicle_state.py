"""The VDA 5050 vehicle core: facts in, actions out, the state message on demand.

Facts: an order or instant actions received (already decoded and schema-checked), a message
refused by the decoder, the pose, a node reached, whether the wheels turn, an action's
progress reported by the vehicle, the safety inputs, the battery, the operating mode.
Actions (:data:`Command`): drive along these released edges, stop, start / cancel / pause /
resume / end an action on the vehicle, set the pose, publish the state or the factsheet.

No I/O and no clock: the node (``edge/amr/node.py``) feeds facts from the drive MCU, the
floor-code reader and the VDA 5050 client, and carries out the commands, the drive first.

What a :class:`Drive` means for the drive: the complete list of edges (with their end nodes)
the vehicle may drive now, from the edge it is on or is about to enter; each Drive replaces
the one before. The drive stops at the end node of the last step (a decision point, a node
with blocking actions, or a node before an edge with blocking actions) and reports each
node it reaches with :meth:`VehicleCore.node_reached`. A :class:`Stop` means stop now.

Broker loss changes nothing here: the standard (6.2) says a vehicle that loses the broker
"keeps all the order information and fulfills the order up to the last released node", so
the core keeps driving the base it holds; it cannot receive more.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Literal

from edge.amr.actions import (
    STATUSES,
    ActionBook,
    ActionRecord,
    Site,
    Status,
    can_move,
    groups,
)
from edge.amr.config import AmrConfig
from edge.amr.order import (
    NO_ORDER_TO_CANCEL,
    ORDER_ERROR,
    VALIDATION_ERROR,
    Pose,
    Progress,
    Rejection,
    check_structure,
    decide,
    order_references,
)
from fleet_link.vda5050.codec import DEFAULT_LIMITS
from fleet_link.vda5050.models import Action, Edge, InstantActions, Node, Order

OperatingMode = Literal["AUTOMATIC", "SEMIAUTOMATIC", "MANUAL", "SERVICE", "TEACHIN"]
OPERATING_MODES: tuple[OperatingMode, ...] = (
    "AUTOMATIC", "SEMIAUTOMATIC", "MANUAL", "SERVICE", "TEACHIN",
)  # fmt: skip
_MASTER_IN_CONTROL = ("AUTOMATIC", "SEMIAUTOMATIC")

# error types of this vehicle besides the standard's (edge.amr.order)
EMERGENCY_STOP = "emergencyStop"
FIELD_VIOLATION = "fieldViolation"
BATTERY_LOW = "batteryLow"
BATTERY_CRITICAL = "batteryCritical"
ACTION_ERROR = "actionError"  # an instant action refused or failed
LOCALISATION_ERROR = "localizationError"
_KEEP_ACTION_ERRORS = 10  # actionErrors of refused instant actions kept in the state

# ---- actions out ------------------------------------------------------------------------


@dataclass(frozen=True)
class RouteStep:
    edge: Edge
    node: Node  # the edge's end node


@dataclass(frozen=True)
class Drive:
    order_id: str
    steps: tuple[RouteStep, ...]


@dataclass(frozen=True)
class Stop:
    reason: str


@dataclass(frozen=True)
class StartAction:
    """Run ``action`` on the vehicle (pick, drop, charging, ...); report its progress with
    :meth:`VehicleCore.action_progress`."""

    action: Action
    scope: Literal["NODE", "EDGE", "INSTANT"]
    owner_id: str | None


@dataclass(frozen=True)
class CancelAction:
    """Interrupt it if possible; report FAILED (or FINISHED if it could not be interrupted)."""

    action_id: str


@dataclass(frozen=True)
class PauseAction:
    action_id: str


@dataclass(frozen=True)
class ResumeAction:
    action_id: str


@dataclass(frozen=True)
class EndAction:
    """The edge it ran on was left: end it and report FINISHED."""

    action_id: str


@dataclass(frozen=True)
class SetPose:
    pose: Pose
    last_node_id: str


@dataclass(frozen=True)
class PublishState:
    pass


@dataclass(frozen=True)
class PublishFactsheet:
    pass


Command = (
    Drive | Stop | StartAction | CancelAction | PauseAction | ResumeAction | EndAction
    | SetPose | PublishState | PublishFactsheet
)  # fmt: skip

# Actions this vehicle runs and where (factsheet agvActions; anything else is refused).
VEHICLE_ACTIONS: dict[str, tuple[str, ...]] = {
    "pick": ("NODE", "EDGE"),
    "drop": ("NODE", "EDGE"),
    "waitForTrigger": ("NODE",),
    "finePositioning": ("NODE", "EDGE"),
    "detectObject": ("NODE", "EDGE"),
    "startCharging": ("INSTANT", "NODE"),
    "stopCharging": ("INSTANT", "NODE"),
}
CORE_INSTANT = ("startPause", "stopPause", "cancelOrder", "stateRequest", "factsheetRequest")
REQUIRED_PARAMS: dict[str, tuple[str, ...]] = {
    "pick": ("stationType", "loadType"),
    "initPosition": ("x", "y", "theta", "mapId", "lastNodeId"),
}


def action_supported(action: Action, scope: str) -> str | None:
    """None if this vehicle can run ``action`` in ``scope``, else why not."""
    if action.action_type == "initPosition":
        scopes: tuple[str, ...] = ("INSTANT", "NODE")
    elif action.action_type in CORE_INSTANT:
        scopes = ("INSTANT",)
    else:
        found = VEHICLE_ACTIONS.get(action.action_type)
        if found is None:
            return "this vehicle has no such action"
        scopes = found
    if scope not in scopes:
        return f"allowed only as {' / '.join(scopes)} action"
    missing = [k for k in REQUIRED_PARAMS.get(action.action_type, ()) if action.param(k) is None]
    if missing:
        return f"missing parameter(s) {', '.join(missing)}"
    return None


@dataclass
class _Error:
    error_type: str
    level: Literal["WARNING", "FATAL"]
    description: str
    references: tuple[tuple[str, str], ...] = ()
    hint: str | None = None

    def wire(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "errorType": self.error_type,
            "errorLevel": self.level,
            "errorDescription": self.description,
            "errorReferences": [
                {"referenceKey": k, "referenceValue": v} for k, v in self.references
            ],
        }
        if self.hint:
            out["errorHint"] = self.hint
        return out


class VehicleCore:
    """One vehicle's protocol state. Every fact method returns the commands to carry out,
    in order (a stop before its report; at most one PublishState, last)."""

    def __init__(self, cfg: AmrConfig) -> None:
        self.cfg = cfg
        self.progress = Progress()
        self.actions = ActionBook()
        self.pose: Pose | None = None
        self.position_initialized = False
        self.localization_score: float | None = None
        self.deviation_range: float | None = None
        self.velocity: tuple[float, float, float] | None = None
        self.driving = False
        self.paused = False
        self.operating_mode: OperatingMode = "AUTOMATIC"
        self.estop: Literal["AUTOACK", "MANUAL", "REMOTE", "NONE"] = "NONE"
        self.field_violation = False
        self.battery_charge = 100.0
        self.battery_voltage: float | None = None
        self.battery_health: float | None = None
        self.charging = False
        self.reach: float | None = None
        self.loads: list[dict[str, Any]] = []
        self.errors: dict[str, _Error] = {}
        self.distance_since_last_node: float | None = None
        self._site: Site | None = None
        self._entered_edge: int | None = None  # sequenceId of the edge the vehicle is on
        self._issued: tuple[int, ...] = ()  # edge sequenceIds of the last Drive
        self._cancel: ActionRecord | None = None  # a cancelOrder in progress
        self._pause_requests: list[ActionRecord] = []  # startPause waiting for standstill
        self._out: list[Command] = []
        self._dirty = False

    # ---- facts -------------------------------------------------------------------------

    def order_received(self, order: Order) -> list[Command]:
        """An order (new or update) from the master control."""
        rejection = self._check_order(order)
        if rejection is None:
            verdict = decide(
                order,
                self.progress,
                self._busy(),
                self._pose_for_check(),
                self.cfg.deviation.first_node_xy_m,
                self.cfg.deviation.first_node_theta_rad,
            )
            rejection = verdict.rejection
            if verdict.verdict == "discard":
                return self._flush()
            if verdict.verdict == "new":
                self._accept_new(order)
            elif verdict.verdict == "update":
                rejection = self._update_conflict(order)
                if rejection is None:
                    self._accept_update(order)
        if rejection is not None:
            self._set_error("order", rejection.error_type, "WARNING", rejection.description,
                            rejection.references)  # fmt: skip
        self._dirty = True
        return self._flush()

    def message_refused(
        self, topic: str, reason: str, detail: str, header_id: int | None
    ) -> list[Command]:
        """The decoder refused a message on ``order``/``instantActions`` (6.6.4.1): a
        validationError until an order is accepted; the order held is not touched."""
        refs: list[tuple[str, str]] = [("topic", topic)]
        if header_id is not None:
            refs.insert(0, ("headerId", str(header_id)))
        self._set_error(
            "order", VALIDATION_ERROR, "WARNING", f"{reason}: {detail}"[:500], tuple(refs)
        )
        self._dirty = True
        return self._flush()

    def instant_actions(self, message: InstantActions) -> list[Command]:
        for action in message.actions:
            self._instant(action, message.header.header_id)
        self._update_motion()
        return self._flush()

    def position(
        self,
        pose: Pose,
        *,
        initialized: bool = True,
        velocity: tuple[float, float, float] | None = None,
        localization_score: float | None = None,
        deviation_range: float | None = None,
        distance_since_last_node: float | None = None,
    ) -> list[Command]:
        """The localisation's pose (frequent; published with visualization and state, not a
        reason for a state message by itself). An uncertainty beyond the configured maximum
        is a FATAL localizationError and holds the vehicle."""
        self.pose = pose
        if initialized != self.position_initialized:
            self._dirty = True
        self.position_initialized = initialized
        self.velocity = velocity
        self.localization_score = localization_score
        self.deviation_range = deviation_range
        self.distance_since_last_node = distance_since_last_node
        lost = (
            deviation_range is not None and deviation_range > self.cfg.deviation.max_uncertainty_m
        )
        if lost and "localization" not in self.errors:
            self._set_error(
                "localization", LOCALISATION_ERROR, "FATAL",
                f"position uncertainty {deviation_range:.3f} m exceeds "
                f"{self.cfg.deviation.max_uncertainty_m} m (floor codes missed?)",
                hint="drive the vehicle onto a floor code by hand, or send initPosition",
            )  # fmt: skip
            self._update_motion()
        elif not lost and "localization" in self.errors:
            self._clear_error("localization")
            self._update_motion()
        return self._flush()

    def node_reached(self, node_id: str, sequence_id: int) -> list[Command]:
        """The drive reports the control point within the node's deviation range."""
        nxt = self.progress.next_node()
        if nxt is None or (nxt.node_id, nxt.sequence_id) != (node_id, sequence_id):
            return self._flush()  # not the node we expect: stale report, ignored
        if not nxt.released:
            return self._flush()
        left = self._entered_edge
        node = self.progress.traverse_next()
        self._entered_edge = None
        self._issued = tuple(s for s in self._issued if s > node.sequence_id)
        if left is not None:
            for rec in self.actions.owned_by("EDGE", left):
                if rec.started and not rec.terminal:
                    self._out.append(EndAction(rec.action_id))
                elif not rec.started and not rec.terminal:
                    rec.status, rec.result = "FAILED", "edge left before it could start"
        if self._cancel is None:
            self._trigger_site("NODE", node.sequence_id, node.node_id)
        self._dirty = True
        self._update_motion()
        return self._flush()

    def driving_changed(self, driving: bool) -> list[Command]:
        """Whether the wheels turn (from the drive's encoders, not from our commands)."""
        if driving != self.driving:
            self.driving = driving
            self._dirty = True
        if not driving:
            for rec in self._pause_requests:
                self._finish(rec, "FINISHED")
            self._pause_requests = []
            self._maybe_finish_cancel()
        return self._flush()

    def action_progress(
        self, action_id: str, status: Status, result: str | None = None
    ) -> list[Command]:
        """The vehicle reports the state of an action it was asked to run (StartAction);
        reports on other actions and illegal transitions (figure 16) are ignored."""
        rec = self.actions.get(action_id)
        if rec is None or not rec.started or status not in STATUSES:
            return self._flush()  # not an action the vehicle runs now: a stale report
        if not can_move(rec.status, status):
            return self._flush()
        if status != rec.status or result != rec.result:
            rec.status = status
            rec.result = result
            self._dirty = True
        if status == "FINISHED":
            self._apply_effect(rec)
        self._advance_site()
        self._maybe_finish_cancel()
        self._update_motion()
        return self._flush()

    def safety(
        self,
        estop: bool,
        field_violation: bool,
        estop_kind: Literal["AUTOACK", "MANUAL", "REMOTE"] = "MANUAL",
    ) -> list[Command]:
        """Safety inputs (already acted on by the drive MCU): e-stop and protective field
        hold the vehicle; both are reported (safetyState and errors). ``estop_kind`` is how
        the e-stop is acknowledged: MANUAL (on the vehicle), REMOTE (a facility e-stop),
        AUTOACK (a bumper; clears itself)."""
        new_estop: Literal["AUTOACK", "MANUAL", "REMOTE", "NONE"] = estop_kind if estop else "NONE"
        if new_estop != self.estop or field_violation != self.field_violation:
            self._dirty = True
        if estop or field_violation:
            self._out.append(Stop("e-stop" if estop else "protective field"))
            self._issued = ()
        self.estop = new_estop
        self.field_violation = field_violation
        if estop:
            hint = {"MANUAL": "release the e-stop on the vehicle",
                    "REMOTE": "release and acknowledge the facility e-stop",
                    "AUTOACK": "clear what the bumper touched"}[estop_kind]  # fmt: skip
            level: Literal["WARNING", "FATAL"] = "WARNING" if estop_kind == "AUTOACK" else "FATAL"
            self._set_error("estop", EMERGENCY_STOP, level,
                            f"e-stop ({estop_kind})", hint=hint)  # fmt: skip
        else:
            self._clear_error("estop")
        if field_violation:
            self._set_error("field", FIELD_VIOLATION, "WARNING",
                            "an object is in the protective field")  # fmt: skip
        else:
            self._clear_error("field")
        self._update_motion()
        return self._flush()

    def battery(
        self,
        charge_percent: float,
        charging: bool,
        voltage: float | None = None,
        health: float | None = None,
        reach_m: float | None = None,
    ) -> list[Command]:
        charge = min(100.0, max(0.0, charge_percent))
        if charging != self.charging:
            self._dirty = True
        self.battery_charge, self.charging = charge, charging
        self.battery_voltage, self.battery_health, self.reach = voltage, health, reach_m
        low, critical = self.cfg.battery.low_percent, self.cfg.battery.critical_percent
        if charge < critical:
            self._clear_error("battery_low")
            self._set_error("battery", BATTERY_CRITICAL, "FATAL",
                            f"battery at {charge:.0f} % (critical below {critical:.0f} %)",
                            hint="send the vehicle to a charger or charge it by hand")  # fmt: skip
        elif charge < low:
            self._clear_error("battery")
            self._set_error("battery_low", BATTERY_LOW, "WARNING",
                            f"battery at {charge:.0f} % (low below {low:.0f} %)")  # fmt: skip
        else:
            self._clear_error("battery")
            self._clear_error("battery_low")
        return self._flush()

    def set_operating_mode(self, mode: OperatingMode) -> list[Command]:
        if mode not in OPERATING_MODES:
            raise ValueError(f"unknown operating mode {mode!r}")
        if mode != self.operating_mode:
            self.operating_mode = mode
            self._dirty = True
            self._update_motion()
        return self._flush()

    def raise_error(
        self,
        key: str,
        error_type: str,
        level: Literal["WARNING", "FATAL"],
        description: str,
        references: tuple[tuple[str, str], ...] = (),
        hint: str | None = None,
    ) -> list[Command]:
        """An error of the vehicle itself (drive MCU lost, ...); FATAL ones hold it."""
        self._set_error(key, error_type, level, description, references, hint)
        self._update_motion()
        return self._flush()

    def clear_error(self, key: str) -> list[Command]:
        self._clear_error(key)
        self._update_motion()
        return self._flush()

    # ---- the state message ----------------------------------------------------------------

    def state_body(self) -> dict[str, Any]:
        """The ``state`` message without its header (2.1.0 schema)."""
        p = self.progress
        body: dict[str, Any] = {
            "maps": [
                {"mapId": m.id, "mapVersion": m.version, "mapStatus": "ENABLED"}
                | ({"mapDescription": m.description} if m.description else {})
                for m in self.cfg.maps
            ],
            "orderId": p.order_id,
            "orderUpdateId": p.order_update_id,
            "lastNodeId": p.last_node_id,
            "lastNodeSequenceId": p.last_node_sequence_id,
            "driving": self.driving,
            "paused": self.paused,
            "newBaseRequest": self._new_base_request(),
            "operatingMode": self.operating_mode,
            "nodeStates": [_node_state(n) for n in p.nodes],
            "edgeStates": [_edge_state(e) for e in p.edges],
            "loads": [dict(load) for load in self.loads],
            "actionStates": self.actions.wire(),
            "batteryState": self._battery_wire(),
            "errors": [e.wire() for e in self.errors.values()],
            "information": [],
            "safetyState": {"eStop": self.estop, "fieldViolation": self.field_violation},
        }
        if p.zone_set_id is not None:
            body["zoneSetId"] = p.zone_set_id
        if self.distance_since_last_node is not None:
            body["distanceSinceLastNode"] = self.distance_since_last_node
        position = self.agv_position()
        if position is not None:
            body["agvPosition"] = position
        if self.velocity is not None:
            body["velocity"] = self.velocity_wire()
        return body

    def agv_position(self) -> dict[str, Any] | None:
        if self.pose is None:
            return None
        out: dict[str, Any] = {
            "x": self.pose.x,
            "y": self.pose.y,
            "theta": _wrap(self.pose.theta),
            "mapId": self.pose.map_id,
            "positionInitialized": self.position_initialized,
        }
        if self.localization_score is not None:
            out["localizationScore"] = min(1.0, max(0.0, self.localization_score))
        if self.deviation_range is not None:
            out["deviationRange"] = self.deviation_range
        return out

    def velocity_wire(self) -> dict[str, float] | None:
        if self.velocity is None:
            return None
        vx, vy, omega = self.velocity
        return {"vx": vx, "vy": vy, "omega": omega}

    def factsheet_body(self) -> dict[str, Any]:
        """The factsheet without its header, from the config."""
        c = self.cfg
        g = c.geometry
        agv_actions: list[dict[str, Any]] = [
            {"actionType": t, "actionScopes": list(s)} for t, s in VEHICLE_ACTIONS.items()
        ]
        agv_actions += [{"actionType": t, "actionScopes": ["INSTANT"]} for t in CORE_INSTANT]
        agv_actions.append({"actionType": "initPosition", "actionScopes": ["INSTANT", "NODE"]})
        wheel_y = g.wheel_track_m / 2
        wheel = {"type": "DRIVE", "isActiveDriven": True, "isActiveSteered": False,
                 "diameter": 2 * g.wheel_radius_m, "width": 0.05}  # fmt: skip
        return {
            "typeSpecification": {
                "seriesName": c.factsheet.series_name,
                "seriesDescription": c.factsheet.series_description,
                "agvKinematic": "DIFF",
                "agvClass": c.factsheet.agv_class,
                "maxLoadMass": c.limits.max_load_kg,
                "localizationTypes": ["DMC"],
                "navigationTypes": ["VIRTUAL_LINE_GUIDED"],
            },
            "physicalParameters": {
                "speedMin": 0.0,
                "speedMax": c.limits.max_speed_m_s,
                "accelerationMax": c.limits.max_accel_m_s2,
                "decelerationMax": c.limits.max_decel_m_s2,
                "heightMin": g.height_m,
                "heightMax": g.height_m,
                "width": g.width_m,
                "length": g.length_m,
            },
            "protocolLimits": DEFAULT_LIMITS.to_factsheet(),
            "protocolFeatures": {
                "optionalParameters": [
                    {
                        "parameter": "order.nodes.nodePosition.allowedDeviationXY",
                        "support": "SUPPORTED",
                    },
                    {
                        "parameter": "order.nodes.nodePosition.allowedDeviationTheta",
                        "support": "SUPPORTED",
                    },
                    {"parameter": "order.edges.maxSpeed", "support": "SUPPORTED"},
                    {"parameter": "order.edges.trajectory", "support": "SUPPORTED"},
                ],
                "agvActions": agv_actions,
            },
            "agvGeometry": {
                "wheelDefinitions": [
                    wheel | {"position": {"x": 0.0, "y": wheel_y, "theta": 0.0}},
                    wheel | {"position": {"x": 0.0, "y": -wheel_y, "theta": 0.0}},
                ],
                "envelopes2d": [
                    {
                        "set": "default",
                        "polygonPoints": [
                            {"x": sx * g.length_m / 2, "y": sy * g.width_m / 2}
                            for sx, sy in ((1, 1), (-1, 1), (-1, -1), (1, -1))
                        ],
                    }
                ],
            },
            "loadSpecification": {
                "loadPositions": ["top"],
                "loadSets": [
                    {
                        "setName": f"{t.lower()}-set",
                        "loadType": t,
                        "maxWeight": c.limits.max_load_kg,
                    }
                    for t in c.factsheet.load_types
                ],
            },
        }

    # ---- internals -----------------------------------------------------------------------

    def _flush(self) -> list[Command]:
        out = self._out
        self._out = []
        if self._dirty:
            out.append(PublishState())
            self._dirty = False
        return out

    def _pose_for_check(self) -> Pose | None:
        return self.pose if self.position_initialized else None

    def _busy(self) -> bool:
        if self.progress.active:
            return True
        return any(not r.terminal for r in self.actions.of_order())

    def _check_order(self, order: Order) -> Rejection | None:
        if self.operating_mode not in _MASTER_IN_CONTROL:
            return Rejection(ORDER_ERROR, f"operating mode {self.operating_mode}: the master "
                             "control is not in control", order_references(order))  # fmt: skip
        if "battery" in self.errors and not self.charging:
            return Rejection(ORDER_ERROR, "the battery is critical: charge it first",
                             order_references(order))  # fmt: skip
        return check_structure(order, self.cfg.knows_map, action_supported)

    def _accept_new(self, order: Order) -> None:
        self._clear_error("order")
        self._clear_error("cancel")
        for key in [k for k in self.errors if k.startswith("instant:")]:
            self._clear_error(key)
        self.actions.drop_order_actions()
        self._site = None
        self._entered_edge = None
        self._issued = ()
        self._register_actions(order.nodes, order.edges)
        first = self.progress.start(order)
        self._trigger_site("NODE", first.sequence_id, first.node_id)
        self._update_motion()

    def _update_conflict(self, order: Order) -> Rejection | None:
        """An update may not reuse an actionId the vehicle already has, except those of the
        horizon it replaces (never triggered)."""
        horizon = {n.sequence_id for n in self.progress.nodes if not n.released}
        horizon |= {e.sequence_id for e in self.progress.edges if not e.released}
        for element in (*order.nodes[1:], *order.edges):
            for a in element.actions:
                old = self.actions.get(a.action_id)
                if old is None:
                    continue
                if (
                    old.scope != "INSTANT"
                    and not old.triggered
                    and (old.owner_sequence_id in horizon)
                ):
                    continue
                return Rejection(
                    ORDER_ERROR,
                    f"actionId {a.action_id} is already used by this vehicle",
                    order_references(order, ("actionId", a.action_id)),
                )
        return None

    def _accept_update(self, order: Order) -> None:
        self._clear_error("order")
        horizon = {n.sequence_id for n in self.progress.nodes if not n.released}
        horizon |= {e.sequence_id for e in self.progress.edges if not e.released}
        self.actions.drop_untriggered(horizon)
        self.progress.stitch(order)
        self._register_actions(order.nodes[1:], order.edges)
        self._update_motion()

    def _register_actions(self, nodes: tuple[Node, ...], edges: tuple[Edge, ...]) -> None:
        for node in nodes:
            for a in node.actions:
                self.actions.add(ActionRecord(a, "NODE", node.sequence_id, node.node_id))
        for edge in edges:
            for a in edge.actions:
                self.actions.add(ActionRecord(a, "EDGE", edge.sequence_id, edge.edge_id))

    def _trigger_site(self, kind: Literal["NODE", "EDGE"], seq: int, owner: str) -> None:
        recs = [r for r in self.actions.owned_by(kind, seq) if r.status == "WAITING"]
        for rec in recs:
            rec.triggered = True
        self._site = Site(kind, seq, pending=groups(recs))
        self._advance_site()

    def _advance_site(self) -> None:
        site = self._site
        if site is None or self.paused:
            return
        while True:
            group = site.next_group()
            if group is None:
                return
            for rec in group:
                self._start(rec)

    def _start(self, rec: ActionRecord) -> None:
        if rec.action.action_type == "initPosition":
            self._init_position(rec)
            return
        rec.started = True
        self._out.append(StartAction(rec.action, rec.scope, rec.owner_id))

    def _finish(self, rec: ActionRecord, status: Status, result: str | None = None) -> None:
        rec.status = status
        if result is not None:
            rec.result = result
        self._dirty = True

    def _apply_effect(self, rec: ActionRecord) -> None:
        """Linked states of finished actions (6.8.1): loads for pick and drop."""
        a = rec.action
        if a.action_type == "pick":
            load: dict[str, Any] = {"loadType": str(a.param("loadType"))}
            if a.param("loadId") is not None:
                load["loadId"] = str(a.param("loadId"))
            if a.param("lhd") is not None:
                load["loadPosition"] = str(a.param("lhd"))
            self.loads.append(load)
            self._dirty = True
        elif a.action_type == "drop" and self.loads:
            load_id = a.param("loadId")
            idx = next(
                (i for i, ld in enumerate(self.loads) if ld.get("loadId") == load_id),
                len(self.loads) - 1,
            )
            self.loads.pop(idx)
            self._dirty = True

    def _instant(self, action: Action, header_id: int) -> None:
        if action.action_id in self.actions:
            return  # sent again (the master did not see our state yet): once is enough
        rec = ActionRecord(action, "INSTANT", triggered=True)
        self.actions.add(rec)
        self._dirty = True
        problem = action_supported(action, "INSTANT")
        refs = (("headerId", str(header_id)), ("topic", "instantActions"),
                ("actionId", action.action_id))  # fmt: skip
        if problem is not None:
            self._finish(rec, "FAILED", problem)
            old = [k for k in self.errors if k.startswith("instant:")]
            for key in old[: max(0, len(old) - _KEEP_ACTION_ERRORS + 1)]:
                self._clear_error(key)  # the oldest go; their actionStates still say FAILED
            self._set_error(f"instant:{action.action_id}", ACTION_ERROR, "WARNING",
                            f"{action.action_type}: {problem}", refs)  # fmt: skip
            return
        kind = action.action_type
        if kind == "stateRequest":
            self._finish(rec, "FINISHED")
        elif kind == "factsheetRequest":
            self._finish(rec, "FINISHED")
            self._out.append(PublishFactsheet())
        elif kind == "startPause":
            self._start_pause(rec)
        elif kind == "stopPause":
            self._stop_pause(rec)
        elif kind == "cancelOrder":
            self._cancel_order(rec, refs)
        elif kind == "initPosition":
            self._init_position(rec)
        else:
            self._start(rec)

    def _start_pause(self, rec: ActionRecord) -> None:
        if not self.paused:
            self.paused = True
            for other in self.actions.all():
                if other.started and other.status in ("RUNNING", "INITIALIZING"):
                    other.status = "PAUSED"
                    self._out.append(PauseAction(other.action_id))
        self._out.append(Stop("paused"))
        self._issued = ()
        if self.driving:
            rec.status = "RUNNING"
            self._pause_requests.append(rec)
        else:
            self._finish(rec, "FINISHED")

    def _stop_pause(self, rec: ActionRecord) -> None:
        if self.paused:
            self.paused = False
            for other in self.actions.all():
                if other.status == "PAUSED" and other is not rec:
                    other.status = "RUNNING"
                    self._out.append(ResumeAction(other.action_id))
            for pending in self._pause_requests:
                self._finish(pending, "FAILED", "cancelled by stopPause")
            self._pause_requests = []
            self._advance_site()
        self._finish(rec, "FINISHED")

    def _cancel_order(self, rec: ActionRecord, refs: tuple[tuple[str, str], ...]) -> None:
        if self._cancel is not None:
            self._finish(rec, "FAILED", "a cancelOrder is already in progress")
            return
        if self.progress.cancelled or not self._busy():
            self._finish(rec, "FAILED", "no order to cancel")
            self._set_error("cancel", NO_ORDER_TO_CANCEL, "WARNING",
                            "cancelOrder received, but the vehicle has no order", refs)  # fmt: skip
            return
        for other in self.actions.of_order():
            if other.terminal:
                continue
            if other.started:
                self._out.append(CancelAction(other.action_id))
            else:
                self._finish(other, "FAILED", "order cancelled")
        self._site = None
        self._out.append(Stop("order cancelled"))
        self._issued = ()
        rec.status = "RUNNING"
        self._cancel = rec
        self._maybe_finish_cancel()

    def _maybe_finish_cancel(self) -> None:
        rec = self._cancel
        if rec is None or self.driving:
            return
        if any(not r.terminal for r in self.actions.of_order()):
            return
        self.progress.cancel()
        self._entered_edge = None
        self._cancel = None
        self._finish(rec, "FINISHED")

    def _init_position(self, rec: ActionRecord) -> None:
        a = rec.action
        try:
            x, y, theta = float(a.param("x")), float(a.param("y")), float(a.param("theta"))
            map_id, last = str(a.param("mapId")), str(a.param("lastNodeId"))
            if not all(math.isfinite(v) for v in (x, y, theta)):
                raise ValueError("not finite")
        except (TypeError, ValueError):
            self._finish(rec, "FAILED", "x, y, theta must be numbers")
            return
        if not self.cfg.knows_map(map_id):
            self._finish(rec, "FAILED", f"unknown map {map_id!r}")
            return
        if rec.scope == "INSTANT" and (self.driving or self.progress.active):
            self._finish(rec, "FAILED", "not while an order runs or the vehicle drives")
            return
        self.pose = Pose(x, y, theta, map_id)
        self.position_initialized = True
        if rec.scope == "INSTANT":
            self.progress.last_node_id = last
            self.progress.last_node_sequence_id = 0
        self._clear_error("localization")
        rec.started = True
        self._out.append(SetPose(self.pose, last))
        self._finish(rec, "FINISHED")
        self._advance_site()

    def _holds(self) -> list[str]:
        holds = []
        if self.estop != "NONE":
            holds.append("e-stop")
        if self.field_violation:
            holds.append("protective field")
        if self.paused:
            holds.append("paused")
        if self._cancel is not None:
            holds.append("order cancelled")
        if self.operating_mode not in _MASTER_IN_CONTROL:
            holds.append(f"operating mode {self.operating_mode}")
        if any(e.level == "FATAL" for e in self.errors.values()):
            holds.append("fatal error")
        if any(r.holds_vehicle for r in self.actions.all()):
            holds.append("blocking action")
        return holds

    def _update_motion(self) -> None:
        """Drive what may be driven now, or stop; enter the next edge when leaving a node."""
        for _ in range(3):  # entering an edge may add a hold (its blocking actions)
            holds = self._holds()
            steps = () if holds else self._route()
            if steps and self._entered_edge != steps[0].edge.sequence_id:
                edge = steps[0].edge
                self._entered_edge = edge.sequence_id
                self._trigger_site("EDGE", edge.sequence_id, edge.edge_id)
                continue
            break
        key = tuple(s.edge.sequence_id for s in steps)
        if key == self._issued:
            return
        if steps:
            self._out.append(Drive(self.progress.order_id, steps))
        elif self._issued:
            self._out.append(Stop(", ".join(holds) if holds else "end of the released route"))
        self._issued = key

    def _route(self) -> tuple[RouteStep, ...]:
        p = self.progress
        steps: list[RouteStep] = []
        nodes = p.nodes
        for i, node in enumerate(nodes):
            edge = p.edge_to(node)
            if edge is None or not edge.released or not node.released:
                break
            if i > 0 and _blocks(edge.actions):
                break  # stop before an edge with blocking actions
            steps.append(RouteStep(edge, node))
            if _blocks(node.actions):
                break
        return tuple(steps)

    def _new_base_request(self) -> bool:
        return self.progress.has_horizon and len(self.progress.released_nodes()) <= 1

    def _battery_wire(self) -> dict[str, Any]:
        out: dict[str, Any] = {"batteryCharge": self.battery_charge, "charging": self.charging}
        if self.battery_voltage is not None:
            out["batteryVoltage"] = self.battery_voltage
        if self.battery_health is not None:
            out["batteryHealth"] = min(100, max(0, round(self.battery_health)))
        if self.reach is not None:
            out["reach"] = max(0, round(self.reach))
        return out

    def _set_error(
        self,
        key: str,
        error_type: str,
        level: Literal["WARNING", "FATAL"],
        description: str,
        references: tuple[tuple[str, str], ...] = (),
        hint: str | None = None,
    ) -> None:
        new = _Error(error_type, level, description, references, hint)
        if self.errors.get(key) != new:
            self.errors[key] = new
            self._dirty = True

    def _clear_error(self, key: str) -> None:
        if self.errors.pop(key, None) is not None:
            self._dirty = True


def _blocks(actions: tuple[Action, ...]) -> bool:
    return any(a.blocking_type in ("SOFT", "HARD") for a in actions)


def _wrap(theta: float) -> float:
    return math.atan2(math.sin(theta), math.cos(theta))


def _node_state(node: Node) -> dict[str, Any]:
    out: dict[str, Any] = {
        "nodeId": node.node_id,
        "sequenceId": node.sequence_id,
        "released": node.released,
    }
    if node.description is not None:
        out["nodeDescription"] = node.description
    if node.position is not None:
        pos: dict[str, Any] = {"x": node.position.x, "y": node.position.y,
                               "mapId": node.position.map_id}  # fmt: skip
        if node.position.theta is not None:
            pos["theta"] = node.position.theta
        out["nodePosition"] = pos
    return out


def _edge_state(edge: Edge) -> dict[str, Any]:
    out: dict[str, Any] = {
        "edgeId": edge.edge_id,
        "sequenceId": edge.sequence_id,
        "released": edge.released,
    }
    if edge.description is not None:
        out["edgeDescription"] = edge.description
    if edge.trajectory is not None:
        out["trajectory"] = edge.trajectory.to_json()
    return out
