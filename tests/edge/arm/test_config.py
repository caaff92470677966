"""The arm: section: the example is valid, and a wrong value fails at load with where/why."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from edge.arm.config import ArmConfig
from tests.edge.arm.helpers import example_cfg, example_dict


def _errors(arm: dict) -> str:
    with pytest.raises(ValidationError) as exc:
        ArmConfig.model_validate(arm)
    return str(exc.value)


def test_example_config_is_valid() -> None:
    cfg = example_cfg()
    assert cfg.belt.sign == 1.0
    assert {d.id for d in cfg.destinations} == {"c1", "c2", "c3", "c4"}


def test_tracking_window_out_of_reach_is_located() -> None:
    arm = example_dict()["arm"]
    arm["tracking"]["downstream_mm"] = 900
    msg = _errors(arm)
    assert "\ntracking\n" in msg  # located at the key
    assert "downstream_mm (900.0)" in msg and "beyond the reach" in msg


def test_routing_to_unknown_destination() -> None:
    arm = example_dict()["arm"]
    arm["routing"].append({"chute": "c9"})
    msg = _errors(arm)
    assert "\nrouting\n" in msg and "rule 4: destination 'c9' does not exist" in msg


def test_unreachable_place_pose_names_the_destination() -> None:
    arm = example_dict()["arm"]
    arm["destinations"][0]["place"] = {"x_mm": 0, "y_mm": 100, "z_mm": -500}
    msg = _errors(arm)
    assert "\ndestinations\n" in msg and "[0] 'c1': place pose unreachable" in msg


def test_place_pose_inside_a_zone() -> None:
    arm = example_dict()["arm"]
    arm["forbidden_zones"].append({"id": "post", "min_mm": [-800, 100, -900],
                                   "max_mm": [-700, 200, 0]})  # fmt: skip
    assert "inside forbidden zone 'post'" in _errors(arm)


def test_joint_limits_and_thresholds_ordered() -> None:
    arm = example_dict()["arm"]
    arm["joints"]["j1"]["min"] = 200
    assert "must be below max" in _errors(arm)
    arm = example_dict()["arm"]
    arm["suction"]["drop_kpa"] = 50
    assert "drop_kpa (50.0) must be at most grip_kpa" in _errors(arm)


def test_unknown_key_refused() -> None:
    arm = example_dict()["arm"]
    arm["suction"]["cup_size"] = 3
    assert "cup_size" in _errors(arm)


def test_board_problems_names_missing_mcu() -> None:
    cfg = example_cfg()

    class M:
        name = "main"

    problems = cfg.board_problems({"mcus": [M()]})
    assert problems == ["arm.mcu.name: 'arm' is not an MCU of this board (mcus: main)"]


def test_grip_confirm_must_fit_the_grip_window() -> None:
    arm = example_dict()["arm"]
    arm["suction"]["grip_confirm_ms"] = 400
    msg = _errors(arm)
    assert "\nsuction\n" in msg and "grip_confirm_ms (400.0) must be below" in msg


def test_quill_must_reach_the_lowest_top() -> None:
    arm = example_dict()["arm"]
    arm["belt"]["surface_z_mm"] = -900
    msg = _errors(arm)
    assert "\ntracking\n" in msg and "outside the quill's range" in msg
