"""What the arm's camera hands over, offline, against the world's truth.

    .venv/bin/python bench/arm_seeing.py --seed 2 [--seconds 120] [--fps 10] [--dump]

The arm cell's parcel stream for a seed (``wolfpack sim --machine arm``'s world and
induction, no arm: its tracking window lies downstream of the camera's view, so nothing the
arm does reaches what the camera sees), the arm's renderer at the sim's 15 frames/s, the
node's pipeline (``configs/sim-arm.yaml``'s ``vision:``) on the frames of a 10 frames/s grid
(``ArmCamera.max_fps``), and the arm's handover (``ArmCamera.parcels``). Each handed-over
view is scored against the world's pose of the nearest parcel at that view's encoder count:
its centre along the belt (mm) and its length. Printed: the views more than 30 mm off
centre, the centre error's p50 / p99 / max, parcels never handed over. ``--dump`` prints
every tracked box beside the parcel's true extent in the frame (px) and whether the frame
cut it. Every frame is processed in this process, at whatever pace the machine allows; what
the live run adds (frames skipped by a busy node, the brain's time) is not here.
Written for docs/sim-arm.md ("Seeing"): which misses are the frame's edge, which the
detector.
"""

from __future__ import annotations

import argparse
import math
import sys
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from edge.arm.adapter_camera import ArmCamera, BeltParcel  # noqa: E402
from edge.cli.sim_arm import ArmSimOptions, cell_settings  # noqa: E402
from edge.config import load_board_config  # noqa: E402
from sim_hardware.arm.camera import ArmRenderer  # noqa: E402
from sim_hardware.arm.cell import ArmSnapshot, SimArmCell  # noqa: E402
from sim_hardware.world.arrivals import ArrivalProcess  # noqa: E402
from vision.frames import Frame  # noqa: E402
from vision.pipeline import FrameResult, Pipeline  # noqa: E402

CAMERA_FPS = 15.0
STEP_S = 0.01
OFF_MM = 30.0  # a view whose centre is this far from the parcel's is printed


def _dump(t: float, result: FrameResult, parcels: tuple, centre_u: float, px_mm: float) -> None:
    """Each tracked box of ``result`` beside the true extent (px) of the parcel nearest it."""
    extent = {}
    for p, u, _, yaw in parcels:
        a = math.radians(yaw)
        half = abs(p.length_mm / 2 * math.cos(a)) + abs(p.width_mm / 2 * math.sin(a))
        along = u - centre_u
        extent[p.id] = ((along - half + 400) * px_mm, (along + half + 400) * px_mm)
    width = result.frame.size[0]
    for sp in result.parcels:
        if not extent:
            return
        d = sp.detection
        xs = d.corners()[:, 0]
        cx = (d.box[0] + d.box[2]) / 2
        pid, (a1, a2) = min(extent.items(), key=lambda kv: abs(sum(kv[1]) / 2 - cx))
        cut = "CUT " if a1 < 0 or a2 > width else "whole"
        print(f"t {t:7.2f} track {sp.track_id:3d} parcel {pid:3d} {cut} truth {a1:7.1f}-{a2:7.1f}"
              f" box {d.box[0]:6.1f}-{d.box[2]:6.1f} corners {xs.min():6.1f}-{xs.max():6.1f} "
              f"{d.class_name}")  # fmt: skip


def run(seed: int, seconds: float, fps: float, dump: bool) -> dict:
    board = load_board_config(REPO / "configs" / "sim-arm.yaml")
    settings = cell_settings(board, ArmSimOptions(seed=seed, camera_fps=CAMERA_FPS))
    cell = SimArmCell(dict(settings), "/nonexistent/no-mcu")  # the MCU never starts
    world = cell.world
    cell.arrivals = ArrivalProcess(cell.arrival_cfg, seed, cell.t_start)
    cam = settings["camera"]
    centre_u, fov = cam["centre_u_mm"], cam["fov_mm"]
    renderer = ArmRenderer(centre_u, fov, seed, size=tuple(cam["size"]))
    pipeline = Pipeline.from_config(board.vision)
    camera = ArmCamera(board.vision, lambda p: None, lambda up, why: None)
    px_mm = cam["size"][0] / fov
    cpm = cell.cfg.counts_per_mm
    truth_at: dict[int, dict[int, float]] = {}  # encoder count -> parcel -> along (mm)
    handed: list[BeltParcel] = []
    t, next_frame, last_slot, index = 0.0, 0.0, -1, 0
    while t < seconds + 8.0:  # the last parcels through the view
        t += STEP_S
        cell.closed = t >= seconds
        cell._induct(cell.t_start + t)
        world.step_to(t)
        if t + 1e-9 < next_frame:
            continue
        next_frame += 1 / CAMERA_FPS
        count = math.floor(world.belt_mm(t) * cpm)
        parcels = tuple(world.on_belt())
        truth_at[count] = {p.id: u - centre_u for p, u, _, _ in parcels}
        slot = int(t * fps)
        if slot == last_slot:
            continue  # the node takes frames on a grid of fps
        last_slot = slot
        wf = renderer.render_arm(ArmSnapshot(t, count, centre_u, fov, parcels))
        result = pipeline.process(Frame(wf.image, t, index, wf.encoder_count))
        index += 1
        if dump:
            _dump(t, result, parcels, centre_u, px_mm)
        handed += camera.parcels(result)
    truth = {pid: tr.parcel for pid, tr in world.truth.items()}
    errors, off, got = [], [], set()
    for bp in handed:
        here = truth_at.get(bp.encoder_count)
        if not here:
            continue
        pid, along = min(here.items(), key=lambda kv: abs(kv[1] - bp.x_mm))
        got.add(pid)
        err = bp.x_mm - along
        errors.append(abs(err))
        if abs(err) > OFF_MM:
            off.append((pid, truth[pid], bp, err))
    return {
        "parcels": len(truth),
        "handed": len(handed),
        "stats": dict(camera.handover.stats),
        "off": off,
        "errors": np.array(errors),
        "never_handed": sorted(pid for pid in truth if pid not in got),
    }


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--seconds", type=float, default=120.0)
    ap.add_argument("--fps", type=float, default=10.0, help="frames processed per second")
    ap.add_argument("--dump", action="store_true", help="every tracked box against the truth")
    a = ap.parse_args()
    r = run(a.seed, a.seconds, a.fps, a.dump)
    e = r["errors"]
    print(f"seed {a.seed}: {r['parcels']} parcels, {r['handed']} views handed over; "
          f"handover {r['stats']}")  # fmt: skip
    if len(e):
        print(f"centre error along the belt: p50 {np.percentile(e, 50):.1f}, p99 "
              f"{np.percentile(e, 99):.1f}, max {e.max():.1f} mm")  # fmt: skip
    for pid, p, bp, err in r["off"]:
        kind = "final" if bp.final else "early"
        print(f"  parcel {pid} {p.cls} {p.length_mm:.0f}x{p.width_mm:.0f} mm: {kind} view "
              f"{bp.class_name} {bp.length_mm:.0f}x{bp.width_mm:.0f} at along {bp.x_mm:.0f}, "
              f"{err:+.0f} mm off its centre, label {bp.label}")  # fmt: skip
    print("never handed over:", r["never_handed"])
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
