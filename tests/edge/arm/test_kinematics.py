"""SCARA kinematics: IK then FK returns the pose, both elbows, reasons for the unreachable."""

from __future__ import annotations

import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from edge.arm.kinematics import SINGULAR_DEG, Scara, Unreachable
from tests.edge.arm.helpers import example_cfg

KIN = Scara(example_cfg())
LO, HI = KIN.limits.lo, KIN.limits.hi


@st.composite
def joints(draw: st.DrawFn) -> tuple[float, float, float, float]:
    j2 = draw(st.floats(SINGULAR_DEG + 0.5, HI[1]))
    j2 *= draw(st.sampled_from([1.0, -1.0]))
    return (
        draw(st.floats(LO[0], HI[0])),
        j2,
        draw(st.floats(LO[2], HI[2])),
        draw(st.floats(-180.0, 180.0)),
    )


@settings(max_examples=80, deadline=None)
@given(joints())
def test_ik_then_fk_returns_the_pose(q: tuple[float, float, float, float]) -> None:
    pose = KIN.fk(q)
    if math.hypot(pose[0], pose[1]) < KIN.min_radius:
        return  # inside the column's keep-out: refused by design (tested below)
    elbow = "right" if q[1] > 0 else "left"
    q2 = KIN.ik(pose, elbow, near=q)
    p2 = KIN.fk(q2)
    assert math.dist(pose[:3], p2[:3]) < 1e-6
    assert abs((pose[3] - p2[3] + 180) % 360 - 180) < 1e-6
    assert KIN.within_limits(q2)
    # the same elbow and turn: the very joints
    assert q2 == pytest.approx(q, abs=1e-6)


@settings(max_examples=60, deadline=None)
@given(st.floats(-1000, 1000), st.floats(-1000, 1000), st.floats(-740, -340))
def test_every_solution_fk_matches_and_elbows_differ(x: float, y: float, z: float) -> None:
    sols = KIN.ik_both((x, y, z, 0.0))
    for side, q in sols.items():
        assert math.dist(KIN.fk(q)[:3], (x, y, z)) < 1e-6
        assert (q[1] > 0) == (side == "right")


def test_unreachable_reasons() -> None:
    with pytest.raises(Unreachable, match="beyond the reach 1000"):
        KIN.ik((1200.0, 0.0, -500.0, 0.0))
    with pytest.raises(Unreachable, match="keep-out"):
        KIN.ik((50.0, 50.0, -500.0, 0.0))
    with pytest.raises(Unreachable, match="quill's range"):
        KIN.ik((500.0, 300.0, -900.0, 0.0))
    with pytest.raises(Unreachable, match="j1"):
        KIN.ik((-450.0, -450.0, -500.0, 0.0), "right")
