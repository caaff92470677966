"""Routing rules are total and ordered; stroke plans are never in the past or too close."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from edge.cell.divert import StrokePlan, TooLate, count_at, plan_stroke, position_mm
from edge.cell.routing import RoutingTable
from tests.edge.cell.helpers import make_cfg

RULES = [
    {"chute": "b", "min_length_mm": 800},
    {"chute": "a", "label": "A-.*", "classes": ["box", "polybag"]},
    {"chute": "b", "label": "A-.*", "max_height_mm": 300},
    {"chute": "a", "classes": ["envelope"], "max_width_mm": 400},
]


def table() -> RoutingTable:
    return RoutingTable(make_cfg(routing=RULES))


def test_first_matching_rule_wins_and_reason_names_it():
    t = table()
    assert t.route("A-1", "box", (300, 200, 100)).chute == "a"
    assert t.route("A-1", "box", (900, 200, 100)).rule == 0  # oversize first
    route = t.route("A-1", "irregular", (300, 200, 100))
    assert (route.chute, route.rule, route.reason) == ("b", 2, "routing rule 2")
    assert t.route("X-9", "envelope", (300, 200, 5)).chute == "a"


def test_unmeasured_parcel_never_matches_a_size_rule():
    t = table()
    assert t.route("A-1", "irregular", None).chute == "reject"
    assert t.route("X-1", "envelope", None).reason == "no routing rule matched"


def test_no_label_goes_to_reject_as_unreadable():
    route = table().route(None, "box", (300, 200, 100))
    assert (route.chute, route.rule, route.reason) == ("reject", None, "label unreadable")


@given(
    label=st.one_of(st.none(), st.text(max_size=12)),
    class_name=st.one_of(st.none(), st.sampled_from(["box", "polybag", "envelope", "irregular"])),
    size=st.one_of(
        st.none(),
        st.tuples(*[st.floats(0, 3000, allow_nan=False)] * 3),
    ),
)
def test_routing_is_total(label, class_name, size):
    route = table().route(label, class_name, size)
    assert route.chute in {"a", "b", "reject"}
    if route.rule is None:
        assert route.chute == "reject" and route.reason
    else:
        assert RULES[route.rule]["chute"] == route.chute


def test_stroke_count_is_where_the_leading_edge_meets_the_diverter():
    plan = plan_stroke(5000, 100.0, 1000.0, 2.0, now_count=5100, min_lead_counts=20)
    assert plan == StrokePlan(5000 + 1800)


def test_a_parcel_past_its_diverter_is_refused_with_the_numbers():
    plan = plan_stroke(0, 100.0, 1000.0, 1.0, now_count=950, min_lead_counts=20)
    assert plan == TooLate("already past its diverter (target count 900, now 950)")


def test_a_parcel_too_close_is_refused():
    plan = plan_stroke(0, 100.0, 1000.0, 1.0, now_count=890, min_lead_counts=20)
    assert isinstance(plan, TooLate) and "too close to schedule safely (10 counts" in plan.reason


@given(
    lead=st.integers(-(10**9), 10**9),
    eye=st.floats(0, 1000),
    diverter=st.floats(1000, 20000),
    cpm=st.floats(0.05, 50),
    ahead=st.integers(-(10**6), 10**6),
    margin=st.integers(1, 10000),
)
def test_a_plan_is_never_in_the_past_nor_inside_the_margin(lead, eye, diverter, cpm, ahead, margin):
    now = lead + ahead
    plan = plan_stroke(lead, eye, diverter, cpm, now, margin)
    target = count_at(lead, eye, diverter, cpm)
    if isinstance(plan, StrokePlan):
        assert plan.count == target and plan.count - now >= margin
    else:
        assert target - now < margin
    # the target count puts the leading edge at the diverter, to within half a count
    assert abs(position_mm(lead, eye, target, cpm) - diverter) <= 0.5 / cpm + 1e-6
