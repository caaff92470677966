"""What the arm world's physics costs: CPU ms per simulated second (docs/sim-arm-world.md).

    OMP_NUM_THREADS=1 nice -n 19 .venv/bin/python -m sim_hardware.arm.cost [--seconds 20]

A busy cell: parcels put on the belt every 1.2 s (3,000/h), the arm picking each off the
moving belt and placing it into a chute (scripted setpoints through the world's IK), so
belt contacts, the weld and falling parcels are all in the figure.
"""

from __future__ import annotations

import argparse
import math
import time

from sim_hardware.arm.config import ArmWorldConfig
from sim_hardware.arm.world import ArmWorld
from sim_hardware.world.parcels import Parcel

PERIOD_S = 1.2


def _smooth(s: float) -> float:
    s = min(1.0, max(0.0, s))
    return s * s * s * (10 - 15 * s + 6 * s * s)


def run(seconds: float) -> dict[str, float]:
    cfg = ArmWorldConfig()
    w = ArmWorld(cfg)
    speed = cfg.belt_speed_mm_s
    top = cfg.belt_surface_z_mm + 150
    dest = cfg.destinations[0]
    home = cfg.home_mm[:3]

    def cart(t: float) -> tuple[float, float, float]:
        k, tau = divmod(t, PERIOD_S)
        x0 = -600.0 + speed * tau  # this cycle's parcel is at u=-600 at the cycle's start
        y = cfg.belt_centre_y_mm
        if tau < 0.3:
            s = _smooth(tau / 0.3)
            a, b = (
                (dest.x_mm, dest.y_mm, dest.z_mm) if k else home,
                (-600 + speed * 0.3, y, top + 50),
            )
            return tuple(p + (q - p) * s for p, q in zip(a, b, strict=True))
        if tau < 0.45:
            return (x0, y, top + 50 - 55 * _smooth((tau - 0.3) / 0.1))
        if tau < 0.65:
            return (x0, y, top - 5 + 100 * _smooth((tau - 0.45) / 0.2))
        s = _smooth((tau - 0.65) / 0.45)
        start = (x0, y, top + 95)
        end = (dest.x_mm, dest.y_mm, dest.z_mm)
        return tuple(p + (q - p) * s for p, q in zip(start, end, strict=True))

    w.setpoints = lambda t: cfg.ik(*cart(t), 0.0)
    n, steps, cpu = 0, 0, 0.0
    t = 0.0
    while t < seconds:
        tau = t % PERIOD_S
        if tau < 1e-9:
            p = Parcel(n, "box", 300, 200, 150, "Code128", f"DE-{n}", True, t)
            w.put_parcel(p, 2.0, u_mm=-600 - speed * 0.0)
            n += 1
        w.set_valve(0.33 <= tau < 1.12)
        c0 = time.process_time()
        steps += w.step_to(t + 0.1)
        cpu += time.process_time() - c0
        t = round(t + 0.1, 6)
    ends = [tr.end for tr in w.truth.values()]
    return {
        "simulated_s": seconds,
        "steps": steps,
        "cpu_ms_per_simulated_s": cpu * 1000 / seconds,
        "us_per_step": cpu * 1e6 / steps,
        "parcels": n,
        "placed": sum(1 for e in ends if e == f"dest:{dest.id}"),
        "dropped": sum(1 for tr in w.truth.values() if tr.drops),
        "servo_error_max_mrad": w.servo_error_max * 1000 if math.isfinite(w.servo_error_max) else 0,
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--seconds", type=float, default=20.0)
    r = run(ap.parse_args().seconds)
    print(
        f"{r['simulated_s']:g} s simulated in {r['steps']} steps: "
        f"{r['cpu_ms_per_simulated_s']:.1f} ms CPU per simulated second "
        f"({r['us_per_step']:.0f} us per step); {r['parcels']} parcels, {r['placed']} placed, "
        f"{r['dropped']} dropped; servo error max {r['servo_error_max_mrad']:.2f} mrad"
    )


if __name__ == "__main__":
    main()
