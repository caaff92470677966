"""The cell section: consistent geometry is enforced at load time, with located errors."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import ValidationError

from edge.config import BoardConfig, ConfigError, load_board_config, parse_config_text
from tests.edge.cell.helpers import BASE, make_cfg

REPO = Path(__file__).resolve().parents[3]


def test_example_config_loads_with_its_cell_section():
    cfg = load_board_config(REPO / "configs" / "examples" / "cell-controller.yaml")
    assert cfg.cell is not None
    assert len(cfg.cell.chutes) == 8 and cfg.cell.reject_position_mm == 12000
    # 20 ms at 2.5 m/s = 50 mm = 100 counts at 2 counts/mm
    assert cfg.cell.min_lead_counts == 100
    assert cfg.cell.safety.device_loss.brain == "degrade"


def test_min_lead_counts_follow_speed_and_margin():
    assert make_cfg().min_lead_counts == 20


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"induction_eye": "nope"}, "induction_eye 'nope' is not a photo-eye"),
        ({"decision_point_mm": 50}, "must be downstream of the induction eye"),
        (
            {"chutes": [{"id": "a", "diverter_mm": 700, "output": 1}]},
            "diverter_mm 700.0 must lie between decision_point_mm",
        ),
        (
            {"chutes": [{"id": "a", "diverter_mm": 3500, "output": 1}]},
            "must lie between decision_point_mm",
        ),
        (
            {
                "chutes": [
                    {"id": "a", "diverter_mm": 1000, "output": 1},
                    {"id": "b", "diverter_mm": 2000, "output": 1},
                ]
            },
            "diverter output '1' appears more than once",
        ),
        ({"routing": [{"chute": "zz"}]}, "routing rule 0: chute 'zz' does not exist"),
        ({"routing": [{"chute": "a", "label": "A-("}]}, "not a valid regular expression"),
        (
            {"chutes": [{"id": "reject", "diverter_mm": 1000, "output": 1}]},
            "chute 'reject' appears more than once",
        ),
    ],
)
def test_inconsistent_cells_are_refused_with_the_reason(change, message):
    with pytest.raises(ValidationError, match=message.replace("(", r"\(").replace("'", "'")):
        make_cfg(**change)


def test_a_misspelt_key_in_the_cell_section_is_located():
    text = (
        "node: {id: n1, site: s1}\n"
        "cell:\n"
        "  belt: {counts_per_mm: 1, length_mm: 3000, nominal_speed_mm_s: 1000}\n"
        "  photo_eyes: [{id: in, position_mm: 100, mcu_input: 0}]\n"
        "  induction_eye: in\n"
        "  decision_point_mm: 800\n"
        "  chutes: [{id: a, diverter_mm: 1000, output: 1}]\n"
        "  brain_deadline: 30\n"
    )
    with pytest.raises(ConfigError) as info:
        parse_config_text(text, "cell.yaml", BoardConfig)
    (issue,) = info.value.issues
    assert str(issue).startswith("cell.yaml:8:3: cell.brain_deadline: unknown key")
    assert "did you mean 'brain_deadline_ms'" in str(issue)


def test_base_helper_config_is_valid():
    assert make_cfg().chute("a") is not None and BASE["induction_eye"] == "in"
