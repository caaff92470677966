"""The simulated warehouse: the default map, vehicle physics (odometry drift, battery,
protective field, floor-code camera), ground truth, and a vehicle driven over its MCU's pty."""

from __future__ import annotations

import asyncio
import json
import math
import random
import time

import pytest
from hypothesis import given
from hypothesis import strategies as st

from firmware_bridge.mcu import McuLink
from firmware_bridge.mcu.drive import BatteryReport, DriveStopped, VehicleDrive
from sim_hardware.amr.vehicle import BodySpec, VehicleBody, arc
from sim_hardware.amr.warehouse import (
    DEFAULT_MAP,
    MapError,
    WarehouseMap,
    build_default_map,
)
from sim_hardware.amr.world import (
    CHARGE_PIN,
    ESTOP_PIN,
    FIELD_PIN,
    AmrWorld,
    AmrWorldThread,
    WorldOptions,
)


def test_the_default_map_file_is_what_its_generator_builds():
    on_disk = json.loads(DEFAULT_MAP.read_text(encoding="utf-8"))
    assert on_disk == json.loads(json.dumps(build_default_map().to_dict()))
    mp = WarehouseMap.load()
    assert len(mp.of_kind("station")) == 6 and len(mp.of_kind("charger")) == 3
    assert len(mp.floor_codes()) == len(mp.nodes)  # a code at every node
    # racks are off the aisles: every node and the middle of every edge is on the map
    for n in mp.nodes.values():
        assert mp.on_map(n.x, n.y)
    for a, b in mp.edges:
        na, nb = mp.nodes[a], mp.nodes[b]
        assert mp.on_map((na.x + nb.x) / 2, (na.y + nb.y) / 2)
    assert not mp.on_map(1.5, 1.75)  # inside a rack block


def test_bad_maps_are_refused_with_where_and_why(tmp_path):
    bad = tmp_path / "m.json"
    bad.write_text('{"nodes": [{"id": "a", "x": 0, "y": 0}], "edges": [["a", "b"]]}')
    with pytest.raises(MapError, match=r"m\.json: edges\[0\]: a-b names an unknown node"):
        WarehouseMap.load(bad)
    bad.write_text("{nope")
    with pytest.raises(MapError, match="not JSON"):
        WarehouseMap.load(bad)
    dup = {"nodes": [{"id": "a", "x": 0, "y": 0, "floorCode": "X"},
                     {"id": "b", "x": 1, "y": 0, "floorCode": "X"}], "edges": []}  # fmt: skip
    with pytest.raises(MapError, match="same code"):
        WarehouseMap.from_dict(dup)


@given(st.floats(-2, 2), st.floats(-2, 2), st.integers(1, 50))
def test_without_imperfections_the_body_follows_the_wheels_exactly(vl, vr, steps):
    spec = BodySpec(slip_sigma=0.0, slip_per_accel=0.0)
    body = VehicleBody(spec, 0.0, 0.0, 0.0, random.Random(1))
    dt = 0.01
    for _ in range(steps):
        body.step(vl * dt, vr * dt, dt)
    x, y, _ = arc(0.0, 0.0, 0.0, vl * dt * steps, vr * dt * steps, spec.track)
    assert math.isclose(body.x, x, abs_tol=1e-9) and math.isclose(body.y, y, abs_tol=1e-9)


def test_wheel_scale_error_and_slip_make_odometry_drift():
    spec = BodySpec(left_scale=1.003, right_scale=0.998, slip_sigma=0.002)
    body = VehicleBody(spec, 0.0, 0.0, 0.0, random.Random(3))
    for _ in range(1000):  # 10 m "straight" by the encoders
        body.step(0.01, 0.01, 0.01)
    assert 0.005 < math.hypot(body.x - 10.0, body.y) < 0.5


def test_battery_drains_while_driving_and_charges_on_contacts():
    body = VehicleBody(BodySpec(), 0.0, 0.0, 0.0, random.Random(1), soc=0.5)
    for _ in range(100):
        body.step(0.01, 0.01, 0.01)
    assert body.soc < 0.5 and body.current < 0
    body.charging = True
    before = body.soc
    body.step(0.0, 0.0, 60.0)
    assert body.soc > before and body.current > 0


def test_protective_field_grows_with_speed_and_sees_what_is_ahead():
    body = VehicleBody(BodySpec(), 0.0, 0.0, 0.0, random.Random(1))
    assert body.in_field(0.85, 0.0, 0.25)  # the field ends 0.65 m ahead; radius 0.25
    assert not body.in_field(1.2, 0.0, 0.25)
    assert not body.in_field(-0.9, 0.0, 0.25)  # behind
    body.v = 1.0
    assert body.in_field(1.2, 0.0, 0.25)  # 0.6 m more at 1 m/s


def test_the_camera_reads_a_code_under_it_in_the_vehicle_frame():
    spec = BodySpec(camera_noise_m=0.0, camera_noise_rad=0.0)
    body = VehicleBody(spec, 1.0, 2.0, math.pi / 2, random.Random(1))
    seen = body.read_code("FC", 1.0, 2.02, 0.0)
    assert seen is not None
    assert seen.dx == pytest.approx(0.02) and seen.dy == pytest.approx(0.0, abs=1e-12)
    assert seen.dtheta == pytest.approx(-math.pi / 2)
    assert body.read_code("FC", 1.0, 2.1, 0.0) is None


def test_ground_truth_counts_collisions_and_off_map_once_per_event(tmp_path):
    world = AmrWorld(WorldOptions(vehicles=2, workdir=str(tmp_path)))
    a, b = world.vehicles
    b.body.x, b.body.y = a.body.x + 0.5, a.body.y  # footprints of 0.42 m overlap
    world.step(1.0)
    world.step(1.01)
    assert [(c.a, c.b) for c in world.collisions] == [("v01", "v02")]
    a.body.x, a.body.y = 1.5, 1.75  # into a rack block: off the aisles, hits the rack
    world.step(1.02)
    assert ("v01", "rack") in [(c.a, c.b) for c in world.collisions]
    assert [name for _, name in world.off_map_events] == ["v01"]


COUNTS_PER_M = 20_000


def test_a_vehicle_driven_over_its_mcu_pty_moves_reads_codes_and_stops_for_its_field(tmp_path):
    codes: list = []
    with AmrWorldThread(WorldOptions(vehicles=2, workdir=str(tmp_path), seed=4)) as wt:
        world = wt.world
        assert world is not None
        wt.call(world.code_listeners.append, lambda i, seen, t, clock: codes.append((i, seen)))
        v = world.vehicles[0]
        x0, y0 = v.body.x, v.body.y

        async def main():
            async with McuLink(v.link) as link:
                drive = VehicleDrive(
                    link, counts_per_m=COUNTS_PER_M, max_wheel_speed=2.0, max_wheel_accel=4.0,
                    stop_decel=3.0, field_pin=FIELD_PIN, estop_pin=ESTOP_PIN, report_ms=20,
                    battery_report_ms=50,
                )  # fmt: skip
                await drive.setup()
                await link.configure_output(CHARGE_PIN, 0)
                stops: list[DriveStopped] = []
                batteries: list[BatteryReport] = []
                drive.on_stopped(stops.append)
                drive.on_battery(batteries.append)
                t0 = time.monotonic() + 0.2
                # 1 s at 0.5 m/s straight ahead (the first vehicle faces +x along its aisle)
                futs = [drive.queue_setpoint_nowait(t0 + 0.02 * k, 0.5, 0.5, 0.25)
                        for k in range(25)]  # fmt: skip
                futs.append(drive.queue_setpoint_nowait(t0 + 0.5, 0.0, 0.0, 0.25))
                await asyncio.gather(*futs)
                await asyncio.sleep(t0 + 0.9 - time.monotonic())
                moved = await drive.state()
                wt.call(world.set_field_blocked, 0, True)
                await asyncio.sleep(0.1)
                fresh = [drive.queue_setpoint_nowait(time.monotonic() + 0.2, 0.3, 0.3, 0.25)]
                results = await asyncio.gather(*fresh, return_exceptions=True)
                wt.call(world.set_field_blocked, 0, False)
                await asyncio.sleep(0.1)
                return moved, stops, batteries, results

        moved, stops, batteries, results = asyncio.run(main())
        truth = wt.call(world.truth)
    travelled = moved.left_count / COUNTS_PER_M
    # 0.5 s at 0.5 m/s plus the two ramps at 4 m/s2 lose 0.5 * 0.5^2 / 4 in total
    assert travelled == pytest.approx(0.25, abs=0.01)
    me = truth["vehicles"][0]
    assert math.hypot(me["x"] - x0, me["y"] - y0) == pytest.approx(travelled, abs=0.01)
    assert codes and codes[0][0] == 0 and codes[0][1].code == "FC-A00"  # read at the start
    assert [s.reason_name for s in stops] == ["protective field"]
    assert "halted" in str(results[0])
    assert batteries and 80 < batteries[-1].percent <= 90 and not batteries[-1].charging
    assert truth["collisions"] == [] and truth["off_map"] == []


_json = st.recursive(
    st.none() | st.booleans() | st.integers(-5, 5) | st.floats(-10, 10) | st.text(max_size=4),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=6), inner,
                                                                 max_size=4),
    max_leaves=20,
)  # fmt: skip
_node = st.fixed_dictionaries(
    {"id": st.sampled_from(["a", "b", "c"]), "x": st.floats(-5, 5), "y": st.floats(-5, 5)},
    optional={"kind": st.sampled_from(["aisle", "station"]), "theta": st.none() | st.floats(-3, 3),
              "floorCode": st.none() | st.sampled_from(["X", "Y"])},
)  # fmt: skip


@given(
    st.one_of(
        _json,
        st.fixed_dictionaries(
            {
                "nodes": st.lists(_node, max_size=4),
                "edges": st.lists(
                    st.lists(st.sampled_from(["a", "b", "c", "z"]), min_size=2, max_size=2),
                    max_size=4,
                ),
            },
            optional={
                "racks": st.lists(st.lists(st.floats(-1, 1), max_size=5), max_size=2),
                "vehicles": st.lists(st.sampled_from(["a", "z"]), max_size=2),
            },
        ),
    )
)
def test_any_map_data_gives_a_map_or_a_map_error(data):
    try:
        mp = WarehouseMap.from_dict(data)  # type: ignore[arg-type]
    except MapError as exc:
        assert str(exc)
    else:
        assert all(a in mp.nodes and b in mp.nodes for a, b in mp.edges)
        assert WarehouseMap.from_dict(mp.to_dict()).to_dict() == mp.to_dict()
