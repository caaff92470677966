"""The MuJoCo arm world: the belt carries parcels as physics says, the servos follow their
setpoints, the suction holds and drops by its rules, destinations and sensors report."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from sim_hardware.arm.config import ArmWorldConfig, DestinationSpec
from sim_hardware.arm.world import ArmWorld
from sim_hardware.world.parcels import Parcel

SPEED = 1.2  # m/s, the default belt
SURFACE = -720.0


def _parcel(pid: int = 1, h: float = 150.0, cls: str = "box") -> Parcel:
    return Parcel(pid, cls, 300.0, 200.0, h, "Code128", f"DE-{pid}", True, 0.0)


def _smooth(s: float) -> float:
    s = min(1.0, max(0.0, s))
    return s * s * s * (10 - 15 * s + 6 * s * s)


def _pick_plan(
    cfg,
    u0_mm: float,
    top_mm: float,
    *,
    offset_mm: float = 0.0,
    transfer_s=0.5,
    dest=(-650.0, 200.0, -500.0),
):
    """Setpoints of a pick at the parcel's top centre (+ offset across the belt), tracking
    the belt, then a transfer to ``dest``; joint values via the world's IK."""
    home = cfg.home_mm[:3]
    y = cfg.belt_centre_y_mm + offset_mm

    def x_parcel(t: float) -> float:
        return u0_mm + SPEED * 1000 * t

    def cart(t: float) -> tuple[float, float, float]:
        if t < 0.3:
            s = _smooth(t / 0.3)
            tgt = (x_parcel(0.3), y, top_mm + 50)
            return tuple(a + (b - a) * s for a, b in zip(home, tgt, strict=True))
        if t < 0.45:  # down onto the top, pressing 5 mm, tracking the belt
            return (x_parcel(t), y, top_mm + 50 - 55 * _smooth((t - 0.3) / 0.1))
        if t < 0.65:  # lift 100 mm, still tracking
            return (x_parcel(t), y, top_mm - 5 + 100 * _smooth((t - 0.45) / 0.2))
        s = _smooth((t - 0.65) / transfer_s)  # from the moving point: no velocity step
        start = (x_parcel(t), y, top_mm + 95)
        return tuple(a + (b - a) * s for a, b in zip(start, dest, strict=True))

    def setpoints(t: float):
        x, yy, z = cart(t)
        return cfg.ik(x, yy, z, 0.0)

    return setpoints, cart


def test_a_parcel_rides_the_belt_where_physics_says_and_leaves_at_its_end():
    w = ArmWorld()
    truth = w.put_parcel(_parcel(), 2.0, u_mm=-1500.0)
    w.step_to(1.0)
    u, across, z, yaw = w.parcel_pose(1)
    assert u == pytest.approx(-1500 + 1200, abs=2) and abs(across) < 1 and abs(yaw) < 0.5
    assert z == pytest.approx(SURFACE + 75, abs=1)  # resting on the belt
    w.set_belt_speed(0.0)  # the belt stops dead: the parcel slides v^2 / (2 mu g) = 122 mm
    w.step_to(1.5)
    stopped = w.parcel_pose(1)[0]
    assert 20 < stopped - u < 160
    w.step_to(1.6)
    assert w.parcel_pose(1)[0] == pytest.approx(stopped, abs=0.5)  # at rest on the belt
    w.set_belt_speed(1200.0)
    w.step_to(4.0)
    assert truth.end == "belt_end" and truth.end_xyz_mm[0] == pytest.approx(1500, abs=30)
    expected = 1.6 + (1500 - stopped) / 1200  # back at speed within ~0.2 s
    assert truth.end_t == pytest.approx(expected, abs=0.15)


def test_a_belt_ramping_to_rest_carries_its_parcel_without_slip_and_the_encoder_agrees():
    w = ArmWorld()
    w.put_parcel(_parcel(), 3.0, u_mm=-1500.0)
    w.step_to(0.5)
    u0, travel0 = w.parcel_pose(1)[0], w.belt_mm()
    w.set_belt_speed(0.0, ramp_mm_s2=2000.0)  # a VFD ramp: 0.6 s, 360 mm to rest
    w.step_to(1.5)
    assert w.belt_mm() - travel0 == pytest.approx(1200**2 / (2 * 2000), abs=1e-6)
    # 0.2 g: friction holds it; MuJoCo's soft friction lets it creep ~8 ms x the change of
    # speed (9 mm over a stop from 1.2 m/s, whatever the ramp), none at constant speed
    assert 0 <= w.parcel_pose(1)[0] - u0 - 360 < 12
    assert w.belt_time_of(travel0 + 360 + 1) is None  # the belt stops short of it
    w.set_belt_speed(600.0, ramp_mm_s2=2000.0)
    assert w.belt_time_of(w.belt_mm() + 90) == pytest.approx(1.5 + 0.3, abs=1e-9)


def test_a_parcel_pushed_off_the_belt_side_falls_to_the_floor():
    w = ArmWorld()
    truth = w.put_parcel(
        _parcel(), 1.0, u_mm=-1000.0, across_mm=320.0
    )  # its centre is off the belt
    w.step_to(2.0)
    assert truth.end == "floor"


def test_servos_follow_their_setpoints():
    cfg = ArmWorldConfig()
    centre = np.array(cfg.ik(0.0, 700.0, -500.0, 0.0))  # mid-range on every joint

    def wave(t: float):
        return centre + np.array([0.3, -0.4, -0.1, 1.0]) * math.sin(2 * math.pi * t)

    w = ArmWorld(cfg, setpoints=wave)
    w.step_to(0.8)  # from home to the wave (a step: the servos settle; the quill's 160 mm at
    # its thrust limit takes ~0.5 s)
    worst = 0.0
    while w.t < 2.0:
        w.step_to(w.t + 0.01)
        worst = max(worst, float(np.max(np.abs(w.joints() - wave(w.t)))))
    # 0.3-1 rad at 1 Hz (up to 6 rad/s, 40 rad/s^2) on the 40 Hz servos: the error is the
    # acceleration over the bandwidth squared, a / w^2 = 0.6 mrad (0.6 mm at 1 m reach)
    assert worst < 1e-3


def test_suction_picks_a_parcel_off_the_moving_belt_and_places_it_in_the_chute():
    cfg = ArmWorldConfig()
    w = ArmWorld(cfg)
    pins: list[tuple[int, int]] = []
    w.input_listeners.append(lambda pin, v, t: pins.append((pin, v)))
    truth = w.put_parcel(_parcel(), 2.0, u_mm=-600.0)
    w.setpoints, _ = _pick_plan(cfg, -600.0, SURFACE + 150)
    w.step_to(0.33)
    w.set_valve(True)
    w.step_to(0.44)
    assert w.attached is not None and w.vacuum_pa > 40_000
    assert truth.grips and truth.grips[0][1] < 5  # cup within 5 mm of the top centre
    w.step_to(1.2)
    assert w.attached is not None and not truth.drops
    x, y, _, _ = w.cup_pose()
    assert (x, y) == pytest.approx((-650, 200), abs=2)
    w.set_valve(False)  # release over the chute
    w.step_to(2.0)
    assert truth.releases and not truth.drops
    assert truth.end == "dest:c1" and (8, 1) in pins and (8, 0) in pins


def test_no_seal_off_the_face_so_nothing_is_lifted():
    cfg = ArmWorldConfig()
    w = ArmWorld(cfg)
    truth = w.put_parcel(_parcel(), 2.0, u_mm=-600.0)
    # 70 mm off the centreline: the 100 mm cup overhangs the 200 mm-wide face by 20 mm
    w.setpoints, _ = _pick_plan(cfg, -600.0, SURFACE + 150, offset_mm=70.0)
    w.step_to(0.33)
    w.set_valve(True)
    w.step_to(0.8)
    assert w.attached is None and not truth.grips and w.vacuum_pa < 10_000
    w.step_to(3.5)
    assert truth.end == "belt_end"


def test_a_transfer_faster_than_the_grip_drops_the_parcel_where_it_is():
    cfg = ArmWorldConfig()
    w = ArmWorld(cfg)
    truth = w.put_parcel(_parcel(), 6.0, u_mm=-600.0)
    w.setpoints, _ = _pick_plan(cfg, -600.0, SURFACE + 150, transfer_s=0.25)  # ~8 g peak
    w.step_to(0.33)
    w.set_valve(True)
    w.step_to(0.65)
    assert w.attached is not None
    w.step_to(3.0)
    assert truth.drops and truth.end is not None and truth.end != "dest:c1"
    assert len(truth.drops) == 1 and truth.drop_causes[0].startswith("slid")
    t, _, _, z = truth.drops[0]
    assert 0.65 < t < 0.9 and z > SURFACE  # it let go in the air, mid-transfer


def test_a_vacuum_leak_keeps_the_vacuum_below_the_grip_threshold():
    cfg = ArmWorldConfig()
    w = ArmWorld(cfg)
    w.leak = 0.5
    w.put_parcel(_parcel(), 1.0, u_mm=-600.0)
    w.setpoints, _ = _pick_plan(cfg, -600.0, SURFACE + 150)
    w.step_to(0.33)
    w.set_valve(True)
    w.step_to(0.44)
    assert 20_000 < w.vacuum_pa < 40_000  # sealed, but a 40 kPa grip never confirms


def test_a_valve_switched_at_an_instant_the_world_has_not_reached_switches_there():
    """The MCU switches the valve at its clock's instant; a world stepping behind (its loop
    starved, then catching up) applies it when it gets there, as it does the servos'
    setpoints, not where the arm was when the command was read."""
    w = ArmWorld(ArmWorldConfig())
    w.step_to(0.1)
    w.set_valve(True, 0.3)  # the MCU opened it at 0.3 s; the world is at 0.1 s
    w.set_valve(False, 0.5)  # and closed it at 0.5 s
    assert not w.valve
    w.step_to(0.29)
    assert not w.valve and w.vacuum_pa == 0.0
    w.step_to(0.31)
    assert w.valve
    w.step_to(0.49)
    assert w.valve and w.vacuum_pa > 3_000  # open, nothing sealed: the free-flow vacuum
    w.step_to(0.51)
    assert not w.valve
    w.set_valve(True)  # no instant, or one past: at once
    assert w.valve
    w.set_valve(False, 0.2)
    assert not w.valve


def test_curtain_and_estop_inputs_and_the_config_from_a_board_section():
    arm = {
        "geometry": {"link1_mm": 500, "link2_mm": 400},
        "joints": {n: {"min": -100, "max": 100} for n in ("j1", "j2", "j4")}
        | {"j3": {"min": -700, "max": -300}},
        "belt": {
            "direction": "-x",
            "centre_y_mm": 550,
            "width_mm": 400,
            "surface_z_mm": -700,
            "counts_per_mm": 4,
            "nominal_speed_mm_s": 900,
        },
        "suction": {"cup_diameter_mm": 80, "max_load_kg": 8},
        "home": {"x_mm": 0, "y_mm": 400, "z_mm": -320},
        "destinations": [
            {
                "id": "t1",
                "kind": "tote",
                "sensor_input": 11,
                "place": {"x_mm": 300, "y_mm": -300, "z_mm": -500},
            }
        ],
        "mcu": {"curtain_input": 5, "estop_input": 4},
    }
    cfg = ArmWorldConfig.from_arm_section(arm)
    assert cfg.belt_sign == -1 and cfg.counts_per_mm == 4 and cfg.curtain_input == 5
    assert cfg.destinations == (DestinationSpec("t1", 300, -300, -500, "tote", 11),)
    w = ArmWorld(cfg)
    seen = []
    w.input_listeners.append(lambda pin, v, t: seen.append((pin, v)))
    w.set_curtain(True)
    w.set_estop(True)
    w.set_curtain(False)
    assert seen == [(5, 1), (4, 1), (5, 0)]
    truth = w.put_parcel(_parcel(), 1.0, u_mm=0.0)  # rides towards -x
    w.step_to(0.5)
    assert w.parcel_pose(1)[0] == pytest.approx(450, abs=3)
    assert w.data.xpos[w._pbody[next(iter(w.active))]][0] == pytest.approx(-0.45, abs=0.003)
    assert truth.end is None


@given(
    st.floats(250.0, 990.0),
    st.floats(-math.pi, math.pi),
    st.floats(-740.0, -340.0),
    st.floats(-180.0, 180.0),
    st.sampled_from(["right", "left"]),
)
def test_the_worlds_ik_then_fk_returns_the_pose(r, angle, z, yaw, elbow):
    cfg = ArmWorldConfig(elbow=elbow)
    x, y = r * math.cos(angle), r * math.sin(angle)
    q = cfg.ik(x, y, z, yaw)
    assert (q[1] >= 0) == (elbow == "right")
    fx, fy, fz, fyaw = cfg.fk(q)
    assert (fx, fy, fz) == pytest.approx((x, y, z), abs=1e-6)
    assert (fyaw - yaw + 180) % 360 - 180 == pytest.approx(0, abs=1e-6)


def test_ik_refuses_a_pose_out_of_reach():
    with pytest.raises(ValueError, match="out of the arm's reach"):
        ArmWorldConfig().ik(1100.0, 0.0, -500.0, 0.0)


def test_a_diverging_step_is_counted_and_logged_not_in_a_file(tmp_path, monkeypatch, caplog):
    """MuJoCo resets a state that blew up (NaN/huge acceleration): the world's truth after it
    is not physics, so the world counts it for the run's report instead of going on silently
    (and MuJoCo's MUJOCO_LOG.TXT no longer lands in the current folder)."""
    monkeypatch.chdir(tmp_path)
    w = ArmWorld()
    w.step_to(w.t + 10 * w.dt)
    assert w.unstable_steps == 0
    w.data.qvel[:] = 1e30
    w.step_to(w.t + w.dt)
    assert w.unstable_steps == 1 and w.unstable_at == [round(w.t, 4)]
    assert any("MuJoCo" in r.getMessage() for r in caplog.records)
    assert not (tmp_path / "MUJOCO_LOG.TXT").exists()
