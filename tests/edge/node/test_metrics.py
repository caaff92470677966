"""The node's /metrics: the listen address parser, the config section, and the endpoint served
by a node whose parts (MCU link, PLC belt, fleet link, camera) are the real objects, scraped
over HTTP and linted by Prometheus' own promtool."""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import logging
import shutil
import socket
import subprocess
import threading
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st
from prometheus_client.parser import text_string_to_metric_families

from edge.cell.events import PublishRecord
from edge.cell.record import STAGES, ParcelRecord
from edge.config import BoardConfig, ConfigError, load_board_config, parse_config_text
from edge.config.metrics import format_listen, parse_listen
from edge.node import metrics as node_metrics
from edge.node.camera_feed import CameraFeed
from edge.node.cell_node import CellNode
from edge.node.fleet import FleetBridge
from edge.node.plc_belt import PlcBelt, PlcStatus
from firmware_bridge.mcu import McuLink

REPO = Path(__file__).resolve().parents[3]
SIM_CONFIG = REPO / "configs" / "sim-cell.yaml"


# ---- the listen address ------------------------------------------------------------------------
_hostnames = st.from_regex(r"\A[a-z][a-z0-9-]{0,20}(\.[a-z][a-z0-9-]{0,20}){0,3}\Z").filter(
    lambda h: not h.endswith("-") and "-." not in h
)


@given(
    host=st.one_of(st.ip_addresses(v=4).map(str), st.ip_addresses(v=6).map(str), _hostnames),
    port=st.integers(0, 65535),
)
def test_listen_round_trips(host: str, port: int) -> None:
    assert parse_listen(format_listen(host, port)) == (host, port)


@given(st.text(max_size=60))
def test_listen_parser_takes_any_text_and_only_ever_says_valueerror(text: str) -> None:
    try:
        host, port = parse_listen(text)
    except ValueError as exc:
        assert str(exc)  # a reason, never empty
        return
    assert 0 <= port <= 65535 and host
    if ":" in host:
        ipaddress.IPv6Address(host)


GOOD = "node: {id: cell-07, site: dc-berlin}\n"


@pytest.mark.parametrize(
    ("listen", "expected"),
    [
        ('"::1:9108"', "put an IPv6 address in brackets, e.g. [::1]:9108"),
        ("localhost", "expected HOST:PORT, e.g. 127.0.0.1:9108"),
        ('"127.0.0.1:99999"', "the port 99999 is over 65535"),
        ('"127.0.0.1:http"', "the port 'http' is not a number 0-65535"),
        ('":9108"', "no host; 127.0.0.1 serves this board only"),
        ('"bad host:1"', "'bad host' is neither an IPv4 address nor a host name"),
        ('"10.0.0.300:1"', "'10.0.0.300' is neither an IPv4 address nor a host name"),
        ('"[::g]:1"', "'::g' is not an IPv6 address"),
    ],
)
def test_a_bad_listen_address_is_one_clear_config_error(listen: str, expected: str) -> None:
    with pytest.raises(ConfigError) as info:
        parse_config_text(GOOD + f"metrics: {{listen: {listen}}}\n", "cell.yaml", BoardConfig)
    (issue,) = info.value.issues
    assert str(issue).startswith("cell.yaml:2:19: metrics.listen: got ")
    assert expected in str(issue)


def test_metrics_are_off_without_the_section_and_default_to_loopback() -> None:
    assert parse_config_text(GOOD, "cell.yaml", BoardConfig).metrics is None
    cfg = parse_config_text(GOOD + "metrics: {}\n", "cell.yaml", BoardConfig).metrics
    assert cfg is not None and (cfg.host, cfg.port) == ("127.0.0.1", 9108)


# ---- a node with every part ----------------------------------------------------------------------
def board_with_metrics(tmp_path: Path, listen: str = "127.0.0.1:0") -> BoardConfig:
    data = load_board_config(SIM_CONFIG).model_dump(mode="json", exclude_none=True)
    data["metrics"] = {"listen": listen}
    data["mqtt"]["outbox"]["path"] = str(tmp_path / "outbox.sqlite")
    data["cell"]["camera"] = {"max_fps": 5}
    return BoardConfig.model_validate(data)


@contextlib.contextmanager
def equipped_node(tmp_path: Path, listen: str = "127.0.0.1:0") -> Iterator[CellNode]:
    """A node with its real MCU link, PLC belt, fleet link and camera objects attached, none
    of them connected: what a scrape reads is there, nothing runs."""
    board = board_with_metrics(tmp_path, listen)
    node = CellNode(board, journal_file=tmp_path / "journal.json")
    cell = board.cell
    assert cell is not None and cell.plc is not None and board.mqtt is not None
    loop = asyncio.new_event_loop()
    node.loop = loop
    node.mcu = McuLink(str(tmp_path / "no-mcu"), name="main")
    node.mcu.endpoint.rtt.sample(0.003)
    node.plc = PlcBelt(board.modbus, cell.plc, loop, lambda _st: None)
    node._plc_last = PlcStatus(online=True, speed_mm_s=2500.0)
    node.fleet = FleetBridge(board.mqtt, board.node.site, board.node.id, cell.brain, loop,
                             lambda *_a: None, lambda *_a: {}, reporter=node.reporter)  # fmt: skip
    assert cell.camera is not None and board.vision is not None
    node.camera = CameraFeed(cell.camera, board.vision, lambda _s: None, lambda *_a: None)
    try:
        yield node
    finally:
        assert node.metrics is not None
        node.metrics.stop()
        node.reporter.close(3.0)
        node.fleet.link.outbox.close()
        loop.close()


def record(parcel_id: int, outcome: str = "sorted") -> ParcelRecord:
    return ParcelRecord(
        parcel_id=parcel_id, outcome=outcome, chute="chute-1", actual_chute="chute-1",  # type: ignore[arg-type]
        confirmed=True, reason="brain", decision_source="brain", label="1.2", label_source="scan",
        class_name="box", size_mm=None, lead_count=0, scheduled_count=100, fired_count=101,
        divert_error_mm=-4.0,
        latency_ms={name: 2.0 * (i + 1) for i, (name, _, _) in enumerate(STAGES)},
    )  # fmt: skip


def scrape(url: str, timeout: float = 5.0) -> str:
    with urllib.request.urlopen(url, timeout=timeout) as resp:
        assert resp.status == 200
        return resp.read().decode()


def samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    out = {}
    for fam in text_string_to_metric_families(text):
        for s in fam.samples:
            out[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return out


def started(node: CellNode) -> str:
    assert node.metrics is not None
    node.metrics.start()
    assert node.metrics.bound.wait(5), "the metrics server did not bind"
    assert node.metrics.url is not None
    return node.metrics.url


EXPECTED_FAMILIES = {
    "wolfpack_parcels", "wolfpack_decisions", "wolfpack_stage_latency_seconds",
    "wolfpack_divert_error_meters", "wolfpack_parcels_active", "wolfpack_safety_state",
    "wolfpack_device_up", "wolfpack_device_degraded", "wolfpack_node_info",
    "wolfpack_reporter_backlog", "wolfpack_reporter_dropped", "wolfpack_fleet_connected",
    "wolfpack_outbox_depth", "wolfpack_outbox_dropped", "wolfpack_outbox_store_errors",
    "wolfpack_mcu_link_up", "wolfpack_mcu_retransmits", "wolfpack_mcu_rtt_seconds",
    "wolfpack_mcu_bad_frames", "wolfpack_plc_online", "wolfpack_belt_speed_meters_per_second",
    "wolfpack_camera_frames", "wolfpack_camera_process_seconds", "process_resident_memory_bytes",
}  # fmt: skip


def test_a_scrape_over_http_shows_the_records_published(tmp_path: Path) -> None:
    with equipped_node(tmp_path) as node:
        url = started(node)
        before = samples(scrape(url))
        assert EXPECTED_FAMILIES <= {name for fam in text_string_to_metric_families(scrape(url))
                                     for name in [fam.name]}  # fmt: skip
        sorted_key = ("wolfpack_parcels_total", (("outcome", "sorted"),))
        assert before[sorted_key] == 0
        for pid in (1, 2, 3):
            node._act(PublishRecord(record(pid)))
        node._act(PublishRecord(record(4, "rejected")))
        after = samples(scrape(url))
        assert after[sorted_key] == 3
        assert after[("wolfpack_parcels_total", (("outcome", "rejected"),))] == 1
        assert after[("wolfpack_parcels_total", (("outcome", "lost"),))] == 0
        assert after[("wolfpack_decisions_total", (("source", "brain"),))] == 4
        # latencies in seconds, one observation per record and stage
        first = STAGES[0][0]
        assert after[("wolfpack_stage_latency_seconds_count", (("stage", first),))] == 4
        assert after[("wolfpack_stage_latency_seconds_sum", (("stage", first),))] == (
            pytest.approx(4 * 0.002)
        )
        le = (("le", "0.005"), ("stage", STAGES[1][0]))  # 4 ms
        assert after[("wolfpack_stage_latency_seconds_bucket", le)] == 4
        assert after[("wolfpack_divert_error_meters_bucket", (("le", "0.005"),))] == 4
        # the states as they are
        assert after[("wolfpack_safety_state", (("state", "boot"),))] == 1
        assert after[("wolfpack_safety_state", (("state", "running"),))] == 0
        assert after[("wolfpack_device_up", (("device", "mcu"),))] == 0
        assert after[("wolfpack_mcu_rtt_seconds", (("mcu", "main"),))] == pytest.approx(0.003)
        assert after[("wolfpack_belt_speed_meters_per_second", ())] == 2.5
        assert after[("wolfpack_fleet_connected", ())] == 0
        info = [k for k in after if k[0] == "wolfpack_node_info"]
        assert info == [("wolfpack_node_info", (("config_version", ""), ("node", "sim-cell"),
                                                ("site", "sim")))]  # fmt: skip


def test_promtool_finds_nothing_to_lint_in_the_exposition(tmp_path: Path) -> None:
    promtool = shutil.which("promtool")
    if promtool is None:
        pytest.fail("promtool is not installed: run scripts/system-deps.sh (Debian 'prometheus')")
    with equipped_node(tmp_path) as node:
        node._act(PublishRecord(record(1)))
        assert node.metrics is not None
        text = node.metrics.exposition()
    out = subprocess.run([promtool, "check", "metrics"], input=text, capture_output=True,
                         timeout=30)  # fmt: skip
    assert out.returncode == 0, (out.stdout + out.stderr).decode()


def test_a_scrape_does_not_wait_for_a_busy_node_loop(tmp_path: Path) -> None:
    with equipped_node(tmp_path) as node:
        url = started(node)
        assert node.loop is not None
        loop = node.loop
        busy = threading.Event()

        def hog() -> None:
            busy.set()
            time.sleep(1.0)  # the node's loop stuck in a long step

        runner = threading.Thread(target=loop.run_forever, daemon=True)
        runner.start()
        loop.call_soon_threadsafe(hog)
        assert busy.wait(2)
        t0 = time.monotonic()
        scrape(url)
        took = time.monotonic() - t0
        loop.call_soon_threadsafe(loop.stop)
        runner.join(5)
        assert took < 0.5, f"the scrape took {took:.2f} s while the loop was busy"


def test_a_busy_port_is_logged_and_retried_and_stop_frees_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setattr(node_metrics, "RETRY_BIND_S", 0.1)
    taken = socket.socket()
    taken.bind(("127.0.0.1", 0))
    taken.listen()
    port = taken.getsockname()[1]
    caplog.set_level(logging.ERROR, "wolfpack.node.metrics")
    with equipped_node(tmp_path, f"127.0.0.1:{port}") as node:
        assert node.metrics is not None
        node.metrics.start()
        assert not node.metrics.bound.wait(0.5)
        assert f"cannot listen on 127.0.0.1:{port}" in caplog.text
        assert "the cell runs on without /metrics" in caplog.text
        taken.close()
        assert node.metrics.bound.wait(3), "not bound once the port was free"
        assert "wolfpack_parcels_total" in scrape(f"http://127.0.0.1:{port}/metrics")
        node.metrics.stop()
        with pytest.raises(OSError):
            scrape(f"http://127.0.0.1:{port}/metrics", timeout=1)


def test_a_record_the_histograms_cannot_take_is_counted_not_raised(tmp_path: Path) -> None:
    with equipped_node(tmp_path) as node:
        assert node.metrics is not None
        bad: Any = record(1)
        object.__setattr__(bad, "latency_ms", {"seen_to_label": "soon"})
        node._act(PublishRecord(bad))  # the parcel is still counted
        assert node.counters["sorted"] == 1 and node.metrics.record_errors == 1


def test_no_section_no_server(tmp_path: Path) -> None:
    data = board_with_metrics(tmp_path).model_dump(mode="json", exclude_none=True)
    del data["metrics"]
    node = CellNode(BoardConfig.model_validate(data), journal_file=tmp_path / "j.json")
    assert node.metrics is None


def test_a_failing_section_is_left_out_counted_and_the_rest_served(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.ERROR, "wolfpack.node.metrics")
    with equipped_node(tmp_path) as node:
        url = started(node)
        node.camera.stats = None  # a part whose figures cannot be read
        for _ in range(2):
            got = samples(scrape(url))
        assert ("wolfpack_metrics_errors_total", (("section", "camera"),)) in got
        assert got[("wolfpack_metrics_errors_total", (("section", "camera"),))] == 2
        assert not any(name.startswith("wolfpack_camera_") for name, _ in got)
        assert ("wolfpack_parcels_total", (("outcome", "sorted"),)) in got
        assert caplog.text.count("the camera section failed") == 1  # logged once
