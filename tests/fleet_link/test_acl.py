"""The production mosquitto templates in configs/mosquitto (TLS, a password per node, the ACL),
run for real: node A's credentials cannot publish under node B's prefix nor take node B's
client id; a node publishes its config/status; an operator sends start/stop/reset and nothing
else (issue 13, finding 6)."""

from __future__ import annotations

import contextlib
import getpass
import io
import json
import os
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion

from fleet_link.brain import Brain
from fleet_link.config import MqttConfig
from fleet_link.link import EdgeLink
from tests.fleet_link.certs import make_ca_and_broker_cert, make_client_cert
from tests.fleet_link.mosquitto import MOSQUITTO, REPO, free_port, port_open

TEMPLATES = REPO / "configs" / "mosquitto"
SITE = "dc-test"
PASSWORDS = {
    "cell-a": "pw-a",
    "cell-b": "pw-b",
    "brain": "pw-brain",
    "monitor": "pw-monitor",
    "operator-alice": "pw-alice",
    "amr-1": "pw-amr-1",
    "master": "pw-master",
}


@pytest.fixture(params=[False], ids=["tls"])
def secured_broker(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[tuple[int, Path]]:
    yield from _secured_broker(tmp_path, mutual=request.param)


@pytest.fixture
def mutual_tls_broker(tmp_path: Path) -> Iterator[tuple[int, Path]]:
    yield from _secured_broker(tmp_path, mutual=True)


@pytest.fixture
def unbound_broker(tmp_path: Path) -> Iterator[tuple[int, Path]]:
    """The template as it was before issue 13: client ids not bound to usernames."""
    yield from _secured_broker(tmp_path, mutual=False, bind_clientid=False)


def _secured_broker(
    tmp_path: Path,
    mutual: bool,
    bind_clientid: bool = True,
    site: str = SITE,
    passwords: dict[str, str] = PASSWORDS,
) -> Iterator[tuple[int, Path]]:
    etc = tmp_path / "etc"
    etc.mkdir()
    ca, _, _ = make_ca_and_broker_cert(etc)
    passwd = etc / "passwd"
    for user, password in passwords.items():
        subprocess.run(
            [
                "mosquitto_passwd",
                "-b",
                *(["-c"] if not passwd.exists() else []),
                str(passwd),
                user,
                password,
            ],
            check=True,
        )
    (etc / "acl").write_text((TEMPLATES / "acl").read_text().replace("@SITE@", site))
    port = free_port()
    conf = (TEMPLATES / "mosquitto.conf").read_text()
    conf = conf.replace("/etc/mosquitto/wolfpack/", f"{etc}/")
    conf = conf.replace("listener 8883", f"listener {port} 127.0.0.1")
    conf = conf.replace(
        "persistence_location /var/lib/mosquitto/", f"persistence_location {tmp_path}/"
    )
    conf = conf.replace("log_dest syslog", "log_dest stdout")
    assert "\nuse_username_as_clientid true\n" in conf
    if not bind_clientid:
        conf = conf.replace("\nuse_username_as_clientid true\n", "\n")
    if mutual:
        assert "#require_certificate true" in conf
        conf = conf.replace("#require_certificate true", "require_certificate true")
    # as root, mosquitto would switch to user 'mosquitto', who cannot read pytest's tmp_path
    conf = f"user {getpass.getuser()}\n" + conf
    assert (
        "allow_anonymous false" in conf and "acl_file" in conf and "max_queued_messages 0" in conf
    )
    (tmp_path / "mosquitto.conf").write_text(conf)
    log = (tmp_path / "mosquitto.log").open("wb")
    proc = subprocess.Popen(
        [MOSQUITTO, "-c", str(tmp_path / "mosquitto.conf")], stdout=log, stderr=log
    )
    try:
        deadline = time.monotonic() + 10
        while not port_open(port):
            assert proc.poll() is None, (tmp_path / "mosquitto.log").read_text()
            assert time.monotonic() < deadline
            time.sleep(0.05)
        yield port, ca
    finally:
        proc.terminate()
        proc.wait(5)
        log.close()


def node_client(
    port: int, ca: Path, user: str, password: str, tag: str, client_id: str | None = None
) -> mqtt.Client:
    """A plain paho client with a node's credentials (one connection per attempt: mosquitto
    2.0.11 drops the connection of a client whose publish the ACL denied)."""
    connected = threading.Event()
    c = mqtt.Client(
        CallbackAPIVersion.VERSION2,
        client_id=client_id or f"raw-{user}-{tag}",
        protocol=mqtt.MQTTv311,
    )
    c.username_pw_set(user, password)
    c.tls_set(ca_certs=str(ca))
    c.on_connect = lambda _c, _u, _f, reason, _p: (not reason.is_failure) and connected.set()
    c.connect("127.0.0.1", port)
    c.loop_start()
    assert connected.wait(10), f"{user} could not connect"
    return c


def publish_once(
    port: int, ca: Path, topic: str, tag: str, user: str = "cell-a", retain: bool = False
) -> None:
    c = node_client(port, ca, user, PASSWORDS[user], tag)
    try:
        c.publish(topic, f'{{"from": "{user}"}}'.encode(), qos=1, retain=retain).wait_for_publish(3)
    except RuntimeError:
        pass  # the broker hung up on a denied publish: also a refusal
    finally:
        c.loop_stop()
        c.disconnect()


def test_node_a_cannot_publish_under_node_b_prefix(secured_broker):
    port, ca = secured_broker
    received: list[str] = []
    brain = Brain(
        f"mqtts://127.0.0.1:{port}", SITE, username="brain", password="pw-brain", ca_file=str(ca)
    )
    brain._client.on_message = lambda _c, _u, m: received.append(m.topic)
    brain.start()
    own = f"wolfpack/v1/{SITE}/cell-a/events/parcel"
    forged = [
        f"wolfpack/v1/{SITE}/cell-b/events/parcel",
        f"wolfpack/v1/{SITE}/cell-b/state",
        f"wolfpack/v1/{SITE}/cell-b/cmd/set_belt_speed",
        f"wolfpack/v1/{SITE}/cell-b/config/status",
        f"wolfpack/v1/{SITE}/cell-a/cmd/set_belt_speed",  # not even its own commands
        f"wolfpack/v1/{SITE}/cell-a/cmd/start",
    ]
    try:
        for i, topic in enumerate(forged):
            publish_once(port, ca, topic, f"f{i}")
        publish_once(port, ca, own, "own")  # the positive control, sent last
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline and own not in received:
            time.sleep(0.05)
        time.sleep(0.3)
        assert own in received
        assert not [t for t in received if t in forged], received
    finally:
        brain.stop()


def test_bad_credentials_are_refused_and_a_tls_edge_link_works(secured_broker, tmp_path: Path):
    port, ca = secured_broker
    refused = threading.Event()
    c = mqtt.Client(CallbackAPIVersion.VERSION2, client_id="intruder", protocol=mqtt.MQTTv5)
    c.username_pw_set("cell-a", "wrong")
    c.tls_set(ca_certs=str(ca))
    c.on_connect = lambda _c, _u, _f, reason, _p: reason.is_failure and refused.set()
    c.connect("127.0.0.1", port)
    c.loop_start()
    assert refused.wait(5)
    c.loop_stop()

    got = []
    brain = Brain(
        f"mqtts://127.0.0.1:{port}",
        SITE,
        username="brain",
        password="pw-brain",
        ca_file=str(ca),
        on_message=got.append,
        from_start=True,
    ).start()
    secret = tmp_path / "cell-a.password"
    secret.write_text("pw-a\n")
    os.chmod(secret, 0o600)
    cfg = MqttConfig.model_validate(
        {
            "broker": f"mqtts://127.0.0.1:{port}",
            "username": "cell-a",
            "password_file": str(secret),
            "tls": {"ca_file": str(ca)},
            "outbox": {"path": str(tmp_path / "o.sqlite3")},
        }
    )
    link = EdgeLink(cfg, SITE, "cell-a").start()
    try:
        assert link.connected.wait(10)
        time.sleep(0.3)
        link.publish_event("parcel", {"parcel_id": "P1", "outcome": "sorted"})
        assert brain.command("cell-a", "ping", {}, timeout=5).ok  # the brain may command it
        assert link.wait_drained(5)
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline and not any(m.channel == "events/parcel" for m in got):
            time.sleep(0.05)
        assert [m.seq for m in got if m.channel == "events/parcel"] == [1]
        assert link.rejected == 0
    finally:
        link.stop()
        brain.stop()


def test_mutual_tls_needs_a_client_certificate_signed_by_the_ca(mutual_tls_broker, tmp_path: Path):
    port, ca = mutual_tls_broker
    crt, key = make_client_cert(ca.parent, "cell-a")
    secret = tmp_path / "cell-a.password"
    secret.write_text("pw-a\n")

    def config(**tls: str) -> MqttConfig:
        return MqttConfig.model_validate(
            {
                "broker": f"mqtts://127.0.0.1:{port}",
                "username": "cell-a",
                "password_file": str(secret),
                "reconnect_min_s": 0.2,
                "reconnect_max_s": 0.5,
                "tls": {"ca_file": str(ca), **tls},
                "outbox": {"path": str(tmp_path / f"o{len(tls)}.sqlite3")},
            }
        )

    without = EdgeLink(config(), SITE, "cell-a").start()
    try:
        assert not without.connected.wait(2)  # the handshake fails without a certificate
    finally:
        without.stop()
    with_cert = EdgeLink(config(cert_file=str(crt), key_file=str(key)), SITE, "cell-a").start()
    try:
        assert with_cert.connected.wait(10)
    finally:
        with_cert.stop()


# ---- identity and roles (issue 13, finding 6) -------------------------------------------------


def watch(port: int, ca: Path) -> tuple[mqtt.Client, list[tuple[str, bytes]]]:
    """A raw subscriber with the monitor's credential: every message of the site, in order."""
    got: list[tuple[str, bytes]] = []
    c = node_client(port, ca, "monitor", PASSWORDS["monitor"], "watch")
    c.on_message = lambda _c, _u, m: got.append((m.topic, bytes(m.payload)))
    c.subscribe(f"wolfpack/v1/{SITE}/#", qos=1)
    time.sleep(0.3)
    return c, got


def _link(port: int, ca: Path, tmp_path: Path, node: str) -> EdgeLink:
    secret = tmp_path / f"{node}.password"
    secret.write_text(PASSWORDS[node] + "\n")
    os.chmod(secret, 0o600)
    cfg = MqttConfig.model_validate(
        {
            "broker": f"mqtts://127.0.0.1:{port}",
            "username": node,
            "password_file": str(secret),
            "reconnect_min_s": 0.2,
            "reconnect_max_s": 0.5,
            "tls": {"ca_file": str(ca)},
            "outbox": {"path": str(tmp_path / f"{node}.sqlite3")},
        }
    )
    return EdgeLink(cfg, SITE, node).start()


def _offline(got: list[tuple[str, bytes]], node: str) -> list[bytes]:
    topic = f"wolfpack/v1/{SITE}/{node}/state"
    return [p for t, p in got if t == topic and json.loads(p)["status"] == "offline"]


def _try_takeover(port: int, ca: Path, tmp_path: Path, client_id: str) -> tuple[EdgeLink, int]:
    """Node B online; node A's credential connects with ``client_id`` and stays a second."""
    b = _link(port, ca, tmp_path, "cell-b")
    assert b.connected.wait(10)
    session = b.session
    intruder = node_client(port, ca, "cell-a", PASSWORDS["cell-a"], "x", client_id=client_id)
    time.sleep(1.0)
    intruder.loop_stop()
    intruder.disconnect()
    time.sleep(0.3)
    return b, session


@pytest.mark.parametrize("client_id", [f"wolfpack-{SITE}-cell-b", "cell-b"])
def test_a_node_cannot_take_another_nodes_client_id(secured_broker, tmp_path: Path, client_id):
    port, ca = secured_broker
    watcher, got = watch(port, ca)
    b, session = _try_takeover(port, ca, tmp_path, client_id)
    try:
        assert b.connected.is_set() and b.session == session, "node B was kicked off"
        assert _offline(got, "cell-b") == [], "node B's will was published"
    finally:
        b.stop()
        watcher.loop_stop()


def test_without_the_binding_the_takeover_kicks_the_node_off(unbound_broker, tmp_path: Path):
    """Finding 6 reproduced on the template as it was: the same attempt succeeds."""
    port, ca = unbound_broker
    watcher, got = watch(port, ca)
    b, session = _try_takeover(port, ca, tmp_path, f"wolfpack-{SITE}-cell-b")
    try:
        assert _offline(got, "cell-b"), "the takeover did not publish node B's will"
        assert b.session > session  # node B had to reconnect (and kicked the intruder back)
    finally:
        b.stop()
        watcher.loop_stop()


def test_a_node_publishes_its_own_config_status_retained(secured_broker):
    port, ca = secured_broker
    own = f"wolfpack/v1/{SITE}/cell-a/config/status"
    publish_once(port, ca, own, "status", retain=True)
    publish_once(port, ca, f"wolfpack/v1/{SITE}/cell-b/config/status", "forged", retain=True)
    watcher, got = watch(port, ca)  # subscribes afterwards: only retained messages arrive
    try:
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline and not got:
            time.sleep(0.05)
        time.sleep(0.2)
        assert got == [(own, b'{"from": "cell-a"}')]
    finally:
        watcher.loop_stop()


def test_an_operator_sends_start_stop_reset_and_nothing_else(secured_broker, tmp_path: Path):
    port, ca = secured_broker
    node = _link(port, ca, tmp_path, "cell-a")
    ran: list[str] = []
    for name in ("start", "stop", "reset", "status", "set_belt_speed", "config_push", "route"):
        node.commands.register(name, lambda _a, name=name: ran.append(name) or {"ran": name})
    operator = Brain(
        f"mqtts://127.0.0.1:{port}",
        SITE,
        username="operator-alice",
        password=PASSWORDS["operator-alice"],
        ca_file=str(ca),
        request_replays=False,
    )
    watcher, got = watch(port, ca)
    try:
        assert node.connected.wait(10)
        operator.start()
        time.sleep(0.3)
        for name in ("start", "stop", "reset", "status", "ping"):
            result = operator.command("cell-a", name, {}, timeout=5)
            assert result.ok, result
        assert ran == ["start", "stop", "reset", "status"]  # and the built-in ping
    finally:
        operator.stop()
    forged = [
        ("operator-alice", f"wolfpack/v1/{SITE}/cell-a/cmd/set_belt_speed"),
        ("operator-alice", f"wolfpack/v1/{SITE}/cell-a/cmd/config_push"),
        ("operator-alice", f"wolfpack/v1/{SITE}/cell-a/cmd/route"),  # the brain's answers
        ("operator-alice", f"wolfpack/v1/{SITE}/cell-a/cmd/replay"),
        ("monitor", f"wolfpack/v1/{SITE}/cell-a/cmd/stop"),  # monitors only read
        ("operator-alice", f"wolfpack/v1/{SITE}/cell-a/state"),
        ("operator-alice", f"wolfpack/v1/{SITE}/cell-a/events/parcel"),
        # the node patterns apply to every user: no one else may pose as a node of its name
        ("operator-alice", f"wolfpack/v1/{SITE}/operator-alice/state"),
        ("brain", f"wolfpack/v1/{SITE}/brain/state"),
        ("monitor", f"wolfpack/v1/{SITE}/monitor/events/parcel"),
    ]
    try:
        for i, (user, topic) in enumerate(forged):
            publish_once(port, ca, topic, f"o{i}", user=user)
        time.sleep(0.5)
        assert ran == ["start", "stop", "reset", "status"]  # nothing forged ran
        topics = {t for _, t in forged}
        assert not [t for t, p in got if t in topics and b'"from"' in p], got
    finally:
        node.stop()
        watcher.loop_stop()


def test_config_status_goes_out_on_the_nodes_own_connection(secured_broker, tmp_path: Path):
    """With client id bound to user, a second connection with the node's credential (as the
    config-status publisher used to open) replaced the node's session and published its
    'offline' will. The running link publishes it itself now."""
    from edge.node import config_apply

    port, ca = secured_broker
    node = _link(port, ca, tmp_path, "cell-a")
    try:
        assert node.connected.wait(10)
        session = node.session
        watcher, got = watch(port, ca)
        board = type("Board", (), {"node": type("N", (), {"id": "cell-a", "site": SITE})()})()
        config_apply.set_status_link(node)
        try:
            body = {"version": 3, "outcome": "applied"}
            assert config_apply.publish_retained_status(board, body, timeout=5)
        finally:
            config_apply.set_status_link(None)
        time.sleep(0.5)
        topic = f"wolfpack/v1/{SITE}/cell-a/config/status"
        assert [json.loads(p) for t, p in got if t == topic] == [body]
        assert node.session == session and node.connects == 1, "the node was knocked off"
        assert _offline(got, "cell-a") == []
        watcher.loop_stop()
    finally:
        node.stop()


# ---- wolfpack cmd with the shipped templates (issue 17, item 5) ---------------------------------


def wolfpack(*argv: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """The CLI's handler in this process (a second of Python start-up saved per call); its
    exit code, stdout and stderr as a finished process would give them."""
    from edge.cli.main import build_parser

    out, err = io.StringIO(), io.StringIO()
    saved = {k: os.environ.get(k) for k in env or {}}
    os.environ.update(env or {})
    try:
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            args = build_parser().parse_args(list(argv))
            code = args.handler(args)
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
    return subprocess.CompletedProcess(list(argv), code, out.getvalue(), err.getvalue())


def test_wolfpack_cmd_with_the_operator_credential(secured_broker, tmp_path: Path):
    """Each outcome and its exit code: done 0, refused 3, no answer 4, broker 5; one line."""
    from edge.cli.cmd_cmd import EXIT_BROKER, EXIT_OK, EXIT_REFUSED, EXIT_TIMEOUT

    port, ca = secured_broker
    node = _link(port, ca, tmp_path, "cell-a")
    ran: list[str] = []
    node.commands.register("stop", lambda _a: ran.append("stop") or {"state": "ready"})
    node.commands.register(
        "status",
        lambda _a: {"state": "ready", "devices_up": ["mcu", "plc"], "parcels": {"sorted": 3}},
    )

    def reset(_a: dict) -> dict:
        from fleet_link.commands import CommandError

        raise CommandError("refused", "e-stop still pressed")

    node.commands.register("reset", reset)
    secret = tmp_path / "alice.password"
    secret.write_text(PASSWORDS["operator-alice"] + "\n")
    common = ["--site", SITE, "--broker", f"mqtts://127.0.0.1:{port}", "--ca-file", str(ca)]
    alice = [*common, "--username", "operator-alice", "--password-file", str(secret)]
    try:
        assert node.connected.wait(10)
        time.sleep(0.3)
        done = wolfpack("cmd", "stop", "--node", "cell-a", *alice, "--request-id", "alice-1")
        assert done.returncode == EXIT_OK, done.stderr
        assert done.stdout.strip() == "cell-a: stop done, state ready" and ran == ["stop"]
        again = wolfpack("cmd", "stop", "--node", "cell-a", *alice, "--request-id", "alice-1")
        assert again.returncode == EXIT_OK and ran == ["stop"]  # not acted on twice
        assert "answered before" in again.stdout and "did not act again" in again.stdout

        status = wolfpack("cmd", "status", "--node", "cell-a", *alice)
        assert status.returncode == EXIT_OK, status.stderr
        lines = status.stdout.splitlines()
        assert lines[0] == "cell-a: status done, state ready"
        assert [line.split() for line in lines[1:]] == [
            ["devices_up", "mcu,", "plc"], ["parcels.sorted", "3"], ["state", "ready"]
        ]  # fmt: skip

        refused = wolfpack("cmd", "reset", "--node", "cell-a", *alice, "--json")
        assert refused.returncode == EXIT_REFUSED
        body = json.loads(refused.stdout)
        assert body["error"] == {"code": "refused", "message": "e-stop still pressed"}

        # the password from the environment, as the docs show
        env = {"WOLFPACK_MQTT_PASSWORD": PASSWORDS["operator-alice"]}
        by_env = wolfpack(
            "cmd", "ping", "--node", "cell-a", *common, "--username", "operator-alice", env=env
        )
        assert by_env.returncode == EXIT_OK and by_env.stdout.startswith("cell-a: ping done")

        absent = wolfpack("cmd", "stop", "--node", "cell-zz", *alice, "--timeout", "1.5")
        assert absent.returncode == EXIT_TIMEOUT
        assert "no answer from cell-zz within 1.5 s" in absent.stderr
        assert "holds no state of cell-zz" in absent.stderr

        # the monitor's credential only reads: the broker hangs up on its command
        watcher = tmp_path / "monitor.password"
        watcher.write_text(PASSWORDS["monitor"])
        denied = wolfpack(
            "cmd", "stop", "--node", "cell-a", *common, "--username", "monitor",
            "--password-file", str(watcher),
        )  # fmt: skip
        assert denied.returncode == EXIT_BROKER and ran == ["stop"]
        assert "the ACL does not let monitor publish cmd/stop" in denied.stderr

        env = {"WOLFPACK_MQTT_PASSWORD": "wrong"}
        bad = wolfpack("cmd", "stop", "--node", "cell-a", *common, "--username", "x", env=env)
        assert bad.returncode == EXIT_BROKER and "cannot connect" in bad.stderr

        for done in (absent, denied, bad):
            assert "Traceback" not in done.stderr
            assert len([ln for ln in done.stderr.splitlines() if "wolfpack cmd" in ln]) == 1
    finally:
        node.stop()


def test_a_vda5050_vehicle_publishes_only_its_own_topics_and_the_master_reads_them(
    secured_broker,
):
    """The vehicle amr-1 (serialNumber = node id = username) may publish its state and
    connection; not another vehicle's, nor an order to itself; the master sees the first."""
    port, ca = secured_broker
    received: list[str] = []
    master = node_client(port, ca, "master", PASSWORDS["master"], "m")
    master.on_message = lambda _c, _u, m: received.append(m.topic)
    master.subscribe("uagv/v2/#", qos=1)
    own = ["uagv/v2/acme/amr-1/state", "uagv/v2/acme/amr-1/connection"]
    forged = ["uagv/v2/acme/amr-2/state", "uagv/v2/acme/amr-1/order",
              "uagv/v2/acme/amr-2/instantActions"]  # fmt: skip
    try:
        time.sleep(0.3)
        for i, topic in enumerate(forged):
            publish_once(port, ca, topic, f"f{i}", user="amr-1")
        for i, topic in enumerate(own):
            publish_once(port, ca, topic, f"o{i}", user="amr-1")
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline and not set(own) <= set(received):
            time.sleep(0.05)
        time.sleep(0.3)
        assert set(own) <= set(received), received
        assert not [t for t in received if t in forged], received
    finally:
        master.loop_stop()
        master.disconnect()
