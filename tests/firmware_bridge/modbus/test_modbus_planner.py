"""The read planner covers every tag, exceeds no limit, crosses no table, reads no extra."""

from __future__ import annotations

import functools
import itertools

import pytest
from hypothesis import given
from hypothesis import strategies as st

from firmware_bridge.modbus.datatypes import Table
from firmware_bridge.modbus.planner import ReadRequest, Span, plan_reads


@st.composite
def tag_sets(draw):
    n = draw(st.integers(1, 40))
    spans = []
    for i in range(n):
        table = draw(st.sampled_from(list(Table)))
        count = 1 if table.is_bits else draw(st.sampled_from([1, 1, 2, 2, 4, 8, 20]))
        address = draw(st.integers(0, 400 if table.is_bits else 300))
        spans.append(Span(f"t{i}", table, address, count))
    return spans


limits = st.tuples(
    st.integers(20, 125),  # max registers (>= the longest tag above)
    st.integers(1, 2000),  # max bits
    st.integers(0, 30),  # max gap
)


def _check(spans: list[Span], plan: list[ReadRequest], max_regs: int, max_bits: int, gap: int):
    for req in plan:
        limit = max_bits if req.table.is_bits else max_regs
        assert 1 <= req.count <= min(limit, req.table.max_read_count)
        assert 0 <= req.address and req.end <= 65536
        for span in req.tags:
            assert span.table is req.table, "a request crossed tables"
            assert req.address <= span.address and span.end <= req.end
    covered = {span.name for req in plan for span in req.tags}
    assert covered == {s.name for s in spans}, "a tag was not covered"
    # Every address a request reads is a tag's, or in a gap of at most `gap` addresses
    # between tag addresses of the same request.
    for req in plan:
        used = sorted({a for s in req.tags for a in range(s.address, s.end)})
        assert used[0] == req.address and used[-1] == req.end - 1
        for before, after in itertools.pairwise(used):
            assert after - before - 1 <= gap, f"read {after - before - 1} unused addresses"


@given(spans=tag_sets(), lim=limits)
def test_plan_covers_every_tag_within_limits_and_tables(spans, lim):
    max_regs, max_bits, gap = lim
    plan = plan_reads(spans, max_regs, max_bits, gap)
    _check(spans, plan, max_regs, max_bits, gap)


def _min_requests(points: list[tuple[int, int]], limit: int, gap: int) -> int:
    """Brute force over where each request starts, for comparison with the greedy plan."""
    points = sorted(points)

    @functools.cache
    def best(i: int) -> int:
        if i == len(points):
            return 0
        start, end = points[i]
        result = 1 + best(i + 1)
        j = i + 1
        while j < len(points):
            nxt_start, nxt_end = points[j]
            if nxt_start - end > gap or max(end, nxt_end) - start > limit:
                break
            end = max(end, nxt_end)
            j += 1
            result = min(result, 1 + best(j))
        return result

    return best(0)


@given(
    addresses=st.lists(st.tuples(st.integers(0, 200), st.sampled_from([1, 2, 4])), max_size=15),
    limit=st.integers(4, 30),
    gap=st.integers(0, 10),
)
def test_plan_uses_the_fewest_requests(addresses, limit, gap):
    spans = [Span(f"t{i}", Table.HOLDING_REGISTER, a, c) for i, (a, c) in enumerate(addresses)]
    plan = plan_reads(spans, limit, 2000, gap)
    points = [(a, a + c) for a, c in addresses]
    assert len(plan) == _min_requests(points, limit, gap)


def test_contiguous_registers_become_one_request():
    spans = [Span(f"r{i}", Table.HOLDING_REGISTER, 100 + 2 * i, 2) for i in range(50)]
    plan = plan_reads(spans)
    assert [(r.address, r.count) for r in plan] == [(100, 100)]


def test_the_125_register_limit_splits_requests():
    spans = [Span(f"r{i}", Table.INPUT_REGISTER, i, 1) for i in range(300)]
    plan = plan_reads(spans)
    assert [(r.address, r.count) for r in plan] == [(0, 125), (125, 125), (250, 50)]


def test_gaps_are_filled_only_up_to_max_gap():
    spans = [Span("a", Table.HOLDING_REGISTER, 0, 1), Span("b", Table.HOLDING_REGISTER, 4, 1)]
    assert len(plan_reads(spans, max_gap=2)) == 2
    assert [(r.address, r.count) for r in plan_reads(spans, max_gap=3)] == [(0, 5)]


def test_tables_are_never_merged():
    spans = [Span("c", Table.COIL, 0, 1), Span("d", Table.DISCRETE_INPUT, 1, 1)]
    assert [r.table for r in plan_reads(spans, max_gap=10)] == [Table.COIL, Table.DISCRETE_INPUT]


def test_a_tag_longer_than_the_limit_is_refused():
    with pytest.raises(ValueError, match="exceeds 10"):
        plan_reads([Span("s", Table.HOLDING_REGISTER, 0, 20)], max_registers=10)
