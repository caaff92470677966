"""The amr: section refuses, with a located message, what would break the protocol or the
drive."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import ValidationError

from edge.amr.config import AmrConfig
from tests.fleet_link.vda5050.helpers import amr_config_dict


def cfg(**patch: Any) -> dict[str, Any]:
    d = amr_config_dict()
    for dotted, value in patch.items():
        *path, last = dotted.split("__")
        target = d
        for p in path:
            target = target.setdefault(p, {})
        target[last] = value
    return d


def test_defaults() -> None:
    c = AmrConfig.model_validate(cfg())
    assert c.vda5050.interface_name == "uagv" and c.vda5050.state_interval_s == 30.0
    assert c.start_map == "hall-1" and c.knows_map("hall-1") and not c.knows_map("x")


@pytest.mark.parametrize(
    ("patch", "where", "words"),
    [
        ({"vda5050__serial_number": "amr/01"}, "vda5050.serial_number", "topic level"),
        ({"vda5050__manufacturer": "a+b"}, "vda5050.manufacturer", "topic level"),
        ({"vda5050__state_interval_s": 31}, "vda5050.state_interval_s", "30"),
        ({"geometry__wheel_track_m": 0.9}, "geometry", "wider than the vehicle"),
        ({"initial_map": "hall-9"}, "initial_map", "not in maps"),
        ({"maps": [{"id": "a"}, {"id": "a"}]}, "maps", "more than once"),
        ({"maps": []}, "maps", "at least 1"),
        ({"battery__critical_percent": 30}, "battery", "must not exceed"),
        ({"drive__left_wheel": 1}, "drive", "different channels"),
        ({"drive__lookahead_ms": 30}, "drive", "at least two setpoints"),
        ({"safety__protective_field_input": 0}, "safety", "different inputs"),
        ({"vda5050__colour": "red"}, "vda5050.colour", "Extra inputs"),
    ],
)
def test_refused(patch: dict[str, Any], where: str, words: str) -> None:
    with pytest.raises(ValidationError) as info:
        AmrConfig.model_validate(cfg(**patch))
    text = str(info.value)
    assert where in text and words in text, text
