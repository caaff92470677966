"""The production mosquitto templates in configs/mosquitto (TLS, a password per node, the ACL),
run for real: node A's credentials cannot publish under node B's prefix."""

from __future__ import annotations

import getpass
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
PASSWORDS = {"cell-a": "pw-a", "cell-b": "pw-b", "brain": "pw-brain"}


@pytest.fixture(params=[False], ids=["tls"])
def secured_broker(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[tuple[int, Path]]:
    yield from _secured_broker(tmp_path, mutual=request.param)


@pytest.fixture
def mutual_tls_broker(tmp_path: Path) -> Iterator[tuple[int, Path]]:
    yield from _secured_broker(tmp_path, mutual=True)


def _secured_broker(tmp_path: Path, mutual: bool) -> Iterator[tuple[int, Path]]:
    etc = tmp_path / "etc"
    etc.mkdir()
    ca, _, _ = make_ca_and_broker_cert(etc)
    passwd = etc / "passwd"
    for user, password in PASSWORDS.items():
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
    (etc / "acl").write_text((TEMPLATES / "acl").read_text().replace("@SITE@", SITE))
    port = free_port()
    conf = (TEMPLATES / "mosquitto.conf").read_text()
    conf = conf.replace("/etc/mosquitto/wolfpack/", f"{etc}/")
    conf = conf.replace("listener 8883", f"listener {port} 127.0.0.1")
    conf = conf.replace(
        "persistence_location /var/lib/mosquitto/", f"persistence_location {tmp_path}/"
    )
    conf = conf.replace("log_dest syslog", "log_dest stdout")
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


def node_client(port: int, ca: Path, user: str, password: str, tag: str) -> mqtt.Client:
    """A plain paho client with a node's credentials (one connection per attempt: mosquitto
    2.0.11 drops the connection of a client whose publish the ACL denied)."""
    connected = threading.Event()
    c = mqtt.Client(
        CallbackAPIVersion.VERSION2, client_id=f"raw-{user}-{tag}", protocol=mqtt.MQTTv311
    )
    c.username_pw_set(user, password)
    c.tls_set(ca_certs=str(ca))
    c.on_connect = lambda _c, _u, _f, reason, _p: (not reason.is_failure) and connected.set()
    c.connect("127.0.0.1", port)
    c.loop_start()
    assert connected.wait(10), f"{user} could not connect"
    return c


def publish_once(port: int, ca: Path, topic: str, tag: str) -> None:
    c = node_client(port, ca, "cell-a", "pw-a", tag)
    try:
        c.publish(topic, b'{"from": "cell-a"}', qos=1).wait_for_publish(3)
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
        f"wolfpack/v1/{SITE}/cell-a/cmd/set_belt_speed",  # not even its own commands
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
