"""The drive core closed over the real MCU link: DriveController + Odometry + Localiser on
the host, VehicleDrive over a pty to the simulated drive MCU, the vehicle moved by the
simulated world (wheel radius error, slip, floor codes). Arrival is judged on ground truth."""

from __future__ import annotations

import asyncio
import itertools
import math
import time
from dataclasses import dataclass, field

import pytest

from edge.amr.drive import Arrived, DriveController, DriveParams, Leg, NodeReached, NodeTarget
from edge.amr.localisation import FloorCodeReading, Localiser
from edge.amr.odometry import Odometry, Pose, WheelGeometry, arc_step
from edge.amr.path import PathSegment, wrap_angle
from firmware_bridge.mcu import McuLink
from firmware_bridge.mcu.drive import VehicleDrive, WheelReport
from sim_hardware.amr.world import ESTOP_PIN, FIELD_PIN, AmrWorldThread, WorldOptions

TRACK, RADIUS, CPR = 0.5, 0.1, 4096  # the world's vehicle: 0.5 m track
# generous lead, hold and watchdog: CI runs this on two loaded cores, where the host's loop
# stalls for a few hundred milliseconds now and then (the MCU would stop the vehicle: safe,
# but not what this test is about)
PARAMS = DriveParams(track_m=TRACK, max_speed=1.2, max_accel=1.0, max_decel=1.0,
                     setpoint_lead_s=0.1, setpoint_hold_s=0.5)  # fmt: skip


@dataclass
class Result:
    events: list = field(default_factory=list)
    stops: list = field(default_factory=list)
    codes: int = 0
    refused: int = 0
    truth: dict = field(default_factory=dict)
    estimate: Pose | None = None
    xy_bound: float = 0.0


def drive_route(tmp_path, route: list[str], theta: float | None, timeout_s: float,
                scale_error: float = 0.003) -> Result:  # fmt: skip
    res = Result()
    opts = WorldOptions(vehicles=1, workdir=str(tmp_path), seed=7, scale_error=scale_error)
    with AmrWorldThread(opts) as wt:
        world = wt.world
        assert world is not None
        mp = world.map
        v = world.vehicles[0]
        start = Pose(v.body.x, v.body.y, v.body.theta)
        legs = []
        for i, (a, b) in enumerate(itertools.pairwise(route)):
            na, nb = mp.nodes[a], mp.nodes[b]
            last = i == len(route) - 2
            legs.append(
                Leg(
                    f"{a}-{b}",
                    PathSegment((na.x, na.y), (nb.x, nb.y)),
                    NodeTarget(b, nb.x, nb.y, theta if last else None, 0.05, 0.05),
                )
            )
        codes = {c: Pose(x, y, th) for c, (x, y, th) in world.codes.items()}

        async def main() -> None:
            loop = asyncio.get_running_loop()
            geom = WheelGeometry.from_wheels(TRACK, RADIUS, CPR)
            odo = Odometry(geom)
            loc = Localiser(codes, start)
            ctl = DriveController(PARAMS)
            field_violated = False

            def on_report(r: WheelReport) -> None:
                loc.on_odometry(r.clock, odo.update(r.left_count, r.right_count))

            def on_code(i: int, seen, t: float, clock: int) -> None:
                reading = FloorCodeReading(seen.code, seen.dx, seen.dy, seen.dtheta, clock)

                def apply() -> None:
                    res.codes += 1
                    loc.on_code(reading)

                loop.call_soon_threadsafe(apply)

            wt.call(world.code_listeners.append, on_code)
            async with McuLink(v.link, watchdog_ms=1000) as link:
                drive = VehicleDrive(
                    link, counts_per_m=geom.counts_per_m, max_wheel_speed=PARAMS.max_wheel_speed,
                    max_wheel_accel=PARAMS.max_wheel_accel, stop_decel=3.0,
                    field_pin=FIELD_PIN, estop_pin=ESTOP_PIN, report_ms=20,
                )  # fmt: skip
                drive.on_report(on_report)
                drive.on_stopped(res.stops.append)
                await drive.setup()
                ctl.add_legs(legs)
                deadline = time.monotonic() + timeout_s
                nxt = time.monotonic()
                pending: set = set()
                while time.monotonic() < deadline:
                    nxt += 0.02
                    await asyncio.sleep(max(0.0, nxt - time.monotonic()))
                    # the setpoint applies setpoint_lead_s from now: steer from where the
                    # vehicle will be then (the commands in flight are known)
                    half, lead = TRACK / 2, PARAMS.setpoint_lead_s
                    ahead = arc_step(loc.pose, (ctl.v - ctl.omega * half) * lead,
                                     (ctl.v + ctl.omega * half) * lead, TRACK)  # fmt: skip
                    out = ctl.step(time.monotonic(), ahead, field_violated)
                    res.events += out.events
                    sp = out.setpoint
                    fut = drive.queue_setpoint_nowait(sp.at, sp.left, sp.right, sp.hold_s)
                    pending.add(fut)
                    fut.add_done_callback(pending.discard)
                    if any(isinstance(e, Arrived) for e in out.events):
                        break
                await asyncio.sleep(0.3)  # standing: let the last setpoints run out
                done = await asyncio.gather(*pending, return_exceptions=True)
                res.refused = sum(isinstance(d, Exception) for d in done)
                res.estimate = loc.pose
                res.xy_bound = loc.state.xy_bound

        asyncio.run(main())
        res.truth = wt.call(world.truth)["vehicles"][0]
    return res


def test_a_straight_edge_over_the_mcu_arrives_within_the_deviation(tmp_path):
    res = drive_route(tmp_path, ["A00", "A01"], 0.0, timeout_s=12.0)
    assert any(isinstance(e, Arrived) for e in res.events), res.events
    t = res.truth
    err_xy = math.hypot(t["x"] - 3.0, t["y"] - 0.0)
    assert err_xy <= 0.05, f"true arrival error {err_xy * 1000:.0f} mm"
    assert abs(wrap_angle(t["theta"])) <= 0.05
    assert res.stops == [] and res.refused == 0  # no underrun, no refused setpoint
    assert res.codes >= 2  # FC-A00 under the start, FC-A01 at the end
    assert res.xy_bound <= 0.05
    reached = [e for e in res.events if isinstance(e, NodeReached)]
    assert [e.node_id for e in reached] == ["A01"]


@pytest.mark.soak
def test_a_route_with_corners_over_the_mcu(tmp_path):
    """Figures for docs/amr-drive.md: a 19.5 m route with two corners, 0.5 % wheel error."""
    route = ["A00", "A01", "A02", "A03", "A13", "A23", "A24", "A25", "S6"]
    res = drive_route(tmp_path, route, math.pi / 2, timeout_s=90.0, scale_error=0.005)
    t = res.truth
    err_xy = math.hypot(t["x"] - 15.0, t["y"] - 10.0)
    err_th = abs(wrap_angle(t["theta"] - math.pi / 2))
    reached = [e for e in res.events if isinstance(e, NodeReached)]
    print(f"\narrival true error {err_xy * 1000:.1f} mm {math.degrees(err_th):.2f} deg; "
          f"codes {res.codes}; nodes {[(e.node_id, round(e.error_xy * 1000)) for e in reached]}; "
          f"stops {res.stops}; refused {res.refused}")  # fmt: skip
    assert any(isinstance(e, Arrived) for e in res.events)
    assert err_xy <= 0.05 and err_th <= 0.05
    assert res.stops == [] and res.refused == 0
