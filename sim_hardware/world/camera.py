"""Camera frames rendered from the world: what an overhead camera sees of the belt now.

The camera looks straight down at ``centre_mm`` on the belt; image +x is the belt's direction
of travel and ``fov_mm`` of belt fills the frame's width. Each parcel's look (sprite, label
paper, pose across the belt) is drawn once from its id, so it is the same parcel in every
frame; its length and width are the world's, its label carries the world's text and format,
and a label the world made unreadable is smeared. Frames come from the camera renderer's
public API (``make_sprite``, ``render_symbol``, ``compose``); each carries its capture time,
the encoder count at that time and the truth of every visible parcel (``parcel_id`` is the
world's id).

A fixed camera over a belt sees each parcel the same way all the way through its view, only
moved along the belt. So each parcel is rendered once, when it first comes into reach (its
sprite turned to its pose, its shadow, the camera's fixed optics: motion and focus blur), into a
small patch of two maps, what it keeps of the belt under it and what it adds; every frame then
only pastes the patches where the belt has carried them, lights the whole frame (the camera's
fixed light: gradient, colour cast, contrast) and adds that frame's sensor noise. That costs a
few ms a frame where composing the whole scene anew took ~65-200 ms (issue 16 item 4;
``bench/vision.py --render``). ``take_snapshot`` is the cheap, picklable look at the belt
(what the world's lock must cover) and ``CameraRenderer`` turns snapshots into frames anywhere,
e.g. in another process (``camera_feed``), away from the simulated MCU's interpreter lock.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import cv2
import numpy as np

from sim_hardware.camera.barcodes import render_symbol
from sim_hardware.camera.parcels import Label, Sprite, make_sprite
from sim_hardware.camera.randomisation import CLASSES, TRAINING, Randomisation
from sim_hardware.camera.scene import FRAME_SIZE, ParcelTruth, render_belt
from sim_hardware.world.parcels import Parcel
from sim_hardware.world.world import CellWorld


@dataclass(frozen=True)
class WorldFrame:
    image: np.ndarray  # BGR uint8, height x width (the renderer's ``size``)
    time_s: float
    encoder_count: int
    parcels: tuple[ParcelTruth, ...]


@dataclass(frozen=True)
class CameraSnapshot:
    """What is under the camera at one instant: enough to render the frame elsewhere."""

    time_s: float  # world time (time.monotonic() in a real-time cell)
    encoder_count: int
    centre_mm: float  # the camera's centre line on the belt
    fov_mm: float
    parcels: tuple[tuple[Parcel, float], ...]  # each parcel in reach and its centre, mm


def take_snapshot(world: CellWorld, centre_mm: float, fov_mm: float) -> CameraSnapshot:
    """The snapshot of ``world`` now (tens of microseconds: no pixels)."""
    t, count, found = world.view(centre_mm - fov_mm / 2, centre_mm + fov_mm / 2)
    return CameraSnapshot(t, count, centre_mm, fov_mm, tuple(found))


@dataclass(frozen=True)
class _Look:
    sprite: Sprite
    lateral_px: float  # across the belt, from the frame's top edge
    yaw_deg: float


@dataclass(frozen=True)
class _Patch:
    """A parcel rendered once at its pose: frame = belt x keep + add over the patch."""

    keep: np.ndarray  # float32 h x w x 3: the share of the belt (lit, shadowed) left showing
    add: np.ndarray  # float32 h x w x 3: the parcel's and its label's colour, blurred
    mask: np.ndarray  # bool h x w: the parcel (for the truth: box, visible share)
    label: np.ndarray | None  # bool h x w: its label paper
    origin: tuple[int, int]  # top-left of the patch relative to the parcel's centre, px
    area: int  # pixels of the parcel
    label_area: int
    on_item: bool  # the label lies within the parcel's outline box
    angle_deg: float
    label_angle_deg: float | None
    mask_box: tuple[int, int, int, int]  # x1, y1, x2, y2 of the parcel's pixels in the patch
    label_box: tuple[int, int, int, int] | None  # and of its label's
    label_shown: float  # the share of its label paper in the patch (1.0: all of it)


@dataclass(frozen=True)
class _Optics:
    """The camera's fixed light and lens: drawn once from its seed."""

    gain: np.ndarray  # float32 h x w x 3: light gradient x colour cast x contrast
    offset: float  # brightness shift after the contrast
    motion_px: int
    blur_sigma: float
    noise_sigma: float
    shadow: float
    shadow_off: tuple[int, int]


class CameraRenderer:
    """Frames from snapshots. A parcel's look and pose are drawn from ``(seed, parcel id)``,
    so two renderers with the same seed draw the same parcel the same way."""

    def __init__(
        self,
        centre_mm: float = 1_000.0,
        fov_mm: float = 800.0,
        seed: int = 0,
        randomisation: Randomisation = TRAINING,
        max_yaw_deg: float = 25.0,
        size: tuple[int, int] = FRAME_SIZE,
    ) -> None:
        self.centre_mm = centre_mm
        self.fov_mm = fov_mm
        self.size = (int(size[0]), int(size[1]))  # width, height
        self.px_per_mm = self.size[0] / fov_mm
        self.seed = seed
        self.r = replace(randomisation, distractors=(0, 0), label_probability=0.0)
        self.max_yaw_deg = max_yaw_deg
        self.background = render_belt(np.random.default_rng(seed), self.r, self.size)
        self.optics = _draw_optics(np.random.default_rng([seed, 1]), self.r, self.background)
        self._belt = _lens(self.background, self.optics)  # blurred once: it only moves
        # the empty belt lit (uint8): most of a frame; parcels are composed and lit on top
        o = self.optics
        self._lit = np.clip(self._belt * o.gain + o.offset, 0, 255).round().astype(np.uint8)
        self._work = self._belt.copy()  # unlit composition of this frame's patches
        self._noise = _noise_bank(np.random.default_rng([seed, 2]), o.noise_sigma, self.size)
        self._looks: dict[int, _Look] = {}
        self._patches: dict[int, _Patch] = {}

    def _look(self, parcel: Parcel) -> _Look:
        look = self._looks.get(parcel.id)
        if look is None:
            look = self._looks[parcel.id] = self._draw_look(parcel)
        return look

    def _draw_look(self, parcel: Parcel) -> _Look:
        rng = np.random.default_rng([self.seed, parcel.id])
        base = make_sprite(rng, parcel.cls, 1.0, 0.0, self.r.module_px, 0.0)
        length = max(8, round(parcel.length_mm * self.px_per_mm))
        width = max(8, round(min(parcel.width_mm, parcel.length_mm) * self.px_per_mm))
        # the item's outline spans the world's length and width (the eye measures it so, and
        # the camera's size is scored against it): a star-shaped or round irregular item or a
        # bag's soft outline does not fill its sprite, so the sprite is cut to its outline
        x, y, w, h = cv2.boundingRect(base.mask)
        if w > 0 and h > 0:
            base = replace(base, image=base.image[y : y + h, x : x + w],
                           mask=base.mask[y : y + h, x : x + w])  # fmt: skip
        image = cv2.resize(base.image, (length, width), interpolation=cv2.INTER_AREA)
        mask = cv2.resize(base.mask, (length, width), interpolation=cv2.INTER_NEAREST)
        label = _label(rng, parcel, width, length, mask)
        sprite = Sprite(parcel.cls, image, mask, label, base.flat)
        h = self.size[1]
        lateral = float(rng.uniform(0.3 * h, 0.7 * h))
        yaw = float(rng.uniform(-self.max_yaw_deg, self.max_yaw_deg))
        return _Look(sprite, lateral, yaw)

    def _patch(self, parcel: Parcel) -> _Patch:
        patch = self._patches.get(parcel.id)
        if patch is None:
            look = self._look(parcel)
            patch = self._patches[parcel.id] = _render_patch(look, self.optics)
        return patch

    def render(self, snapshot: CameraSnapshot) -> WorldFrame:
        """The frame of ``snapshot`` (taken at this renderer's centre and field of view).

        Only the parcels' patches are composed and lit in float; the rest of the frame is
        the lit belt (uint8, made once), and the sensor noise is added in uint8 with
        saturation: what a frame costs grows with the parcels in it, not the pixels."""
        width_px, height_px = self.size
        drawn: list[tuple[Parcel, _Patch, int, int]] = []
        for parcel, centre in snapshot.parcels:
            x_px = (centre - self.centre_mm) * self.px_per_mm + width_px / 2
            if not self._may_show(parcel, x_px):
                continue  # not in the frame yet: its patch can wait for ``prepare``
            look, patch = self._look(parcel), self._patch(parcel)
            x0 = round(x_px) + patch.origin[0]
            y0 = round(look.lateral_px) + patch.origin[1]
            drawn.append((parcel, patch, x0, y0))
        # parcels only move on: a look no longer in the snapshot is never needed again
        keep_ids = {p.id for p, _ in snapshot.parcels}
        self._looks = {pid: v for pid, v in self._looks.items() if pid in keep_ids}
        self._patches = {pid: v for pid, v in self._patches.items() if pid in keep_ids}
        work, img, o = self._work, self._lit.copy(), self.optics
        placed: list[tuple[_Patch, int, int, tuple[int, int, int, int]]] = []
        for _, patch, x0, y0 in drawn:  # the belt under every patch first: patches overlap
            ph, pw = patch.keep.shape[:2]
            xa, ya = max(0, x0), max(0, y0)
            xb, yb = min(width_px, x0 + pw), min(height_px, y0 + ph)
            if xa < xb and ya < yb:
                placed.append((patch, x0, y0, (xa, ya, xb, yb)))
                work[ya:yb, xa:xb] = self._belt[ya:yb, xa:xb]
        for patch, x0, y0, (xa, ya, xb, yb) in placed:
            sl = (slice(ya - y0, yb - y0), slice(xa - x0, xb - x0))
            roi = work[ya:yb, xa:xb]
            cv2.multiply(roi, patch.keep[sl], dst=roi)
            cv2.add(roi, patch.add[sl], dst=roi)
        for _, _, _, (xa, ya, xb, yb) in placed:  # overlapping patches are lit twice, alike
            lit = cv2.multiply(work[ya:yb, xa:xb], o.gain[ya:yb, xa:xb])
            # saturated to 0-255 (|x|: a lit pixel below 0 is a black one within a level)
            img[ya:yb, xa:xb] = cv2.convertScaleAbs(lit, alpha=1.0, beta=o.offset)
        up, down = self._noise[int(snapshot.time_s * 1e3) % len(self._noise)]
        shift = int(snapshot.time_s * 1e6) % height_px  # a bank of fields, rolled: fresh grain
        top, bottom = img[: height_px - shift], img[height_px - shift :]
        cv2.add(top, up[shift:], dst=top)
        cv2.subtract(top, down[shift:], dst=top)
        if shift:
            cv2.add(bottom, up[:shift], dst=bottom)
            cv2.subtract(bottom, down[:shift], dst=bottom)
        truths = tuple(
            t
            for i, (parcel, patch, x0, y0) in enumerate(drawn)
            if (t := _truth(parcel, self._look(parcel), patch, x0, y0, drawn[i + 1 :], self.size))
            is not None
        )
        return WorldFrame(img, snapshot.time_s, snapshot.encoder_count, truths)

    def _may_show(self, parcel: Parcel, x_px: float) -> bool:
        """Whether any pixel of the parcel, its shadow or its blur can be in the frame with
        its centre at ``x_px``: half its turned box is at most half its length + width."""
        reach = (parcel.length_mm + parcel.width_mm) * self.px_per_mm / 2 + _pad(self.optics)
        return -reach < x_px < self.size[0] + reach

    def prepare(self, snapshot: CameraSnapshot, limit: int = 2) -> int:
        """Render the patches of up to ``limit`` parcels of ``snapshot`` that are not in the
        frame yet, the nearest first; returns how many. A camera calls it between frames,
        so a parcel's one render (a few ms) is not paid inside a frame's time."""
        width_px = self.size[0]
        waiting = []
        for parcel, centre in snapshot.parcels:
            if parcel.id in self._patches:
                continue
            x_px = (centre - self.centre_mm) * self.px_per_mm + width_px / 2
            if x_px < width_px / 2:  # upstream: still to come into view (+x is downstream)
                waiting.append((-x_px, parcel))
        waiting.sort(key=lambda w: w[0])
        for _, parcel in waiting[:limit]:
            self._patch(parcel)
        return min(limit, len(waiting))


class WorldCamera(CameraRenderer):
    """A renderer looking at one world in this process (tests, benchmarks)."""

    def __init__(
        self,
        world: CellWorld,
        centre_mm: float = 1_000.0,
        fov_mm: float = 800.0,
        seed: int = 0,
        randomisation: Randomisation = TRAINING,
        max_yaw_deg: float = 25.0,
    ) -> None:
        super().__init__(centre_mm, fov_mm, seed, randomisation, max_yaw_deg)
        self.world = world

    def frame(self) -> WorldFrame:
        """The view at the world's current time."""
        return self.render(take_snapshot(self.world, self.centre_mm, self.fov_mm))


def _label(
    rng: np.random.Generator, parcel: Parcel, h: int, w: int, mask: np.ndarray | None = None
) -> Label | None:
    """The world's label on the parcel, at 2-3 px per module, smeared when unreadable. A
    label that does not fit the parcel at 2 px per module (a Code 128 on a small envelope at
    the default scale) is not drawn: the frame's truth then says no label. With the parcel's
    ``mask``, the label is stuck wholly on the item (a bag's rounded corner or an irregular
    item's notch is not under it) where it fits so; else it is placed as if on its box."""
    fallback: Label | None = None
    for module in (3, 2):
        symbol = render_symbol(parcel.label_format, parcel.label_text, module, 34)
        sh, sw = symbol.image.shape
        pad = 2 * module
        lh, lw = sh + 2 * pad, sw + 2 * pad
        if lw > 0.9 * w or lh > 0.9 * h:
            continue
        paper = np.full((lh, lw), 240, np.uint8)
        paper[pad : pad + sh, pad : pad + sw] = np.where(symbol.image > 127, 240, 20)
        if not parcel.label_legible:  # a smear across the symbol: no reader decodes it
            cv2.line(paper, (0, lh // 3), (lw, 2 * lh // 3), 20, max(4, lh // 4))
            cv2.line(paper, (lw // 4, 0), (lw // 2, lh), 240, max(4, lw // 6))
        for _ in range(12 if mask is not None else 1):
            cx = float(rng.uniform(lw / 2 + 2, w - lw / 2 - 2))
            cy = float(rng.uniform(lh / 2 + 2, h - lh / 2 - 2))
            label = Label(symbol=symbol, centre=(cx, cy), angle_deg=0.0, image=paper)
            if mask is None:
                return label
            x0, y0 = round(cx - lw / 2) - 2, round(cy - lh / 2) - 2
            under = mask[max(0, y0) : y0 + lh + 4, max(0, x0) : x0 + lw + 4]
            if under.size and int(under.min()) == 255:
                return label
            fallback = fallback or label
    return fallback


def _draw_optics(rng: np.random.Generator, r: Randomisation, belt: np.ndarray) -> _Optics:
    """The camera's light and lens from the randomisation ranges (``scene._sensor``'s, drawn
    once: a fixed camera's light does not change from frame to frame)."""
    h, w = belt.shape[:2]
    gx = np.linspace(-0.5, 0.5, w, dtype=np.float32)[None, :]
    gy = np.linspace(-0.5, 0.5, h, dtype=np.float32)[:, None]
    a = rng.uniform(0, 2 * np.pi)
    gradient = 1.0 + rng.uniform(0, r.light_gradient) * (np.cos(a) * gx + np.sin(a) * gy)
    cast = (1.0 + rng.uniform(-r.colour_cast, r.colour_cast, 3)).astype(np.float32)
    contrast = float(rng.uniform(*r.contrast))
    brightness = float(rng.uniform(*r.brightness))
    mean = float(belt.mean())
    gain = (gradient[:, :, None] * cast[None, None, :] * contrast).astype(np.float32)
    light = np.array([np.cos(rng.uniform(0, 2 * np.pi)), np.sin(rng.uniform(0, 2 * np.pi))])
    off = (light * rng.uniform(4, 14)).round().astype(int)
    return _Optics(
        gain=gain,
        offset=mean * (brightness - contrast),
        motion_px=int(rng.integers(r.motion_blur_px[0], r.motion_blur_px[1] + 1)),
        blur_sigma=float(rng.uniform(*r.blur_sigma)),
        noise_sigma=float(rng.uniform(*r.noise_sigma)),
        shadow=float(rng.uniform(*r.shadow_strength)),
        shadow_off=(int(off[0]), int(off[1])),
    )


def _lens(img: np.ndarray, o: _Optics) -> np.ndarray:
    """Motion blur along the belt (+x) and focus blur: the same for every frame."""
    out = np.ascontiguousarray(img, np.float32)
    if o.motion_px >= 2:
        out = cv2.filter2D(out, -1, np.full((1, o.motion_px), 1.0 / o.motion_px, np.float32))
    if o.blur_sigma > 0.25:
        out = cv2.GaussianBlur(out, (0, 0), o.blur_sigma)
    return out


def _noise_bank(
    rng: np.random.Generator, sigma: float, size: tuple[int, int], n: int = 4
) -> list[tuple[np.ndarray, np.ndarray]]:
    """Fields of sensor noise, each as what it adds and what it takes away (uint8, so a frame
    gets its noise by two saturating adds)."""
    w, h = size
    out = []
    for _ in range(n):
        field = rng.normal(0, sigma, (h, w, 3)).round()
        out.append((np.clip(field, 0, 255).astype(np.uint8),
                    np.clip(-field, 0, 255).astype(np.uint8)))  # fmt: skip
    return out


def _render_patch(look: _Look, o: _Optics) -> _Patch:
    """The parcel at its pose in a patch big enough for its turn, shadow and blur.

    The canvas is the turned sprite's bounding box (not the square of its diagonal), the
    colour is premultiplied in uint8, the shadow blurred in uint8, and the label blended only
    where its paper lies: a new parcel costs a few ms at 1024 x 768 where it cost ~20-35."""
    sp = look.sprite
    sh, sw = sp.mask.shape
    pad = _pad(o)
    rad = np.deg2rad(look.yaw_deg)
    c, s = abs(float(np.cos(rad))), abs(float(np.sin(rad)))
    # even sizes: the parcel's centre falls on a whole pixel, half the size from the corner
    cw = 2 * ((int(np.ceil(sw * c + sh * s)) + 2 * pad + 1) // 2)
    ch = 2 * ((int(np.ceil(sw * s + sh * c)) + 2 * pad + 1) // 2)
    m = cv2.getRotationMatrix2D((sw / 2, sh / 2), look.yaw_deg, 1.0)
    m[:, 2] += (cw / 2 - sw / 2, ch / 2 - sh / 2)
    alpha = cv2.warpAffine(sp.mask, m, (cw, ch), flags=cv2.INTER_LINEAR)
    colour = cv2.warpAffine(sp.image, m, (cw, ch), flags=cv2.INTER_LINEAR)
    a = alpha.astype(np.float32) * np.float32(1 / 255)
    # what the parcel adds: its colour x its alpha (premultiplied; uint8 with rounding)
    add = cv2.multiply(colour, cv2.merge([alpha, alpha, alpha]), scale=1 / 255, dtype=cv2.CV_32F)
    keep = 1.0 - a  # one channel: the belt is only darkened
    if o.shadow > 0 and not sp.flat:
        shadow = np.roll(alpha, (o.shadow_off[1], o.shadow_off[0]), axis=(0, 1))
        # soft (a stack blur close to a Gaussian of sigma ~5, a quarter of its cost)
        shadow = cv2.stackBlur(shadow, (21, 21)).astype(np.float32)
        keep *= 1.0 - (o.shadow / 255.0) * shadow
    label = None
    on_item, label_area, label_angle = False, 0, None
    if sp.label is not None:
        lab = sp.label
        lh, lw = lab.image.shape
        inner = cv2.getRotationMatrix2D((lw / 2, lh / 2), lab.angle_deg, 1.0)
        inner[:, 2] += (lab.centre[0] - lw / 2, lab.centre[1] - lh / 2)
        la_aff = (np.vstack([m, [0, 0, 1]]) @ np.vstack([inner, [0, 0, 1]]))[:2]
        # the paper's box on the canvas: only there is the label warped and blended
        corners = np.array([[0, 0, 1], [lw, 0, 1], [lw, lh, 1], [0, lh, 1]], np.float64)
        pts = corners @ la_aff.T
        x1, y1 = (max(0, int(np.floor(v)) - 1) for v in pts.min(axis=0))
        x2, y2 = int(np.ceil(pts[:, 0].max())) + 2, int(np.ceil(pts[:, 1].max())) + 2
        x2, y2 = min(cw, x2), min(ch, y2)
        label = np.zeros((ch, cw), bool)
        if x1 < x2 and y1 < y2:
            shifted = la_aff.copy()
            shifted[:, 2] -= (x1, y1)
            size = (x2 - x1, y2 - y1)
            paper = cv2.warpAffine(lab.image, shifted, size, flags=cv2.INTER_LINEAR)
            lmask = cv2.warpAffine(np.full((lh, lw), 255, np.uint8), shifted, size)
            la = lmask.astype(np.float32) * np.float32(1 / 255)
            keep[y1:y2, x1:x2] *= 1.0 - la
            roi = add[y1:y2, x1:x2]
            roi *= (1.0 - la)[:, :, None]
            roi += (paper.astype(np.float32) * la)[:, :, None]
            label[y1:y2, x1:x2] = lmask > 127
        label_area = lh * lw
        label_angle = float((-look.yaw_deg - lab.angle_deg) % 360)
    mask = alpha > 127
    if label is not None:
        mx1, my1, mx2, my2 = _bbox(mask)
        lx1, ly1, lx2, ly2 = _bbox(label)
        on_item = bool(mx2 > mx1 and lx2 > lx1 and lx1 >= mx1 - 1 and lx2 <= mx2 + 1
                       and ly1 >= my1 - 1 and ly2 <= my2 + 1)  # fmt: skip
    keep, add = _lens(keep, o), _lens(add, o)
    # only where the parcel, its shadow or its blur change the belt (the parcel's colour is
    # added only where it also hides the belt): frames compose less
    bx0, by0, bx1, by1 = _bbox(keep < 0.998)
    if bx1 <= bx0:
        bx0, by0, bx1, by1 = 0, 0, 1, 1
    crop = (slice(by0, by1), slice(bx0, bx1))
    k1 = np.ascontiguousarray(keep[crop])
    keep = cv2.merge([k1, k1, k1])  # three channels, for cv2's arithmetic on the frame
    add, mask = np.ascontiguousarray(add[crop]), mask[crop]
    label = None if label is None else label[crop]
    return _Patch(keep, add, mask, label, (bx0 - cw // 2, by0 - ch // 2), cv2.countNonZero(
                  mask.view(np.uint8)), label_area,
                  on_item, float((-look.yaw_deg) % 180.0), label_angle, _bbox(mask),
                  None if label is None else _bbox(label),
                  0.0 if label is None
                  else cv2.countNonZero(label.view(np.uint8)) / max(1, label_area))  # fmt: skip


def _pad(o: _Optics) -> int:
    """The margin (px) around a turned parcel that its shadow and the lens blur may reach."""
    shadow = abs(o.shadow_off[0]) + abs(o.shadow_off[1])
    return 16 + shadow + o.motion_px + 3 * int(o.blur_sigma + 1)


def _bbox(m: np.ndarray) -> tuple[int, int, int, int]:
    """x1, y1, x2 (exclusive), y2 of the set pixels of ``m`` (all zeros: an empty box)."""
    x, y, w, h = cv2.boundingRect(np.ascontiguousarray(m).view(np.uint8))
    return x, y, x + w, y + h


def _visible(
    patch: _Patch, x0: int, y0: int, size: tuple[int, int]
) -> tuple[int, int, int, int] | None:
    """The part of the frame (x1, y1, x2, y2) a patch placed at ``x0, y0`` covers; None if
    none, or if the patch is empty."""
    w, h = size
    ph, pw = patch.mask.shape
    xa, ya, xb, yb = max(0, x0), max(0, y0), min(w, x0 + pw), min(h, y0 + ph)
    if xa >= xb or ya >= yb or patch.area == 0:
        return None
    return xa, ya, xb, yb


def _truth(
    parcel: Parcel,
    look: _Look,
    patch: _Patch,
    x0: int,
    y0: int,
    above: list[tuple[Parcel, _Patch, int, int]],
    size: tuple[int, int] = FRAME_SIZE,
) -> ParcelTruth | None:
    """What a perfect detector and reader would report of this parcel in this frame (as
    ``scene._truth``): parcels drawn after it cover it."""
    if _visible(patch, x0, y0, size) is None:
        return None
    fast = _whole(parcel, look, patch, x0, y0, above, size)
    return fast if fast is not None else _truth_exact(parcel, look, patch, x0, y0, above, size)


def _truth_exact(
    parcel: Parcel,
    look: _Look,
    patch: _Patch,
    x0: int,
    y0: int,
    above: list[tuple[Parcel, _Patch, int, int]],
    size: tuple[int, int] = FRAME_SIZE,
) -> ParcelTruth | None:
    """``_truth`` pixel by pixel: what later parcels cover, what the frame's edges cut."""
    clip = _visible(patch, x0, y0, size)
    if clip is None:
        return None
    (w, h), (xa, ya, xb, yb) = size, clip
    vis = patch.mask[ya - y0 : yb - y0, xa - x0 : xb - x0]
    lab = None if patch.label is None else patch.label[ya - y0 : yb - y0, xa - x0 : xb - x0]
    covered = False
    for _, other, ox, oy in above:  # what a later parcel covers is no longer visible
        oh, ow = other.mask.shape
        ia, ja, ib, jb = max(xa, ox), max(ya, oy), min(xb, ox + ow), min(yb, oy + oh)
        if ia < ib and ja < jb and other.mask[ja - oy : jb - oy, ia - ox : ib - ox].any():
            if not covered:
                vis = vis.copy()
                lab = None if lab is None else lab.copy()
                covered = True
            cover = other.mask[ja - oy : jb - oy, ia - ox : ib - ox]
            vis[ja - ya : jb - ya, ia - xa : ib - xa] &= ~cover
            if lab is not None:
                lab[ja - ya : jb - ya, ia - xa : ib - xa] &= ~cover
    n_vis = cv2.countNonZero(vis.view(np.uint8))  # cv2's counts and boxes: no index arrays
    if n_vis == 0:
        return None
    visible = n_vis / patch.area
    if visible < 0.35:  # mostly covered or outside the frame: not something to report
        return None
    vx1, vy1, vx2, vy2 = _bbox(vis)
    sprite = look.sprite
    legible = False
    symbol = sprite.label.symbol if sprite.label is not None else None
    if symbol is not None and lab is not None:
        n_lab = cv2.countNonZero(lab.view(np.uint8))
        lx1, ly1, lx2, ly2 = _bbox(lab)
        m = symbol.module_px
        shown = n_lab / float(max(1, patch.label_area))
        in_frame = n_lab > 0 and lx1 + xa >= m and ly1 + ya >= m
        in_frame = in_frame and lx2 - 1 + xa < w - m and ly2 - 1 + ya < h - m
        legible = bool(m >= 2 and shown >= 0.98 and in_frame and patch.on_item)
    sh, sw = sprite.mask.shape
    centre = (float(x0 - patch.origin[0]), float(y0 - patch.origin[1]))
    return ParcelTruth(
        cls=sprite.cls,
        class_id=CLASSES.index(sprite.cls),
        box=(float(vx1 + xa), float(vy1 + ya), float(vx2 + xa), float(vy2 + ya)),
        centre=centre,
        size_px=(float(sw), float(sh)),
        angle_deg=patch.angle_deg,
        visible_fraction=float(min(1.0, visible)),
        label_format=symbol.format if symbol else None,
        label_text=symbol.text if symbol else None,
        label_module_px=symbol.module_px if symbol else None,
        label_legible=legible and parcel.label_legible,
        label_angle_deg=patch.label_angle_deg,
        parcel_id=parcel.id,
    )


def _whole(
    parcel: Parcel,
    look: _Look,
    patch: _Patch,
    x0: int,
    y0: int,
    above: list[tuple[Parcel, _Patch, int, int]],
    size: tuple[int, int],
) -> ParcelTruth | None:
    """``_truth`` of a parcel wholly in the frame and touched by no later parcel's box (most
    of them), from its pixels' boxes found once; None: take the pixel-exact way."""
    w, h = size
    mx1, my1, mx2, my2 = patch.mask_box
    if not (x0 + mx1 >= 0 and y0 + my1 >= 0 and x0 + mx2 <= w and y0 + my2 <= h):
        return None
    for _, other, ox, oy in above:
        a1, b1, a2, b2 = other.mask_box
        if ox + a1 < x0 + mx2 and x0 + mx1 < ox + a2 and oy + b1 < y0 + my2 and y0 + my1 < oy + b2:
            return None
    sprite = look.sprite
    symbol = sprite.label.symbol if sprite.label is not None else None
    legible = False
    if symbol is not None and patch.label_box is not None:
        m = symbol.module_px
        lx1, ly1, lx2, ly2 = patch.label_box
        in_frame = x0 + lx1 >= m and y0 + ly1 >= m and x0 + lx2 - 1 < w - m and y0 + ly2 - 1 < h - m
        legible = bool(m >= 2 and patch.label_shown >= 0.98 and in_frame and patch.on_item)
    sh, sw = sprite.mask.shape
    return ParcelTruth(
        cls=sprite.cls,
        class_id=CLASSES.index(sprite.cls),
        box=(float(x0 + mx1), float(y0 + my1), float(x0 + mx2), float(y0 + my2)),
        centre=(float(x0 - patch.origin[0]), float(y0 - patch.origin[1])),
        size_px=(float(sw), float(sh)),
        angle_deg=patch.angle_deg,
        visible_fraction=1.0,
        label_format=symbol.format if symbol else None,
        label_text=symbol.text if symbol else None,
        label_module_px=symbol.module_px if symbol else None,
        label_legible=legible and parcel.label_legible,
        label_angle_deg=patch.label_angle_deg,
        parcel_id=parcel.id,
    )
