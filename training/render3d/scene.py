"""Belt scenes rendered in 3D with MuJoCo's OpenGL renderer (EGL, software on a CPU), with
their truth: a second family of training and test images, made by another method than the
2D sprite renderer (``sim_hardware/camera``), so that cross-domain figures mean something.

What differs from the 2D renderer, on purpose: a perspective camera at a random height
(1.0-2.0 m), tilt (0-25 degrees) and field of view, so parcels show their side faces and
shrink with distance; real shading with 1-3 lights and cast shadows; specular highlights on
film (polybags) and tape; parcels as solids: boxes (cardboard speckle, kraft, white,
coloured; taped), envelopes (thin, matte paper), polybags (flattened ellipsoids with lumps
and wrinkles, glossy), irregular items (tubes, capsules, composites); belts of random colour
and texture; then the sensor: exposure, noise, motion blur along the belt, JPEG compression.

Truth comes from MuJoCo's segmentation render (which geom each pixel shows): each parcel's
visible pixels give its axis-aligned box and its oriented box (the minimum-area rectangle
of its silhouette). No barcodes are drawn (label reading is measured on the 2D renders).

    MUJOCO_GL=egl .venv/bin/python training/render3d/make_dataset.py --images 200 --out DIR
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable
from dataclasses import dataclass

import cv2
import numpy as np

os.environ.setdefault("MUJOCO_GL", "egl")

CLASSES = ("box", "polybag", "envelope", "irregular")
SIZE = (640, 480)
MIN_VISIBLE_PX = 150


@dataclass(frozen=True)
class Parcel3D:
    cls: str
    corners: tuple[tuple[float, float], ...]  # oriented box of the silhouette, px
    box: tuple[float, float, float, float]  # visible x1, y1, x2, y2
    visible_px: int


def _rgb(c: np.ndarray) -> str:
    return " ".join(f"{float(v):.3f}" for v in np.clip(c, 0, 1))


def _parcel(rng: np.random.Generator, i: int, cls: str, x: float, y: float) -> tuple[str, str]:
    """MJCF of one parcel (a body of one or more geoms named p{i}_k) and its materials."""
    yaw = float(rng.uniform(0, 180))
    geoms: list[str] = []
    mats: list[str] = []

    def mat(name: str, rgb: np.ndarray, spec: float, shin: float, refl: float = 0.0,
            speckle: bool = False) -> str:  # fmt: skip
        full = f"m{i}_{name}"
        if speckle:
            dark = np.clip(rgb * rng.uniform(0.75, 0.92), 0, 1)
            mats.append(
                f'<texture name="t{full}" type="2d" builtin="flat" mark="random" '
                f'random="{rng.uniform(0.05, 0.3):.2f}" rgb1="{_rgb(rgb)}" markrgb="{_rgb(dark)}" '
                f'width="64" height="64"/>'
            )
            mats.append(f'<material name="{full}" texture="t{full}" specular="{spec:.2f}" '
                        f'shininess="{shin:.2f}" reflectance="{refl:.2f}"/>')  # fmt: skip
        else:
            mats.append(f'<material name="{full}" rgba="{_rgb(rgb)} 1" specular="{spec:.2f}" '
                        f'shininess="{shin:.2f}" reflectance="{refl:.2f}"/>')  # fmt: skip
        return full

    z = 0.0
    if cls == "box":
        lx, ly = rng.uniform(0.08, 0.25), rng.uniform(0.06, 0.2)
        lz = rng.uniform(0.04, 0.22)
        kind = rng.random()
        if kind < 0.6:  # corrugated brown / kraft
            rgb = np.array([0.62, 0.46, 0.3]) * rng.uniform(0.75, 1.2) + rng.normal(0, 0.03, 3)
        elif kind < 0.85:  # white
            rgb = np.full(3, rng.uniform(0.8, 0.97)) + rng.normal(0, 0.02, 3)
        else:  # printed / coloured
            rgb = rng.uniform(0.1, 0.9, 3)
        m = mat("card", rgb, rng.uniform(0.02, 0.15), rng.uniform(0.05, 0.2), speckle=True)
        z = lz
        geoms.append(f'<geom name="p{i}_0" type="box" size="{lx:.3f} {ly:.3f} {lz:.3f}" '
                     f'material="{m}"/>')  # fmt: skip
        if rng.random() < 0.8:  # tape along the length, over the top
            tape = np.array([0.75, 0.6, 0.4]) if rng.random() < 0.5 else rng.uniform(0.6, 1, 3)
            t = mat("tape", tape, 0.8, 0.8, 0.1)
            geoms.append(
                f'<geom name="p{i}_1" type="box" size="{lx + 0.001:.3f} '
                f'{rng.uniform(0.015, 0.03):.3f} {lz + 0.001:.3f}" material="{t}"/>'
            )
    elif cls == "envelope":
        lx, ly = rng.uniform(0.1, 0.19), rng.uniform(0.07, 0.13)
        lz = rng.uniform(0.002, 0.008)
        kind = rng.random()
        rgb = (np.full(3, rng.uniform(0.85, 0.98)) if kind < 0.5 else
               np.array([0.85, 0.72, 0.5]) * rng.uniform(0.85, 1.1) if kind < 0.8 else
               rng.uniform(0.3, 0.95, 3))  # fmt: skip
        m = mat("paper", rgb, rng.uniform(0.0, 0.1), 0.05, speckle=rng.random() < 0.5)
        z = lz
        geoms.append(f'<geom name="p{i}_0" type="box" size="{lx:.3f} {ly:.3f} {lz:.3f}" '
                     f'material="{m}"/>')  # fmt: skip
        if rng.random() < 0.6:  # the flap's edge, a slightly darker strip
            f = mat("flap", rgb * 0.9, 0.05, 0.05)
            geoms.append(
                f'<geom name="p{i}_1" type="box" size="{lx:.3f} {0.004:.3f} {lz + 0.0005:.4f}" '
                f'pos="0 {ly * rng.uniform(0.2, 0.7):.3f} 0" material="{f}"/>'
            )
    elif cls == "polybag":
        lx, ly = rng.uniform(0.1, 0.22), rng.uniform(0.07, 0.16)
        lz = rng.uniform(0.015, 0.06)
        kind = rng.random()
        rgb = (
            np.full(3, rng.uniform(0.6, 0.95))
            if kind < 0.4
            else np.full(3, rng.uniform(0.05, 0.2))
            if kind < 0.6
            else rng.uniform(0.1, 0.9, 3)
        )
        m = mat("film", rgb, rng.uniform(0.5, 1.0), rng.uniform(0.5, 1.0),
                rng.uniform(0.0, 0.3))  # fmt: skip
        z = lz
        geoms.append(f'<geom name="p{i}_0" type="ellipsoid" size="{lx:.3f} {ly:.3f} {lz:.3f}" '
                     f'material="{m}"/>')  # fmt: skip
        for k in range(1, int(rng.integers(2, 6))):  # lumps and wrinkles
            px, py = rng.uniform(-0.6, 0.6) * lx, rng.uniform(-0.6, 0.6) * ly
            s = rng.uniform(0.25, 0.5)
            geoms.append(f'<geom name="p{i}_{k}" type="ellipsoid" size="{lx * s:.3f} '
                         f'{ly * s * rng.uniform(0.3, 1):.3f} {lz * rng.uniform(0.9, 1.3):.3f}" '
                         f'pos="{px:.3f} {py:.3f} 0" euler="0 0 {rng.uniform(0, 180):.0f}" '
                         f'material="{m}"/>')  # fmt: skip
    else:  # irregular
        kind = rng.random()
        rgb = rng.uniform(0.05, 0.95, 3)
        m = mat(
            "obj", rgb, rng.uniform(0.1, 0.8), rng.uniform(0.1, 0.8), speckle=rng.random() < 0.3
        )
        if kind < 0.35:  # a tube lying down
            r, h = rng.uniform(0.03, 0.07), rng.uniform(0.12, 0.3)
            z = r
            geoms.append(f'<geom name="p{i}_0" type="cylinder" size="{r:.3f} {h:.3f}" '
                         f'euler="0 90 0" material="{m}"/>')  # fmt: skip
        elif kind < 0.6:  # a capsule / bottle
            r, h = rng.uniform(0.03, 0.06), rng.uniform(0.08, 0.2)
            z = r
            geoms.append(f'<geom name="p{i}_0" type="capsule" size="{r:.3f} {h:.3f}" '
                         f'euler="0 90 0" material="{m}"/>')  # fmt: skip
        elif kind < 0.8:  # an upright cylinder (a tyre, a bucket)
            r, h = rng.uniform(0.06, 0.15), rng.uniform(0.03, 0.12)
            z = h
            geoms.append(f'<geom name="p{i}_0" type="cylinder" size="{r:.3f} {h:.3f}" '
                         f'material="{m}"/>')  # fmt: skip
        else:  # a composite: an L of two boxes
            a, b, h = rng.uniform(0.08, 0.18), rng.uniform(0.03, 0.06), rng.uniform(0.03, 0.1)
            z = h
            geoms.append(f'<geom name="p{i}_0" type="box" size="{a:.3f} {b:.3f} {h:.3f}" '
                         f'material="{m}"/>')  # fmt: skip
            geoms.append(f'<geom name="p{i}_1" type="box" size="{b:.3f} {a * 0.7:.3f} {h:.3f}" '
                         f'pos="{a - b:.3f} {a * 0.7 - b:.3f} 0" material="{m}"/>')  # fmt: skip
    if cls != "irregular" and rng.random() < 0.75:  # a shipping label on top
        geoms += _label(rng, i, len(geoms), lx, ly, z, mat)
    body = (f'<body name="p{i}" pos="{x:.3f} {y:.3f} {z:.4f}" euler="0 0 {yaw:.1f}">'
            + "".join(geoms) + "</body>")  # fmt: skip
    return body, "".join(mats)


def _label(
    rng: np.random.Generator,
    i: int,
    k0: int,
    lx: float,
    ly: float,
    top: float,
    mat: Callable[..., str],
) -> list[str]:
    """A paper label on the parcel's top face, with dark stripes like a barcode's (p 0.6):
    the 2D renders' parcels carry labels, so a label must not be what tells them apart."""
    w = min(lx * 0.9, rng.uniform(0.035, 0.06))
    h = min(ly * 0.9, rng.uniform(0.025, 0.045))
    px, py = rng.uniform(-0.5, 0.5) * (lx - w), rng.uniform(-0.5, 0.5) * (ly - h)
    paper = mat("label", np.full(3, rng.uniform(0.85, 1.0)) + rng.normal(0, 0.02, 3),
                rng.uniform(0.0, 0.4), 0.2)  # fmt: skip
    out = [f'<geom name="p{i}_{k0}" type="box" size="{w:.3f} {h:.3f} 0.0006" '
           f'pos="{px:.3f} {py:.3f} {top + 0.0012:.4f}" material="{paper}"/>']  # fmt: skip
    if rng.random() < 0.6:
        ink = mat("ink", np.full(3, rng.uniform(0.02, 0.15)), 0.1, 0.1)
        for b in range(int(rng.integers(4, 10))):
            bx = px - w * 0.8 + rng.uniform(0, 1.6 * w)
            bar = f"{rng.uniform(0.0008, 0.003):.4f} {h * 0.6:.3f} 0.0007"
            z = top + 0.0018
            out.append(f'<geom name="p{i}_{k0 + 1 + b}" type="box" size="{bar}" '
                       f'pos="{bx:.4f} {py:.3f} {z:.4f}" material="{ink}"/>')  # fmt: skip
    return out


def _distractors(rng: np.random.Generator, half_w: float, half_h: float) -> tuple[str, str]:
    """Small things on the belt that are not parcels (paper scraps, tape, a glove, a strap):
    not annotated, so the detector learns to leave them out."""
    bodies, mats = [], []
    for j in range(int(rng.integers(0, 5))):
        x, y = rng.uniform(-half_w, half_w), rng.uniform(-half_h, half_h)
        rgb = rng.uniform(0.1, 0.95, 3)
        mats.append(f'<material name="dm{j}" rgba="{_rgb(rgb)} 1" specular="0.1"/>')
        if rng.random() < 0.5:  # a flat scrap
            size = f"{rng.uniform(0.01, 0.04):.3f} {rng.uniform(0.005, 0.03):.3f} 0.001"
            kind = "box"
        else:  # a strap or a cable
            size = f"{rng.uniform(0.003, 0.008):.4f} {rng.uniform(0.03, 0.09):.3f}"
            kind = "capsule"
        turn = f"{rng.uniform(0, 180):.0f}"
        euler = f"0 90 {turn}" if kind == "capsule" else f"0 0 {turn}"
        bodies.append(f'<geom name="d{j}" type="{kind}" size="{size}" pos="{x:.3f} {y:.3f} 0.004" '
                      f'euler="{euler}" material="dm{j}"/>')  # fmt: skip
    return "".join(bodies), "".join(mats)


def scene_xml(rng: np.random.Generator) -> tuple[str, list[str], dict[str, float]]:
    """The MJCF of one random scene, the class of each parcel, and the camera.

    Heavy domain randomisation, so that what a model learns here is parcels, not this
    renderer: camera height, tilt, field of view and yaw (the belt runs any way across the
    image); parcels from far apart to touching and overlapping; 1-4 lights of any colour
    temperature, with or without shadows, and a headlight of any strength; belts of any
    colour and texture; distractors that are not parcels."""
    height = float(rng.uniform(1.0, 2.0))
    tilt = float(rng.uniform(0, 25))
    fovy = float(rng.uniform(40, 65))
    yaw = float(rng.uniform(0, 360))
    half_h = height * math.tan(math.radians(fovy / 2))  # half the view on the belt, across
    half_w = half_h * SIZE[0] / SIZE[1]
    belt = rng.uniform(0.05, 0.5, 3) * np.array([1, 1, 1]) * rng.uniform(0.6, 1.4)
    belt2 = np.clip(belt * rng.uniform(0.8, 1.2), 0, 1)
    cy, sy = math.cos(math.radians(yaw)), math.sin(math.radians(yaw))

    def turn(u: float, v: float) -> tuple[float, float]:  # camera-aligned -> world
        return u * cy - v * sy, u * sy + v * cy

    gap = float(rng.uniform(0.15, 0.35))  # centre spacing: touching to well apart
    parts = []
    classes = []
    placed: list[tuple[float, float]] = []
    for i in range(int(rng.integers(1, 7))):
        for _ in range(20):
            u = float(rng.uniform(-half_w, half_w) * 0.95)
            v = float(rng.uniform(-half_h, half_h) * 0.8)
            if all((u - a) ** 2 + (v - b) ** 2 > gap**2 for a, b in placed):
                break
        else:
            continue
        placed.append((u, v))
        cls = str(rng.choice(CLASSES))
        classes.append(cls)
        parts.append(_parcel(rng, i, cls, *turn(u, v)))
    lights = []
    for _ in range(int(rng.integers(1, 5))):
        lp = np.array([rng.uniform(-1.5, 1.5), rng.uniform(-1.5, 1.5), rng.uniform(1.2, 3.0)])
        diffuse = rng.uniform(0.25, 0.9)
        warm = rng.uniform(-0.15, 0.15)  # colour temperature: warm (+) to cold (-)
        tint = np.clip(np.array([1 + warm, 1, 1 - warm]) + rng.normal(0, 0.04, 3), 0, 1)
        pos = " ".join(f"{v:.2f}" for v in lp)
        spot = rng.random() < 0.3
        lights.append(
            f'<light pos="{pos}" directional="{"true" if rng.random() < 0.2 else "false"}" '
            f'dir="{-lp[0]:.2f} {-lp[1]:.2f} {-lp[2]:.2f}" diffuse="{_rgb(tint * diffuse)}" '
            f'specular="{_rgb(np.full(3, rng.uniform(0.1, 0.5)))}" '
            + (f'cutoff="{rng.uniform(25, 60):.0f}" exponent="{rng.uniform(1, 10):.0f}" '
               if spot else "")
            + f'castshadow="{"true" if rng.random() < 0.8 else "false"}"/>'
        )  # fmt: skip
    # the camera looks down, tilted about its own x axis, from behind the view's centre,
    # then the whole rig is turned by ``yaw`` about the vertical
    t = math.radians(tilt)
    cam = turn(0.0, -height * math.sin(t) * 0.9)
    xaxis = turn(1.0, 0.0)
    yaxis = (*turn(0.0, math.cos(t)), math.sin(t))
    xy = f"{xaxis[0]:.4f} {xaxis[1]:.4f} 0 {yaxis[0]:.4f} {yaxis[1]:.4f} {yaxis[2]:.4f}"
    ambient = rng.uniform(0.05, 0.35)
    head = rng.uniform(0.0, 0.3)
    d_bodies, d_mats = _distractors(rng, half_w, half_h)
    xml = f"""<mujoco>
<visual><global offwidth="{SIZE[0]}" offheight="{SIZE[1]}"/><quality shadowsize="1024"/>
<headlight ambient="{_rgb(np.full(3, ambient))}" diffuse="{_rgb(np.full(3, head))}"/></visual>
<asset><texture name="belt" type="2d" builtin="{"checker" if rng.random() < 0.3 else "flat"}"
 mark="random" random="{rng.uniform(0.02, 0.3):.2f}" rgb1="{_rgb(belt)}" rgb2="{_rgb(belt2)}"
 markrgb="{_rgb(belt * 0.7)}" width="256" height="256"/>
<material name="belt" texture="belt" texrepeat="{rng.uniform(2, 20):.1f} {rng.uniform(2, 20):.1f}"
 specular="{rng.uniform(0, 0.3):.2f}"/>
{"".join(m for _, m in parts)}{d_mats}</asset>
<worldbody>{"".join(lights)}
<geom name="belt" type="plane" size="4 4 0.1" material="belt"/>
{"".join(b for b, _ in parts)}{d_bodies}
<camera name="cam" pos="{cam[0]:.3f} {cam[1]:.3f} {height * math.cos(t):.3f}" xyaxes="{xy}"
 fovy="{fovy:.1f}"/>
</worldbody></mujoco>"""
    return xml, classes, {"height": height, "tilt": tilt, "fovy": fovy, "yaw": yaw}


class Renderer3D:
    """Renders scenes one after another (one OpenGL context, rebuilt per scene)."""

    def render(self, seed: int) -> tuple[np.ndarray, list[Parcel3D], dict[str, float]]:
        import mujoco

        rng = np.random.default_rng(seed)
        xml, classes, camera = scene_xml(rng)
        model = mujoco.MjModel.from_xml_string(xml)
        data = mujoco.MjData(model)
        mujoco.mj_forward(model, data)
        with mujoco.Renderer(model, SIZE[1], SIZE[0]) as r:
            r.update_scene(data, camera="cam")
            rgb = r.render().copy()
            r.enable_segmentation_rendering()
            r.update_scene(data, camera="cam")
            seg = r.render()[..., 0].copy()
        owner = np.full(model.ngeom + 1, -1, np.int64)
        for g in range(model.ngeom):
            name = mujoco.mj_id2name(model, mujoco.mjtObj.mjOBJ_GEOM, g) or ""
            if name.startswith("p"):
                owner[g] = int(name[1:].split("_")[0])
        ids = owner[np.clip(seg, -1, model.ngeom)]
        parcels = []
        for k, cls in enumerate(classes):
            ys, xs = np.nonzero(ids == k)
            if len(xs) < MIN_VISIBLE_PX:
                continue
            pts = np.stack([xs, ys], axis=1).astype(np.float32)
            corners = cv2.boxPoints(cv2.minAreaRect(pts))
            parcels.append(Parcel3D(
                cls, tuple((float(x), float(y)) for x, y in corners),
                (float(xs.min()), float(ys.min()), float(xs.max() + 1), float(ys.max() + 1)),
                len(xs),
            ))  # fmt: skip
        return _sensor(rng, rgb[..., ::-1]), parcels, camera


def _sensor(rng: np.random.Generator, bgr: np.ndarray) -> np.ndarray:
    """The camera after the scene: exposure, white balance, gamma, vignetting, defocus,
    motion blur in any direction (the belt runs any way across the image), luminance and
    colour noise, JPEG compression."""
    img = bgr.astype(np.float32) / 255.0
    img *= rng.uniform(0.65, 1.35) * (1 + rng.normal(0, 0.05, 3))
    img = np.clip(img, 0, 1) ** rng.uniform(0.75, 1.35)
    if rng.random() < 0.5:  # vignetting: the corners darker
        h, w = img.shape[:2]
        ys, xs = np.mgrid[0:h, 0:w].astype(np.float32)
        r2 = ((xs - w / 2) / (w / 2)) ** 2 + ((ys - h / 2) / (h / 2)) ** 2
        img *= (1 - rng.uniform(0.05, 0.35) * r2 / 2)[..., None]
    img *= 255.0
    if rng.random() < 0.4:  # defocus
        img = cv2.GaussianBlur(img, (0, 0), float(rng.uniform(0.4, 1.4)))
    blur = int(rng.integers(0, 9))
    if blur > 1:  # motion blur along a random direction
        k = np.zeros((blur, blur), np.float32)
        k[blur // 2, :] = 1.0 / blur
        rot = cv2.getRotationMatrix2D((blur / 2 - 0.5, blur / 2 - 0.5), float(rng.uniform(0, 180)),
                                      1.0)  # fmt: skip
        k = cv2.warpAffine(k, rot, (blur, blur))
        img = cv2.filter2D(img, -1, k / max(k.sum(), 1e-6))
    img += rng.normal(0, rng.uniform(0, 7), img.shape[:2])[..., None].astype(np.float32)
    img += rng.normal(0, rng.uniform(0, 3), img.shape).astype(np.float32)
    img = np.clip(img, 0, 255).astype(np.uint8)
    ok, jpg = cv2.imencode(".jpg", img, [cv2.IMWRITE_JPEG_QUALITY, int(rng.integers(30, 96))])
    return cv2.imdecode(jpg, cv2.IMREAD_COLOR) if ok else img
