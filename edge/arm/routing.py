"""The arm's local routing table: the diverter line's rules and matching, reused as they
are (edge/cell/routing.py), with 'pass' (left on the belt) in place of the reject chute."""

from __future__ import annotations

import re

from edge.arm.config import ArmConfig
from edge.cell.routing import RoutingTable


class ArmRouting(RoutingTable):
    """First matching rule wins; no label or no match: ``cfg.pass_id``."""

    def __init__(self, cfg: ArmConfig) -> None:  # the parent reads a CellConfig
        self.reject = cfg.pass_id
        self.rules = list(cfg.routing)
        self._patterns = [re.compile(r.label) if r.label is not None else None for r in self.rules]
