"""The sorting-arm cell in MuJoCo: belt, parcels, SCARA servos, suction, sensors, truth.

``ArmWorld`` steps physics in fixed steps of its own time ``t`` (seconds since it was
built). Each step the joint servos are driven to the setpoints of ``setpoints(t)`` (from the
simulated MCU's segment queue, or any function in tests) with velocity feed-forward; the
belt slab moves at the belt's speed and carries the parcels by friction; the suction cup
seals, holds and lets go by the rules of docs/sim-arm-world.md; destinations, the belt's end
and the floor decide where each parcel ended (``truth``); the chute/tote entry sensors, the
light curtain and the e-stop are digital inputs reported to ``input_listeners``.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import mujoco
import numpy as np

from sim_hardware.arm.config import ArmWorldConfig
from sim_hardware.arm.model import mjcf, park_position
from sim_hardware.world.belt import Motion
from sim_hardware.world.parcels import Parcel

log = logging.getLogger("wolfpack.sim.arm")
_UNSTABLE = (
    mujoco.mjtWarning.mjWARN_BADQACC,
    mujoco.mjtWarning.mjWARN_BADQPOS,
    mujoco.mjtWarning.mjWARN_BADQVEL,
)


def _mujoco_warning(message: str) -> None:
    # into the log, not MUJOCO_LOG.TXT in whatever folder the process runs in
    log.warning("MuJoCo: %s", message.strip())


mujoco.set_mju_user_warning(_mujoco_warning)

G = 9.81
PRESSING_M_S = 0.02  # a sealed lip coming down faster than this still compresses its bellows
INSTANT_MM_S2 = 1e9  # a speed change "at once"
InputListener = Callable[[int, int, float], None]  # pin, value, world time


@dataclass
class ParcelTruth:
    """Everything the world knows of one parcel, and where it ended."""

    parcel: Parcel
    mass_kg: float
    flatness: float
    put_on_t: float
    put_on_u_mm: float
    grips: list[tuple[float, float]] = field(default_factory=list)  # (t, cup offset mm)
    drops: list[tuple[float, float, float, float]] = field(default_factory=list)  # t, x, y, z
    releases: list[tuple[float, float, float, float]] = field(default_factory=list)
    drop_causes: list[str] = field(default_factory=list)  # why each drop: the grip's numbers
    end: str | None = None  # "dest:<id>", "belt_end", "floor"
    end_t: float | None = None
    end_xyz_mm: tuple[float, float, float] | None = None

    def as_dict(self) -> dict[str, object]:
        p = self.parcel
        return {
            "id": p.id, "cls": p.cls, "label": p.label_text, "legible": p.label_legible,
            "size_mm": [p.length_mm, p.width_mm, p.height_mm], "mass_kg": self.mass_kg,
            "flatness": self.flatness, "put_on_t": self.put_on_t,
            "put_on_u_mm": self.put_on_u_mm, "grips": self.grips, "drops": self.drops,
            "releases": self.releases, "drop_causes": self.drop_causes, "end": self.end,
            "end_t": self.end_t, "end_xyz_mm": self.end_xyz_mm,
        }  # fmt: skip


@dataclass
class _Active:
    truth: ParcelTruth
    slot: int
    half: np.ndarray  # half sizes along the body axes, m


class ArmWorld:
    """The arm cell's physics and truth (single-threaded: one caller steps and commands)."""

    def __init__(
        self,
        cfg: ArmWorldConfig | None = None,
        setpoints: Callable[[float], Sequence[float]] | None = None,
    ) -> None:
        self.cfg = cfg = cfg or ArmWorldConfig()
        self.model = mujoco.MjModel.from_xml_string(mjcf(cfg))
        self.data = mujoco.MjData(self.model)
        m, d = self.model, self.data
        self.dt = m.opt.timestep
        jid = [mujoco.mj_name2id(m, mujoco.mjtObj.mjOBJ_JOINT, n) for n in ("j1", "j2", "j3", "j4")]
        self._qadr = np.array([m.jnt_qposadr[j] for j in jid])
        self._vadr = np.array([m.jnt_dofadr[j] for j in jid])
        belt = mujoco.mj_name2id(m, mujoco.mjtObj.mjOBJ_JOINT, "belt")
        self._belt_q, self._belt_v = m.jnt_qposadr[belt], m.jnt_dofadr[belt]
        self._cup_site = mujoco.mj_name2id(m, mujoco.mjtObj.mjOBJ_SITE, "cup")
        self._cup_body = mujoco.mj_name2id(m, mujoco.mjtObj.mjOBJ_BODY, "cup")
        self._pbody = [
            mujoco.mj_name2id(m, mujoco.mjtObj.mjOBJ_BODY, f"parcel{i}") for i in range(cfg.pool)
        ]
        self._pgeom = [
            mujoco.mj_name2id(m, mujoco.mjtObj.mjOBJ_GEOM, f"parcel{i}") for i in range(cfg.pool)
        ]
        self._pq = [m.jnt_qposadr[m.body_jntadr[b]] for b in self._pbody]
        self._pv = [m.jnt_dofadr[m.body_jntadr[b]] for b in self._pbody]
        self._eq = [
            mujoco.mj_name2id(m, mujoco.mjtObj.mjOBJ_EQUALITY, f"suction{i}")
            for i in range(cfg.pool)
        ]
        self._scratch = mujoco.MjData(m)  # for mj_setConst after a parcel's mass changes
        self.home_q = np.array(cfg.ik(*cfg.home_mm))
        d.qpos[self._qadr] = self.home_q
        mujoco.mj_forward(m, d)
        self._tune_servos()
        self.setpoints: Callable[[float], Sequence[float]] = setpoints or (lambda t: self.home_q)
        self._ref_prev = self.home_q.copy()
        self._ref_speed = np.zeros(4)  # |setpoint speed| per joint, decaying over ~50 ms
        self.t = 0.0
        # belt: travel and speed exact at any t (a ramp then a cruise, as the diverter's VFD);
        # the physics slab moves at the speed of each step
        v0 = cfg.belt_speed_mm_s
        self._belt = Motion(0.0, 0.0, v0, v0, INSTANT_MM_S2)
        # suction
        self.valve = False
        self._valve_at: list[tuple[float, bool]] = []  # (world t, on) still to come
        self.vacuum_pa = 0.0
        self.leak = 0.0  # fault: share of the supply lost at the seal (0 none, 1 no vacuum)
        self.attached: int | None = None  # slot held by the cup
        self._sealed_slot: int | None = None
        self._attach_t = 0.0
        self._v_prev = np.zeros(3)
        self._acc = np.zeros(3)
        self._load = np.zeros(3)  # pull N, shear N, tilt N m: the held load, filtered
        self._attach_half = 0.0  # the held parcel's half height along the cup's axis
        self._no_seal: tuple[int, float] = (-1, 0.0)  # a slot just dropped, until when
        self.grip_use_max = 0.0  # the largest share of the holding force a load asked
        self.drop_g: float | None = None  # fault: drop whatever is held above this load (g)
        # parcels, sensors, truth
        self._free = list(range(cfg.pool - 1, -1, -1))
        self.active: dict[int, _Active] = {}
        self.truth: dict[int, ParcelTruth] = {}
        self.inputs: dict[int, int] = {}
        self.input_listeners: list[InputListener] = []
        self._lows: list[tuple[float, int]] = []  # (time, pin): a sensor pulse's end
        self.servo_error_max = 0.0  # largest |setpoint - position| seen (rad or m)
        # steps where MuJoCo found the state diverging (NaN/huge acceleration) and reset it:
        # the world's truth after such a step is not physics; a run reports and fails on it
        self.unstable_steps = 0
        self.unstable_at: list[float] = []
        self._park_all()

    # ---- setup -----------------------------------------------------------------------------
    def _tune_servos(self) -> None:
        """Critically damped position servos of ``servo_hz`` bandwidth on each joint's
        inertia at home (armature included), with velocity feed-forward in ``_step``."""
        m, d = self.model, self.data
        full = np.zeros((m.nv, m.nv))
        mujoco.mj_fullM(m, d, full)
        w = 2 * math.pi * self.cfg.servo_hz
        self._kp = np.array([full[v, v] * w * w for v in self._vadr])
        self._kv = np.array([2 * full[v, v] * w for v in self._vadr])
        for i in range(4):
            m.actuator_gainprm[i, 0] = self._kp[i]
            m.actuator_biasprm[i, 1] = -self._kp[i]
            m.actuator_biasprm[i, 2] = -self._kv[i]
            m.actuator_ctrllimited[i] = 0
            m.actuator_forcelimited[i] = 0
        # the quill's drive pushes and pulls with a SCARA's J3 thrust at most: a cup pressed
        # past its bellows' stroke pushes the parcel into the belt with that, not with the
        # unbounded force of an ideal servo (links 1, 2 and the wrist: unbounded)
        m.actuator_forcelimited[2] = 1
        m.actuator_forcerange[2] = (-self.cfg.quill_force_n, self.cfg.quill_force_n)

    def _park_all(self) -> None:
        for slot in range(self.cfg.pool):
            self._park(slot)

    def _park(self, slot: int) -> None:
        d = self.data
        self._collide(slot, False)
        q = self._pq[slot]
        d.qpos[q : q + 3] = park_position(slot)
        d.qpos[q + 3 : q + 7] = (1, 0, 0, 0)
        v = self._pv[slot]
        d.qvel[v : v + 6] = 0
        d.eq_active[self._eq[slot]] = 0

    def _collide(self, slot: int, on: bool) -> None:
        """Contacts on or off for a parcel (the body-level filter too: MuJoCo checks it
        first)."""
        m = self.model
        g, b = self._pgeom[slot], self._pbody[slot]
        m.geom_contype[g] = m.geom_conaffinity[g] = int(on)
        m.body_contype[b] = m.body_conaffinity[b] = int(on)
        m.body_gravcomp[b] = 0.0 if on else 1.0  # parked: floats still, no reset per step

    # ---- belt and time -------------------------------------------------------------------
    def belt_mm(self, t: float | None = None) -> float:
        """Belt travel (mm) since the world began, at world time ``t`` (exact, any t)."""
        return self._belt.position_at(self.t if t is None else t)

    def belt_mm_s(self, t: float | None = None) -> float:
        return self._belt.speed_at(self.t if t is None else t)

    @property
    def belt_speed(self) -> float:
        """The belt's speed now, m/s."""
        return self._belt.speed_at(self.t) / 1000

    def belt_time_of(self, travel_mm: float) -> float | None:
        """World time at which the belt's travel reaches ``travel_mm`` (None: it stops
        short of it)."""
        return self._belt.time_of(travel_mm)

    def set_belt_speed(self, mm_s: float, ramp_mm_s2: float | None = None) -> None:
        """Change the belt's speed from now: at ``ramp_mm_s2`` (a VFD's ramp), or at once."""
        b, t = self._belt, self.t
        self._belt = Motion(
            t, b.position_at(t), b.speed_at(t), max(0.0, mm_s), ramp_mm_s2 or INSTANT_MM_S2
        )

    # ---- parcels -------------------------------------------------------------------------
    def put_parcel(
        self,
        parcel: Parcel,
        mass_kg: float,
        *,
        u_mm: float | None = None,
        across_mm: float = 0.0,
        yaw_deg: float = 0.0,
        flatness: float = 1.0,
        friction: float = 0.5,
    ) -> ParcelTruth:
        """Put a parcel on the belt at belt coordinate ``u_mm`` (default: the induction),
        ``across_mm`` left of the centreline, moving with the belt; its length lies along the
        travel turned by ``yaw_deg``. RuntimeError when the world's pool is full."""
        if not self._free:
            raise RuntimeError(f"arm world: {self.cfg.pool} parcels already on the belt")
        cfg, m, d = self.cfg, self.model, self.data
        slot = self._free.pop()
        u = cfg.belt_start_u_mm + parcel.length_mm / 2 + 5 if u_mm is None else u_mm
        half = np.array([parcel.length_mm, parcel.width_mm, parcel.height_mm]) / 2000
        b, g = self._pbody[slot], self._pgeom[slot]
        m.geom_size[g] = half
        m.geom_rbound[g] = float(np.linalg.norm(half))
        m.geom_aabb[g] = (0, 0, 0, *half)
        m.geom_friction[g, 0] = friction
        adr = m.body_bvhadr[b]
        if adr >= 0:
            m.bvh_aabb[adr] = (0, 0, 0, *half)
        self._collide(slot, True)
        m.body_mass[b] = mass_kg
        sx, sy, sz = 2 * half
        m.body_inertia[b] = (
            mass_kg / 12 * (sy * sy + sz * sz),
            mass_kg / 12 * (sx * sx + sz * sz),
            mass_kg / 12 * (sx * sx + sy * sy),
        )
        # MuJoCo keeps mass-derived constants (the mass matrix's body masses, invweights)
        # from compile time: without this the parcel weighs mass_kg but resists acceleration
        # like the model's 1 kg placeholder (found on 2026-12-02: a 5 kg parcel's lateral
        # inertia was 1 kg). Computed on a scratch MjData: the world's state is untouched;
        # it also resets every weld's relative pose to the model's rest pose: the suction
        # weld holding a parcel now keeps its own.
        eq = m.eq_data.copy()
        mujoco.mj_setConst(m, self._scratch)
        m.eq_data[:] = eq
        yaw = math.radians(yaw_deg) + (0.0 if cfg.belt_sign > 0 else math.pi)
        q = self._pq[slot]
        x = cfg.belt_sign * u / 1000
        y = (cfg.belt_centre_y_mm + cfg.belt_sign * across_mm) / 1000
        d.qpos[q : q + 3] = (x, y, cfg.belt_surface_z_mm / 1000 + half[2] + 0.0005)
        d.qpos[q + 3 : q + 7] = (math.cos(yaw / 2), 0, 0, math.sin(yaw / 2))
        v = self._pv[slot]
        d.qvel[v : v + 6] = 0
        d.qvel[v] = cfg.belt_sign * self.belt_speed
        truth = ParcelTruth(parcel, mass_kg, flatness, self.t, u)
        self.truth[parcel.id] = truth
        self.active[slot] = _Active(truth, slot, half)
        return truth

    def parcel_pose(self, parcel_id: int) -> tuple[float, float, float, float] | None:
        """(u mm along the travel, across mm left of the centre, z mm of its centre, yaw deg
        vs the travel) of a parcel in the world, None once it left."""
        for a in self.active.values():
            if a.truth.parcel.id == parcel_id:
                return self._pose(a.slot)
        return None

    def _pose(self, slot: int) -> tuple[float, float, float, float]:
        cfg, d = self.cfg, self.data
        q = self._pq[slot]
        x, y, z = d.qpos[q : q + 3]
        w, _, _, qz = d.qpos[q + 3 : q + 7]
        yaw = math.degrees(2 * math.atan2(qz, w)) - (0.0 if cfg.belt_sign > 0 else 180.0)
        yaw = (yaw + 180) % 360 - 180
        u = cfg.belt_sign * x * 1000
        across = cfg.belt_sign * (y * 1000 - cfg.belt_centre_y_mm)
        return (u, across, z * 1000, yaw)

    def on_belt(self) -> list[tuple[Parcel, float, float, float]]:
        """Parcels the camera could see: (parcel, u mm, across mm, yaw deg), not held."""
        out = []
        for slot, a in self.active.items():
            if slot == self.attached:
                continue
            u, across, _, yaw = self._pose(slot)
            out.append((a.truth.parcel, u, across, yaw))
        return out

    # ---- arm ---------------------------------------------------------------------------
    def joints(self) -> np.ndarray:
        """Joint positions now (rad, rad, m, rad)."""
        return self.data.qpos[self._qadr].copy()

    def cup_pose(self) -> tuple[float, float, float, float]:
        """The cup's lip: x, y, z mm and yaw deg in the arm frame."""
        p = self.data.site_xpos[self._cup_site] * 1000
        q = self.joints()
        return (float(p[0]), float(p[1]), float(p[2]), math.degrees(q[0] + q[1] + q[3]))

    def set_valve(self, on: bool, t: float | None = None) -> None:
        """The valve opened or closed by the MCU at world time ``t`` (None: now). A world
        stepping behind the MCU's clock (its loop starved for a while, then catching up)
        switches it when it reaches ``t``, not at once: the servos follow the MCU's segments
        at their own instants (``setpoints``), so a release commanded over a chute was
        applied where the arm had been up to 0.3 s before, over the belt (3 parcels
        released onto the belt in one run at load 12, 2026-12-02)."""
        if t is None or t <= self.t + 1e-9:
            self._valve_at.clear()
            self.valve = bool(on)
            return
        self._valve_at.append((t, bool(on)))

    # ---- inputs ----------------------------------------------------------------------------
    def set_input(self, pin: int, value: int, t: float | None = None) -> None:
        value = 1 if value else 0
        if self.inputs.get(pin, 0) == value:
            return
        self.inputs[pin] = value
        at = self.t if t is None else t
        for listener in self.input_listeners:
            listener(pin, value, at)

    def set_curtain(self, broken: bool) -> None:
        """Break (or clear) the light curtain: its input goes to its broken level."""
        lvl = self.cfg.curtain_broken_level
        self.set_input(self.cfg.curtain_input, lvl if broken else 1 - lvl)

    def set_estop(self, pressed: bool) -> None:
        self.set_input(self.cfg.estop_input, 1 if pressed else 0)

    # ---- stepping -------------------------------------------------------------------------
    def step_to(self, t: float) -> int:
        """Step the physics until the world's time reaches ``t`` (whole steps); returns the
        number of steps taken."""
        n = 0
        while self.t + self.dt <= t + 1e-9:
            self._step()
            n += 1
        return n

    def _step(self) -> None:
        m, d, cfg = self.model, self.data, self.cfg
        t_next = self.t + self.dt
        while self._valve_at and self._valve_at[0][0] <= self.t + self.dt / 2:
            self.valve = self._valve_at.pop(0)[1]
        ref = np.asarray(self.setpoints(t_next), dtype=float)[:4]
        vel = (ref - self._ref_prev) / self.dt
        k = 1 - math.exp(-self.dt / 0.05)  # the setpoints' recent speed (diagnosis of drops)
        self._ref_speed = np.maximum(np.abs(vel), self._ref_speed * (1 - k))
        # the setpoint at the step's start with the velocity to its end (feed-forward): the
        # joint then lands on ref at the step's end (no lag; a drive's interpolator does so)
        d.ctrl[:4] = self._ref_prev + self._kv / self._kp * vel
        self._ref_prev = ref
        # the belt slab: at the belt's speed, its position wrapped (it is twice as long)
        d.qvel[self._belt_v] = self._belt.speed_at(self.t + self.dt / 2) / 1000
        span = (cfg.belt_end_u_mm - cfg.belt_start_u_mm) / 1000
        if d.qpos[self._belt_q] > span / 2:
            d.qpos[self._belt_q] -= span
        before = [d.warning[w].number for w in _UNSTABLE]
        mujoco.mj_step(m, d)
        self.t = t_next
        if any(d.warning[w].number != n for w, n in zip(_UNSTABLE, before, strict=True)):
            self.unstable_steps += 1
            if len(self.unstable_at) < 20:
                self.unstable_at.append(round(self.t, 4))
        err = float(np.max(np.abs(ref - d.qpos[self._qadr])))
        self.servo_error_max = max(self.servo_error_max, err)
        self._suction()
        self._sensors()

    # ---- suction -------------------------------------------------------------------------
    def _suction(self) -> None:
        cfg = self.cfg
        if self.valve and self.attached is None:
            self._sealed_slot = self._find_seal()
        elif not self.valve:
            self._sealed_slot = None
        sealed = self.attached is not None or self._sealed_slot is not None
        if not self.valve:
            target, tau = 0.0, cfg.fall_ms
        elif sealed:
            slot = self.attached if self.attached is not None else self._sealed_slot
            assert slot is not None
            quality = 0.75 + 0.25 * self.active[slot].truth.flatness
            target, tau = cfg.supply_kpa * 1000 * quality * (1 - self.leak), cfg.rise_ms
        else:
            target, tau = cfg.free_flow_kpa * 1000, cfg.fall_ms
        if target < self.vacuum_pa:
            tau = cfg.fall_ms
        self.vacuum_pa += (target - self.vacuum_pa) * (1 - math.exp(-self.dt * 1000 / tau))
        if self.attached is None:
            slot = self._sealed_slot
            if slot is not None and self.vacuum_pa >= cfg.attach_kpa * 1000:
                # sealed: while the cup still comes down the bellows takes it (no weld to push
                # the parcel into the belt); the parcel moves with the cup once it stops
                # coming down, as a bellows that has taken its stroke lifts what it holds
                axis = self.data.site_xmat[self._cup_site].reshape(3, 3)[:, 2]
                if float(self._lip_velocity(slot) @ axis) > -PRESSING_M_S:
                    self._attach(slot)
            return
        self._check_hold()

    def _find_seal(self) -> int | None:
        """The parcel whose top face the cup's lip sits on, flat and within the tolerances."""
        cfg, d = self.cfg, self.data
        cup = d.site_xpos[self._cup_site]
        r = cfg.cup_radius_m
        for slot, a in self.active.items():
            b = self._pbody[slot]
            p = d.xpos[b]
            if abs(p[0] - cup[0]) > 0.6 or abs(p[1] - cup[1]) > 0.6:
                continue
            rot = d.xmat[b].reshape(3, 3)
            k = int(np.argmax(np.abs(rot[2])))
            n = rot[:, k] * (1.0 if rot[2, k] > 0 else -1.0)
            if n[2] < math.cos(math.radians(cfg.seal_tilt_deg)):
                continue
            if self._no_seal[0] == slot and self.t < self._no_seal[1]:
                continue  # just lost: falling away
            if self._lip_speed(slot) > cfg.seal_speed_mm_s / 1000:
                continue  # a lip sweeping over a face (or a parcel falling past) does not seal
            face = p + n * a.half[k]
            delta = cup - face
            h = float(delta @ n)
            if not -cfg.seal_press_mm / 1000 <= h <= cfg.seal_gap_mm / 1000:
                continue
            f = a.truth.flatness
            ok = True
            for i in range(3):
                if i == k:
                    continue
                reach = abs(float(delta @ rot[:, i])) + r
                if reach > f * a.half[i] + cfg.seal_edge_mm / 1000:
                    ok = False
                    break
            if ok:
                return slot
        return None

    def _lip_velocity(self, slot: int) -> np.ndarray:
        """The cup lip's velocity relative to the parcel (m/s, world frame)."""
        d = self.data
        lip = np.zeros(6)
        mujoco.mj_objectVelocity(self.model, d, mujoco.mjtObj.mjOBJ_SITE, self._cup_site, lip, 0)
        v = self._pv[slot]
        return lip[3:6] - d.qvel[v : v + 3]

    def _lip_speed(self, slot: int) -> float:
        """The cup lip's speed relative to the parcel's top (m/s)."""
        return float(np.linalg.norm(self._lip_velocity(slot)))

    def _bellows(self, slot: int, pull_n: float) -> None:
        """The bellows gives way: while the cup presses the held parcel (onto the belt), the
        weld's hold point follows the parcel up the cup's axis (no force from the press but
        the parcel's own), up to ``seal_press_mm`` of compression; lifting, the parcel hangs
        where the bellows left it."""
        if pull_n >= 0:
            return
        m, d = self.model, self.data
        cup_b, b = self._cup_body, self._pbody[slot]
        rot = d.xmat[cup_b].reshape(3, 3)
        rel = rot.T @ (d.xpos[b] - d.xpos[cup_b])
        e = self._eq[slot]
        cap = -self._attach_half + self.cfg.seal_press_mm / 1000  # the face at the lip, less
        m.eq_data[e, 5] = min(max(float(m.eq_data[e, 5]), float(rel[2])), cap)

    def _attach(self, slot: int) -> None:
        m, d = self.model, self.data
        cup_b, b = self._cup_body, self._pbody[slot]
        rot = d.xmat[cup_b].reshape(3, 3)
        rel = rot.T @ (d.xpos[b] - d.xpos[cup_b])
        qinv = np.zeros(4)
        mujoco.mju_negQuat(qinv, d.xquat[cup_b])
        rq = np.zeros(4)
        mujoco.mju_mulQuat(rq, qinv, d.xquat[b])
        e = self._eq[slot]
        pr = d.xmat[b].reshape(3, 3)
        self._attach_half = float(self.active[slot].half[int(np.argmax(np.abs(pr[2])))])
        m.eq_data[e, 0:3] = 0
        m.eq_data[e, 3:6] = rel
        m.eq_data[e, 6:10] = rq
        d.eq_active[e] = 1
        self.attached = slot
        self._sealed_slot = None
        self._attach_t = self.t
        v = self._pv[slot]
        self._v_prev = d.qvel[v : v + 3].copy()
        self._acc = np.zeros(3)
        self._load = np.zeros(3)
        a = self.active[slot]
        face = d.xpos[b][:2] - d.site_xpos[self._cup_site][:2]
        a.truth.grips.append((self.t, float(np.linalg.norm(face) * 1000)))

    def cup_load(self) -> tuple[float, float, float] | None:
        """What the held parcel asks of the cup now, from the suction weld's constraint
        force (MuJoCo's solution: weight, inertia, and any contact pushing the parcel):
        (pull N along the cup's axis away from it, shear N across it, tilting moment N m
        about the lip's centre); None when nothing is held."""
        slot = self.attached
        if slot is None:
            return None
        m, d = self.model, self.data
        rows = (d.efc_type == mujoco.mjtConstraint.mjCNSTR_EQUALITY) & (d.efc_id == self._eq[slot])
        if not rows.any():
            return None
        f = np.where(rows, d.efc_force, 0.0)
        qfrc = np.zeros(m.nv)
        mujoco.mj_mulJacTVec(m, d, qfrc, f)
        v = self._pv[slot]
        force = qfrc[v : v + 3]  # on the parcel, world frame, at its centre of mass
        b = self._pbody[slot]
        torque = d.xmat[b].reshape(3, 3) @ qfrc[v + 3 : v + 6]  # body frame -> world
        lip = d.site_xpos[self._cup_site]
        moment = torque + np.cross(d.xipos[b] - lip, force)  # the same load, about the lip
        axis = d.site_xmat[self._cup_site].reshape(3, 3)[:, 2]  # the cup's axis, up
        pull = float(force @ axis)
        shear = float(np.linalg.norm(force - pull * axis))
        tilt = float(np.linalg.norm(moment - float(moment @ axis) * axis))
        return pull, shear, tilt

    def _check_hold(self) -> None:
        """Let go when the load (filtered over ``grip_filter_ms``: a lip's elastic response,
        not one step's constraint spike) asks more than the vacuum holds, by sliding or by
        peeling (``ArmWorldConfig.grip_loads``); or past the fault's g limit."""
        cfg, d = self.cfg, self.data
        slot = self.attached
        assert slot is not None
        v_idx = self._pv[slot]
        v = d.qvel[v_idx : v_idx + 3].copy()
        acc = (v - self._v_prev) / self.dt
        self._v_prev = v
        k = 1 - math.exp(-self.dt * 1000 / cfg.grip_filter_ms)
        self._acc += (acc - self._acc) * k
        load = self.cup_load()
        if load is not None:
            self._bellows(slot, load[0])
            self._load += (np.array(load) - self._load) * k
        if self.t - self._attach_t < cfg.grip_settle_ms / 1000:
            return  # the bellows draws the face onto the lip
        hold = cfg.hold_force_n(self.vacuum_pa)
        slide, peel = cfg.grip_loads(*self._load)
        self.grip_use_max = max(self.grip_use_max, max(slide, peel) / max(hold, 1e-9))
        limit = self.drop_g
        too_fast = limit is not None and float(np.linalg.norm(self._acc)) > limit * G
        if slide > hold or peel > hold or too_fast:
            a = self.active[slot]
            pull, shear, tilt = self._load
            if too_fast:
                why = f"fault: over {limit:g} g"
            else:
                mode = "slid" if slide >= peel else "peeled"
                why = (
                    f"{mode}: pull {pull:.0f} N, shear {shear:.0f} N, tilt {tilt:.1f} N m "
                    f"over {hold:.0f} N held at {self.vacuum_pa / 1000:.0f} kPa"
                )
            sp = self._ref_speed
            why += (
                f"; setpoints at up to {math.degrees(sp[0]):.0f}, {math.degrees(sp[1]):.0f} "
                f"deg/s, {sp[2] * 1000:.0f} mm/s, {math.degrees(sp[3]):.0f} deg/s"
            )
            if self.valve:
                a.truth.drop_causes.append(why)
                # the lip is open to the air: the vacuum collapses, and the parcel slipping
                # or falling away is not sealed again while it goes
                self.vacuum_pa = min(self.vacuum_pa, cfg.free_flow_kpa * 1000)
                self._no_seal = (slot, self.t + cfg.reseal_s)
            self._detach(slot, deliberate=not self.valve)

    def _detach(self, slot: int, deliberate: bool) -> None:
        self.data.eq_active[self._eq[slot]] = 0
        self.attached = None
        x, y, z = (self.data.xpos[self._pbody[slot]] * 1000).tolist()
        truth = self.active[slot].truth
        (truth.releases if deliberate else truth.drops).append((self.t, x, y, z))

    # ---- sensors and ends ------------------------------------------------------------------
    def _sensors(self) -> None:
        cfg, d = self.cfg, self.data
        while self._lows and self._lows[0][0] <= self.t:
            _, pin = self._lows.pop(0)
            self.set_input(pin, 0)
        surface = cfg.belt_surface_z_mm / 1000
        floor = cfg.floor_z_mm / 1000
        for slot in list(self.active):
            if slot == self.attached:
                continue
            a = self.active[slot]
            x, y, z = d.xpos[self._pbody[slot]]
            u = cfg.belt_sign * x * 1000
            end: str | None = None
            if z < surface - 0.05:
                for dest in cfg.destinations:
                    s = dest.size_mm / 2000
                    if abs(x - dest.x_mm / 1000) <= s and abs(y - dest.y_mm / 1000) <= s:
                        end = f"dest:{dest.id}"
                        if dest.sensor_input is not None:
                            self._pulse(dest.sensor_input)
                        break
                if end is None and z - a.half.min() < floor + 0.02:
                    end = "floor"
            elif u > cfg.belt_end_u_mm:
                end = "belt_end"
            if end is not None:
                a.truth.end = end
                a.truth.end_t = self.t
                a.truth.end_xyz_mm = (float(x * 1000), float(y * 1000), float(z * 1000))
                del self.active[slot]
                self._park(slot)
                self._free.append(slot)

    def _pulse(self, pin: int) -> None:
        self.set_input(pin, 1)
        self._lows = [(t, p) for t, p in self._lows if p != pin]
        self._lows.append((self.t + self.cfg.sensor_ms / 1000, pin))
        self._lows.sort()
