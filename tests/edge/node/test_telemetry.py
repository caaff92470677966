"""The node's telemetry: deadband decisions (against a reference model), the groups' config
merge, tag readings that never turn a failure into a 0, the system sampler on real and
made-up /proc and /sys trees, and the loop-side samplers on the node's real parts."""

from __future__ import annotations

import asyncio
import itertools
import json
import math
import time
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import jsonschema
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from edge.cell.record import ParcelRecord
from edge.config.loader import load_board_config
from edge.node.encoder import EncoderClock
from edge.node.plc_belt import PlcStatus
from edge.node.telemetry import (
    DEFAULTS,
    GROUPS,
    ChuteCounts,
    NodeTelemetry,
    RateWindow,
    SystemSampler,
    effective_groups,
    sample_belt,
    sample_chutes,
    sample_mcu,
    tag_value,
    unknown_groups,
)
from edge.safety.machine import SafetyMachine, State
from firmware_bridge.mcu import McuLink
from firmware_bridge.modbus.quality import Quality, TagValue
from fleet_link.config import TelemetryGroupConfig
from fleet_link.telemetry import Deadband

REPO = Path(__file__).resolve().parents[3]
SCHEMA = json.loads((REPO / "fleet_link" / "schemas" / "telemetry.json").read_text())
VALUES_SCHEMA = SCHEMA["properties"]["values"]


# ---- the deadband, against a reference model ---------------------------------------------------
def reference(
    cfg: TelemetryGroupConfig, steps: list[tuple[float, dict[str, Any]]], quiet: set[str]
) -> list[str | None]:
    """What the docs say, written out plainly: periodic at the first sample and once interval_s
    passed; otherwise, once min_interval_s passed, 'change' when a non-quiet field (or a quiet
    one with a deadband) moved more than its band, or a non-number changed, or keys changed."""
    out: list[str | None] = []
    last: tuple[float, dict[str, Any]] | None = None
    for now, values in steps:
        decision: str | None = None
        if last is None or now - last[0] >= cfg.interval_s:
            decision = "periodic"
        elif now - last[0] >= cfg.min_interval_s:
            sent = last[1]
            if set(values) != set(sent):
                decision = "change"
            for key, v in values.items():
                if key not in sent or (key in quiet and key not in cfg.deadbands):
                    continue
                b = sent[key]
                both_numbers = all(
                    isinstance(x, int | float) and not isinstance(x, bool) for x in (v, b)
                )
                if (both_numbers and abs(v - b) > cfg.deadbands.get(key, 0.0)) or (
                    not both_numbers and v != b
                ):
                    decision = "change"
        if decision is not None:
            last = (now, dict(values))
        out.append(decision)
    return out


scalar = st.one_of(
    st.integers(-5, 5),
    st.floats(-10, 10, allow_nan=False, allow_infinity=False),
    st.booleans(),
    st.none(),
    st.sampled_from(["running", "estop"]),
)
keys = st.sampled_from(["speed", "count", "state"])


@settings(max_examples=200, deadline=None)
@given(
    interval=st.floats(0.5, 10),
    min_fraction=st.floats(0, 1),
    bands=st.dictionaries(keys, st.floats(0, 3), max_size=3),
    quiet=st.sets(keys, max_size=2),
    steps=st.lists(
        st.tuples(st.floats(0.01, 3), st.dictionaries(keys, scalar, min_size=1, max_size=3)),
        max_size=40,
    ),
)
def test_deadband_decides_as_documented(interval, min_fraction, bands, quiet, steps):
    cfg = TelemetryGroupConfig(
        interval_s=interval, min_interval_s=interval * min_fraction, deadbands=bands
    )
    timeline, now = [], 100.0
    for gap, values in steps:
        now += gap
        timeline.append((now, values))
    d = Deadband({"g": cfg})
    got = [d.decide("g", values, t, quiet) for t, values in timeline]
    assert got == reference(cfg, timeline, quiet)
    sent_at = [t for (t, _), r in zip(timeline, got, strict=True) if r is not None]
    # never faster than min_interval_s (periodic sends come later than that anyway)
    assert all(b - a >= cfg.min_interval_s for a, b in itertools.pairwise(sent_at))


@given(st.lists(st.integers(0, 10**9), min_size=2, max_size=30))
def test_quiet_totals_never_cause_a_send_by_themselves(counts):
    d = Deadband({"g": TelemetryGroupConfig(interval_s=1000, min_interval_s=0)})
    reasons = [d.decide("g", {"frames": c, "up": True}, float(i), {"frames"})
               for i, c in enumerate(counts)]  # fmt: skip
    assert reasons[0] == "periodic" and reasons[1:] == [None] * (len(counts) - 1)


def test_a_quiet_total_with_its_own_deadband_sends_when_it_moved_enough():
    cfg = TelemetryGroupConfig(interval_s=1000, deadbands={"retransmits": 10})
    d = Deadband({"g": cfg})
    assert d.decide("g", {"retransmits": 0}, 0.0, {"retransmits"}) == "periodic"
    assert d.decide("g", {"retransmits": 10}, 1.0, {"retransmits"}) is None
    assert d.decide("g", {"retransmits": 11}, 2.0, {"retransmits"}) == "change"


def test_a_failed_reading_is_a_change():
    d = Deadband({"g": TelemetryGroupConfig(interval_s=1000, deadbands={"speed": 50})})
    assert d.decide("g", {"speed": 2500.0}, 0.0) == "periodic"
    assert d.decide("g", {"speed": 2510.0}, 1.0) is None
    assert d.decide("g", {"speed": None, "speed_error": "timeout"}, 2.0) == "change"


# ---- the groups' config --------------------------------------------------------------------------
def test_every_group_is_on_by_default_with_its_deadbands():
    groups = effective_groups({})
    assert list(groups) == list(GROUPS)
    assert groups["belt"].interval_s == 5.0 and groups["belt"].deadbands["speed_mm_s"] == 50.0


def test_a_configured_group_overrides_only_what_it_names():
    user = TelemetryGroupConfig.model_validate({"interval_s": 2, "deadbands": {"speed_mm_s": 5}})
    groups = effective_groups({"belt": user, "system": TelemetryGroupConfig(enabled=False)})
    belt = groups["belt"]
    assert belt.interval_s == 2 and belt.min_interval_s == DEFAULTS["belt"].min_interval_s
    assert belt.deadbands["speed_mm_s"] == 5  # merged: the other default bands stay
    assert belt.deadbands["encoder_speed_mm_s"] == DEFAULTS["belt"].deadbands["encoder_speed_mm_s"]
    assert "system" not in groups


def test_unknown_groups_are_named():
    assert unknown_groups({"blet": TelemetryGroupConfig(), "belt": TelemetryGroupConfig()}) == [
        "blet"
    ]


def test_the_sim_config_parses_and_marks_tags():
    board = load_board_config(REPO / "configs" / "sim-cell.yaml")
    assert board.mqtt is not None and unknown_groups(dict(board.mqtt.telemetry)) == []
    marked = [t.name for d in board.modbus.devices for t in d.tags if t.telemetry]
    assert {"speed", "estop", "run"} <= set(marked)


# ---- tag readings --------------------------------------------------------------------------------
tag_values = st.builds(
    TagValue,
    device=st.just("conveyor"),
    tag=st.just("speed"),
    value=st.one_of(
        st.none(), st.floats(), st.integers(-(2**31), 2**31), st.booleans(), st.text(max_size=5)
    ),
    unit=st.just(""),
    quality=st.sampled_from(list(Quality)),
    timestamp=st.floats(0, 2e9),
    cause=st.sampled_from(["", "timeout after 100 ms"]),
)


@given(tag_values)
def test_a_tag_reading_is_its_value_or_null_with_a_reason(v: TagValue):
    value, why = tag_value(v)
    jsonschema.validate({"x": value, **({"x_error": why} if why else {})}, VALUES_SCHEMA)
    if v.quality is Quality.BAD or v.value is None:
        assert value is None and why  # never a 0 standing in for a failed read
    elif isinstance(v.value, float) and not math.isfinite(v.value):
        assert value is None and "finite" in (why or "")
    elif isinstance(v.value, float):
        assert why is None and value == pytest.approx(v.value, rel=1e-5)
    else:
        assert why is None and value == v.value and type(value) is type(v.value)
    json.dumps(value, allow_nan=False)


def test_a_tag_never_read_is_null_with_a_reason():
    assert tag_value(None) == (None, "not read yet")


# ---- the system sampler --------------------------------------------------------------------------
def test_system_sampler_on_this_machine(tmp_path: Path):
    s = SystemSampler(str(tmp_path), thermal_glob=str(tmp_path / "none*"))
    sum(i * i for i in range(300_000))  # some CPU to measure
    v = s.sample()
    jsonschema.validate(v, VALUES_SCHEMA)
    assert v["cpu_percent"] is not None and v["cpu_percent"] >= 0
    assert 10 < v["rss_mb"] < 4000
    assert v["mem_available_mb"] > 0 and v["load_1m"] >= 0
    assert v["outbox_disk_free_mb"] > 0
    assert not any(k.startswith("temp") for k in v)  # no thermal zones: absent, not 0


def test_system_sampler_reads_thermal_zones_and_names_what_failed(tmp_path: Path):
    for i, (kind, temp) in enumerate([("cpu-thermal", "52312\n"), ("gpu", "48000\n"),
                                      ("broken", "n/a\n"), ("gpu", "61000\n")]):  # fmt: skip
        zone = tmp_path / f"thermal_zone{i}"
        zone.mkdir()
        (zone / "type").write_text(kind + "\n")
        (zone / "temp").write_text(temp)
    proc = tmp_path / "proc"
    proc.mkdir()  # an empty /proc: nothing readable
    s = SystemSampler(str(tmp_path / "gone"), thermal_glob=str(tmp_path / "thermal_zone*"),
                      proc=str(proc))  # fmt: skip
    v = s.sample()
    jsonschema.validate(v, VALUES_SCHEMA)
    assert v["temp_cpu_thermal_c"] == 52.3 and v["temp_gpu_c"] == 48.0
    assert v["temp_gpu_3_c"] == 61.0 and v["temp_c"] == 61.0  # the hottest zone
    assert v["temp_broken_c"] is None and "thermal_zone2" in v["temp_error"]
    for name, error in (("rss_mb", "rss_error"), ("mem_available_mb", "mem_error"),
                        ("host_cpu_percent", "host_cpu_error"),
                        ("outbox_disk_free_mb", "outbox_disk_error")):  # fmt: skip
        assert v[name] is None and v[error], (name, v)


# ---- the loop-side samplers on the node's real parts ---------------------------------------------
BOARD = load_board_config(REPO / "configs" / "sim-cell.yaml")


def _node(**kw: Any) -> SimpleNamespace:
    board = BOARD
    cell = board.cell
    assert cell is not None
    safety = SafetyMachine(cell.safety, {"mcu", "plc", "scanner", "brain"})
    core = SimpleNamespace(_sensor_blocked=set())
    node = SimpleNamespace(board=board, cell=cell, safety=safety, encoder=EncoderClock(),
                           mcu=McuLink("/nonexistent/pty"), plc=object(), _plc_last=None,
                           core=core, camera=None, fleet=None)  # fmt: skip
    node.__dict__.update(kw)
    return node


def test_belt_before_any_reading_is_null_with_reasons():
    v, quiet = sample_belt(_node())
    jsonschema.validate(v, VALUES_SCHEMA)
    assert v["state"] == "boot" and v["running"] is False
    assert v["speed_mm_s"] is None and v["plc_error"] == "no status from the PLC yet"
    assert v["encoder_count"] is None and v["encoder_error"] == "no encoder report yet"
    assert quiet == {"encoder_count"}


def test_belt_of_a_lost_plc_and_a_lost_mcu_says_why():
    node = _node(_plc_last=PlcStatus(online=False, why="conveyor: timeout after 100 ms"))
    node.encoder.update(1000, 1.0)
    v, _ = sample_belt(node)
    assert v["speed_mm_s"] is None and v["moving"] is None
    assert v["plc_error"] == "conveyor: timeout after 100 ms"
    assert v["encoder_count"] is None and v["encoder_error"] == "MCU link disconnected"


def test_belt_reads_the_plc_and_the_encoder():
    node = _node(_plc_last=PlcStatus(online=True, speed_mm_s=2499.96, moving=True, run_coil=True))
    for i in range(11):
        node.encoder.update(i * 25, i * 0.01)
    node.mcu.state = type(node.mcu.state).CONNECTED
    v, _ = sample_belt(node)
    assert v["speed_mm_s"] == 2500.0 and v["moving"] is True and v["run_command"] is True
    assert v["encoder_count"] == 250 and v["encoder_speed_mm_s"] == 2500.0


@given(st.lists(st.floats(0, 0.02), min_size=4, max_size=12), st.integers(0, 10**6))
def test_belt_rate_over_the_window_is_steady_when_reports_jitter(lags, start):
    """Reports that reach the node late (a busy host) do not move the rate: it is taken over
    the window from the counts at the sampling times."""
    node = _node(_plc_last=None)
    node.mcu.state = type(node.mcu.state).CONNECTED
    window = RateWindow(1.0)
    rates = []
    for i, lag in enumerate(lags):
        t = i * 0.5
        node.encoder.update(start + round(2500 * (t - lag)), t)  # the count the MCU had
        v, _ = sample_belt(node, window, t)
        rates.append(v["encoder_rate_cps"])
    for rate in rates[2:]:
        assert abs(rate - 2500) <= 2500 * 0.02 / 1.0 + 2, rates  # lag / window at most
    node.encoder.update(5, len(lags) * 0.5)  # the MCU reset: the count went back
    v, _ = sample_belt(node, window, len(lags) * 0.5)
    assert v["encoder_count"] == 5 and v["encoder_rate_cps"] is not None


def test_mcu_before_a_round_trip():
    v, quiet = sample_mcu(_node())
    jsonschema.validate(v, VALUES_SCHEMA)
    assert v["state"] == "disconnected" and v["up"] is False
    assert v["rtt_ms"] is None and v["rtt_error"]
    assert {"frames_sent", "retransmits", "crc_errors"} <= quiet


def _record(pid: int, chute: str, fired: bool, actual: str | None) -> ParcelRecord:
    return ParcelRecord(pid, "sorted", chute, actual, actual is not None, "r", "brain", "1",
                        "scanner", None, None, 0, 0, 10 if fired else None, None)  # fmt: skip


def test_chutes_count_strokes_and_arrivals_and_null_full_without_the_plc():
    counts = ChuteCounts()
    for i, (chute, fired, actual) in enumerate([("chute-0", True, "chute-0"),
                                                ("chute-0", True, None),
                                                ("chute-1", False, "chute-7")]):  # fmt: skip
        counts.record(_record(i + 1, chute, fired, actual))
    node = _node()
    node.core._sensor_blocked.add("chute-1")
    v, quiet = sample_chutes(node, counts)
    jsonschema.validate(v, VALUES_SCHEMA)
    assert v["chute-0.strokes"] == 2 and v["chute-0.parcels"] == 1
    assert v["chute-7.parcels"] == 1 and v["chute-1.strokes"] == 0
    assert v["chute-1.blocked"] is True and v["chute-0.blocked"] is False
    assert v["chute-0.full"] is None and v["full_error"] == "no status from the PLC yet"
    assert "chute-7.full" not in v  # the reject chute has no full tag: absent, not false
    assert "chute-0.strokes" in quiet and "chute-0.full" not in quiet
    node._plc_last = PlcStatus(online=True, full={"chute-0": True})
    v, _ = sample_chutes(node, counts)
    assert v["chute-0.full"] is True and v["chute-1.full"] is None and "full_error" not in v


def test_the_task_publishes_a_first_sample_of_each_group_and_survives_a_broken_one():
    node = _node()
    sent: list[tuple[str, dict[str, Any], str]] = []
    tel = NodeTelemetry(node, effective_groups({}), lambda g, v, r: sent.append((g, v, r)))
    tel.samplers = lambda now, orig=tel.samplers: {  # type: ignore[method-assign]
        **orig(now),
        "plc": lambda: 1 / 0,
    }
    t0 = time.perf_counter()
    tel.step(time.monotonic())
    took = time.perf_counter() - t0
    assert {g for g, _, _ in sent} == {"belt", "mcu", "chutes"}
    assert all(r == "periodic" for _, _, r in sent)
    assert tel.errors["plc"] == 1
    tel.step(time.monotonic() + 0.1)  # nothing moved, nothing is sent
    assert len(sent) == 3
    assert took < 0.05, f"one sampling step took {took * 1000:.1f} ms on the loop"


def test_the_task_runs_on_a_loop_and_samples_the_system_in_a_thread(tmp_path: Path):
    node = _node()
    node.board = node.board.model_copy(
        update={"mqtt": node.board.mqtt.model_copy(  # type: ignore[union-attr]
            update={"outbox": node.board.mqtt.outbox.model_copy(  # type: ignore[union-attr]
                update={"path": str(tmp_path / "o.sqlite")})})})  # fmt: skip
    sent: list[str] = []
    tel = NodeTelemetry(node, effective_groups({}), lambda g, v, r: sent.append(g))

    async def main() -> None:
        task = asyncio.create_task(tel.run())
        await asyncio.sleep(0.3)
        task.cancel()

    asyncio.run(main())
    assert "system" in sent and "belt" in sent


def test_the_running_state_is_sampled_from_the_safety_machine():
    node = _node()
    for dev in ("mcu", "plc", "scanner", "brain"):
        node.safety.device_up(dev, 0.0)
    node.safety.estop(False, 0.0)
    node.safety.start(0.1)
    assert node.safety.state is State.RUNNING
    v, _ = sample_belt(node)
    assert v["state"] == "running" and v["running"] is True
