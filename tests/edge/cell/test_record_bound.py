"""A parcel record stays under its size bound however long its story grows (issue 13: late
answers grew one to 1.2 MB, over the broker's packet limit, and it wedged the outbox)."""

from __future__ import annotations

import json

from hypothesis import given, settings
from hypothesis import strategies as st

from edge.cell.record import (
    MAX_RECORD_JSON_BYTES,
    STORY_HEAD,
    STORY_TAIL,
    ParcelRecord,
    StoryEntry,
    clip_text,
)


def record(story: list[StoryEntry], text: str = "r") -> ParcelRecord:
    return ParcelRecord(
        parcel_id=2**63,
        outcome="mis_sorted",
        chute=text,
        actual_chute=text,
        confirmed=False,
        reason=text,
        decision_source="brain",
        label=text,
        label_source=text,
        class_name=text,
        size_mm=(1e308, -1e308, 1.0000000000000002),
        lead_count=-(2**63),
        scheduled_count=2**63,
        fired_count=-(2**63),
        divert_error_mm=-1.2345678901234567e-300,
        latency_ms={"seen_to_label": 1e308, "label_to_decision": -1e-308},
        story=tuple(story),
    )


entries = st.builds(
    StoryEntry,
    t=st.floats(allow_nan=False, allow_infinity=False),
    count=st.integers(min_value=-(2**63), max_value=2**63),
    stage=st.text(max_size=300),
    detail=st.text(max_size=3000),
)


@settings(max_examples=60, deadline=None)
@given(story=st.lists(entries, max_size=80), text=st.text(max_size=2000))
def test_serialized_record_stays_under_the_bound(story: list[StoryEntry], text: str):
    rec = record(story, text)
    size = len(json.dumps(rec.to_json()).encode())
    assert size <= MAX_RECORD_JSON_BYTES, size
    assert len(rec.story) <= STORY_HEAD + STORY_TAIL + 1


def test_worst_case_story_and_texts_stay_under_the_bound():
    # every entry and text at its clipping limit, made of the characters JSON escapes most
    worst = "\u0001" * 5000
    story = [StoryEntry(-1.2345678901234567e-300, -(2**63), worst, worst) for _ in range(5000)]
    size = len(json.dumps(record(story, worst).to_json()).encode())
    assert size <= MAX_RECORD_JSON_BYTES, size


def test_a_long_story_keeps_its_head_and_tail_and_says_how_many_were_left_out():
    story = [
        StoryEntry(float(i), i, f"late_answer_{i}", "brain answered late") for i in range(1000)
    ]
    rec = record(story)
    stages = [s.stage for s in rec.story]
    assert stages[:STORY_HEAD] == [f"late_answer_{i}" for i in range(STORY_HEAD)]
    assert stages[-STORY_TAIL:] == [f"late_answer_{i}" for i in range(1000 - STORY_TAIL, 1000)]
    gap = rec.story[STORY_HEAD]
    assert gap.stage == "elided" and gap.detail.startswith(f"{1000 - STORY_HEAD - STORY_TAIL} ")


def test_a_short_story_and_short_texts_are_kept_as_they_are():
    story = [StoryEntry(1.0, 10, "seen", "eye in"), StoryEntry(1.1, 20, "label", "ABC123")]
    rec = record(story, "chute-3")
    assert rec.story == tuple(story) and rec.reason == "chute-3" and rec.label == "chute-3"


@given(text=st.text(max_size=500), limit=st.integers(min_value=8, max_value=400))
def test_clip_text_fits_its_limit_and_keeps_a_prefix(text: str, limit: int):
    out = clip_text(text, limit)
    assert len(json.dumps(out)) <= limit or out == text == ""
    if out != text:
        assert out.endswith("...") and text.startswith(out[:-3])


def test_a_parcel_that_collects_late_answers_stays_small_in_memory_and_says_how_many_went():
    from edge.cell.tracking import Parcel

    p = Parcel(1, 0, "eye")
    for i in range(10_000):
        p.note(float(i), i, "brain_late", "answer 'chute-3' ignored")
    assert len(p.story) <= 3 * 24
    story = p.full_story()
    gaps = [e for e in story if e.stage == "elided"]
    assert len(gaps) == 1 and gaps[0].detail.startswith(f"{10_000 - 24} entries")
    assert story[0].count == 0 and story[-1].count == 9_999
