"""docs/asyncapi.yaml is a valid AsyncAPI 3 document by the official validator, and it and the
payload schemas in fleet_link/schemas/ are one whole: every schema file is used by a channel,
every channel has a payload schema and an operation with its MQTT QoS and retain."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path
from typing import Any

from jsonschema import Draft202012Validator

from fleet_link import schemas
from tests.fleet_link import contract

TOOLS = contract.REPO / "scripts" / "asyncapi-tools.sh"


def _asyncapi() -> str:
    """The `asyncapi` binary, installed into .tools/ by the script if it is missing."""
    proc = subprocess.run(
        ["bash", str(TOOLS)], capture_output=True, text=True, timeout=900, cwd=contract.REPO
    )
    assert proc.returncode == 0, f"scripts/asyncapi-tools.sh failed: {proc.stderr[-2000:]}"
    return proc.stdout.strip().splitlines()[-1]


def _validate(path: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "NO_COLOR": "1", "FORCE_COLOR": "0", "CI": "true"}
    return subprocess.run(
        [_asyncapi(), "validate", path, "--fail-severity", "error"],
        capture_output=True, text=True, timeout=300, cwd=contract.REPO, env=env,
    )  # fmt: skip


def test_the_official_validator_accepts_the_document() -> None:
    proc = _validate("docs/asyncapi.yaml")
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, out[-4000:]
    assert "is valid" in out, out[-4000:]


def _parse(*paths: Path) -> list[dict[str, Any]]:
    """@asyncapi/parser (the parser under `asyncapi validate`) on each document, one node
    process for all: the errors it finds in each."""
    tools = Path(_asyncapi()).parents[1]  # .tools/asyncapi/node_modules
    proc = subprocess.run(
        ["node", str(contract.REPO / "scripts" / "asyncapi-parse.js"), *map(str, paths)],
        capture_output=True, text=True, timeout=300, env={**os.environ, "NODE_PATH": str(tools)},
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-2000:]
    return [json.loads(line) for line in proc.stdout.splitlines()]


def test_the_parser_finds_the_old_documents_mistakes(tmp_path: Path) -> None:
    """The check can fail: qos on a message binding and an unquoted comma in an inline map
    (the two mistakes of the document the issue measured) are errors; the document is clean."""
    broken = tmp_path / "docs" / "asyncapi.yaml"
    broken.parent.mkdir()
    (tmp_path / "fleet_link").symlink_to(contract.REPO / "fleet_link")  # the schemas' place
    text = contract.DOC.read_text().replace(
        "      name: state\n", "      name: state\n      bindings: {mqtt: {qos: 1}}\n", 1
    )
    text = text.replace(
        "name: {description: 'the command name that was sent'}",
        "name: {description: the command name, e.g. foo}",
    )
    broken.write_text(text)
    clean, bad = _parse(contract.DOC, broken)
    assert clean["errors"] == []
    found = {(e["path"], e["message"]) for e in bad["errors"]}
    assert ("components.messages.state.bindings.mqtt.qos",
            'Property "qos" is not expected to be here') in found, found  # fmt: skip
    assert ("channels.resultUnknown.parameters.name",
            'Property "e.g. foo" is not expected to be here') in found, found  # fmt: skip
    assert len(found) == 4, found  # the two mistakes (2 errors each), and nothing else


def test_every_schema_file_is_used_by_the_document() -> None:
    used = set(contract.file_refs(contract.document()))
    todo = list(used)
    while todo:  # and what those files refer to (envelope.json, outbox-stats.json)
        name = todo.pop()
        for ref in contract.file_refs(schemas.load(name)):
            if ref not in used:
                used.add(ref)
                todo.append(ref)
    shipped = {p.name for p in schemas.SCHEMA_DIR.glob("*.json")}
    assert used - shipped == set(), "referenced but not shipped"
    assert shipped - used == set(), "shipped but no channel uses them"
    for name in shipped:
        schema = schemas.load(name)
        Draft202012Validator.check_schema(schema)
        assert schema["$id"].endswith("/" + name), name


def test_every_channel_has_a_payload_schema_and_an_operation() -> None:
    doc = contract.document()
    ops: dict[str, list[dict]] = {}
    for op in doc["operations"].values():
        ops.setdefault(op["channel"]["$ref"].removeprefix("#/channels/"), []).append(op)
    for chan in contract.channels():
        assert contract.file_refs(chan.payload), f"{chan.id}: no payload schema"
        chan.validator()  # a valid JSON Schema, every $ref resolvable
        assert chan.id in ops, f"{chan.id}: no operation"
        for op in ops[chan.id]:
            mqtt = op["bindings"]["mqtt"]
            assert mqtt["qos"] == 1, chan.id
            assert mqtt["retain"] == (chan.id in ("state", "configStatus")), chan.id
    # the commands the node takes are answered on their result channel
    for op in doc["operations"].values():
        address = doc["channels"][op["channel"]["$ref"].split("/")[-1]]["address"]
        if op["action"] == "receive" and not address.startswith(contract.SPARKPLUG):
            reply = op["reply"]["channel"]["$ref"]
            assert "/cmd/" in doc["channels"][op["channel"]["$ref"].split("/")[-1]]["address"]
            assert "/cmd_result/" in doc["channels"][reply.split("/")[-1]]["address"]


def test_topics_find_their_channel() -> None:
    chans = contract.channels()

    def chan(topic: str) -> str | None:
        found = contract.channel_of(topic, chans)
        return None if found is None else found.id

    assert chan("wolfpack/v1/dc-1/cell-07/state") == "state"
    assert chan("wolfpack/v1/dc-1/cell-07/config/status") == "configStatus"
    assert chan("wolfpack/v1/dc-1/cell-07/events/route_request") == "eventRouteRequest"
    assert chan("wolfpack/v1/dc-1/cell-07/cmd/route") == "cmdRoute"
    assert chan("wolfpack/v1/dc-1/cell-07/cmd_result/route") == "resultRoute"
    assert chan("wolfpack/v1/dc-1/cell-07/cmd_result/nope") == "resultUnknown"
    assert chan("wolfpack/v1/dc-1/cell-07/events/nope") is None
    assert chan("wolfpack/v1/dc-1/cell-07/cmd/nope") is None
    assert chan("wolfpack/v1/dc-1/cell-07/state/x") is None
    # a configured name replaces the default
    renamed = contract.channels({"answerCommand": "answer"})
    assert contract.channel_of("wolfpack/v1/a/b/cmd/answer", renamed).id == "cmdRoute"  # type: ignore[union-attr]


def test_a_message_against_its_channel() -> None:
    """check() finds a wrong type, an undocumented member and an unknown topic."""
    chans = contract.channels()
    head = {"node": "n", "session": 1, "seq": 1, "ts": "2026-12-01T00:00:00.000Z"}
    good = {**head, "kind": "safety", "data": {"from": "ready", "to": "running", "cause": "x"}}
    topic = "wolfpack/v1/s/n/events/safety"
    assert contract.check(topic, json.dumps(good).encode(), chans) == []
    bad = {**good, "data": {**good["data"], "to": "flying"}}
    assert contract.check(topic, json.dumps(bad).encode(), chans)
    extra = {**head, "kind": "fault", "data": {"code": "x", "active": True, "colour": "red"}}
    found = contract.check("wolfpack/v1/s/n/events/fault", json.dumps(extra).encode(), chans)
    assert found == [
        "wolfpack/v1/s/n/events/fault (eventFault): data.colour is sent but no schema describes it"
    ]
    assert contract.check("wolfpack/v1/s/n/events/nope", b"{}", chans)
    # Sparkplug B topics: documented ones pass (protobuf: the Sparkplug host test's), others not
    assert contract.check("spBv1.0/dc-1/NBIRTH/cell-07", b"\x08\x01", chans) == []
    assert contract.check("spBv1.0/dc-1/DDATA/cell-07/cell", b"", chans) == []
    assert contract.check("spBv1.0/dc-1/XDATA/cell-07/cell", b"", chans)
    assert contract.check("spBv1.0/dc-1/NBIRTH/cell-07/extra", b"", chans)
