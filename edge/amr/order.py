"""Orders as VDA 5050 2.1 defines them: validation, acceptance of new orders and updates
(section 6.6.2, figure 8), and the progress of the order the vehicle holds.

Pure: an order and facts in, a decision and the remaining nodes and edges out. The vehicle
core (:mod:`edge.amr.vehicle_state`) turns decisions into actions and the state message.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Literal

from fleet_link.vda5050.models import Action, Edge, Node, Order

# Error types the standard names (6.6.4) and this vehicle reports.
VALIDATION_ERROR = "validationError"  # malformed message (schema, limits, addressee)
ORDER_ERROR = "orderError"  # an order it cannot take (structure, map, actions, position)
ORDER_UPDATE_ERROR = "orderUpdateError"  # a stale update or one that does not stitch
NO_ORDER_TO_CANCEL = "noOrderToCancel"

Reference = tuple[str, str]


@dataclass(frozen=True)
class Rejection:
    """Why an order is refused: the standard's error type, a one-line description, and the
    references the standard's best practice asks for (7.1)."""

    error_type: str
    description: str
    references: tuple[Reference, ...] = ()


@dataclass(frozen=True)
class Pose:
    x: float
    y: float
    theta: float
    map_id: str


def order_references(order: Order, *extra: Reference) -> tuple[Reference, ...]:
    return (
        ("headerId", str(order.header.header_id)),
        ("topic", "order"),
        ("orderId", order.order_id),
        ("orderUpdateId", str(order.order_update_id)),
        *extra,
    )


def check_structure(
    order: Order,
    knows_map: Callable[[str], bool],
    action_supported: Callable[[Action, Literal["NODE", "EDGE"]], str | None],
) -> Rejection | None:
    """Checks on the order alone: nodes and edges alternate with consecutive sequenceIds and
    matching node ids, the base is a released prefix (an unreleased element is followed only
    by unreleased ones) and a released edge has both its nodes released, the first node is
    released, every map is known, action ids are
    unique and every action is one this vehicle can run where it is placed."""

    def reject(error_type: str, text: str, *refs: Reference) -> Rejection:
        return Rejection(error_type, text, order_references(order, *refs))

    nodes, edges = order.nodes, order.edges
    if not nodes:
        return reject(ORDER_ERROR, "the order has no nodes")
    if len(edges) != len(nodes) - 1:
        return reject(
            ORDER_ERROR, f"{len(nodes)} nodes need {len(nodes) - 1} edges, got {len(edges)}"
        )
    for i, edge in enumerate(edges):
        before, after = nodes[i], nodes[i + 1]
        if edge.sequence_id != before.sequence_id + 1 or after.sequence_id != edge.sequence_id + 1:
            return reject(
                ORDER_ERROR,
                f"sequenceIds must alternate node, edge, node by 1: node {before.node_id} "
                f"{before.sequence_id}, edge {edge.edge_id} {edge.sequence_id}, "
                f"node {after.node_id} {after.sequence_id}",
                ("edgeId", edge.edge_id),
            )
        if edge.start_node_id != before.node_id or edge.end_node_id != after.node_id:
            return reject(
                ORDER_ERROR,
                f"edge {edge.edge_id} goes {edge.start_node_id} -> {edge.end_node_id}, but "
                f"lies between nodes {before.node_id} and {after.node_id}",
                ("edgeId", edge.edge_id),
            )
    if not nodes[0].released:
        return reject(
            ORDER_ERROR, "the first node is not released (an order needs a base)",
            ("nodeId", nodes[0].node_id),
        )  # fmt: skip
    for i, edge in enumerate(edges):
        if edge.released and not nodes[i + 1].released:
            return reject(
                ORDER_ERROR,
                f"edge {edge.edge_id} is released but its end node {nodes[i + 1].node_id} is "
                "not (an edge is released only with both its nodes)",
                ("edgeId", edge.edge_id),
            )
    chain: list[Node | Edge] = [nodes[0]]
    for i, edge in enumerate(edges):
        chain += [edge, nodes[i + 1]]
    horizon = False
    for element in chain:
        if not element.released:
            horizon = True
        elif horizon:
            key, ident = _ident(element)
            return reject(
                ORDER_ERROR, f"released {key[:-2]} {ident} follows an unreleased one", (key, ident)
            )
    seen: set[str] = set()
    for element in chain:
        key, ident = _ident(element)
        if isinstance(element, Node) and element.position is not None:
            if not knows_map(element.position.map_id):
                return reject(
                    ORDER_ERROR,
                    f"node {ident} is on map {element.position.map_id!r}, which this vehicle "
                    "does not know",
                    ("nodeId", ident),
                    ("mapId", element.position.map_id),
                )
        scope: Literal["NODE", "EDGE"] = "NODE" if isinstance(element, Node) else "EDGE"
        for action in element.actions:
            if action.action_id in seen:
                return reject(
                    ORDER_ERROR, f"actionId {action.action_id} is used twice",
                    ("actionId", action.action_id),
                )  # fmt: skip
            seen.add(action.action_id)
            problem = action_supported(action, scope)
            if problem is not None:
                return reject(
                    ORDER_ERROR,
                    f"action {action.action_id} ({action.action_type}) on {key[:-2]} {ident}: "
                    f"{problem}",
                    (key, ident),
                    ("actionId", action.action_id),
                    ("actionType", action.action_type),
                )
    return None


def _ident(element: Node | Edge) -> tuple[str, str]:
    if isinstance(element, Node):
        return "nodeId", element.node_id
    return "edgeId", element.edge_id


def angle_diff(a: float, b: float) -> float:
    """|a - b| wrapped to [0, pi]."""
    d = (a - b) % (2 * math.pi)
    return min(d, 2 * math.pi - d)


def within_node(
    node: Node, pose: Pose | None, default_xy: float, default_theta: float, last_node_id: str
) -> bool:
    """Is the vehicle on ``node``: in its deviation range, or (a node without a position)
    the node it last traversed."""
    pos = node.position
    if pos is None:
        return node.node_id == last_node_id
    if pose is None or pose.map_id != pos.map_id:
        return False
    xy = pos.allowed_deviation_xy if pos.allowed_deviation_xy is not None else default_xy
    if math.hypot(pose.x - pos.x, pose.y - pos.y) > xy:
        return False
    if pos.theta is not None:
        th = pos.allowed_deviation_theta if pos.allowed_deviation_theta else default_theta
        if angle_diff(pose.theta, pos.theta) > abs(th):
            return False
    return True


@dataclass
class Progress:
    """The order the vehicle holds: what remains to traverse and where it stands.

    ``nodes``/``edges`` are the nodeStates/edgeStates: everything not yet traversed, base and
    horizon. ``decision_point`` is the last released node (the stitching node of the next
    update), kept after it was traversed.
    """

    order_id: str = ""
    order_update_id: int = 0
    zone_set_id: str | None = None
    nodes: list[Node] = field(default_factory=list)
    edges: list[Edge] = field(default_factory=list)
    last_node_id: str = ""
    last_node_sequence_id: int = 0
    decision_point: tuple[str, int] | None = None
    cancelled: bool = False

    @property
    def active(self) -> bool:
        return bool(self.nodes)

    @property
    def has_horizon(self) -> bool:
        return any(not n.released for n in self.nodes)

    def released_nodes(self) -> list[Node]:
        return [n for n in self.nodes if n.released]

    def next_node(self) -> Node | None:
        return self.nodes[0] if self.nodes else None

    def edge_to(self, node: Node) -> Edge | None:
        for edge in self.edges:
            if edge.sequence_id == node.sequence_id - 1:
                return edge
        return None

    def start(self, order: Order) -> Node:
        """Take a new order whose first node the vehicle stands on; that node is traversed
        at once (returned, so its actions can be triggered)."""
        self.order_id = order.order_id
        self.order_update_id = order.order_update_id
        self.zone_set_id = order.zone_set_id
        self.nodes = list(order.nodes)
        self.edges = list(order.edges)
        self.cancelled = False
        self._set_decision_point()
        return self.traverse_next()

    def stitch(self, order: Order) -> None:
        """Append an accepted update: the horizon is replaced, the stitching node (the first
        of the update, equal to the decision point) keeps what the earlier message said."""
        self.order_update_id = order.order_update_id
        self.zone_set_id = order.zone_set_id
        self.nodes = [n for n in self.nodes if n.released]
        self.edges = [e for e in self.edges if e.released]
        self.nodes += list(order.nodes[1:])
        self.edges += list(order.edges)
        self.cancelled = False
        self._set_decision_point()

    def traverse_next(self) -> Node:
        """The next node is reached: drop it and the edge leading to it."""
        node = self.nodes.pop(0)
        self.edges = [e for e in self.edges if e.sequence_id > node.sequence_id]
        self.last_node_id = node.node_id
        self.last_node_sequence_id = node.sequence_id
        return node

    def cancel(self) -> None:
        """cancelOrder: nodeStates and edgeStates go, orderId and orderUpdateId stay."""
        self.nodes = []
        self.edges = []
        self.decision_point = None
        self.cancelled = True

    def _set_decision_point(self) -> None:
        released = [n for n in self.nodes if n.released]
        if released:
            last = released[-1]
            self.decision_point = (last.node_id, last.sequence_id)


Verdict = Literal["new", "update", "discard", "reject"]


@dataclass(frozen=True)
class Decision:
    verdict: Verdict
    rejection: Rejection | None = None


def decide(
    order: Order,
    progress: Progress,
    busy: bool,
    pose: Pose | None,
    default_xy: float,
    default_theta: float,
) -> Decision:
    """Figure 8 of the standard, steps 2-8 (step 1, the structure, is :func:`check_structure`).

    ``busy``: the vehicle still executes an order or waits for an update (nodeStates not
    empty, or an order action neither FINISHED nor FAILED).
    """

    def reject(error_type: str, text: str, *refs: Reference) -> Decision:
        return Decision("reject", Rejection(error_type, text, order_references(order, *refs)))

    first = order.nodes[0]
    if order.order_id != progress.order_id or not progress.order_id:
        if busy:
            return reject(
                ORDER_ERROR,
                f"still executing order {progress.order_id!r}: a new order must wait until it "
                "is finished or cancelled",
            )
        if not within_node(first, pose, default_xy, default_theta, progress.last_node_id):
            return reject(
                ORDER_ERROR,
                f"the vehicle is not on the first node {first.node_id} (outside its deviation "
                "range, or its map is not the vehicle's)",
                ("nodeId", first.node_id),
            )
        return Decision("new")
    if order.order_update_id < progress.order_update_id:
        return reject(
            ORDER_UPDATE_ERROR,
            f"orderUpdateId {order.order_update_id} is older than the current "
            f"{progress.order_update_id}",
        )
    if order.order_update_id == progress.order_update_id:
        return Decision("discard")
    if progress.cancelled:
        return reject(
            ORDER_UPDATE_ERROR,
            f"order {progress.order_id!r} was cancelled; send a new order",
        )
    stitch = (first.node_id, first.sequence_id)
    if busy:
        if stitch != progress.decision_point:
            want = progress.decision_point
            return reject(
                ORDER_UPDATE_ERROR,
                f"the update starts at {first.node_id}/{first.sequence_id}, not at the "
                f"decision point {want[0] if want else '-'}/{want[1] if want else '-'}",
                ("nodeId", first.node_id),
            )
        return Decision("update")
    if stitch != (progress.last_node_id, progress.last_node_sequence_id):
        return reject(
            ORDER_UPDATE_ERROR,
            f"the update starts at {first.node_id}/{first.sequence_id}, not at the last "
            f"traversed node {progress.last_node_id}/{progress.last_node_sequence_id}",
            ("nodeId", first.node_id),
        )
    return Decision("update")
