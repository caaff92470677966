"""The sort plan: a label's digits modulo the number of sort chutes; routes first."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from sim_hardware.brain.sort_plan import SortPlanError, chute_for_label

chutes = st.lists(st.integers(0, 50), min_size=1, max_size=12, unique=True)


ASCII = "0123456789"


@given(text=st.text(min_size=1).filter(lambda t: any(c in ASCII for c in t)), plan=chutes)
def test_every_label_with_digits_gets_a_sort_chute_by_the_rule(text, plan):
    digits = int("".join(c for c in text if c in ASCII))
    assert chute_for_label(text, plan) == plan[digits % len(plan)]


@given(n=st.integers(0, 10**10 - 1), plan=chutes)
def test_code128_and_2d_labels_with_the_same_number_go_to_the_same_chute(n, plan):
    assert chute_for_label(f"WP{n:010d}", plan) == chute_for_label(str(n), plan)


def test_the_longest_matching_route_wins_over_the_rule():
    routes = {"WP": 3, "WP99": 5}
    assert chute_for_label("WP9912345678", [0, 1], routes) == 5
    assert chute_for_label("WP0012345678", [0, 1], routes) == 3
    assert chute_for_label("123457", [0, 1], routes) == 1


@given(text=st.text().filter(lambda t: not any(c in ASCII for c in t)))
def test_a_label_without_digits_or_route_is_refused_with_its_text(text):
    with pytest.raises(SortPlanError, match="has no digits"):
        chute_for_label(text, [0, 1])


def test_only_ascii_digits_count():
    assert chute_for_label("²1", [0, 1, 2]) == 1
    with pytest.raises(SortPlanError):
        chute_for_label("²٣", [0, 1])


def test_a_plan_without_chutes_is_refused():
    with pytest.raises(SortPlanError, match="no sort chutes"):
        chute_for_label("1", [])
