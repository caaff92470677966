"""Renders a camera's view of a belt carrying parcels, with the ground truth of every parcel.

The renderer is what the vision pipeline is trained and tested on, so every image comes with
what a perfect detector and label reader would report: class, box, orientation, size in
pixels, and the label's format, text and module size (legible when modules are >= 2 px and
nothing covers it).
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from sim_hardware.camera.parcels import Sprite, make_sprite
from sim_hardware.camera.randomisation import CLASSES, Randomisation

FRAME_SIZE = (640, 480)  # width, height


@dataclass(frozen=True)
class ParcelTruth:
    """What is really in the frame for one parcel."""

    cls: str
    class_id: int
    box: tuple[float, float, float, float]  # x1, y1, x2, y2 of the visible parcel, px
    centre: tuple[float, float]
    size_px: tuple[float, float]  # length, width of the upright parcel
    angle_deg: float  # direction of the length axis, clockwise from +x (image y is down), [0,180)
    visible_fraction: float
    label_format: str | None = None
    label_text: str | None = None
    label_module_px: int | None = None
    label_legible: bool = False
    label_angle_deg: float | None = None  # the label's text direction, clockwise from +x
    parcel_id: int = 0


@dataclass(frozen=True)
class RenderedScene:
    image: np.ndarray  # BGR uint8, height x width x 3
    parcels: tuple[ParcelTruth, ...]


@dataclass(frozen=True)
class Placement:
    """A sprite at a pose in the frame: centre in px and rotation (counter-clockwise, deg)."""

    sprite: Sprite
    centre: tuple[float, float]
    rotation_deg: float
    parcel_id: int = 0


def _u(rng: np.random.Generator, lo_hi: tuple[float, float]) -> float:
    return float(rng.uniform(lo_hi[0], lo_hi[1]))


def render_belt(rng: np.random.Generator, r: Randomisation, size: tuple[int, int]) -> np.ndarray:
    """An empty belt: rubber, modular mesh, rollers or a worn belt, with optional side rails."""
    w, h = size
    kind = str(rng.choice(list(r.belt_kinds)))
    base = rng.uniform(25, 110) * rng.uniform(0.85, 1.15, 3)
    img = np.empty((h, w, 3), np.float32)
    img[:] = base
    noise = rng.normal(0, rng.uniform(2, 7), (h, w)).astype(np.float32)
    if kind == "rubber":
        streaks = cv2.GaussianBlur(rng.normal(0, 6, (h, 1)).astype(np.float32), (1, 0), 3)
        img += (noise + np.repeat(streaks, w, axis=1))[:, :, None]
    elif kind == "mesh":
        pitch = int(rng.integers(14, 40))
        tone = rng.uniform(-30, 30)
        img[::pitch, :] += tone
        img[:, ::pitch] += tone
        img[1::pitch, :] += tone * 0.5
        img += noise[:, :, None]
    elif kind == "rollers":
        pitch = rng.uniform(25, 60)
        x = np.arange(w, dtype=np.float32)
        shade = 1.0 + 0.35 * np.cos(2 * np.pi * x / pitch)
        img *= shade[None, :, None]
        img += noise[:, :, None]
    else:  # worn: stains and scuffs
        stains = cv2.resize(rng.normal(0, 1, (h // 40, w // 40)).astype(np.float32), (w, h))
        img += (stains * rng.uniform(8, 22) + noise)[:, :, None]
    if rng.random() < 0.5:  # metal side rails at the belt's edges
        rail = int(rng.integers(10, 40))
        tone = rng.uniform(120, 200)
        img[:rail] = tone + rng.normal(0, 4, (rail, w, 1))
        img[h - rail :] = tone * 0.9 + rng.normal(0, 4, (rail, w, 1))
    return img


def _distractors(rng: np.random.Generator, img: np.ndarray, count: int) -> None:
    """Small things on a belt that are not parcels: tape scraps, stickers, paper, dirt."""
    h, w = img.shape[:2]
    for _ in range(count):
        c = (int(rng.uniform(0, w)), int(rng.uniform(0, h)))
        colour = rng.uniform(0, 255, 3).tolist()
        kind = int(rng.integers(0, 4))
        if kind == 0:  # tape scrap / strap
            p1 = (int(c[0] + rng.normal(0, 60)), int(c[1] + rng.normal(0, 60)))
            cv2.line(img, c, p1, colour, int(rng.integers(2, 8)), cv2.LINE_AA)
        elif kind == 1:  # sticker / paper bit
            box = ((c[0], c[1]), (rng.uniform(8, 40), rng.uniform(8, 30)), rng.uniform(0, 180))
            pts = cv2.boxPoints(box).astype(np.int32)
            cv2.fillPoly(img, [pts], colour, cv2.LINE_AA)
        elif kind == 2:  # dirt
            cv2.circle(img, c, int(rng.integers(3, 14)), (np.array(colour) * 0.3).tolist(), -1)
        else:  # a foam chip
            cv2.ellipse(img, c, (int(rng.integers(5, 16)), int(rng.integers(3, 9))),
                        float(rng.uniform(0, 180)), 0, 360, (235, 235, 235), -1)  # fmt: skip


def _affine(sprite: Sprite, centre: tuple[float, float], rotation_deg: float) -> np.ndarray:
    h, w = sprite.mask.shape
    m = cv2.getRotationMatrix2D((w / 2, h / 2), rotation_deg, 1.0)
    m[:, 2] += (centre[0] - w / 2, centre[1] - h / 2)
    return m


def _compose(outer: np.ndarray, inner: np.ndarray) -> np.ndarray:
    a = np.vstack([outer, [0, 0, 1]])
    b = np.vstack([inner, [0, 0, 1]])
    return (a @ b)[:2]


def compose(
    background: np.ndarray,
    placements: list[Placement],
    rng: np.random.Generator,
    r: Randomisation,
) -> RenderedScene:
    """Place sprites (in drawing order) on a belt, add shadows, light and sensor effects."""
    img = background.copy()
    h, w = img.shape[:2]
    _distractors(rng, img, int(rng.integers(r.distractors[0], r.distractors[1] + 1)))
    light = np.array([np.cos(rng.uniform(0, 2 * np.pi)), np.sin(rng.uniform(0, 2 * np.pi))])
    shadow_k = _u(rng, r.shadow_strength)
    shadow_off = (light * rng.uniform(4, 14)).round().astype(int)
    masks: list[np.ndarray] = []
    label_masks: list[np.ndarray | None] = []
    for p in placements:
        m = _affine(p.sprite, p.centre, p.rotation_deg)
        mask = cv2.warpAffine(p.sprite.mask, m, (w, h), flags=cv2.INTER_LINEAR)
        if shadow_k > 0 and not p.sprite.flat:
            shadow = np.roll(mask, tuple(shadow_off[::-1]), axis=(0, 1)).astype(np.float32)
            shadow = cv2.GaussianBlur(shadow, (0, 0), 5) / 255.0
            img *= (1.0 - shadow_k * shadow)[:, :, None]
        colour = cv2.warpAffine(p.sprite.image, m, (w, h), flags=cv2.INTER_LINEAR)
        alpha = (mask.astype(np.float32) / 255.0)[:, :, None]
        img = img * (1 - alpha) + colour.astype(np.float32) * alpha
        for earlier in masks:  # what this parcel covers is no longer visible below it
            earlier[mask > 127] = 0
        for lm in label_masks:
            if lm is not None:
                lm[mask > 127] = 0
        lmask = None
        if p.sprite.label is not None:
            lab = p.sprite.label
            lh, lw = lab.image.shape
            inner = cv2.getRotationMatrix2D((lw / 2, lh / 2), lab.angle_deg, 1.0)
            inner[:, 2] += (lab.centre[0] - lw / 2, lab.centre[1] - lh / 2)
            lm_aff = _compose(m, inner)
            paper = cv2.warpAffine(lab.image, lm_aff, (w, h), flags=cv2.INTER_LINEAR)
            lmask = cv2.warpAffine(np.full((lh, lw), 255, np.uint8), lm_aff, (w, h))
            la = (lmask.astype(np.float32) / 255.0)[:, :, None]
            img = img * (1 - la) + paper.astype(np.float32)[:, :, None] * la
        masks.append((mask > 127).astype(np.uint8))
        label_masks.append(lmask)
    img = _sensor(rng, r, img)
    truths = []
    for p, mask, lmask in zip(placements, masks, label_masks, strict=True):
        truth = _truth(p, mask, lmask)
        if truth is not None:
            truths.append(truth)
    return RenderedScene(image=img, parcels=tuple(truths))


def _sensor(rng: np.random.Generator, r: Randomisation, img: np.ndarray) -> np.ndarray:
    """Lighting, colour cast, optics and sensor noise."""
    h, w = img.shape[:2]
    gx = np.linspace(-0.5, 0.5, w, dtype=np.float32)[None, :]
    gy = np.linspace(-0.5, 0.5, h, dtype=np.float32)[:, None]
    a = rng.uniform(0, 2 * np.pi)
    gradient = 1.0 + rng.uniform(0, r.light_gradient) * (np.cos(a) * gx + np.sin(a) * gy)
    img *= gradient[:, :, None]
    img *= (1.0 + rng.uniform(-r.colour_cast, r.colour_cast, 3)).astype(np.float32)
    mean = img.mean()
    img = (img - mean) * _u(rng, r.contrast) + mean * _u(rng, r.brightness)
    k = int(rng.integers(r.motion_blur_px[0], r.motion_blur_px[1] + 1))
    if k >= 2:  # the belt moves along x
        img = cv2.filter2D(img, -1, np.full((1, k), 1.0 / k, np.float32))
    sigma = _u(rng, r.blur_sigma)
    if sigma > 0.25:
        img = cv2.GaussianBlur(img, (0, 0), sigma)
    img += rng.normal(0, _u(rng, r.noise_sigma), img.shape).astype(np.float32)
    return np.clip(img, 0, 255).astype(np.uint8)


def _truth(p: Placement, mask: np.ndarray, lmask: np.ndarray | None) -> ParcelTruth | None:
    sh, sw = p.sprite.mask.shape
    full_area = float(np.count_nonzero(p.sprite.mask > 127))
    ys, xs = np.nonzero(mask)
    if len(xs) == 0 or full_area == 0:
        return None
    visible = len(xs) / full_area
    if visible < 0.35:  # mostly covered or outside the frame: not something to report
        return None
    label = p.sprite.label
    legible = False
    if label is not None and lmask is not None:
        lh, lw = label.image.shape
        shown = np.count_nonzero(lmask > 127) / float(lh * lw)
        lys, lxs = np.nonzero(lmask > 127)
        fh, fw = lmask.shape
        m = label.symbol.module_px
        # its quiet zone must be in the picture too: a label cut by the frame edge is not legible
        in_frame = len(lxs) > 0 and lxs.min() >= m and lys.min() >= m
        in_frame = in_frame and lxs.max() < fw - m and lys.max() < fh - m
        # a label hanging off an irregular item's outline lies outside the item's box, where
        # no reader working on the item's crop looks for it
        on_item = len(lxs) > 0 and lxs.min() >= xs.min() - 1 and lxs.max() <= xs.max() + 1
        on_item = on_item and lys.min() >= ys.min() - 1 and lys.max() <= ys.max() + 1
        legible = bool(m >= 2 and shown >= 0.98 and in_frame and on_item)
    return ParcelTruth(
        cls=p.sprite.cls,
        class_id=CLASSES.index(p.sprite.cls),
        box=(float(xs.min()), float(ys.min()), float(xs.max() + 1), float(ys.max() + 1)),
        centre=p.centre,
        size_px=(float(sw), float(sh)),
        angle_deg=float((-p.rotation_deg) % 180.0),
        visible_fraction=float(min(1.0, visible)),
        label_format=label.symbol.format if label else None,
        label_text=label.symbol.text if label else None,
        label_module_px=label.symbol.module_px if label else None,
        label_legible=legible,
        label_angle_deg=None if label is None else float((-p.rotation_deg - label.angle_deg) % 360),
        parcel_id=p.parcel_id,
    )


def _overlap(a: np.ndarray, b: np.ndarray) -> float:
    inter = np.count_nonzero(a & b)
    return inter / max(1, min(np.count_nonzero(a), np.count_nonzero(b)))


def random_placements(
    rng: np.random.Generator, r: Randomisation, size: tuple[int, int] = FRAME_SIZE
) -> list[Placement]:
    """Parcels at random poses inside the frame, overlapping each other at most ``max_overlap``."""
    w, h = size
    count = int(rng.integers(r.parcels_per_frame[0], r.parcels_per_frame[1] + 1))
    placed: list[Placement] = []
    footprints: list[np.ndarray] = []
    for pid in range(count):
        cls = str(rng.choice(list(CLASSES)))
        sprite = make_sprite(
            rng, cls, _u(rng, r.parcel_scale), r.label_probability, r.module_px, r.label_jitter_deg
        )
        for _ in range(12):
            sh, sw = sprite.mask.shape
            margin = 0.25 * min(sw, sh)
            centre = (
                float(rng.uniform(margin, w - margin)),
                float(rng.uniform(margin, h - margin)),
            )
            rot = float(rng.uniform(0, 360))
            p = Placement(sprite, centre, rot, pid)
            fp = cv2.warpAffine(sprite.mask, _affine(sprite, centre, rot), (w, h)) > 127
            if all(_overlap(fp, f) <= r.max_overlap for f in footprints):
                placed.append(p)
                footprints.append(fp)
                break
    return placed


def render_scene(seed: int | np.random.Generator, r: Randomisation) -> RenderedScene:
    """One random 640x480 belt scene and its ground truth, reproducible from ``seed``."""
    rng = seed if isinstance(seed, np.random.Generator) else np.random.default_rng(seed)
    background = render_belt(rng, r, FRAME_SIZE)
    return compose(background, random_placements(rng, r), rng, r)
