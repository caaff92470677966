"""Parcel sprites: what a box, polybag, envelope or irregular item looks like from above.

Each parcel is drawn upright in its own frame (x along its length) as a colour image and a
mask; the scene renderer rotates and places it. Appearance is drawn from the parcel's own
random generator, so a parcel looks the same in every frame of a moving-belt sequence.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from sim_hardware.camera.barcodes import Symbol, label_text, render_symbol

# Typical size in pixels (length, width) at scale 1.0, for a 640x480 view of a belt.
SIZE_RANGES: dict[str, tuple[tuple[int, int], tuple[int, int]]] = {
    "box": ((170, 300), (130, 230)),
    "polybag": ((170, 290), (130, 220)),
    "envelope": ((180, 290), (115, 180)),
    "irregular": ((120, 240), (90, 190)),
}


@dataclass(frozen=True)
class Label:
    """A shipping label placed on the parcel, in the parcel's upright frame."""

    symbol: Symbol
    centre: tuple[float, float]  # in the sprite, px
    angle_deg: float  # label rotation relative to the parcel
    image: np.ndarray  # the white label with the symbol, grey uint8


@dataclass(frozen=True)
class Sprite:
    """An upright parcel: colour (BGR), mask (0/255), its class and optional label."""

    cls: str
    image: np.ndarray
    mask: np.ndarray
    label: Label | None
    flat: bool  # envelopes cast almost no shadow


def _uniform(rng: np.random.Generator, lo_hi: tuple[float, float]) -> float:
    return float(rng.uniform(lo_hi[0], lo_hi[1]))


def _texture(
    rng: np.random.Generator, h: int, w: int, colour: np.ndarray, amount: float
) -> np.ndarray:
    """A flat colour with low-frequency mottling and fine grain, like cardboard or film."""
    low = cv2.resize(
        rng.normal(0.0, 1.0, (max(2, h // 24), max(2, w // 24))).astype(np.float32),
        (w, h),
        interpolation=cv2.INTER_CUBIC,
    )
    grain = rng.normal(0.0, 0.35, (h, w)).astype(np.float32)
    shade = 1.0 + amount * (0.6 * low + grain)
    return np.clip(colour[None, None, :] * shade[:, :, None], 0, 255).astype(np.float32)


def _box(rng: np.random.Generator, h: int, w: int) -> tuple[np.ndarray, np.ndarray]:
    base = np.array([rng.uniform(55, 110), rng.uniform(115, 165), rng.uniform(160, 215)])
    if rng.random() < 0.15:  # white or printed retail boxes exist too
        base = rng.uniform(170, 235, 3)
    img = _texture(rng, h, w, base, 0.08)
    # flaps meet along the length: a seam, usually taped over
    seam_y = h // 2 + int(rng.integers(-3, 4))
    cv2.line(img, (0, seam_y), (w, seam_y), (base * 0.55).tolist(), 2)
    if rng.random() < 0.85:
        tape_w = int(rng.uniform(0.12, 0.25) * h)
        tape = rng.choice([0, 1, 2])
        colour = [
            (base * 1.12).clip(0, 255),  # clear tape: glossy band
            np.array([rng.uniform(40, 90), rng.uniform(150, 200), rng.uniform(190, 235)]),
            rng.uniform(20, 230, 3),  # branded tape
        ][tape]
        y0 = seam_y - tape_w // 2
        img[y0 : y0 + tape_w, :] = 0.6 * img[y0 : y0 + tape_w, :] + 0.4 * colour
    edge = (base * 0.7).tolist()
    cv2.rectangle(img, (0, 0), (w - 1, h - 1), edge, 2)
    mask = np.full((h, w), 255, np.uint8)
    return img, mask


def _envelope(rng: np.random.Generator, h: int, w: int) -> tuple[np.ndarray, np.ndarray]:
    kind = rng.choice([0, 1, 2])
    base = [
        rng.uniform(225, 250, 3),  # white
        np.array([rng.uniform(140, 175), rng.uniform(195, 225), rng.uniform(225, 245)]),  # manila
        np.array([rng.uniform(150, 200), rng.uniform(160, 205), rng.uniform(165, 210)]),  # grey
    ][kind]
    img = _texture(rng, h, w, base, 0.03)
    line = (base * 0.78).tolist()
    # the back flap: a V from both short edges toward the middle
    tip = (int(w * rng.uniform(0.42, 0.58)), int(h * rng.uniform(0.45, 0.6)))
    cv2.line(img, (0, 0), tip, line, 2, cv2.LINE_AA)
    cv2.line(img, (w - 1, 0), tip, line, 2, cv2.LINE_AA)
    cv2.line(img, (0, h - 1), (int(w * 0.3), int(h * 0.5)), line, 1, cv2.LINE_AA)
    cv2.line(img, (w - 1, h - 1), (int(w * 0.7), int(h * 0.5)), line, 1, cv2.LINE_AA)
    if rng.random() < 0.5:  # a window or stamp
        x0, y0 = int(w * rng.uniform(0.05, 0.2)), int(h * rng.uniform(0.55, 0.7))
        cv2.rectangle(img, (x0, y0), (x0 + w // 3, y0 + h // 5), (base * 0.88).tolist(), -1)
    mask = np.full((h, w), 255, np.uint8)
    return img, mask


def _polybag(rng: np.random.Generator, h: int, w: int) -> tuple[np.ndarray, np.ndarray]:
    palette = [
        rng.uniform(190, 240, 3),  # white film
        rng.uniform(30, 70, 3),  # black film
        np.array([rng.uniform(150, 220), rng.uniform(90, 150), rng.uniform(40, 90)]),  # blue
        np.array([rng.uniform(150, 200), rng.uniform(110, 160), rng.uniform(200, 245)]),  # pink
        rng.uniform(120, 170, 3),  # grey
    ]
    base = palette[int(rng.integers(0, len(palette)))]
    img = _texture(rng, h, w, base, 0.12)
    # wrinkles: dark and bright soft streaks
    for _ in range(int(rng.integers(4, 10))):
        p0 = (int(rng.uniform(0, w)), int(rng.uniform(0, h)))
        p1 = (int(p0[0] + rng.normal(0, w / 4)), int(p0[1] + rng.normal(0, h / 4)))
        tone = (base * rng.uniform(0.55, 0.8)).tolist()
        cv2.line(img, p0, p1, tone, int(rng.integers(2, 6)), cv2.LINE_AA)
    img = cv2.GaussianBlur(img, (0, 0), 2.0)
    # glossy highlights
    gloss = np.zeros((h, w), np.float32)
    for _ in range(int(rng.integers(2, 6))):
        c = (int(rng.uniform(0, w)), int(rng.uniform(0, h)))
        axes = (int(rng.uniform(8, w / 4)), int(rng.uniform(3, h / 8)))
        cv2.ellipse(gloss, c, axes, float(rng.uniform(0, 180)), 0, 360, 1.0, -1)
    gloss = cv2.GaussianBlur(gloss, (0, 0), 4.0)
    img = img + gloss[:, :, None] * rng.uniform(40, 90)
    # a soft outline: rounded corners, a crimped seal at each end, wavy sides
    mask = np.zeros((h, w), np.uint8)
    n = 24
    t = np.linspace(0, 2 * np.pi, n, endpoint=False)
    rx, ry = w / 2 - 2, h / 2 - 2
    sx = np.sign(np.cos(t)) * np.abs(np.cos(t)) ** 0.35
    sy = np.sign(np.sin(t)) * np.abs(np.sin(t)) ** 0.35
    wobble = 1.0 - rng.uniform(0.0, 0.07, n)
    pts = np.stack([w / 2 + rx * sx * wobble, h / 2 + ry * sy * wobble], axis=1)
    cv2.fillPoly(mask, [pts.astype(np.int32)], 255, cv2.LINE_AA)
    for x in (int(w * 0.04), int(w * 0.96)):  # heat seals
        cv2.line(img, (x, 0), (x, h), (base * 0.75).tolist(), 3)
    return img, mask


def _irregular(rng: np.random.Generator, h: int, w: int) -> tuple[np.ndarray, np.ndarray]:
    base = rng.uniform(20, 235, 3)
    img = _texture(rng, h, w, base, 0.15)
    mask = np.zeros((h, w), np.uint8)
    shape = int(rng.integers(0, 4))
    if shape == 0:  # a tube / cylinder seen from above, with shading across it
        ramp = np.sin(np.linspace(0.15, np.pi - 0.15, h))[:, None, None]
        img = img * (0.55 + 0.6 * ramp)
        cap = max(2, h // 4)
        cv2.rectangle(mask, (cap, 0), (w - 1 - cap, h - 1), 255, -1)
        for cx in (cap, w - 1 - cap):
            cv2.ellipse(mask, (cx, h // 2), (cap, h // 2 - 1), 0, 0, 360, 255, -1)
    elif shape == 1:  # an L-shaped or notched item
        cv2.rectangle(mask, (0, 0), (w - 1, h - 1), 255, -1)
        nx, ny = int(w * rng.uniform(0.3, 0.6)), int(h * rng.uniform(0.3, 0.6))
        corner = int(rng.integers(0, 4))
        x0 = 0 if corner in (0, 3) else w - nx
        y0 = 0 if corner in (0, 1) else h - ny
        mask[y0 : y0 + ny, x0 : x0 + nx] = 0
    elif shape == 2:  # a round item: tyre, drum lid, coiled cable
        cv2.ellipse(mask, (w // 2, h // 2), (w // 2 - 1, h // 2 - 1), 0, 0, 360, 255, -1)
        if rng.random() < 0.6:
            cv2.ellipse(mask, (w // 2, h // 2), (w // 5, h // 5), 0, 0, 360, 0, -1)
    else:  # a random star-like polygon: bundles, toys, odd packaging
        n = int(rng.integers(5, 9))
        t = np.sort(rng.uniform(0, 2 * np.pi, n))
        r = rng.uniform(0.55, 1.0, n)
        pts = np.stack(
            [w / 2 + (w / 2 - 1) * r * np.cos(t), h / 2 + (h / 2 - 1) * r * np.sin(t)], 1
        )
        cv2.fillPoly(mask, [pts.astype(np.int32)], 255)
    if rng.random() < 0.5:  # stripes or print
        for y in range(0, h, int(rng.integers(8, 30))):
            cv2.line(img, (0, y), (w, y), (base * rng.uniform(0.5, 1.3)).clip(0, 255).tolist(), 2)
    return img, mask


_DRAW = {"box": _box, "polybag": _polybag, "envelope": _envelope, "irregular": _irregular}


def _label(
    rng: np.random.Generator, h: int, w: int, module_range: tuple[int, int], jitter_deg: float
) -> Label | None:
    first = str(rng.choice(["Code128", "QRCode", "DataMatrix", "PDF417"], p=[0.4, 0.2, 0.2, 0.2]))
    module = int(rng.integers(module_range[0], module_range[1] + 1))
    smallest = 1 if rng.random() < 0.15 else 2  # now and then a label printed too small to read
    for fmt in (first, "Code128", "QRCode"):  # a smaller symbol when the first does not fit
        label = _fit_label(rng, h, w, fmt, module, smallest, jitter_deg)
        if label is not None:
            return label
    return None


def _fit_label(
    rng: np.random.Generator,
    h: int,
    w: int,
    fmt: str,
    module: int,
    smallest: int,
    jitter_deg: float,
) -> Label | None:
    text = label_text(rng, fmt)
    quarter = float(rng.choice([0.0, 90.0, 180.0, 270.0]))
    jitter = float(rng.uniform(-jitter_deg, jitter_deg))
    for m in range(module, smallest - 1, -1):  # shrink the symbol until the label fits the parcel
        symbol = render_symbol(fmt, text, m, bar_height_px=int(rng.integers(26, 42)))
        sh, sw = symbol.image.shape
        pad = 2 * m
        lh, lw = sh + 2 * pad + (int(10 * m) if fmt == "Code128" else 0), sw + 2 * pad
        for angle in (quarter + jitter, quarter + 90.0 + jitter):  # turn it if it fits better
            rad = np.deg2rad(angle)
            ext_w = abs(lw * np.cos(rad)) + abs(lh * np.sin(rad))
            ext_h = abs(lw * np.sin(rad)) + abs(lh * np.cos(rad))
            if ext_w > 0.9 * w or ext_h > 0.9 * h:
                continue
            paper = np.full((lh, lw), int(rng.uniform(225, 255)), np.uint8)
            paper[pad : pad + sh, pad : pad + sw] = np.where(symbol.image > 127, paper[0, 0], 20)
            if fmt == "Code128":  # a line of "address text" under the bars
                for k in range(2):
                    y = pad + sh + 3 * m + k * 4 * m
                    x1 = int(lw * rng.uniform(0.4, 0.9))
                    cv2.line(paper, (pad, y), (x1, y), 90, max(1, m))
            cx = float(rng.uniform(ext_w / 2 + 2, w - ext_w / 2 - 2))
            cy = float(rng.uniform(ext_h / 2 + 2, h - ext_h / 2 - 2))
            return Label(symbol=symbol, centre=(cx, cy), angle_deg=angle, image=paper)
    return None


def make_sprite(
    rng: np.random.Generator,
    cls: str,
    scale: float,
    label_probability: float,
    module_range: tuple[int, int],
    label_jitter_deg: float,
) -> Sprite:
    """Draw one upright parcel of class ``cls``."""
    (l_lo, l_hi), (w_lo, w_hi) = SIZE_RANGES[cls]
    length = int(rng.uniform(l_lo, l_hi) * scale)
    width = int(min(rng.uniform(w_lo, w_hi) * scale, length * 0.95))
    image, mask = _DRAW[cls](rng, width, length)
    label = None
    if cls != "irregular" or rng.random() < 0.5:
        if rng.random() < label_probability:
            label = _label(rng, width, length, module_range, label_jitter_deg)
    return Sprite(
        cls=cls,
        image=np.clip(image, 0, 255).astype(np.uint8),
        mask=mask,
        label=label,
        flat=cls == "envelope",
    )
