"""The vacuum cup's grip in the MuJoCo world: drops happen when, and only when, the stated
model says (holding force = vacuum x effective area; sliding: pull + shear / mu; peeling:
pull + tilting moment / effective radius; docs/sim-arm-world.md, "The grip")."""

from __future__ import annotations

import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from sim_hardware.arm.config import ArmWorldConfig
from sim_hardware.arm.world import ArmWorld, G
from tests.sim_hardware.arm.test_world import SURFACE, _parcel, _pick_plan, _smooth

SPOT = (650.0, 200.0, -500.0)  # where the picked parcel is carried and hangs still


def _held(mass: float, height: float = 150.0) -> tuple[ArmWorld, ArmWorldConfig, object]:
    """A parcel of ``mass`` picked off the belt and carried slowly (1.5 s, ~0.3 g) to SPOT,
    hanging still from the cup at t = 2.3 s."""
    cfg = ArmWorldConfig()
    w = ArmWorld(cfg)
    truth = w.put_parcel(_parcel(h=height), mass, u_mm=-600.0)
    w.setpoints, _ = _pick_plan(cfg, -600.0, SURFACE + height, transfer_s=1.5, dest=SPOT)
    w.step_to(0.33)
    w.set_valve(True)
    w.step_to(2.3)
    assert w.attached is not None and not truth.drops  # type: ignore[attr-defined]
    return w, cfg, truth


def test_the_holding_force_is_vacuum_times_the_effective_area():
    cfg = ArmWorldConfig()
    area = math.pi * (0.1 * 0.85) ** 2 / 4  # a 100 mm bellows cup, effective 85 mm
    assert cfg.hold_force_n(60_000) == pytest.approx(60_000 * area)  # ~340 N
    assert 330 < cfg.hold_force_n(60_000) < 350
    assert cfg.hold_force_n(0) == 0


@given(
    pull=st.floats(-500, 500),
    shear=st.floats(0, 500),
    tilt=st.floats(0, 50),
    more=st.floats(0.1, 100),
)
def test_grip_loads_grow_with_every_load_and_reduce_to_the_pull_alone(pull, shear, tilt, more):
    cfg = ArmWorldConfig()
    slide, peel = cfg.grip_loads(pull, shear, tilt)
    assert cfg.grip_loads(pull, 0.0, 0.0) == (pull, pull)
    assert cfg.grip_loads(pull + more, shear, tilt)[0] > slide
    assert cfg.grip_loads(pull, shear + more, tilt)[0] > slide
    assert cfg.grip_loads(pull, shear, tilt + more)[1] > peel
    assert slide == pytest.approx(pull + shear / cfg.cup_friction)
    assert peel == pytest.approx(pull + tilt / cfg.cup_effective_radius_m)


def test_a_hanging_parcel_falls_when_the_vacuum_no_longer_holds_its_weight():
    """Static: the cup's load is the weight (the weld's force says so), and the parcel falls
    at the vacuum where vacuum x area passes under it, not before."""
    mass = 10.0
    w, cfg, truth = _held(mass)
    pull, shear, tilt = w.cup_load()
    assert pull == pytest.approx(mass * G, rel=0.02) and shear < 1 and tilt < 0.1
    dropped_at = None
    while w.t < 5.0 and dropped_at is None:
        w.leak = min(1.0, (w.t - 2.3) * 0.5)  # the seal leaks more and more: 32 kPa/s
        vac = w.vacuum_pa
        w.step_to(w.t + w.dt)
        if truth.drops:
            dropped_at = vac
    assert dropped_at is not None and truth.drop_causes
    held = cfg.hold_force_n(dropped_at)
    assert 0.95 * mass * G < held < 1.03 * mass * G  # let go where F = dp x A met m g


def _swing(w: ArmWorld, cfg: ArmWorldConfig, dy_mm: float, secs: float) -> float:
    """Move the held parcel along +y by ``dy_mm`` in ``secs`` (a quintic: peak acceleration
    5.77 d / T^2), the cup's height and yaw fixed; returns that peak, m/s^2."""
    t0 = w.t
    x, y, z = SPOT

    def setpoints(t: float):
        s = _smooth((t - t0) / secs)
        return cfg.ik(x, y + dy_mm * s, z, 0.0)

    w.setpoints = setpoints
    w.step_to(t0 + secs + 0.3)
    return 10 / math.sqrt(3) * dy_mm / 1000 / secs**2


@pytest.mark.parametrize("share", [0.85, 1.15])
def test_a_swing_drops_the_parcel_only_when_sliding_asks_more_than_the_vacuum_holds(share):
    """Dynamic: a sideways swing with a known peak acceleration a. The model says the cup
    slides off when m g + m a / mu > vacuum x area (peeling asks less for a 150 mm box: its
    centre 75 mm under the lip, 1.76 m a against 2 m a). The mass is chosen 15 % under and
    over that limit: held, and dropped mid-swing."""
    cfg = ArmWorldConfig()
    secs, dy = 0.34, 400.0
    a_peak = 10 / math.sqrt(3) * dy / 1000 / secs**2  # ~20 m/s^2
    hold = cfg.hold_force_n(cfg.supply_kpa * 1000)  # a box seals at the full supply level
    limit = hold / (G + a_peak / cfg.cup_friction)  # ~7.4 kg
    mass = share * limit
    w, cfg, truth = _held(mass)
    t_swing = w.t
    _swing(w, cfg, dy, secs)
    if share < 1:
        assert not truth.drops and w.attached is not None
        assert 0.7 < w.grip_use_max < 1.0  # the swing asked most of what the cup holds
    else:
        assert truth.drops and truth.drop_causes[0].startswith("slid")
        t_drop = truth.drops[0][0]
        assert t_swing < t_drop < t_swing + secs  # mid-swing, near its peak acceleration


def test_a_parcel_heavier_than_the_cup_holds_is_sealed_then_left_behind_at_the_lift():
    cfg = ArmWorldConfig()
    w = ArmWorld(cfg)
    mass = 1.2 * cfg.hold_force_n(cfg.supply_kpa * 1000) / G  # ~45 kg: its weight is too much
    truth = w.put_parcel(_parcel(), mass, u_mm=-600.0)
    w.setpoints, _ = _pick_plan(cfg, -600.0, SURFACE + 150)
    w.step_to(0.33)
    w.set_valve(True)
    w.step_to(0.44)
    assert w.vacuum_pa > 40_000  # sealed: the sensor says gripped
    w.step_to(0.7)
    assert truth.drops and truth.drops[0][3] < SURFACE + 75 + 30  # barely off the belt
    assert w.attached is None
    w.step_to(3.5)
    assert truth.end == "belt_end"


def test_a_pressed_cup_does_not_push_the_parcel_into_the_belt():
    """The bellows gives way: pressing 5 mm into the face leaves the held parcel's load on
    the cup near its own weight, not the thousands of newtons a rigid weld would push."""
    cfg = ArmWorldConfig()
    w = ArmWorld(cfg)
    w.put_parcel(_parcel(), 2.0, u_mm=-600.0)
    w.setpoints, _ = _pick_plan(cfg, -600.0, SURFACE + 150)
    w.step_to(0.33)
    w.set_valve(True)
    worst = 0.0
    while w.t < 0.45:  # sealed, still pressing, riding the belt
        w.step_to(w.t + w.dt)
        load = w.cup_load()
        if load is not None and w.t > 0.40:
            worst = max(worst, abs(load[0]), load[1])
    assert worst < 60  # N: a 2 kg parcel's weight is 20 N


def test_a_cup_pressed_past_its_stroke_pushes_with_the_quills_thrust_at_most():
    """The quill presses 60 mm into a held parcel on the belt (three times the bellows'
    stroke): the parcel is pushed into the belt with J3's thrust limit, not more."""
    cfg = ArmWorldConfig()
    w = ArmWorld(cfg)
    w.put_parcel(_parcel(), 2.0, u_mm=-600.0)
    plan, cart = _pick_plan(cfg, -600.0, SURFACE + 150)

    def deep(t: float):
        x, y, z = cart(min(t, 0.45))
        return cfg.ik(x + 1200 * max(0.0, t - 0.45), y, z - 60 * _smooth((t - 0.45) / 0.1), 0.0)

    w.setpoints = lambda t: plan(t) if t < 0.45 else deep(t)
    w.step_to(0.33)
    w.set_valve(True)
    worst = 0.0
    while w.t < 0.7:
        w.step_to(w.t + w.dt)
        load = w.cup_load()
        if load is not None:
            worst = min(worst, load[0])
    assert w.attached is not None  # riding the belt, pressed: still held
    assert -cfg.quill_force_n * 1.1 < worst < -100  # pushed hard, but by the thrust at most
