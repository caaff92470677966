"""Readings that are not valid labels (line noise) are refused with a counted error, never
passed on as a ``Read``: control characters, NUL-only or blank lines, and anything that does
not fully match the device's ``label_pattern``."""

from __future__ import annotations

import re

import pytest
from hypothesis import given
from hypothesis import strategies as st
from pydantic import ValidationError

from edge.config import ConfigError, load_board_config
from firmware_bridge.linedev import LineDeviceConfig, LineError, NoRead, Read
from firmware_bridge.linedev.framing import FRAMINGS, Frame, LineDecoder, encode
from firmware_bridge.linedev.reading import INVALID, classify, shown

PATTERN = r"[0-9]{6}|WP[0-9]{10}"


def _cfg(**extra: object) -> LineDeviceConfig:
    return LineDeviceConfig.model_validate({"name": "s", "serial": {"port": "/x"}, **extra})


PLAIN = _cfg()
LATIN = _cfg(encoding="latin-1")
STRICT = _cfg(label_pattern=PATTERN)


def _one(cfg: LineDeviceConfig, raw: bytes) -> Read | NoRead | LineError:
    return classify(cfg, raw, 1.0, 2.0)


@pytest.mark.parametrize(
    ("raw", "why"),
    [
        (b"\x00", "control character 0x00 at 0"),
        (b"\x00\x00\x00\x00", "control character 0x00 at 0"),
        (b"1NOISE\x00x", "control character 0x00 at 6"),
        (b"ABC\r", "control character 0x0d at 3"),  # 'lf' framing on a CR LF device
        (b"A\tB", "control character 0x09 at 1"),
        (b"AB\x7f", "control character 0x7f at 2"),
        (b"\x1b[2J", "control character 0x1b at 0"),
        (b"   ", "blank"),
    ],
)
def test_noise_is_refused_with_the_reason_and_the_text_escaped(raw: bytes, why: str) -> None:
    ev = _one(PLAIN, raw)
    assert isinstance(ev, LineError) and ev.kind == INVALID, ev
    assert why in ev.detail and ev.raw == raw
    assert all(0x20 <= ord(c) < 0x7F for c in ev.detail), ev.detail  # no noise in the log


def test_c1_controls_are_refused_under_latin1() -> None:
    ev = _one(LATIN, b"AB\x85C")
    assert isinstance(ev, LineError) and "0x85 at 2" in ev.detail
    assert isinstance(_one(LATIN, "Müller".encode("latin-1")), Read)


def test_the_pattern_must_match_the_whole_reading() -> None:
    assert isinstance(_one(STRICT, b"123456"), Read)
    assert isinstance(_one(STRICT, b"WP0123456789"), Read)
    for junk in (b"1NOISExx", b"1234567", b"x123456", b"WP012345678", b"123456 "):
        ev = _one(STRICT, junk)
        assert isinstance(ev, LineError) and "does not match label_pattern" in ev.detail, junk


def test_the_no_read_token_and_an_empty_line_stay_no_reads() -> None:
    assert isinstance(_one(STRICT, b"NoRead"), NoRead)  # the token need not match the pattern
    assert isinstance(_one(STRICT, b""), NoRead)
    ev = _one(_cfg(empty_is_no_read=False), b"")
    assert isinstance(ev, LineError) and "blank" in ev.detail  # was a Read with text ''


def test_shown_quotes_escapes_and_cuts() -> None:
    assert shown("A\x00B") == "'A\\x00B'"
    assert shown("é") == "'\\xe9'"
    assert shown("x" * 50).endswith("... (50 chars)")


@pytest.mark.parametrize(
    ("pattern", "message"),
    [("[0-9", "not a valid regular expression: unterminated character set"), ("", "empty")],
)
def test_a_bad_pattern_is_refused_at_load(pattern: str, message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        _cfg(label_pattern=pattern)


def test_the_board_loader_locates_a_bad_pattern(tmp_path) -> None:
    path = tmp_path / "board.yaml"
    path.write_text(
        "node: {id: cell-1, site: s}\n"
        "line_devices:\n"
        "  - name: scanner-1\n"
        "    serial: {port: /dev/ttyUSB0}\n"
        "    label_pattern: '([0-9]{6}'\n",
        encoding="utf-8",
    )
    with pytest.raises(ConfigError) as err:
        load_board_config(path)
    text = err.value.render()
    assert "board.yaml:5:" in text and "line_devices[0].label_pattern" in text
    assert "missing )" in text


# ---- properties ----------------------------------------------------------------------------


@given(raw=st.binary(max_size=80), strict=st.booleans())
def test_any_payload_is_classified_and_a_read_is_always_a_clean_label(
    raw: bytes, strict: bool
) -> None:
    cfg = STRICT if strict else LATIN
    ev = _one(cfg, raw)
    if isinstance(ev, Read):
        assert ev.text.strip() and all(0x20 <= ord(c) != 0x7F for c in ev.text if ord(c) < 0xA0)
        assert not strict or re.fullmatch(PATTERN, ev.text)
        assert ev.raw == raw
    elif isinstance(ev, LineError):
        assert ev.kind in (INVALID, "undecodable") and ev.raw == raw


_NOISE = st.one_of(
    st.binary(min_size=1, max_size=30),  # anything, NUL and control bytes included
    st.integers(1, 40).map(lambda n: b"\x00" * n),
    st.text(alphabet="0123456789NOISEWPx ", min_size=1, max_size=14).map(str.encode),
)
_LABELS = st.one_of(
    st.integers(0, 999999).map(lambda n: f"{n:06d}"),
    st.integers(0, 10**10 - 1).map(lambda n: f"WP{n:010d}"),
)


@given(
    framing=st.sampled_from(FRAMINGS),
    lines=st.lists(
        st.one_of(_LABELS.map(lambda s: ("label", s)), _NOISE.map(lambda b: ("noise", b))),
        max_size=30,
    ),
)
def test_a_noisy_line_yields_exactly_its_labels_in_order(framing: str, lines: list) -> None:
    """Labels interleaved with noise lines through the real decoder: every label arrives as a
    Read, in order, and nothing else does (noise that happens to be a valid label aside)."""
    dec = LineDecoder(framing, 64)  # type: ignore[arg-type]
    stream = b""
    expected: list[str] = []
    for what, item in lines:
        if what == "label":
            stream += encode(item.encode(), framing)  # type: ignore[arg-type]
            expected.append(item)
        else:
            payload = bytes(b for b in item if b not in b"\r\n\x02\x03")
            stream += encode(payload, framing)  # type: ignore[arg-type]
            if re.fullmatch(PATTERN, payload.decode("latin-1")):
                expected.append(payload.decode())  # noise that is a label: cannot be told apart
    reads = []
    for out in dec.feed(stream) + dec.flush():
        if isinstance(out, Frame):
            ev = _one(STRICT, out.payload)
            if isinstance(ev, Read):
                reads.append(ev.text)
    assert reads == expected
