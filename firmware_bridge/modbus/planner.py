"""Merge a device's tags into the fewest read requests.

Greedy, per table, in address order: a request grows while the next tag ends within the
per-request limit and starts at most ``max_gap`` unused addresses after the covered ones.
For covering sorted ranges with bounded-length requests, taking each request as far as it
can go is optimal, so the number of requests is the minimum the limits allow.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from firmware_bridge.modbus.datatypes import Table


@dataclass(frozen=True, slots=True)
class Span:
    """What the planner needs of a tag: where it lives and how many addresses it takes."""

    name: str
    table: Table
    address: int
    count: int

    @property
    def end(self) -> int:
        """One past the last address."""
        return self.address + self.count


@dataclass(frozen=True, slots=True)
class ReadRequest:
    table: Table
    address: int
    count: int
    tags: tuple[Span, ...]

    @property
    def end(self) -> int:
        return self.address + self.count


_TABLE_ORDER = (Table.COIL, Table.DISCRETE_INPUT, Table.HOLDING_REGISTER, Table.INPUT_REGISTER)


def plan_reads(
    spans: Iterable[Span], max_registers: int = 125, max_bits: int = 2000, max_gap: int = 0
) -> list[ReadRequest]:
    """Return read requests covering every span, none crossing tables or limits."""
    by_table: dict[Table, list[Span]] = {}
    for span in spans:
        by_table.setdefault(span.table, []).append(span)
    requests: list[ReadRequest] = []
    for table in _TABLE_ORDER:
        members = sorted(by_table.get(table, ()), key=lambda s: (s.address, s.end))
        limit = min(max_bits if table.is_bits else max_registers, table.max_read_count)
        start = end = -1
        group: list[Span] = []
        for span in members:
            if span.count > limit:
                raise ValueError(f"tag {span.name!r} ({span.count}) exceeds {limit} per request")
            if group and span.address - end <= max_gap and max(end, span.end) - start <= limit:
                end = max(end, span.end)
                group.append(span)
                continue
            if group:
                requests.append(ReadRequest(table, start, end - start, tuple(group)))
            start, end, group = span.address, span.end, [span]
        if group:
            requests.append(ReadRequest(table, start, end - start, tuple(group)))
    return requests
