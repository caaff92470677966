"""Outbound builders: header per topic, timestamp format, topics and delivery rules."""

from __future__ import annotations

import re

import pytest
from hypothesis import given
from hypothesis import strategies as st

from fleet_link.vda5050.messages import UINT32, Stamper, utc_timestamp
from fleet_link.vda5050.topics import DELIVERY, VehicleTopics
from tests.fleet_link.vda5050.helpers import assert_valid


def test_topics_and_delivery_rules() -> None:
    t = VehicleTopics("uagv", "wolfpack", "amr-01")
    assert t.topic("state") == "uagv/v2/wolfpack/amr-01/state"
    assert t.name_of("uagv/v2/wolfpack/amr-01/order") == "order"
    assert t.name_of("uagv/v2/wolfpack/amr-02/order") is None
    assert {k: (d.qos, d.retain) for k, d in DELIVERY.items()} == {
        "order": (0, False), "instantActions": (0, False), "state": (0, False),
        "visualization": (0, False), "connection": (1, True), "factsheet": (0, True),
    }  # fmt: skip
    for bad in ("a/b", "a+", "#", ""):
        with pytest.raises(ValueError):
            VehicleTopics("uagv", "wolfpack", bad)


def test_header_ids_per_topic_and_wrap() -> None:
    s = Stamper("wolfpack", "amr-01", clock=lambda: 0.0)
    assert [s.connection("ONLINE")["headerId"] for _ in range(3)] == [0, 1, 2]
    assert s.stamp("state", {})["headerId"] == 0
    s._next["state"] = UINT32 - 1
    assert s.stamp("state", {})["headerId"] == UINT32 - 1
    assert s.stamp("state", {})["headerId"] == 0


@given(st.floats(min_value=0, max_value=4_000_000_000))
def test_timestamps_are_iso8601_utc(t: float) -> None:
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", utc_timestamp(t))


def test_connection_and_visualization_validate() -> None:
    s = Stamper("wolfpack", "amr-01")
    for state in ("ONLINE", "OFFLINE", "CONNECTIONBROKEN"):
        assert_valid("connection", s.connection(state))  # type: ignore[arg-type]
    pos = {"x": 1.0, "y": 2.0, "theta": 0.1, "mapId": "hall-1", "positionInitialized": True,
           "localizationScore": 0.9, "deviationRange": 0.02}  # fmt: skip
    assert_valid("visualization", s.visualization(pos, {"vx": 0.5, "vy": 0.0, "omega": 0.1}))
    assert_valid("visualization", s.visualization(None, None))
