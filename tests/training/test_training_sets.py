"""The training scripts read COCO sets (the 3D renders, a site's data) as the detector and the
classifier need them: boxes and oriented boxes in the letterboxed input, crops of each
parcel; unknown classes are refused with the set's name; what is cached reads back the same."""

from __future__ import annotations

import math
from pathlib import Path

import cv2
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from training.export_2d_set import make as make_2d_set
from training.train_parcel_classifier import load_coco_crops
from training.train_parcel_model import INPUT_HW, load_coco_sets
from vision.config import DEFAULT_MODEL
from vision.crops import CROP_WH
from vision.dataset.coco import Annotation, Sample, read_coco, write_coco
from vision.detections import OrientedBox

CLASSES = ("box", "polybag", "envelope", "irregular")
W, H = 640, 480

boxes = st.builds(
    OrientedBox,
    st.floats(120, 520),
    st.floats(120, 360),
    st.floats(40, 200),
    st.floats(20, 39),  # width < length: the length axis is defined
    st.floats(0, 179.9),
)


def _write_set(root: Path, per_image: list[list[tuple[str, OrientedBox]]]) -> None:
    (root / "images").mkdir(parents=True, exist_ok=True)
    samples = []
    for i, items in enumerate(per_image):
        name = f"images/{i:08d}.png"
        cv2.imwrite(str(root / name), np.full((H, W, 3), 90, np.uint8))
        anns = tuple(
            Annotation(cls, tuple((float(x), float(y)) for x, y in b.corners())) for cls, b in items
        )
        samples.append(Sample(name, W, H, anns, {"seed": 100 + i}))
    write_coco(root, samples, CLASSES)


@settings(max_examples=25)
@given(st.lists(st.tuples(st.sampled_from(CLASSES), boxes), min_size=1, max_size=4))
def test_rows_are_the_annotated_boxes_in_the_letterboxed_input(tmp_path_factory, items):
    root = tmp_path_factory.mktemp("set")
    _write_set(root, [items])
    images, rows = load_coco_sets([root], None)
    assert images.shape == (1, *INPUT_HW, 3) and len(rows) == 1
    scale = INPUT_HW[1] / W  # 640x480 into 160x128: x0.25, 4 px of padding above and below
    pad_y = (INPUT_HW[0] - H * scale) / 2
    for (cls, b), row in zip(items, rows[0], strict=True):
        c = b.corners()
        assert row[0] == CLASSES.index(cls)
        want = [c[:, 0].min() * scale, c[:, 1].min() * scale + pad_y,
                c[:, 0].max() * scale, c[:, 1].max() * scale + pad_y]  # fmt: skip
        assert np.allclose(row[1:5], want, atol=0.05)
        assert math.isclose(row[5], b.length * scale, abs_tol=0.05)
        assert math.isclose(row[6], b.width * scale, abs_tol=0.05)
        d = abs(row[7] - b.angle_deg) % 180
        assert min(d, 180 - d) < 0.5


def test_unknown_class_is_refused(tmp_path: Path):
    _write_set(tmp_path, [[("box", OrientedBox(300, 200, 100, 50, 0))]])
    path = tmp_path / "annotations.json"
    path.write_text(path.read_text().replace('"name":"box"', '"name":"pallet"'))
    with pytest.raises(ValueError, match=r"pallet.*not the model's"):
        load_coco_sets([tmp_path], None)


def test_the_cache_reads_back_what_was_loaded(tmp_path: Path):
    data = tmp_path / "set"
    _write_set(data, [[("box", OrientedBox(300, 200, 100, 50, 30))],
                      [("envelope", OrientedBox(200, 300, 150, 90, 120))]])  # fmt: skip
    first = load_coco_sets([data], tmp_path / "cache")
    for f in (data / "images").iterdir():
        f.unlink()  # the cache, not the images, answers now
    again = load_coco_sets([data], tmp_path / "cache")
    assert np.array_equal(first[0], again[0])
    assert all(np.array_equal(a, b) for a, b in zip(first[1], again[1], strict=True))


def test_crops_two_per_parcel_plus_the_detectors_matched_boxes(tmp_path: Path):
    make_2d_set(tmp_path, 2, 9_400_000, "held_out")  # real renders: the detector finds them
    ds = read_coco(tmp_path)
    big = [
        a for s in ds.samples for a in s.annotations
        if min(a.bbox[2] - a.bbox[0], a.bbox[3] - a.bbox[1]) >= 12
    ]  # fmt: skip
    crops, classes = load_coco_crops([tmp_path], None, None)
    assert crops.shape == (2 * len(big), CROP_WH[1], CROP_WH[0], 3)
    assert sorted(classes.tolist()) == sorted(
        CLASSES.index(a.class_name) for a in big for _ in "ab"
    )
    with_det, det_classes = load_coco_crops([tmp_path], DEFAULT_MODEL, None)
    extra = len(with_det) - 2 * len(big)
    assert 0.5 * len(big) <= extra <= len(big)  # one per parcel the detector found
    assert len(det_classes) == len(with_det)
