"""The encoder clock's estimate between reports; systemd's notify datagrams."""

from __future__ import annotations

import os
import socket
from pathlib import Path

import pytest

from edge.node.encoder import EncoderClock
from edge.node.systemd import Notifier


def test_encoder_clock_extrapolates_at_the_recent_speed() -> None:
    clock = EncoderClock(window_s=0.1)
    assert clock.count_at(1.0) is None
    for i in range(30):  # 2500 counts/s, a report every 10 ms
        clock.update(25 * i, 1.0 + 0.01 * i)
    assert clock.counts_per_s == pytest.approx(2500, rel=1e-6)
    assert clock.count_at(1.29 + 0.004) == 725 + 10
    assert clock.count_at(1.0) == 725  # never before the last report


def test_encoder_clock_sees_a_stopped_belt() -> None:
    clock = EncoderClock(window_s=0.05)
    for i in range(20):
        clock.update(500, 2.0 + 0.01 * i)
    assert clock.counts_per_s == 0
    assert clock.count_at(5.0) == 500


def test_notifier_sends_ready_status_and_watchdog(tmp_path: Path) -> None:
    path = tmp_path / "notify"
    server = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    server.bind(str(path))
    server.settimeout(2)
    try:
        n = Notifier({"NOTIFY_SOCKET": str(path), "WATCHDOG_USEC": "2000000",
                      "WATCHDOG_PID": str(os.getpid())})  # fmt: skip
        assert n.enabled and n.watchdog_s == 1.0
        assert n.ready("cell ready")
        assert server.recv(256) == b"READY=1\nSTATUS=cell ready"
        assert n.watchdog()
        assert server.recv(256) == b"WATCHDOG=1"
    finally:
        server.close()


def test_notifier_outside_systemd_does_nothing() -> None:
    n = Notifier({})
    assert not n.enabled and n.watchdog_s is None
    assert not n.ready()
    assert (
        Notifier({"NOTIFY_SOCKET": "/x", "WATCHDOG_USEC": "100", "WATCHDOG_PID": "1"}).watchdog_s
        is None
    )  # fmt: skip  (another process's watchdog)
