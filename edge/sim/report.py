"""The report of a `wolfpack sim` run: the world's truth joined with the node's records.

The world knows where each parcel should have gone and where it went; the node's records
(received by a brain-side consumer over MQTT, as the brain would) say what the node decided,
who decided and how long each stage took. A node record is joined to its world parcel by the
encoder count at which the parcel's leading edge reached the induction eye.
"""

from __future__ import annotations

import bisect
import contextlib
import math
from collections import Counter
from collections.abc import Iterable, Mapping
from typing import Any

REPORT_KEYS = (
    "parcels_in", "sorted_correct", "mis_sorted", "rejected", "lost", "decisions",
    "latency_ms", "divert_error_mm", "node", "ran_off_belt",
)  # fmt: skip
# Added by a full run (edge.sim.run, from edge.sim.safety_truth): the safety figures.
SAFETY_KEYS = ("strokes_while_not_running", "belt_stop_ms", "safety", "fault_counters",
               "node_rss")  # fmt: skip
JOIN_TOLERANCE_COUNTS = 5


def percentiles(values: Iterable[float]) -> dict[str, float | None]:
    data = sorted(values)
    if not data:
        return {"p50": None, "p99": None, "max": None, "n": 0}

    def q(p: float) -> float:
        return round(data[min(len(data) - 1, math.ceil(p * len(data)) - 1)], 3)

    return {"p50": q(0.5), "p99": q(0.99), "max": round(data[-1], 3), "n": len(data)}


def join_records(
    world: Mapping[int, Any], node: list[dict[str, Any]], eye_mm: float, counts_per_mm: float
) -> dict[int, dict[str, Any]]:
    """World parcel id -> the node's record of it (only those the node reported)."""
    by_count = sorted(node, key=lambda r: r["lead_count"])
    counts = [r["lead_count"] for r in by_count]
    joined: dict[int, dict[str, Any]] = {}
    used: set[int] = set()
    for pid, rec in world.items():
        if rec.inducted_s is None:
            continue
        expect = math.floor((rec.induct_travel_mm + eye_mm) * counts_per_mm)
        i = bisect.bisect_left(counts, expect - JOIN_TOLERANCE_COUNTS)
        best = None
        while i < len(counts) and counts[i] <= expect + JOIN_TOLERANCE_COUNTS:
            if i not in used and (
                best is None or abs(counts[i] - expect) < abs(counts[best] - expect)
            ):
                best = i
            i += 1
        if best is not None:
            used.add(best)
            joined[pid] = by_count[best]
    return joined


def build_report(
    *,
    world_records: Mapping[int, Any],
    world_summary: Mapping[str, Any],
    reject_station: int,
    node_records: list[dict[str, Any]],
    eye_mm: float,
    counts_per_mm: float,
    node_usage: Mapping[str, float],
    settings: Mapping[str, Any],
    extra: Mapping[str, Any] | None = None,
    camera: Mapping[str, Any] | None = None,
    camera_source: str = "camera",
) -> dict[str, Any]:
    """``camera``: the run's camera figures (``fps``, ...), to which the labels, classes and
    sizes the camera gave, scored against the truth, are added (the report's ``camera``)."""
    done = {pid: r for pid, r in world_records.items() if r.actual is not None}
    joined = join_records(done, node_records, eye_mm, counts_per_mm)
    legible = [r for r in done.values() if r.parcel.label_legible]
    sorted_right = [r for r in legible if r.actual == r.intended and r.actual != reject_station]
    mis = [
        r
        for r in done.values()
        if r.actual not in (reject_station, "end") and r.actual != r.intended
    ]
    in_reject = [pid for pid, r in done.items() if r.actual == reject_station]
    ran_off = [pid for pid, r in done.items() if r.actual == "end"]
    no_record = [pid for pid in done if pid not in joined]
    reasons: Counter[str] = Counter()
    for pid in in_reject:
        rec = joined.get(pid)
        reasons[_reason_class(rec) if rec else "no node record"] += 1
    decisions: Counter[str] = Counter(r.get("decision_source") or "none" for r in node_records)
    sources: Counter[str] = Counter(r.get("label_source") or "none" for r in node_records)
    stages: dict[str, list[float]] = {}
    for r in node_records:
        for stage, ms in (r.get("latency_ms") or {}).items():
            stages.setdefault(stage, []).append(ms)
    errors = [abs(r.divert_error_mm) for r in done.values() if r.divert_error_mm is not None]
    unreadable = len(done) - len(legible)
    # off the belt's end with a node record that says so (run_out: a halt's stopping distance
    # carried a reject-bound parcel past the reject diverter) is accounted for, not lost
    run_out = [pid for pid in ran_off if (joined.get(pid) or {}).get("outcome") == "run_out"]
    lost_ids = sorted((set(ran_off) - set(run_out)) | set(no_record))
    # records no world parcel took (a second record of one parcel, a phantom), and records
    # whose outcome says lost of a parcel the world saw land in a chute
    taken = {id(r) for r in joined.values()}
    unmatched = [r for r in node_records if id(r) not in taken]
    wrong_lost = [pid for pid, r in joined.items()
                  if r.get("outcome") in ("lost", "run_out")
                  and done[pid].actual != "end"]  # fmt: skip
    return {
        "parcels_in": len(done),
        "legible": len(legible),
        "sorted_correct": len(sorted_right),
        "sorted_correct_of_legible": round(len(sorted_right) / len(legible), 5)
        if legible
        else None,
        "mis_sorted": len(mis),
        "rejected": {
            "total": len(in_reject),
            "unreadable_label": sum(1 for p in in_reject if not done[p].parcel.label_legible),
            "legible_label": sum(1 for p in in_reject if done[p].parcel.label_legible),
            "by_reason": dict(reasons.most_common()),
        },
        "unreadable_parcels": unreadable,
        "lost": len(lost_ids),
        # off the belt's end undiverted (the reject chute is a station: not counted here)
        "ran_off_belt": len(ran_off),
        "run_out": len(run_out),
        "lost_detail": {
            "ran_off_belt": len(ran_off) - len(run_out),
            "no_node_record": len(no_record),
            "examples": lost_ids[:10],
        },
        "still_on_belt": len(world_records) - len(done),
        "decisions": dict(decisions.most_common()),
        "label_source": dict(sources.most_common()),
        "latency_ms": {s: percentiles(v) for s, v in sorted(stages.items())},
        "divert_error_mm": percentiles(errors),
        "node": dict(node_usage),
        "node_records": len(node_records),
        "records_unmatched": {
            "count": len(unmatched),
            "examples": [_brief(r) for r in unmatched[:5]],
        },
        "records_lost_but_delivered": {
            "count": len(wrong_lost),
            "examples": [_brief(joined[p]) for p in wrong_lost[:5]],
        },
        "node_outcomes": dict(Counter(r.get("outcome") for r in node_records).most_common()),
        "world": dict(world_summary),
        "settings": dict(settings),
        **dict(extra or {}),
        **(
            {"camera": _camera(camera, done, joined, camera_source, reject_station)}
            if camera is not None
            else {}
        ),
    }


def _camera(
    camera: Mapping[str, Any],
    done: Mapping[int, Any],
    joined: Mapping[int, dict[str, Any]],
    source: str,
    reject_station: int,
) -> dict[str, Any]:
    """The run's camera figures with the scores against the truth. ``legible_ids``: world ids
    of the parcels whose label was legible in at least one camera frame (a label too small for
    the camera's resolution is not: the sim camera draws none it could not resolve)."""
    out = {k: v for k, v in camera.items() if k not in ("legible_ids", "seen_ids")}
    out.update(camera_figures(done, joined, source))
    ids = camera.get("legible_ids")
    if ids is not None:
        in_view = [done[p] for p in ids if p in done]
        right = [r for r in in_view if r.actual == r.intended and r.actual != reject_station]
        out["legible_in_view"] = len(in_view)
        out["sorted_correct_of_legible_in_view"] = (
            round(len(right) / len(in_view), 5) if in_view else None
        )
        seen = camera.get("seen_ids") or set()
        out["parcels_in_view"] = sum(1 for p in seen if p in done)
    return out


def camera_figures(
    done: Mapping[int, Any], joined: Mapping[int, dict[str, Any]], source: str = "camera"
) -> dict[str, Any]:
    """What the camera gave, scored against the world's truth: labels it gave that routed
    (right or not), classes (the cell's only class source), and its measured length x width
    (``measured LxW mm`` in a record's sighting) against the parcel's (the sim camera draws a
    parcel its length long and at most that wide)."""
    labels = right = classes = class_right = 0
    errors: list[float] = []
    for pid, rec in joined.items():
        truth = done[pid].parcel
        if rec.get("label_source") == source:
            labels += 1
            right += rec.get("label") == truth.label_text
        if rec.get("class") is not None:
            classes += 1
            class_right += rec.get("class") == truth.cls
        measured = _measured(rec, source)
        if measured is not None:
            length, width = truth.length_mm, min(truth.width_mm, truth.length_mm)
            errors += [abs(measured[0] - length), abs(measured[1] - width)]
    return {
        "labels": labels,
        "labels_wrong": labels - right,
        "classes": classes,
        "classes_right": class_right,
        "class_accuracy": round(class_right / classes, 4) if classes else None,
        "size_error_mm": percentiles(errors),
        "sizes_measured": len(errors) // 2,
    }


def _measured(rec: Mapping[str, Any], source: str) -> tuple[float, float] | None:
    for entry in rec.get("story") or ():
        detail = str(entry.get("detail") or "")
        if entry.get("stage") != "sighting" or not detail.startswith(source):
            continue
        for part in detail.split(", "):
            if part.startswith("measured ") and part.endswith(" mm"):
                with contextlib.suppress(ValueError):
                    length, width = part[len("measured ") : -len(" mm")].split("x")
                    return float(length), float(width)
    return None


def _brief(rec: Mapping[str, Any]) -> dict[str, Any]:
    keys = ("parcel_id", "lead_count", "outcome", "chute", "reason")
    return {k: rec.get(k) for k in keys}


def _reason_class(rec: Mapping[str, Any]) -> str:
    """A short class of why the node sent a parcel to reject (the full reason is in the
    record's story)."""
    reason = str(rec.get("reason") or "")
    source = rec.get("decision_source")
    if source == "unreadable":
        return "no label read"
    if "labels disagree" in reason:
        return "labels disagree"
    if "halted" in reason:
        return "cell halted (e-stop/stop/fault)"
    if "full" in reason:
        return "chute full"
    if "too close" in reason or "already past" in reason:
        return "decided too late to divert"
    if "MCU refused" in reason:
        return "MCU refused the stroke"
    if source == "routing_table":
        return "routing table (brain late or away)"
    if source == "brain":
        return "brain chose reject"
    return reason.split(";")[0][:60] or "unknown"


def render_text(report: Mapping[str, Any]) -> str:
    """The report for a person: the headline figures, then the details."""
    lines = []
    n = report["parcels_in"]
    legible = report["legible"]
    ok = report["sorted_correct"]
    pct = f"{100 * ok / legible:.2f} %" if legible else "n/a"
    rej = report["rejected"]
    lines.append(f"parcels in        {n}  ({legible} with legible labels)")
    lines.append(f"sorted right      {ok}  ({pct} of legible)")
    lines.append(f"mis-sorted        {report['mis_sorted']}")
    lines.append(
        f"rejected          {rej['total']}  ({rej['unreadable_label']} unreadable, "
        f"{rej['legible_label']} legible)"
    )
    for why, count in rej["by_reason"].items():
        lines.append(f"    {count:6d}  {why}")
    ld = report["lost_detail"]
    lines.append(
        f"lost              {report['lost']}  (ran off the belt unrecorded {ld['ran_off_belt']}, "
        f"no node record {ld['no_node_record']})"
    )
    unmatched = report.get("records_unmatched", {}).get("count", 0)
    wrong = report.get("records_lost_but_delivered", {}).get("count", 0)
    if unmatched or wrong:
        lines.append(
            f"records           {unmatched} matching no parcel (a second record, a phantom), "
            f"{wrong} saying lost of a parcel that landed in a chute"
        )
    if report["still_on_belt"]:
        lines.append(
            f"still on the belt {report['still_on_belt']}  (the run ended before they left)"
        )
    lines.append(
        "decisions         " + ", ".join(f"{k} {v}" for k, v in report["decisions"].items())
    )
    lines.append(
        "label source      " + ", ".join(f"{k} {v}" for k, v in report["label_source"].items())
    )
    lines.append("latency (ms)      stage                      p50      p99")
    for stage, q in report["latency_ms"].items():
        lines.append(f"                  {stage:24s} {_fmt(q['p50'])} {_fmt(q['p99'])}")
    de = report["divert_error_mm"]
    lines.append(
        f"divert error (mm) p50 {_fmt(de['p50'])}  p99 {_fmt(de['p99'])}  max {_fmt(de['max'])}"
    )
    node = report["node"]
    lines.append(
        f"node              cpu {node.get('cpu_percent', 0):.1f} %"
        f"  rss {node.get('rss_mb', 0):.1f} MB  (peak {node.get('rss_peak_mb', 0):.1f} MB)"
    )
    lines += _camera_lines(report)
    lines += _safety_lines(report)
    return "\n".join(lines)


def _camera_lines(report: Mapping[str, Any]) -> list[str]:
    cam = report.get("camera")
    if not cam or "labels" not in cam:
        return []
    se = cam["size_error_mm"]
    acc = cam.get("class_accuracy")
    return [
        f"camera            {_fmt(cam.get('fps')).strip()} frames/s processed by the node "
        f"(rendered {_fmt(cam.get('frames_per_s')).strip()}/s, render "
        f"{_fmt(cam.get('render_ms_mean')).strip()} ms a frame + "
        f"{_fmt(cam.get('prepare_ms_mean')).strip()} ms ahead)",
        f"                  labels {cam['labels']} ({cam['labels_wrong']} wrong), classes "
        f"{cam['classes']} ({'n/a' if acc is None else f'{100 * acc:.1f} %'} right), "
        f"size error p50 {_fmt(se['p50']).strip()} mm p99 {_fmt(se['p99']).strip()} mm",
        f"                  {cam.get('legible_in_view', 'n/a')} parcels with a label legible "
        f"in its frames (of {cam.get('parcels_in_view', 'n/a')} seen); sorted right "
        + (f"{100 * cam['sorted_correct_of_legible_in_view']:.2f} % of them"
           if cam.get("sorted_correct_of_legible_in_view") is not None else "n/a"),
    ]


def _safety_lines(report: Mapping[str, Any]) -> list[str]:
    """The safety figures of a full run (absent from a bare ``build_report``)."""
    if "strokes_while_not_running" not in report:
        return []
    lines = []
    safety = report.get("safety", {})
    strokes = safety.get("strokes", {})
    by_state = strokes.get("while_not_running_by_state") or {}
    lines.append(
        f"strokes while not running {report['strokes_while_not_running']}"
        + (f"  ({', '.join(f'{k} {v}' for k, v in by_state.items())})" if by_state else "")
        + f"  of {strokes.get('strokes', 0)} strokes"
        + (f"; {strokes['while_node_dead_before_watchdog']} by the MCU before its watchdog "
           "after a kill" if strokes.get("while_node_dead_before_watchdog") else "")
    )  # fmt: skip
    stops = safety.get("belt_stops", {})
    by_cause = stops.get("by_cause") or {}
    lines.append(
        f"belt stop (ms)    max {report['belt_stop_ms']}  (limit {stops.get('limit_ms')}; "
        + (", ".join(f"{k} {v}" for k, v in by_cause.items()) or "no stops")
        + f"; {stops.get('over_limit', 0)} over the limit)"
    )
    lines.append(f"ran off the belt  {report['ran_off_belt']}  (recorded run-out "
                 f"{report.get('run_out', 0)}: carried past the reject diverter by a stop)")
    late = report.get("world_late_inputs")
    if late and late.get("count"):
        lines.append(f"world late inputs {late['count']} (max {late['max_ms']} ms: the "
                     "simulator's truth trailed the devices)")  # fmt: skip
    fc = report.get("fault_counters") or {}
    if fc.get("node_kills"):
        lines.append(f"node kills        {fc['node_kills']}, restarts {fc['node_restarts']}")
    if fc.get("outbox_full_windows"):
        lines.append(
            f"outbox full       {fc['outbox_full_windows']} windows, {fc['outbox_full_s']} s"
        )
    flood = fc.get("command_flood")
    if flood:
        lines.append(
            f"command flood     sent {flood['sent']}, answered {flood['answered']}, refused "
            f"{flood['refused']}, no answer {flood['no_answer']}"
        )
    rss = report.get("node_rss") or {}
    if rss.get("samples"):
        lines.append(
            f"node rss          peak {rss.get('peak_mb')} MB, growth {rss.get('max_growth_mb')} MB"
            f" ({len(rss['samples'])} samples)"
        )
    return lines


def _fmt(v: float | None) -> str:
    return f"{v:8.2f}" if v is not None else "     n/a"
