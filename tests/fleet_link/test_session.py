"""The session's reconnect policy: exponential backoff with jitter, capped."""

from __future__ import annotations

import itertools
import time

from fleet_link.config import MqttConfig
from fleet_link.link import EdgeLink, jittered
from tests.fleet_link.mosquitto import free_port


def test_reconnect_backoff_doubles_to_the_cap_with_jitter(tmp_path):
    pauses = [jittered(1.0) for _ in range(200)]
    assert all(0.5 <= p <= 1.0 for p in pauses) and len(set(pauses)) > 100
    cfg = MqttConfig.model_validate(
        {
            "broker": f"mqtt://127.0.0.1:{free_port()}",
            "reconnect_min_s": 0.05,
            "reconnect_max_s": 0.4,
            "outbox": {"path": str(tmp_path / "o.sqlite3")},
        }
    )
    link = EdgeLink(cfg, "s", "n")
    attempts: list[float] = []
    real = link._new_client

    def counting():
        attempts.append(time.monotonic())
        return real()

    link._new_client = counting
    link.start()
    time.sleep(2.5)
    link.stop()
    gaps = [b - a for a, b in itertools.pairwise(attempts)]
    assert gaps[0] < 0.2 and max(gaps) <= 0.6  # starts at reconnect_min_s, capped at max
    assert 0.2 * 0.5 <= gaps[3] and len(attempts) < 20  # it backed off: no busy loop
