"""Remote push: `config_push` over MQTT through validate, signature, store, reload, health
check and rollback; the outcome retained on wolfpack/v1/<site>/<node>/config/status.

Real processes: the embedded broker (in this process), the simulated MCU and the node.
"""

from __future__ import annotations

import json
import socket
import threading
import time
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion

from edge.config.signing import generate_keypair, load_private_key, sign
from edge.config.store import ConfigStore
from fleet_link.brain import Brain
from fleet_link.embedded import EmbeddedBroker
from tests.edge.node.test_config_procs import (
    cell_config,
    history,
    mqtt_section,
    start_node,
    start_sim_mcu,
    stop,
    wait_health,
    wolfpack,
)

TOPIC = "wolfpack/v1/s1/n1/config/status"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class StatusWatch:
    """Everything published on the config/status topic (retained included)."""

    def __init__(self, port: int) -> None:
        self.got: list[dict[str, Any]] = []
        self.cond = threading.Condition()
        self.client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id="status-watch")
        self.client.on_message = self._on_message
        self.client.on_connect = lambda c, *_: c.subscribe(TOPIC, qos=1)
        self.client.connect("127.0.0.1", port)
        self.client.loop_start()

    def _on_message(self, _c: Any, _u: Any, msg: Any) -> None:
        with self.cond:
            self.got.append({"retain": msg.retain, **json.loads(msg.payload)})
            self.cond.notify_all()

    def wait(self, version: int, timeout: float) -> dict[str, Any]:
        with self.cond:
            ok = self.cond.wait_for(lambda: any(s["version"] == version for s in self.got), timeout)
            assert ok, f"no config status for version {version} in {timeout} s: {self.got}"
            return next(s for s in self.got if s["version"] == version)

    def close(self) -> None:
        self.client.loop_stop()
        self.client.disconnect()


@pytest.fixture
def rig(tmp_path: Path):
    port = _free_port()
    broker = EmbeddedBroker(port=port).start()
    link = tmp_path / "mcu"
    mcu = start_sim_mcu(link)
    board = tmp_path / "board"
    mq = mqtt_section(broker.url, tmp_path / "outbox.sqlite")
    first = tmp_path / "first.yaml"
    first.write_text(cell_config(link, mqtt=mq))
    key = tmp_path / "keys" / "tech"
    public, _kid = generate_keypair(key, "tech")
    assert wolfpack("config", "trust", str(public), "--to", str(board)).returncode == 0
    signed = wolfpack("config", "sign", str(first), "--key", str(key), "--version", "1")
    assert signed.returncode == 0, signed.stderr
    assert wolfpack("config", "flash", str(first), "--to", str(board)).returncode == 0
    node = start_node(board, tmp_path / "node.log")
    brain = Brain(broker.url, "s1").start()
    watch = StatusWatch(port)
    try:
        wait_health(board, "1", timeout=20)
        yield {"board": board, "brain": brain, "watch": watch, "link": link, "mq": mq,
               "key": key, "node": node, "port": port}  # fmt: skip
    finally:
        watch.close()
        brain.stop()
        stop(node)
        stop(mcu)
        broker.stop()


_versions = iter(range(2, 1000))


def _sig(rig: dict[str, Any], text: str, node: str = "n1", version: int | None = None) -> str:
    """The .sig text `wolfpack config sign` would write, for ``node`` as ``version``."""
    private = load_private_key(rig["key"])
    number = next(_versions) if version is None else version
    return sign(text.encode(), private, "tech", node, number).to_json()


def _push(
    rig: dict[str, Any], text: str, deadline_s: float, signed: bool = True, **sig: Any
) -> Any:
    args: dict[str, Any] = {"config": text, "deadline_s": deadline_s}
    if signed:
        args["signature"] = _sig(rig, text, **sig)
    return rig["brain"].command("n1", "config_push", args, timeout=10)


def test_pushed_config_is_applied_then_a_bad_one_rolled_back(rig, tmp_path):
    board, watch = rig["board"], rig["watch"]
    good = cell_config(rig["link"], description="pushed", mqtt=rig["mq"])
    answer = _push(rig, good, 10)
    assert answer.ok, answer.error
    assert answer.result["version"] == 2 and answer.result["previous"] == 1
    status = watch.wait(2, 20)
    assert status["outcome"] == "applied" and status["why"].startswith("state ready")
    assert wait_health(board, "2")["pid"] == rig["node"].pid
    assert not (board / "pending.json").exists()

    bad = cell_config(tmp_path / "no-such-port", description="broken", mqtt=rig["mq"])
    t0 = time.monotonic()
    answer = _push(rig, bad, 4)
    assert answer.ok, answer.error
    status = watch.wait(3, 25)
    assert time.monotonic() - t0 < 4 + 15
    assert status["outcome"] == "rolled_back"
    assert "devices missing: mcu" in status["why"]
    assert status["active_version"] == 2
    assert ConfigStore(board).active().stamp.version == 2
    wait_health(board, "2")
    outcomes = [h.get("outcome") for h in history(board) if h["event"] == "health_check"]
    assert outcomes[-2:] == ["applied", "rolled_back"]

    # a config the node cannot even start with (valid, but no cell): rolled back at start
    answer = _push(rig, "node: {id: n1, site: s1}\n" + rig["mq"], 10)
    assert answer.ok, answer.error
    status = watch.wait(4, 25)
    assert status["outcome"] == "rolled_back" and status["active_version"] == 2
    assert "the node did not start: the config has no 'cell:' section" in status["why"]
    assert wait_health(board, "2")["pid"] == rig["node"].pid

    # the outcome is retained: a late subscriber sees the last one
    late = StatusWatch(rig["port"])
    try:
        seen = late.wait(4, 10)
        assert seen["retain"] is True and seen["outcome"] == "rolled_back"
    finally:
        late.close()


def test_unsigned_or_tampered_push_is_refused_before_anything_is_written(rig):
    text = cell_config(rig["link"], description="unsigned", mqtt=rig["mq"])
    answer = _push(rig, text, 5, signed=False)
    assert not answer.ok and "unsigned" in answer.error["message"]
    signature = _sig(rig, "something else")
    answer = rig["brain"].command(
        "n1", "config_push", {"config": text, "signature": signature}, timeout=10
    )
    assert not answer.ok and "tampered" in answer.error["message"]
    answer = _push(rig, "node: {id: n1, site: s1, colour: red}\n", 5)
    assert not answer.ok and "colour" in answer.error["message"]
    assert ConfigStore(rig["board"]).active().stamp.version == 1


BILLION_LAUGHS = "node: {id: n1, site: s1}\n" + "".join(
    f"l{n}: &l{n} [{', '.join([f'*l{n - 1}'] * 9) if n else ', '.join(['lol'] * 9)}]\n"
    for n in range(10)
)


def test_hostile_pushes_are_refused_before_parsing_and_write_nothing(rig):
    """Issue 13, finding 5: an unsigned billion laughs was parsed first (44 s, 1.2 GB); a
    config signed for another node was applied; an older signed one was accepted."""
    board = rig["board"]

    def refused(send: Any, why: str) -> float:
        """Send (again while the node's rate limit of config_push says so); the seconds."""
        for _ in range(10):
            t0 = time.monotonic()
            answer = send()
            if answer.ok or answer.error["code"] != "rate_limited":
                break
            time.sleep(1.0)
        assert not answer.ok, answer.result
        assert why in answer.error["message"], answer.error
        return time.monotonic() - t0

    # a round trip and a hash, never a parse
    assert refused(lambda: _push(rig, BILLION_LAUGHS, 5, signed=False), "unsigned") < 3
    # even signed by a trusted key the parse is bounded
    laughs = refused(lambda: _push(rig, BILLION_LAUGHS, 5), "YAML aliases (*l0) are not allowed")
    assert laughs < 3
    foreign = cell_config(rig["link"], description="foreign", mqtt=rig["mq"])
    foreign = foreign.replace("id: n1", "id: n2")
    refused(lambda: _push(rig, foreign, 5, node="n2"), "signed for node n2, this node is n1")
    good = cell_config(rig["link"], description="replayed", mqtt=rig["mq"])
    refused(lambda: _push(rig, good, 5, version=1), "signed version 1 is not newer than version 1")
    bare = {"config": good, "signature": "c2lnbmF0dXJl"}
    refused(
        lambda: rig["brain"].command("n1", "config_push", bare, timeout=10),
        "a bare signature binds",
    )
    # fail closed: a trust directory that cannot be read refuses even a well-signed push
    keys = board / "trusted_keys"
    keys.rename(board / "keys.moved")
    keys.symlink_to(board / "nowhere")
    refused(lambda: _push(rig, good, 5), "trust policy cannot be read")
    refused(lambda: _push(rig, good, 5, signed=False), "trust policy cannot be read")
    keys.unlink()
    (board / "keys.moved").rename(keys)
    store = ConfigStore(board)
    assert store.active().stamp.version == 1 and len(list(store.versions.iterdir())) == 1
    assert not (board / "pending.json").exists()
