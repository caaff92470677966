"""The label reader decodes Code 128, QR, DataMatrix and PDF417 at any rotation."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sim_hardware.camera.barcodes import render_symbol
from vision.detections import Detection, OrientedBox
from vision.labels import LabelReader, dominant_angle

TEXTS = {"Code128": "482913", "QRCode": "WP0123456789", "DataMatrix": "WP9876543210",
         "PDF417": "WP5550001112"}  # fmt: skip


def parcel_with_label(fmt: str, module: int, angle: float, seed: int = 0) -> np.ndarray:
    """A 360x360 cardboard-coloured patch with a label turned ``angle`` degrees (CCW)."""
    rng = np.random.default_rng(seed)
    sym = render_symbol(fmt, TEXTS[fmt], module, bar_height_px=36).image
    pad = 3 * module
    label = np.full((sym.shape[0] + 2 * pad, sym.shape[1] + 2 * pad), 240, np.uint8)
    label[pad:-pad, pad:-pad] = np.where(sym > 127, 240, 25)
    size = 360
    canvas = np.full((size, size, 3), (80, 140, 190), np.float32)
    canvas += rng.normal(0, 4, canvas.shape)
    lh, lw = label.shape
    m = cv2.getRotationMatrix2D((lw / 2, lh / 2), angle, 1.0)
    m[:, 2] += (size / 2 - lw / 2, size / 2 - lh / 2)
    paper = cv2.warpAffine(label, m, (size, size), flags=cv2.INTER_LINEAR)
    mask = cv2.warpAffine(np.full_like(label, 255), m, (size, size)) / 255.0
    canvas = canvas * (1 - mask[:, :, None]) + paper[:, :, None] * mask[:, :, None]
    canvas = cv2.GaussianBlur(canvas, (0, 0), 0.6)
    return np.clip(canvas, 0, 255).astype(np.uint8)


def _detection(image: np.ndarray, parcel_angle: float | None) -> Detection:
    h, w = image.shape[:2]
    oriented = None if parcel_angle is None else OrientedBox(w / 2, h / 2, w, h, parcel_angle)
    return Detection(0, "box", 0.9, (0.0, 0.0, float(w), float(h)), oriented)


@pytest.mark.parametrize("fmt", sorted(TEXTS))
@pytest.mark.parametrize("angle", range(0, 360, 30))
def test_every_format_reads_at_every_rotation(fmt: str, angle: int):
    image = parcel_with_label(fmt, 2, angle + 7)  # +7: never exactly axis-aligned
    read = LabelReader().read(image, _detection(image, None))
    assert read is not None, f"{fmt} at {angle + 7} deg not read"
    assert (read.format, read.text) == (fmt, TEXTS[fmt])


def test_code128_at_45_degrees_needs_the_deskew():
    """zxing alone gives up on a 1D code turned this far; the deskewed view reads it."""
    import zxingcpp

    image = parcel_with_label("Code128", 2, 45)
    assert not zxingcpp.read_barcodes(image, formats=zxingcpp.BarcodeFormat.Code128)
    read = LabelReader().read(image, _detection(image, None))
    assert read is not None and read.text == TEXTS["Code128"]
    assert read.attempt != "crop"


def test_the_parcel_orientation_is_used_when_edges_mislead():
    image = parcel_with_label("Code128", 2, 33)
    # the detector says the parcel's length axis is at -33 deg clockwise = 33 deg CCW
    read = LabelReader().read(image, _detection(image, (-33.0) % 180))
    assert read is not None and read.text == TEXTS["Code128"]


def test_a_parcel_without_a_label_reads_nothing():
    rng = np.random.default_rng(3)
    image = np.clip(rng.normal(120, 20, (300, 300, 3)), 0, 255).astype(np.uint8)
    assert LabelReader().read(image, _detection(image, 0.0)) is None


def test_an_empty_crop_reads_nothing():
    image = np.zeros((100, 100, 3), np.uint8)
    det = Detection(0, "box", 0.9, (50.0, 50.0, 50.0, 50.0))
    assert LabelReader().read(image, det) is None


@settings(max_examples=40)
@given(
    st.sampled_from(sorted(TEXTS)),
    st.integers(2, 3),
    st.floats(0, 360, allow_nan=False),
    st.integers(0, 1000),
)
def test_labels_read_at_random_rotations(fmt: str, module: int, angle: float, seed: int):
    image = parcel_with_label(fmt, module, angle, seed)
    read = LabelReader().read(image, _detection(image, None))
    assert read is not None and read.text == TEXTS[fmt]


@settings(max_examples=60, deadline=None)
@given(
    st.sampled_from(sorted(TEXTS)),
    st.integers(2, 3),
    st.floats(0, 360, allow_nan=False),
    st.integers(0, 540),
    st.integers(0, 240),
    st.integers(0, 1000),
)
def test_a_read_says_where_its_symbol_lies(
    fmt: str, module: int, angle: float, x: int, y: int, seed: int
):
    """``at`` is the symbol's middle in the frame and ``span`` its extent, whichever view
    decoded it (turned, enlarged, a region of the crop): the tracker carries that point with
    the belt and asks the box to hold it. The locator's region around it (padded, and merged
    with the parcel's edges at times) is not the symbol: its middle lay 5-7 px off on these
    patches, and a region merged with a whole parcel in the belt camera's frames was 656 px
    across, so a confirming read searched the parcel's neighbours too."""
    frame = np.full((600, 900, 3), 60, np.uint8)
    frame[y : y + 360, x : x + 360] = parcel_with_label(fmt, module, angle, seed)
    det = Detection(0, "box", 0.9, (float(x), float(y), x + 360.0, y + 360.0))
    read = LabelReader().read(frame, det)
    assert read is not None and read.text == TEXTS[fmt] and read.at is not None
    off = float(np.hypot(read.at[0] - (x + 180), read.at[1] - (y + 180)))
    assert off < (8.0 if fmt == "PDF417" else 4.0)  # PDF417: its rows' ends, ~5 px
    side = max(render_symbol(fmt, TEXTS[fmt], module, bar_height_px=36).image.shape)
    assert read.span < side  # the symbol, not its quiet zone or the label around it


@given(st.floats(-44, 44, allow_nan=False))
def test_dominant_angle_recovers_the_turn_of_a_bar_pattern(angle: float):
    bars = np.full((200, 200), 255, np.uint8)
    bars[:, ::8] = 0
    bars[:, 1::8] = 0
    big = np.full((400, 400), 255, np.uint8)
    big[100:300, 100:300] = bars
    m = cv2.getRotationMatrix2D((200, 200), angle, 1.0)
    turned = cv2.warpAffine(big, m, (400, 400), borderValue=255)[120:280, 120:280]
    got = dominant_angle(turned)
    diff = (got + angle + 45) % 90 - 45  # the turn that undoes +angle is -angle (mod 90)
    assert abs(diff) < 3.0  # zxing reads 1D codes within about 15 degrees of upright


@pytest.mark.parametrize("fmt", sorted(TEXTS))
@pytest.mark.parametrize("angle", [7, 52, 128, 233])
def test_one_of_the_stages_alone_reads_what_all_stages_read(fmt: str, angle: int):
    """The pipeline runs one stage per attempt: together they must cover a full read."""
    image = parcel_with_label(fmt, 2, angle)
    det = _detection(image, float(angle) % 180)
    reader = LabelReader()
    full = reader.read(image, det)
    assert full is not None and full.text == TEXTS[fmt]
    staged = [reader.read(image, det, stage=k) for k in range(reader.stages)]
    assert any(r is not None and r.text == TEXTS[fmt] for r in staged)


def test_stage_3_reads_a_small_code_the_regions_miss():
    """A DataMatrix of 1.5 px modules turned 112 degrees: no region view nor the crop at 1x
    decodes it; the whole crop turned upright and enlarged does, and a full read gets it."""
    image = parcel_with_label("DataMatrix", 2, 112.0)
    image = cv2.resize(image, None, fx=0.75, fy=0.75, interpolation=cv2.INTER_AREA)
    det = _detection(image, None)
    reader = LabelReader()
    assert [reader.read(image, det, stage=k) for k in range(3)] == [None, None, None]
    whole = reader.read(image, det, stage=3)
    assert whole is not None and whole.text == TEXTS["DataMatrix"]
    assert whole.attempt == "whole x2"
    full = reader.read(image, det)
    assert full is not None and full.text == TEXTS["DataMatrix"]


@settings(max_examples=30, deadline=None)
@given(
    st.sampled_from(["Code128", "QRCode"]),
    st.floats(0, 360, allow_nan=False),
    st.integers(0, 540),
    st.integers(0, 240),
    st.integers(0, 1000),
)
def test_stage_3_says_where_the_symbol_lies_in_the_frame(
    fmt: str, angle: float, x: int, y: int, seed: int
):
    """Stage 3 decodes a turned and enlarged copy of the crop; the place it reports is the
    symbol's in the frame (the tracker keeps a label where the belt carries it), and its span
    is in the frame's pixels."""
    frame = np.full((600, 900, 3), 60, np.uint8)
    frame[y : y + 360, x : x + 360] = parcel_with_label(fmt, 2, angle, seed)
    det = Detection(0, "box", 0.9, (float(x), float(y), x + 360.0, y + 360.0))
    read = LabelReader().read(frame, det, stage=3)
    assert read is not None and read.text == TEXTS[fmt] and read.at is not None
    assert float(np.hypot(read.at[0] - (x + 180), read.at[1] - (y + 180))) < 6.0
    assert 20.0 < read.span < 200.0


def test_a_low_contrast_pattern_is_not_taken_for_a_code():
    """Wrinkles and print without dark-on-light contrast are skipped before zxing sees them."""
    rng = np.random.default_rng(5)
    image = np.full((300, 300, 3), 150, np.uint8)
    image[100:180, 80:220] = np.where(rng.random((80, 140, 1)) < 0.5, 130, 170).astype(np.uint8)
    assert LabelReader().read(image, _detection(image, 0.0)) is None


@pytest.mark.parametrize("angle", [150.0, 157.5])
def test_a_large_skewed_pdf417_region_is_read_without_enlarging_it(angle: float):
    """3 px modules make a PDF417 region larger than the enlarged views are for; a finer
    turn around the edge angle reads it instead."""
    image = parcel_with_label("PDF417", 3, angle)
    read = LabelReader().read(image, _detection(image, None))
    assert read is not None and read.text == TEXTS["PDF417"]


@pytest.mark.parametrize("angle", [0.0, 12.0, 90.0])
def test_a_label_is_read_again_from_its_region_alone(angle: float) -> None:
    """A confirming read decodes the crop around where the symbol was read (carried by the
    belt): the same text, at the same place; nothing where no symbol is."""
    image = parcel_with_label("Code128", 2, angle)
    first = LabelReader().read(image, _detection(image, None))
    assert first is not None and first.at is not None and first.text == TEXTS["Code128"]
    big = np.full((600, 900, 3), (60, 60, 60), np.uint8)  # the parcel somewhere in a frame
    big[120:480, 400:760] = image
    at = np.array(first.at) + np.array([400.0, 120.0])
    again = LabelReader().read_at(big, at, first.span)
    assert again is not None and again.text == first.text
    assert float(np.hypot(*(np.array(again.at) - at))) < max(40.0, first.span)
    assert LabelReader().read_at(big, np.array([150.0, 300.0]), first.span) is None


class _StillDetector:
    """The parcel at one place in every frame (a stopped belt): the pipeline's reads only."""

    def __init__(self, box: tuple[float, float, float, float]) -> None:
        self.box = box
        self.names = {0: "box"}

    def detect(self, image: np.ndarray, times: object) -> list[Detection]:
        return [Detection(0, "box", 0.9, self.box)]


def test_a_code_128_read_once_is_confirmed_from_its_region_on_the_next_frame() -> None:
    """A Code 128 routes only when read alike in two frames; the second read is of the
    label's region, beside the frame's budget of whole-parcel reads (none here)."""
    from vision.frames import Frame
    from vision.pipeline import Pipeline
    from vision.tracker import Tracker

    image = parcel_with_label("Code128", 2, 8.0)
    pipe = Pipeline(_StillDetector((0.0, 0.0, 360.0, 360.0)),  # type: ignore[arg-type]
                    tracker=Tracker({0: "box"}, px_per_count=0.25, min_hits=1))  # fmt: skip
    pipe.process(Frame(image, 0.0, 0, 0))
    (track,) = pipe.tracker.tracks
    assert track.label is not None and not track.label_certain  # one read of a Code 128
    result = pipe.process(Frame(image, 0.1, 1, 0), label_reads=0)
    assert track.label_certain and track.label_agree == 2
    assert len(result.label_reads) == 1  # the region's read
