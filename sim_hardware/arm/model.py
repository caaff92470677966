"""The MuJoCo model (MJCF) of the arm cell, generated from an ``ArmWorldConfig``.

World frame = the arm frame of the node's config: origin on the J1 axis at the mounting
flange's height, z up, metres. Bodies: the floor; the belt (a long slab on a slide joint
driven at the belt's speed, its position wrapped so it always covers the belt's length);
the SCARA (J1, J2 hinges about z, J3 the quill's slide, whose position is the cup's height,
J4 the wrist) with position servos; the cup (a body with a site at its lip); a pool of
free-floating parcels (boxes whose size, mass and friction are set when one is put on the
belt) and one inactive weld per parcel from the cup: the suction. The arm's links and the
cup do not collide with parcels (the quill's bellows are modelled by the seal tolerances,
not by contact); parcels collide with the belt, the floor and each other.
"""

from __future__ import annotations

import math

from sim_hardware.arm.config import ArmWorldConfig

PARK_Z = 5.0  # parked (inactive) parcels wait here, far above the cell, without contacts


def park_position(slot: int) -> tuple[float, float, float]:
    return (20.0 + 2.0 * slot, 20.0, PARK_Z)


def mjcf(cfg: ArmWorldConfig) -> str:
    """The model as an MJCF string."""
    mm = 0.001
    a, b = cfg.link1_mm * mm, cfg.link2_mm * mm
    lo, hi = cfg.joint_min, cfg.joint_max
    ranges = [
        (math.radians(lo[0]), math.radians(hi[0])),
        (math.radians(lo[1]), math.radians(hi[1])),
        (lo[2] * mm, hi[2] * mm),
        (math.radians(lo[3]), math.radians(hi[3])),
    ]
    surface = cfg.belt_surface_z_mm * mm
    start, end = cfg.belt_start_u_mm * mm, cfg.belt_end_u_mm * mm
    length = end - start
    centre_u = (start + end) / 2
    belt_x = cfg.belt_sign * centre_u
    belt_y = cfg.belt_centre_y_mm * mm
    half_w = cfg.belt_width_mm * mm / 2
    floor = cfg.floor_z_mm * mm
    m1, m2, m3, m4 = cfg.link_masses_kg
    arm1, arm2, arm3, arm4 = cfg.armature
    r = cfg.cup_radius_m
    col_h = -floor
    parcels = []
    welds = []
    for i in range(cfg.pool):
        x, y, z = park_position(i)
        parcels.append(
            f'<body name="parcel{i}" pos="{x} {y} {z}"><freejoint name="parcel{i}"/>'
            f'<geom name="parcel{i}" type="box" size="0.1 0.1 0.1" mass="1" '
            f'friction="0.6 0.005 0.0001" contype="0" conaffinity="0" rgba="0.75 0.6 0.4 1"/>'
            f"</body>"
        )
        welds.append(
            f'<weld name="suction{i}" body1="cup" body2="parcel{i}" active="false" '
            f'solref="0.004 1"/>'
        )
    dest_geoms = []
    for d in cfg.destinations:
        s = d.size_mm * mm / 2
        dest_geoms.append(
            f'<site name="dest_{d.id}" type="box" pos="{d.x_mm * mm} {d.y_mm * mm} {floor + 0.01}" '
            f'size="{s} {s} 0.01" rgba="0.2 0.6 0.2 0.5"/>'
        )
    return f"""<mujoco model="wolfpack-arm-cell">
  <compiler angle="radian"/>
  <option timestep="{cfg.timestep_s}" integrator="implicitfast" cone="elliptic"/>
  <size memory="16M"/>
  <default>
    <geom contype="1" conaffinity="1" condim="3"/>
  </default>
  <worldbody>
    <geom name="floor" type="plane" pos="0 0 {floor}" size="10 10 0.1" friction="0.8 0.005 0.0001"
          rgba="0.5 0.5 0.5 1"/>
    {"".join(dest_geoms)}
    <geom name="column" type="cylinder" pos="0 0 {floor / 2 - 0.05}" size="0.12 {col_h / 2 - 0.05}"
          contype="0" conaffinity="0" rgba="0.3 0.3 0.35 1"/>
    <body name="belt" pos="{belt_x} {belt_y} {surface - 0.025}">
      <joint name="belt" type="slide" axis="{cfg.belt_sign} 0 0" armature="100000" damping="0"/>
      <geom name="belt" type="box" size="{length} {half_w} 0.025" mass="50"
            friction="{cfg.belt_friction} 0.005 0.0001" rgba="0.15 0.15 0.15 1"/>
    </body>
    <body name="link1" pos="0 0 0" gravcomp="1">
      <joint name="j1" type="hinge" axis="0 0 1" limited="true"
             range="{ranges[0][0]} {ranges[0][1]}" armature="{arm1}" damping="0"/>
      <geom type="capsule" fromto="0 0 0.05 {a} 0 0.05" size="0.07" mass="{m1}"
            contype="0" conaffinity="0" rgba="0.9 0.5 0.1 1"/>
      <body name="link2" pos="{a} 0 0" gravcomp="1">
        <joint name="j2" type="hinge" axis="0 0 1" limited="true"
               range="{ranges[1][0]} {ranges[1][1]}" armature="{arm2}" damping="0"/>
        <geom type="capsule" fromto="0 0 0.05 {b} 0 0.05" size="0.06" mass="{m2}"
              contype="0" conaffinity="0" rgba="0.9 0.5 0.1 1"/>
        <body name="quill" pos="{b} 0 0" gravcomp="1">
          <joint name="j3" type="slide" axis="0 0 1" limited="true"
                 range="{ranges[2][0]} {ranges[2][1]}" armature="{arm3}" damping="0"/>
          <geom type="cylinder" fromto="0 0 0.04 0 0 0.5" size="0.02" mass="{m3}"
                contype="0" conaffinity="0" rgba="0.8 0.8 0.8 1"/>
          <body name="wrist" pos="0 0 0" gravcomp="1">
            <joint name="j4" type="hinge" axis="0 0 1" limited="true"
                   range="{ranges[3][0]} {ranges[3][1]}" armature="{arm4}" damping="0"/>
            <body name="cup" pos="0 0 0" gravcomp="1">
              <geom type="cylinder" fromto="0 0 0.002 0 0 0.04" size="{r}" mass="{m4}"
                    contype="0" conaffinity="0" rgba="0.1 0.1 0.6 1"/>
              <site name="cup" pos="0 0 0" size="0.005"/>
            </body>
          </body>
        </body>
      </body>
    </body>
    {"".join(parcels)}
  </worldbody>
  <equality>
    {"".join(welds)}
  </equality>
  <actuator>
    <position name="j1" joint="j1" kp="1" kv="0.1"/>
    <position name="j2" joint="j2" kp="1" kv="0.1"/>
    <position name="j3" joint="j3" kp="1" kv="0.1"/>
    <position name="j4" joint="j4" kp="1" kv="0.1"/>
  </actuator>
</mujoco>
"""
