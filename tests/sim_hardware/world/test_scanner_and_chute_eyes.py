"""The fixed scanner station and the chute eyes: in the stepped world (exact times, whatever
the step) and in a real-time cell reached only through its ports, as a node meets it: the
scanner's TCP line carries each label once (NoRead for an unreadable one) and each drop shows
as a pulse of sensor_ms on its chute's MCU input."""

from __future__ import annotations

import asyncio
import socket
import time
from collections import Counter
from collections.abc import Callable
from typing import Any

import pytest

from firmware_bridge.mcu import McuLink
from sim_hardware.world import CellWorld
from sim_hardware.world.cell import SimCell, SimCellProcess
from tests.sim_hardware.world.helpers import SPEED, small_config
from tests.sim_hardware.world.test_cell import _parcels, _start_belt

SCANNER_MM = 300.0


def _config(**overrides: Any) -> Any:
    return small_config(scanners=[{"position_mm": SCANNER_MM}], **overrides)


# ---- the stepped world ------------------------------------------------------------------------
@pytest.mark.parametrize("step", [0.001, 0.037, 1.0])
def test_each_parcel_is_scanned_once_as_its_centre_passes_whatever_the_step(step):
    world = CellWorld(_config(), arrivals=False)
    scans: list[tuple[int, int, str | None, float]] = []
    world.scan_listeners.append(lambda *a: scans.append(a))
    world.command_belt(True, SPEED, 1e9)
    a = world.add_parcel(label_text="123456", length_mm=300.0)
    b = world.add_parcel(label_text="654321", label_legible=False, length_mm=200.0)
    t = 0.0
    while t < 3.0:
        t += step
        world.advance_to(t)
    assert [(s[0], s[1], s[2]) for s in scans] == [(0, a.id, "123456"), (0, b.id, None)]
    gap = world.config.arrivals.min_gap_mm
    # centre at the scanner: (position + length/2 + travel before induction) / speed, within
    # the 2 us ramp
    assert scans[0][3] == pytest.approx((SCANNER_MM + 150.0) / SPEED, abs=1e-5)
    assert scans[1][3] == pytest.approx((300.0 + gap + SCANNER_MM + 100.0) / SPEED, abs=1e-5)


@pytest.mark.parametrize("step", [0.001, 0.05, 1.0])
def test_chute_eye_rises_at_each_drop_and_falls_sensor_ms_after_the_last(step):
    config = _config(
        stations=[{"position_mm": 1500.0, "sensor_ms": 150.0}, {"position_mm": 2500.0}],
        arrivals={"min_gap_mm": 50.0},
    )
    world = CellWorld(config, arrivals=False)
    edges: list[tuple[int, bool, float]] = []
    world.chute_listeners.append(lambda *e: edges.append(e))
    world.command_belt(True, SPEED, 1e9)
    world.set_diverter(0, True)  # held on: takes everything
    for _ in range(2):  # 200 mm apart at 2 m/s: the second drop 100 ms after the first
        world.add_parcel(length_mm=150.0)
    world.add_parcel(length_mm=150.0)  # then a third, alone... also 100 ms later
    t = 0.0
    while t < 3.0:
        t += step
        world.advance_to(t)
    drops = [e.t for e in world.events if e.kind == "diverted"]
    assert len(drops) == 3
    # drops 100 ms apart keep the eye blocked: one pulse from the first to 150 ms past the last
    assert [(s, b) for s, b, _ in edges] == [(0, True), (0, False)]
    assert edges[0][2] == pytest.approx(drops[0], abs=1e-9)
    assert edges[1][2] == pytest.approx(drops[-1] + 0.150, abs=1e-9)


def test_drops_further_apart_than_the_sensor_give_one_pulse_each():
    config = _config(stations=[{"position_mm": 1500.0, "sensor_ms": 50.0}, {"position_mm": 2500.0}])
    world = CellWorld(config, arrivals=False)
    edges: list[tuple[int, bool, float]] = []
    world.chute_listeners.append(lambda *e: edges.append(e))
    world.command_belt(True, SPEED, 1e9)
    world.set_diverter(0, True)
    for _ in range(3):
        world.add_parcel(length_mm=300.0)  # 350 mm apart: 175 ms
    world.advance_to(5.0)  # one coarse step: the clearings still carry their own times
    drops = [e.t for e in world.events if e.kind == "diverted"]
    expected = [(0, v, d + (0.0 if v else 0.05)) for d in drops for v in (True, False)]
    assert [(s, b) for s, b, _ in edges] == [(s, b) for s, b, _ in expected]
    assert [t for *_, t in edges] == pytest.approx([t for *_, t in expected], abs=1e-9)


def test_a_scanner_past_the_belt_end_is_refused():
    with pytest.raises(ValueError, match="scanner 0"):
        small_config(scanners=[{"position_mm": 99_999.0}])


# ---- the real-time cell -----------------------------------------------------------------------
Edge = tuple[int, int, int, int]  # pin, value, MCU clock, count


def _run_node(
    config: Any,
    mcu_link: str,
    scanner_port: int,
    add_parcels: Callable[[], list[int]],
    finished: Callable[[], bool],
) -> tuple[list[str], list[Edge]]:
    """A minimal node: reads the scanner's lines, records every MCU input edge and strokes
    each parcel from the photo-eye's edges. ``add_parcels`` puts the parcels on the belt once
    the node is connected and returns their stations in induction order."""
    eye_mid = sum(config.photo_eyes_mm[0]) / 2

    async def run() -> tuple[list[str], list[Edge]]:
        reader, writer = await asyncio.open_connection("127.0.0.1", scanner_port)
        lines: list[str] = []

        async def read_lines() -> None:
            while line := await reader.readuntil(b"\r\n"):
                lines.append(line[:-2].decode())

        reading = asyncio.create_task(read_lines())
        edges: list[Edge] = []
        eye: asyncio.Queue[tuple[int, int]] = asyncio.Queue()

        def on_event(m: Any) -> None:
            if m.name == "input_edge":
                edges.append((m["pin"], m["value"], m["clock"], m["count"]))
                if m["pin"] == 0:
                    eye.put_nowait((m["value"], m["count"]))

        async with McuLink(mcu_link) as mcu:
            mcu.on_event(on_event)
            for pin in range(len(config.stations)):
                await mcu.configure_output(pin, safe_value=0)
            queue = add_parcels()
            n_parcels = len(queue)
            blocked_at = 0
            while queue:
                value, count = await asyncio.wait_for(eye.get(), 5)
                if value:
                    blocked_at = count
                    continue
                station = queue.pop(0)
                x = config.stations[station].position_mm
                target = round((blocked_at + count) / 2 + (x - eye_mid))
                await mcu.schedule_at_count(target, pin=station, duration_s=0.01)
            while not finished():
                await asyncio.sleep(0.05)
            deadline = time.monotonic() + 5
            while time.monotonic() < deadline:  # until the last chute eye has cleared
                values = Counter(v for pin, v, _, _ in edges if pin != 0)
                if values[1] == values[0] == n_parcels:
                    break
                await asyncio.sleep(0.05)
        reading.cancel()
        writer.close()
        return lines, edges

    return asyncio.run(asyncio.wait_for(run(), 30))


def test_a_cell_in_its_own_process_reports_labels_on_its_scanner_and_drops_on_chute_pins(
    tmp_path,
):
    config = _config(arrivals={"min_gap_mm": 150.0})
    chute_pins = {0: 12, 1: 9, 2: 15}
    parcels = _parcels()
    n = len(parcels)
    with SimCellProcess(
        config, tmp_path / "mcu", arrivals=False, scanner_tcp_port=0, chute_pins=chute_pins
    ) as cell:
        assert cell.scanner_port and cell.ports == {
            "plc": cell.plc_port,
            "scanner": cell.scanner_port,
        }
        _start_belt(cell.plc_port)

        def add_parcels() -> list[int]:
            deadline = time.monotonic() + 5
            while cell.get("scanner.connected_clients") == 0:  # the scanner has accepted us
                assert time.monotonic() < deadline
                time.sleep(0.01)
            for p in parcels:
                cell.call("world.add_parcel", p)
            records = cell.get("world.score.records")
            return [records[p.id].intended for p in parcels]

        lines, edges = _run_node(
            config,
            cell.mcu_link,
            cell.scanner_port,
            add_parcels,
            lambda: bool(cell.call("world.score.summary")["finished"] == n),
        )
        records = cell.get("world.score.records")
        stats = cell.get("scanner.stats")
        cell.call("scanner.set_silent", True)  # a fault through the pipe
        assert cell.call("scanner.scan", "999999") is False

    expected = [p.label_text if p.label_legible else "NoRead" for p in parcels]
    assert lines == expected  # each label once, in order; the unreadable one as NoRead
    assert (stats.reads, stats.no_reads) == (n - 1, 1), stats
    outcomes = [(records[p.id].actual, records[p.id].intended) for p in parcels]
    assert all(actual == intended for actual, intended in outcomes), outcomes
    per_pin = Counter((pin, value) for pin, value, _, _ in edges if pin != 0)
    dropped = Counter(records[p.id].actual for p in parcels)
    expected_edges = Counter({(chute_pins[s], v): k for s, k in dropped.items() for v in (0, 1)})
    assert per_pin == expected_edges, edges
    for pin in chute_pins.values():  # each pulse lasts sensor_ms on the MCU's clock
        clocks = [(v, c) for p, v, c, _ in edges if p == pin]
        for (v1, c1), (v0, c0) in zip(clocks[::2], clocks[1::2], strict=True):
            assert (v1, v0) == (1, 0)
            assert (c0 - c1) / 1e6 == pytest.approx(0.150, abs=0.002)


def test_scanner_faults_and_no_reads_in_a_cell_in_this_process(tmp_path):
    config = _config()
    with SimCell(
        config,
        tmp_path / "mcu",
        arrivals=False,
        scanner_tcp_port=0,
        scanner_options={"no_read_rate": 1.0},
    ) as cell:
        assert cell.scanner is not None and cell.scanner_port == cell.scanner.port
        with socket.create_connection(("127.0.0.1", cell.scanner.port), timeout=2) as client:
            deadline = time.monotonic() + 2
            while cell.scanner.connected_clients == 0:
                assert time.monotonic() < deadline
                time.sleep(0.01)
            assert cell.scanner.scan("123456") is False  # no_read_rate 1: every read fails
            cell.scanner.set_no_read_rate(0.0)
            assert cell.scanner.scan("123456") is True
            cell.scanner.set_silent(True)
            assert cell.scanner.scan("111111") is False
            data = b""
            while data.count(b"\r\n") < 2:
                data += client.recv(100)
        assert data == b"NoRead\r\n123456\r\n"
        assert cell.scanner.sent == ["NoRead", "123456"]


def test_a_scanner_port_without_a_scanner_station_and_shared_input_pins_are_refused(tmp_path):
    with pytest.raises(ValueError, match=r"config\.scanners"):
        SimCell(small_config(), tmp_path / "mcu", scanner_tcp_port=0)
    with pytest.raises(ValueError, match="both photo-eyes and chute eyes"):
        SimCell(small_config(), tmp_path / "mcu", chute_pins={0: 0})
