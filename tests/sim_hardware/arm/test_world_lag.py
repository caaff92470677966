"""The arm world samples the MCU's segment queue behind the queue's own time (a physics
step; a starved simulator steps in bursts of 100 ms and more): it must get the setpoint of
its own instant, through segments and stops, never a jump to where the queue is now (a jump
slams the servos and flings a held parcel off the cup: seen at 2,000-15,000 deg/s)."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from firmware_bridge.mcu import messages as m
from sim_hardware.mcu.motion import JointQueue

MS = 1000  # clock ticks per ms (1 MHz)


@settings(max_examples=40, deadline=None)
@given(
    targets=st.lists(st.floats(-50_000, 50_000), min_size=3, max_size=40),
    stop_after=st.integers(0, 45),
    lag_2ms=st.integers(1, 125),
)
def test_a_world_lagging_behind_the_queue_sees_the_setpoints_of_its_own_instant(
    targets, stop_after, lag_2ms
):
    """Two queues get the same segments (8 ms each) and the same stop command at the same
    MCU time; one is sampled in lockstep, the other only after its time ran ``lag_ms``
    ahead (the command arrives as its time reaches it): the same setpoints at every
    instant."""
    lag_ms = 2 * lag_2ms
    start = 10 * MS
    lockstep, lagging = JointQueue([0.0] * 4, stop_ms=120), JointQueue([0.0] * 4, stop_ms=120)
    for q in (lockstep, lagging):
        for i, x in enumerate(targets):
            q.push(i + 1, 0, start + 8 * MS * i, 8 * MS, [x, -x, x / 2, 0.0], start - MS)
    t_stop = start + 2 * MS * (stop_after * 4 // 3) + lag_ms * MS  # on both queues' grid
    end = start + 8 * MS * len(targets) + 200 * MS
    t = start
    while t < end:
        lockstep.advance(t)
        if t == t_stop:
            lockstep.stop_at(t_stop, m.STOP_COMMAND)
        expected = lockstep.setpoint(t)
        lagging.advance(t + lag_ms * MS)  # the queue's time ran ahead of the world
        if t + lag_ms * MS == t_stop:
            lagging.stop_at(t_stop, m.STOP_COMMAND)
        got = lagging.world_setpoint(t)
        worst = max(abs(a - b) for a, b in zip(got, expected, strict=True))
        assert worst < 1e-6, (t, got, expected)
        t += 2 * MS


def test_the_coupled_world_switches_the_valve_at_the_mcus_instant() -> None:
    """``couple`` (the world behind its MCU in tests and ``ArmSim``) passes the valve's
    instant on, as the cell's own wiring does: a world stepping behind the MCU's clock opens
    the valve when it reaches that instant, not where it stands when the command comes
    (``couple`` dropped it: the valve switched at once, where the arm had been)."""
    import time

    from sim_hardware.arm.config import ArmWorldConfig
    from sim_hardware.arm.mcu import couple
    from sim_hardware.arm.world import ArmWorld
    from sim_hardware.mcu.device import SimMcu, SimMcuOptions
    from sim_hardware.mcu.motion import ArmFirmware

    world = ArmWorld(ArmWorldConfig())
    arm = ArmFirmware()
    mcu = SimMcu(SimMcuOptions(link="/nonexistent/never-opened", inputs=16))
    mcu.firmware.register_extension(arm)
    epoch = time.monotonic() - 0.5  # the MCU's clock is 0.5 s ahead of the world's (t 0)
    couple(mcu.firmware, arm, world, epoch)
    arm._set_valve(True)  # the MCU opens it now: world time ~0.5 s
    assert not world.valve  # the world, at 0, has not reached that instant
    world.step_to(0.3)
    assert not world.valve
    world.step_to(time.monotonic() - epoch + 0.01)
    assert world.valve
