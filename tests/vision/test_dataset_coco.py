"""COCO data sets: what is written reads back the same, a broken file is refused with where
and why, and an oriented box survives the trip through its corners."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from vision.dataset.coco import (
    Annotation,
    DatasetError,
    Sample,
    from_coco,
    read_coco,
    to_coco,
    write_coco,
)
from vision.detections import OrientedBox
from vision.finetune.head import oriented_box

CLASSES = ("box", "polybag", "envelope", "irregular")

coord = st.floats(0, 2000, allow_nan=False).map(lambda v: round(v, 2))


@st.composite
def annotations(draw: st.DrawFn) -> Annotation:
    box = OrientedBox(
        draw(coord), draw(coord), draw(st.floats(8, 400)), draw(st.floats(4, 200)),
        draw(st.floats(0, 179.9)),
    )  # fmt: skip
    corners = tuple((round(float(x), 2), round(float(y), 2)) for x, y in box.corners())
    return Annotation(
        draw(st.sampled_from(CLASSES)),
        corners,
        draw(st.none() | st.floats(0, 1).map(lambda v: round(v, 4))),
        draw(st.none() | st.text(st.characters(codec="utf-8"), min_size=1, max_size=20)),
    )


samples = st.builds(
    Sample,
    st.integers(0, 10**6).map(lambda i: f"images/{i:08d}.jpg"),
    st.integers(1, 4000),
    st.integers(1, 4000),
    st.lists(annotations(), max_size=5).map(tuple),
    st.fixed_dictionaries({"reason": st.sampled_from(["sampled", "no_read"])}),
)


@settings(max_examples=60, deadline=None)
@given(st.lists(samples, max_size=6))
def test_coco_round_trip(items: list[Sample]):
    doc = json.loads(json.dumps(to_coco(items, CLASSES)))
    ds = from_coco(doc, Path("/data"))
    assert ds.classes == CLASSES
    assert len(ds.samples) == len(items)
    for got, want in zip(ds.samples, items, strict=True):
        assert (got.file_name, got.width, got.height) == (want.file_name, want.width, want.height)
        assert got.meta == want.meta
        assert len(got.annotations) == len(want.annotations)
        for a, b in zip(got.annotations, want.annotations, strict=True):
            assert a.class_name == b.class_name and a.label_text == b.label_text
            assert a.score == b.score
            for p, q in zip(a.corners, b.corners, strict=True):
                assert p == pytest.approx(q, abs=0.011)
            assert a.bbox == pytest.approx(b.bbox, abs=0.03)


def test_write_then_read_a_directory(tmp_path: Path):
    ann = Annotation("polybag", ((10, 10), (50, 10), (50, 30), (10, 30)), 0.4, "AB12",
                     visible=(12.0, 10.0, 50.0, 30.0))  # fmt: skip
    write_coco(tmp_path, [Sample("images/00000001.jpg", 640, 480, (ann,))], CLASSES)
    ds = read_coco(tmp_path)
    (a,) = ds.samples[0].annotations
    assert a.visible == (12.0, 10.0, 50.0, 30.0) and a.bbox == (12.0, 10.0, 50.0, 30.0)
    assert ds.image_path(ds.samples[0]) == tmp_path / "images/00000001.jpg"


def test_a_plain_bbox_from_a_labelling_tool_is_read(tmp_path: Path):
    doc = {
        "images": [{"id": 7, "file_name": "a.jpg", "width": 640, "height": 480}],
        "annotations": [{"id": 1, "image_id": 7, "category_id": 3, "bbox": [5, 6, 20, 10]}],
        "categories": [{"id": 3, "name": "envelope"}, {"id": 1, "name": "box"}],
    }
    (tmp_path / "annotations.json").write_text(json.dumps(doc))
    ds = read_coco(tmp_path)
    assert ds.classes == ("box", "envelope")
    (a,) = ds.samples[0].annotations
    assert a.class_name == "envelope" and a.bbox == (5.0, 6.0, 25.0, 16.0)


@pytest.mark.parametrize(
    ("doc", "says"),
    [
        ([], "expected a JSON object"),
        ({"images": [], "annotations": []}, "'categories' must be a list"),
        ({"images": [{"id": 1, "file_name": "../x.jpg", "width": 1, "height": 1}],
          "annotations": [], "categories": []}, "images[0].file_name"),
        ({"images": [], "categories": [{"id": 1, "name": "box"}],
          "annotations": [{"image_id": 1, "category_id": 2, "bbox": [0, 0, 1, 1]}]},
         "annotations[0].category_id 2 is not a category"),
        ({"images": [], "categories": [{"id": 1, "name": "box"}],
          "annotations": [{"image_id": 1, "category_id": 1, "bbox": [0, 0, -1, 1]}]},
         "annotations[0].bbox: width and height must be > 0"),
    ],
)  # fmt: skip
def test_broken_files_are_refused_with_where(doc, says):
    with pytest.raises(DatasetError, match=None) as err:
        from_coco(doc, Path("/d"), "ann.json")
    assert says in str(err.value) and "ann.json" in str(err.value)


def test_missing_and_unreadable_files(tmp_path: Path):
    with pytest.raises(DatasetError, match="no COCO annotations file"):
        read_coco(tmp_path)
    (tmp_path / "annotations.json").write_text("{not json")
    with pytest.raises(DatasetError, match="not readable as JSON"):
        read_coco(tmp_path)


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=5),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner,
                                                                max_size=4),
    max_leaves=20,
)  # fmt: skip


@settings(max_examples=80, deadline=None)
@given(
    st.fixed_dictionaries(
        {"images": st.lists(json_values, max_size=3),
         "annotations": st.lists(json_values, max_size=3),
         "categories": st.lists(json_values, max_size=3)}
    ) | json_values
)  # fmt: skip
def test_any_json_is_read_or_refused_with_a_dataset_error(doc):
    try:
        from_coco(doc, Path("/d"))
    except DatasetError:
        pass


@settings(max_examples=100, deadline=None)
@given(
    st.floats(-500, 1500), st.floats(-500, 1500), st.floats(5, 400), st.floats(0.2, 1.0),
    st.floats(0, 359.9),
)  # fmt: skip
def test_oriented_box_from_its_corners(cx, cy, length, ratio, angle):
    box = OrientedBox(cx, cy, length, length * ratio, angle % 180)
    got = oriented_box(box.corners())
    assert got.cx == pytest.approx(cx, abs=0.05) and got.cy == pytest.approx(cy, abs=0.05)
    assert got.length == pytest.approx(box.length, rel=1e-3, abs=0.05)
    assert got.width == pytest.approx(box.width, rel=1e-3, abs=0.05)
    assert 0 <= got.angle_deg < 180
    if ratio < 0.98:  # a square's length axis is either side
        diff = abs(got.angle_deg - box.angle_deg) % 180
        assert min(diff, 180 - diff) < 0.2 or math.isclose(min(diff, 180 - diff), 0, abs_tol=0.2)
