"""The node runtime on its own, hosting a machine of a few lines (tests/edge/runtime/tiny.py).

What the runtime promises every machine (docs/runtime.md): safety actions reach the devices
before anything is reported, even when the reporting raises; operator commands (its own and
the machine's); health file and shutdown order; config dispatch by ``machine:``; one-line
errors for a kind that is unknown or missing from the build.
"""

from __future__ import annotations

import asyncio
import json
import socket
import time
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from edge.cli import sim_cmd
from edge.cli.main import main
from edge.cli.run_cmd import build_node
from edge.config import BoardConfig, ConfigError, load_board_config, parse_config_bytes
from edge.config import board as board_module
from edge.config.schema import SCHEMA_PATH, board_schema_text
from edge.runtime import registry
from edge.runtime.machine import MachineContext, MachineError
from edge.runtime.node import Node
from edge.runtime.registry import MachineKind
from edge.safety.machine import State
from tests.edge.runtime.tiny import TinyMachine

REPO = Path(__file__).resolve().parents[3]
TINY = MachineKind(
    "tiny", "tiny", "tests.edge.runtime.tiny:TinyConfig", "tests.edge.runtime.tiny:create_machine",
    "a test machine with one motor",
)  # fmt: skip
GHOST = MachineKind(
    "ghost", "ghost", "tests.edge.runtime.no_such_module:GhostConfig",
    "tests.edge.runtime.no_such_module:create_machine", "a machine this build does not have",
)  # fmt: skip
TINY_YAML = """node: {id: t1, site: s1}
machine: tiny
mcus: [{name: main, port: /dev/tiny-mcu}]
tiny: {motor_mcu: main}
"""


@pytest.fixture(autouse=True)
def kinds(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """The tiny and ghost kinds registered for one test, their board models forgotten after."""
    monkeypatch.setitem(registry.KINDS, "tiny", TINY)
    monkeypatch.setitem(registry.KINDS, "ghost", GHOST)
    yield
    for name in ("tiny", "ghost"):
        board_module._MODELS.pop(name, None)


def tiny_board(tmp_path: Path, text: str = TINY_YAML) -> Any:
    path = tmp_path / "tiny.yaml"
    path.write_text(text)
    return load_board_config(path)


def tiny_node(tmp_path: Path, **kw: Any) -> Node:
    board = tiny_board(tmp_path, kw.pop("text", TINY_YAML))
    return Node(board, TinyMachine(board, MachineContext()), **kw)


def run_node(node: Node, body: Callable[[Node], Awaitable[None]], timeout: float = 15) -> None:
    """``node.run`` on a fresh loop until ``body`` returns, then its shutdown."""

    async def go() -> None:
        stop = asyncio.Event()
        task = asyncio.create_task(node.run(stop))
        try:
            await until(lambda: node.safety.state is State.READY, 5)
            await body(node)
        finally:
            stop.set()
            await asyncio.wait_for(task, 10)

    asyncio.run(asyncio.wait_for(go(), timeout))


async def until(cond: Callable[[], bool], timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while not cond():
        assert time.monotonic() < deadline, "condition not met in time"
        await asyncio.sleep(0.01)


def machine_of(node: Node) -> TinyMachine:
    assert isinstance(node.machine, TinyMachine)
    return node.machine


# ---- the safety path ---------------------------------------------------------------------------
def test_a_stop_reaches_the_devices_before_any_report_even_when_reporting_raises(tmp_path):
    node = tiny_node(tmp_path)

    async def body(node: Node) -> None:
        m = machine_of(node)
        assert node.command("start") == {"state": "running"}
        assert m.motor.running
        m.fail_reports = True  # the machine's reports raise (a full disk)

        def notify_broken(text: str) -> None:  # and so does the runtime's own (systemd gone)
            m.journal.append(("report", "systemd"))
            raise OSError("notify socket gone")

        node.notifier.status = notify_broken  # type: ignore[method-assign]
        del m.journal[:]
        node.apply_safety(node.safety.estop(True, time.monotonic()))
        assert m.journal[:2] == [("device", "stop"), ("device", "cancel")]
        devices = [i for i, (what, _) in enumerate(m.journal) if what == "device"]
        reports = [i for i, (what, _) in enumerate(m.journal) if what == "report"]
        assert reports and min(reports) > max(devices)
        assert not m.motor.running and node.safety.state is State.ESTOP
        assert node.counters["report_errors"] >= 2  # the transition's and the actions'
        assert node.status()["reporting"]["safety_report_errors"] == node.counters["report_errors"]

    run_node(node, body)


def test_a_failure_while_acting_is_counted_and_the_decision_still_reported(tmp_path):
    node = tiny_node(tmp_path)

    async def body(node: Node) -> None:
        m = machine_of(node)
        m.fail_acting = True
        node.apply_safety(node.safety.fault("jam at the motor", time.monotonic()))
        assert node.counters["safety_act_errors"] == 1
        assert ("report", "Transition") in m.journal
        assert node.safety.state is State.FAULT
        assert node.health()["why"] == "jam at the motor"

    run_node(node, body)


def test_the_timer_ticks_the_machine_and_a_lost_device_is_a_fault_in_its_words(tmp_path):
    node = tiny_node(tmp_path)

    async def body(node: Node) -> None:
        m = machine_of(node)
        await until(lambda: m.ticks >= 3, 2)
        node.apply_safety(node.safety.device_lost("mcu", "link down", time.monotonic()))
        assert node.safety.state is State.FAULT
        assert node.faults.diff.active["mcu_lost"]["message"] == "motor cable unplugged"
        assert node.health()["devices_missing"] == ["mcu"] and not node.health()["healthy"]

    run_node(node, body)


# ---- commands ----------------------------------------------------------------------------------
def test_runtime_and_machine_commands(tmp_path):
    node = tiny_node(tmp_path)
    refused = node.command("start")
    assert refused["state"] == "boot" and "not ready" in refused["refused"]

    async def body(node: Node) -> None:
        assert node.command("jog", {"steps": 3}) == {"jogs": 3}
        status = node.status()
        assert status["state"] == "ready" and status["jogs"] == 3
        assert status["devices_up"] == ["mcu"] and "timer" in status["tasks"]
        unknown = node.command("fly")
        assert unknown["refused"] == "unknown command 'fly'; known: start, stop, reset, status, jog"
        assert node.command("start") == {"state": "running"}
        assert "needs ready" in node.command("jog")["refused"]
        assert node.command("stop") == {"state": "ready"}  # the motor never reported motion
        devices = [e for e in machine_of(node).journal if e[0] == "device"]
        assert devices[-2:] == [("device", "cancel"), ("device", "stop")]

    run_node(node, body)


def test_a_machine_may_not_take_the_runtime_s_commands(tmp_path):
    board = tiny_board(tmp_path)
    machine = TinyMachine(board, MachineContext())
    machine.commands = lambda: {"start": "mine"}  # type: ignore[method-assign]
    with pytest.raises(ValueError, match="start/stop/reset/status belong to the runtime"):
        Node(board, machine)


def test_commands_and_state_over_a_real_broker(tmp_path):
    from fleet_link.brain import Brain
    from fleet_link.embedded import EmbeddedBroker

    port = _free_port()
    broker = EmbeddedBroker(port=port).start()
    try:
        mqtt = (
            f"mqtt: {{broker: 'mqtt://127.0.0.1:{port}', protocol: '3.1.1', keepalive_s: 5, "
            f"reconnect_min_s: 0.1, "
            f"reconnect_max_s: 1.0, state_interval_s: 1.0, "
            f"outbox: {{path: '{tmp_path / 'outbox.sqlite3'}'}}}}\n"
        )
        node = tiny_node(tmp_path, text=TINY_YAML + mqtt)
        with Brain(broker.url, "s1") as brain:

            async def body(node: Node) -> None:
                jog = await asyncio.to_thread(brain.command, "t1", "jog", {"steps": 2}, 10)
                assert jog.ok and jog.result == {"jogs": 2}
                start = await asyncio.to_thread(brain.command, "t1", "start", None, 10)
                assert start.ok and start.result == {"state": "running"}
                again = await asyncio.to_thread(brain.command, "t1", "jog", None, 10)
                assert not again.ok and again.error is not None
                assert "needs ready" in again.error["message"]

                def tiny_state() -> dict[str, Any]:
                    state = brain.nodes.get("t1")
                    return state.body.get("tiny", {}) if state is not None else {}

                await until(lambda: tiny_state().get("state") == "running", 10)
                assert tiny_state()["motor_running"] is True

            brain.start()
            run_node(node, body, timeout=40)
    finally:
        broker.stop()


# ---- health and shutdown -----------------------------------------------------------------------
def test_health_file_and_the_order_of_shutdown(tmp_path):
    health = tmp_path / "health.json"
    node = tiny_node(tmp_path, health_file=health, config_version="7")

    def read() -> dict[str, Any]:
        try:
            return dict(json.loads(health.read_text()))
        except (OSError, ValueError):
            return {}

    async def body(node: Node) -> None:
        await until(lambda: read().get("state") == "ready", 5)
        got = read()
        assert got["healthy"] is True and got["config_version"] == "7"
        assert got["motor_running"] is False
        node.command("start")
        await until(lambda: read().get("motor_running") is True, 5)

    run_node(node, body)
    last = read()
    assert last["state"] == "stopped" and last["healthy"] is False
    assert "counters" in last
    journal = machine_of(node).journal
    life = [what for kind, what in journal if kind == "life"]
    assert life == ["open", "make_safe", "close", "finish"]
    # the runtime's safety stop (it was running) reached the motor before make_safe
    assert journal.index(("device", "stop")) < journal.index(("life", "make_safe"))


# ---- config dispatch -----------------------------------------------------------------------------
def test_a_config_is_validated_against_the_model_of_its_machine(tmp_path):
    board = tiny_board(tmp_path)
    assert type(board).__name__ == "TinyBoardConfig"
    assert board.machine == "tiny" and board.tiny.motor_mcu == "main"
    # the flash path parses with the BoardConfig model: "any board", dispatched the same way
    again = parse_config_bytes(TINY_YAML.encode(), "pushed.yaml", BoardConfig)
    assert type(again) is type(board)
    default = load_board_config(REPO / "configs" / "sim-cell.yaml")  # no machine: key
    assert isinstance(default, BoardConfig) and default.machine == "diverter"
    assert default.cell is not None


def _issues(tmp_path: Path, text: str) -> list[str]:
    path = tmp_path / "bad.yaml"
    path.write_text(text)
    with pytest.raises(ConfigError) as err:
        load_board_config(path)
    return [str(i) for i in err.value.issues]


def test_config_dispatch_errors_say_where_and_why(tmp_path):
    unknown = _issues(tmp_path, TINY_YAML.replace("machine: tiny", "machine: boat"))
    assert len(unknown) == 1 and unknown[0].startswith(f"{tmp_path / 'bad.yaml'}:2:10: machine:")
    assert "unknown machine 'boat'; known machines: amr, arm, diverter, ghost, tiny" in unknown[0]
    ghost = _issues(tmp_path, TINY_YAML.replace("machine: tiny", "machine: ghost"))
    assert "machine 'ghost' is not available in this build: module " in ghost[0]
    assert "tests.edge.runtime.no_such_module" in ghost[0]
    number = _issues(tmp_path, TINY_YAML.replace("machine: tiny", "machine: 5"))
    assert number[0].endswith("machine: got 5; expected a machine name")
    other = _issues(tmp_path, TINY_YAML + "cell: {}\n")
    assert "unknown key 'cell'" in other[0] and "tiny" in other[0]
    missing = _issues(tmp_path, TINY_YAML.replace("tiny: {motor_mcu: main}\n", ""))
    assert missing[0].endswith("tiny: missing required key")
    ref = _issues(tmp_path, TINY_YAML.replace("motor_mcu: main", "motor_mcu: aux"))
    assert ref[0].endswith("tiny: tiny.motor_mcu: 'aux' is not an MCU of this board")


@settings(max_examples=40)
@given(st.text(min_size=1, max_size=12))
def test_any_machine_name_gives_its_model_or_a_located_error(name):
    text = f"node: {{id: t1, site: s1}}\nmachine: {json.dumps(name)}\n"
    try:
        board = parse_config_bytes(text.encode(), "b.yaml", BoardConfig)
    except ConfigError as exc:
        issue = exc.issues[0]
        if name in ("tiny", "ghost", "arm", "amr"):
            return  # a kind whose section is missing, or not in this build: also located
        assert (issue.path, issue.line) == ("machine", 2), issue
        assert issue.message.startswith(("unknown machine", "got ")), issue
    else:
        assert name == "diverter" and isinstance(board, BoardConfig)


def test_config_validate_and_schema_per_machine(tmp_path, capsys):
    path = tmp_path / "tiny.yaml"
    path.write_text(TINY_YAML)
    assert main(["config", "validate", str(path)]) == 0
    assert "OK (node t1 at site s1)" in capsys.readouterr().out
    path.write_text(TINY_YAML.replace("machine: tiny", "machine: ghost"))
    assert main(["config", "validate", str(path)]) == 1
    err = capsys.readouterr().err
    assert "machine 'ghost' is not available in this build" in err and "Traceback" not in err
    schema = json.loads(board_schema_text("tiny"))
    assert "tiny" in schema["properties"] and "cell" not in schema["properties"]
    assert schema["properties"]["machine"]["const"] == "tiny"
    assert board_schema_text() == SCHEMA_PATH.read_text()  # configs/schema.json is current
    assert main(["config", "schema", "--machine", "tiny", "--out", "-"]) == 0
    assert json.loads(capsys.readouterr().out) == schema
    assert main(["config", "schema", "--machine", "ghost", "--out", "-"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: machine 'ghost' is not available")


# ---- wolfpack run and wolfpack sim dispatch ------------------------------------------------------
def test_run_builds_the_machine_the_config_names(tmp_path, capsys):
    node = build_node(tiny_board(tmp_path), "v3", str(tmp_path / "h.json"), start=True)
    m = machine_of(node)
    assert m.ctx.config_version == "v3" and m.ctx.start_when_ready
    assert m.ctx.health_file == tmp_path / "h.json"
    no_cell = BoardConfig.model_validate({"node": {"id": "n", "site": "s"}})
    with pytest.raises(MachineError, match="the config has no 'cell:' section"):
        build_node(no_cell, "v", None, start=False)
    path = tmp_path / "ghost.yaml"
    path.write_text(TINY_YAML.replace("machine: tiny", "machine: ghost"))
    assert main(["run", str(path)]) == 1
    out = capsys.readouterr().out
    assert "machine 'ghost' is not available in this build" in out and "Traceback" not in out


def test_sim_dispatches_by_machine(monkeypatch, capsys):
    from edge.cli.main import build_parser

    args = build_parser().parse_args(["sim"])
    assert (args.machine, args.vehicles, args.rate, args.duration) == ("diverter", None, 12000, 60)
    assert args.handler is sim_cmd.run and args.sim_device is None
    seen: list[Any] = []
    real_load = sim_cmd._load

    def recording_load(dotted: str, what: str) -> Callable[[Any], int]:
        seen.append(dotted)
        return lambda a: seen.append(a) or 0

    monkeypatch.setattr(sim_cmd, "_load", recording_load)
    assert main(["sim", "--machine", "amr", "--vehicles", "4", "--duration", "9"]) == 0
    assert seen[0] == "edge.cli.sim_amr:run_amr" and seen[1].vehicles == 4
    monkeypatch.setattr(sim_cmd, "_load", real_load)
    monkeypatch.setitem(sim_cmd.MACHINE_RUNNERS, "arm", "tests.edge.runtime.no_such:run_arm")
    assert main(["sim", "--machine", "arm", "--duration", "5"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "wolfpack sim --machine arm: not available in this build" in err[0]
    assert main(["sim", "--vehicles", "3"]) == 2
    assert "--vehicles is for --machine amr" in capsys.readouterr().err
    fleet = build_parser().parse_args(["sim", "fleet", "--duration", "7"])
    assert fleet.handler.__module__ == "edge.cli.sim_fleet" and fleet.duration == 7


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_a_board_imports_only_the_machine_it_runs(tmp_path):
    """Loading a tiny board and building its node imports no other machine's code."""
    import subprocess
    import sys

    path = tmp_path / "tiny.yaml"
    path.write_text(TINY_YAML)
    script = f"""
import sys
from edge.runtime import registry
from edge.runtime.registry import MachineKind
registry.KINDS["tiny"] = MachineKind("tiny", "tiny", {TINY.config_model!r}, {TINY.factory!r}, "t")
from edge.config import load_board_config
from edge.cli.run_cmd import build_node
node = build_node(load_board_config({str(path)!r}), "1", None, False)
print(type(node.machine).__name__)
print(" ".join(sorted(m for m in sys.modules if m.startswith(
    ("edge.node.cell_node", "edge.arm", "edge.amr", "mujoco", "vision.pipeline", "cv2")))))
"""
    out = subprocess.run([sys.executable, "-c", script], cwd=REPO, capture_output=True,
                         text=True, timeout=60)  # fmt: skip
    assert out.returncode == 0, out.stderr
    name, *loaded = out.stdout.splitlines()
    assert name == "TinyMachine"
    assert loaded == [""] or loaded == [], loaded
