"""The capture policy (which frames a node keeps) and the capped store (where it keeps them)."""

from __future__ import annotations

import itertools
import json
import shutil
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from vision.dataset.capture import (
    CapturePolicy,
    CaptureSettings,
    CaptureStore,
    ParcelFacts,
    StoreLimits,
)
from vision.dataset.coco import Annotation, DatasetError, read_coco

CLASSES = ("box", "polybag", "envelope", "irregular")

parcel = st.builds(
    ParcelFacts,
    st.integers(0, 6),
    st.floats(0, 1),
    st.none() | st.sampled_from(["A", "B", "C"]),
    st.booleans(),
    st.booleans(),
)
frames = st.lists(
    st.lists(parcel, max_size=4, unique_by=lambda p: p.track_id), min_size=1, max_size=40
)
policy_settings = st.builds(
    CaptureSettings, st.floats(0, 1), st.floats(0, 1), st.integers(1, 5), st.integers(0, 6)
)


@settings(max_examples=60, deadline=None)
@given(frames, policy_settings)
def test_policy_keeps_frames_apart_and_samples_at_most_its_share(seq, s):
    policy = CapturePolicy(s)
    kept = [(i, policy.decide(i, parcels)) for i, parcels in enumerate(seq)]
    kept = [(i, r) for i, r in kept if r is not None]
    for (a, _), (b, _) in itertools.pairwise(kept):
        assert b - a >= s.min_gap_frames  # one stuck parcel cannot fill the disk
    sampled = sum(1 for _, r in kept if r == "sampled")
    assert sampled <= len(seq) * s.sample_share + 1


@settings(max_examples=60, deadline=None)
@given(frames, policy_settings)
def test_a_hard_reason_is_given_only_when_the_frame_shows_it(seq, s):
    policy = CapturePolicy(s)
    for i, parcels in enumerate(seq):
        reason = policy.decide(i, parcels)
        if reason == "low_confidence":
            assert any(p.confidence < s.low_confidence for p in parcels)
        elif reason == "label_conflict":
            labels = [p.label for p in parcels if p.label is not None]
            assert len(labels) != len(set(labels)) or any(p.conflict for p in parcels)
        elif reason == "no_read":
            assert any(p.label is None and p.inside for p in parcels)


def test_each_hard_parcel_is_captured_once_while_in_view():
    policy = CapturePolicy(CaptureSettings(low_confidence=0.5, sample_share=0.0, min_gap_frames=0))
    unsure = ParcelFacts(1, 0.2, "X", inside=True)
    got = [policy.decide(i, [unsure]) for i in range(5)]
    assert got == ["low_confidence", None, None, None, None]
    assert policy.decide(5, []) is None  # it left
    assert policy.decide(6, [ParcelFacts(2, 0.2, "Y", True)]) == "low_confidence"


def test_no_read_after_the_set_number_of_frames_in_view_and_conflicts_first():
    policy = CapturePolicy(CaptureSettings(sample_share=0.0, no_read_frames=3, min_gap_frames=0))
    unread = ParcelFacts(1, 0.9, None, inside=True)
    assert [policy.decide(i, [unread]) for i in range(4)] == [None, None, "no_read", None]
    twins = [ParcelFacts(3, 0.1, "Z", True), ParcelFacts(4, 0.9, "Z", True)]
    assert policy.decide(10, twins) == "label_conflict"  # before its low confidence
    assert policy.decide(11, twins) == "low_confidence"


def test_sampling_keeps_the_share_of_ordinary_frames():
    policy = CapturePolicy(CaptureSettings(sample_share=0.1, min_gap_frames=0))
    easy = [ParcelFacts(1, 0.95, "A", True)]
    kept = [policy.decide(i, easy) for i in range(1000)]
    assert kept.count("sampled") == 100


@pytest.mark.parametrize("bad", [{"low_confidence": 2}, {"sample_share": -0.1},
                                 {"no_read_frames": 0}])  # fmt: skip
def test_settings_out_of_range_are_refused(bad):
    with pytest.raises(ValueError):
        CaptureSettings(**bad)


def _ann(cls: str = "box") -> list[Annotation]:
    return [Annotation(cls, ((1, 1), (30, 1), (30, 20), (1, 20)), 0.3, None)]


def test_store_keeps_under_its_cap_and_drops_the_oldest(tmp_path: Path):
    store = CaptureStore(tmp_path, CLASSES, StoreLimits(max_bytes=10_000, max_images=100),
                         flush_every=3)  # fmt: skip
    names = [store.save(b"x" * 3000, 64, 48, _ann(), {"reason": "sampled"}) for _ in range(7)]
    assert all(names)
    assert store.bytes <= 10_000 and store.images == 3
    assert store.counts == {"saved": 7, "dropped": 4, "failed": 0}
    kept = sorted(p.name for p in (tmp_path / "images").iterdir())
    assert kept == ["00000004.jpg", "00000005.jpg", "00000006.jpg"]
    store.flush()
    ds = read_coco(tmp_path)
    assert [s.file_name for s in ds.samples] == [f"images/{n}" for n in kept]
    status = json.loads((tmp_path / "capture-status.json").read_text())
    assert status["dropped"] == 4 and status["by_reason"]["sampled"] == 7


def test_store_image_cap(tmp_path: Path):
    store = CaptureStore(tmp_path, CLASSES, StoreLimits(max_bytes=10**9, max_images=2))
    for _ in range(5):
        store.save(b"y" * 10, 64, 48, _ann(), {"reason": "no_read"})
    assert store.images == 2 and store.counts["dropped"] == 3


def test_store_resumes_after_a_restart_and_removes_orphans(tmp_path: Path):
    store = CaptureStore(tmp_path, CLASSES, flush_every=100)
    store.save(b"a" * 10, 64, 48, _ann("polybag"), {"reason": "sampled"})
    store.flush()
    store.save(b"b" * 10, 64, 48, _ann(), {"reason": "sampled"})  # not flushed: a crash
    again = CaptureStore(tmp_path, CLASSES)
    assert again.images == 1
    assert not (tmp_path / "images/00000001.jpg").exists()
    assert again.save(b"c", 64, 48, _ann(), {}) == "images/00000001.jpg"


def test_store_refuses_a_set_of_other_classes(tmp_path: Path):
    CaptureStore(tmp_path, CLASSES).flush()
    with pytest.raises(DatasetError, match="capture into another directory"):
        CaptureStore(tmp_path, ("cat", "dog"))


def test_a_write_error_is_counted_not_raised(tmp_path: Path):
    store = CaptureStore(tmp_path, CLASSES)
    shutil.rmtree(tmp_path / "images")
    (tmp_path / "images").write_text("a file where the folder was")
    assert store.save(b"z" * 10, 64, 48, _ann(), {"reason": "sampled"}) is None
    assert store.counts["failed"] == 1 and store.last_error


def test_a_parcel_whose_reads_disagree_is_a_label_conflict():
    policy = CapturePolicy(CaptureSettings(sample_share=0.0, min_gap_frames=0))
    assert policy.decide(0, [ParcelFacts(1, 0.9, "A", True)]) is None
    assert policy.decide(1, [ParcelFacts(1, 0.9, "A", True, conflict=True)]) == "label_conflict"
    assert policy.decide(2, [ParcelFacts(1, 0.9, "A", True, conflict=True)]) is None  # once
