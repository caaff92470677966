"""The local routing table: config rules on label pattern, class and size, then reject.

Total by construction: every parcel gets exactly one chute and a reason, so the cell can
always decide on its own when the brain is late, offline or wrong.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from edge.cell.config import CellConfig, RoutingRule

Size = tuple[float, float, float]  # length, width, height in mm


@dataclass(frozen=True)
class Route:
    chute: str
    rule: int | None  # index of the rule that matched; None = the reject fallback
    reason: str


class RoutingTable:
    def __init__(self, cfg: CellConfig) -> None:
        self.reject = cfg.reject.id
        self.rules = list(cfg.routing)
        self._patterns = [re.compile(r.label) if r.label is not None else None for r in self.rules]

    def route(self, label: str | None, class_name: str | None, size: Size | None) -> Route:
        if label is None:
            return Route(self.reject, None, "label unreadable")
        for i, rule in enumerate(self.rules):
            if self._matches(i, rule, label, class_name, size):
                return Route(rule.chute, i, f"routing rule {i}")
        return Route(self.reject, None, "no routing rule matched")

    def _matches(
        self, i: int, rule: RoutingRule, label: str, class_name: str | None, size: Size | None
    ) -> bool:
        pattern = self._patterns[i]
        if pattern is not None and not pattern.fullmatch(label):
            return False
        if rule.classes is not None and class_name not in rule.classes:
            return False
        limits = (rule.min_length_mm, rule.max_length_mm, rule.max_width_mm, rule.max_height_mm)
        if all(v is None for v in limits):
            return True
        if size is None:
            return False  # a size rule cannot match a parcel that was not measured
        length, width, height = size
        return not (
            (rule.min_length_mm is not None and length < rule.min_length_mm)
            or (rule.max_length_mm is not None and length > rule.max_length_mm)
            or (rule.max_width_mm is not None and width > rule.max_width_mm)
            or (rule.max_height_mm is not None and height > rule.max_height_mm)
        )
