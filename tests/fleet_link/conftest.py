"""Fixtures: a real mosquitto per test on a free loopback port, and link configs in tmp_path."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from fleet_link.config import MqttConfig
from tests.fleet_link.mosquitto import Mosquitto


@pytest.fixture
def mosquitto(tmp_path: Path) -> Iterator[Mosquitto]:
    broker = Mosquitto(tmp_path).start()
    try:
        yield broker
    finally:
        broker.stop()


def link_config(tmp_path: Path, url: str, **outbox: object) -> MqttConfig:
    return MqttConfig.model_validate(
        {
            "broker": url,
            "keepalive_s": 5,
            "reconnect_min_s": 0.1,
            "reconnect_max_s": 1.0,
            "state_interval_s": 1.0,
            "outbox": {"path": str(tmp_path / "outbox.sqlite3"), **outbox},
        }
    )
