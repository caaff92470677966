"""A sim run refuses, before it starts anything, a schedule it cannot carry out; it runs the
camera when its config can."""

from __future__ import annotations

from pathlib import Path

import pytest
from ruamel.yaml import YAML

from edge.sim.faults import parse_faults
from edge.sim.run import DEFAULT_CONFIG, CellSimulation, SimError, SimOptions


def test_a_random_schedule_with_a_broker_restart_needs_the_embedded_broker() -> None:
    faults = parse_faults("random=3")
    options = SimOptions(faults=faults, duration_s=300, broker="mqtt://127.0.0.1:1883")
    with pytest.raises(SimError, match=r"broker-restart .* needs the embedded broker"):
        CellSimulation(options)


def test_the_random_schedule_is_expanded_for_the_run() -> None:
    sim = CellSimulation(SimOptions(faults=parse_faults("estop@5+1,random=3"), duration_s=150))
    kinds = [f.kind for f in sim.faults]
    assert "random" not in kinds and "estop" in kinds and len(kinds) == 13


@pytest.mark.parametrize(
    ("argv", "with_vision", "camera"),
    [
        ([], True, True),  # the default: the config has a vision: section
        ([], False, False),  # nothing to run a camera with: the scanner alone
        (["--no-camera"], True, False),
        (["--camera"], True, True),
        (["--camera-only"], True, True),
    ],
)
def test_the_cli_runs_the_camera_when_the_config_can(
    tmp_path: Path, argv: list[str], with_vision: bool, camera: bool
) -> None:
    from edge.cli.main import build_parser
    from edge.cli.sim_cell import _camera_option

    yaml = YAML()
    data = yaml.load(DEFAULT_CONFIG)
    if not with_vision:
        del data["vision"]
    config = tmp_path / "cell.yaml"
    yaml.dump(data, config)
    args = build_parser().parse_args(["sim", *argv])
    options = SimOptions(config=config, camera=_camera_option(args), workdir=tmp_path / "run")
    sim = CellSimulation(options)
    assert sim.o.camera is camera


def test_the_cli_refuses_both_camera_switches() -> None:
    from edge.cli.main import build_parser

    with pytest.raises(SystemExit):
        build_parser().parse_args(["sim", "--camera", "--no-camera"])
