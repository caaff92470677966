"""The shipped Grafana dashboard (configs/grafana/wolfpack-cell.json): its PromQL parses with
Prometheus' own parser (promtool), and names only metrics a node actually serves, read from
the /metrics of a node with every part (tests/system/test_prometheus.py evaluates each
expression on a real Prometheus scraping a simulated cell)."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
from prometheus_client.parser import text_string_to_metric_families

from edge.cell.events import PublishRecord
from tests.edge.node.test_metrics import equipped_node, record, scrape, started

REPO = Path(__file__).resolve().parents[3]
DASHBOARD = REPO / "configs" / "grafana" / "wolfpack-cell.json"
GRAFANA_VARS = {"$__rate_interval": "1m", "$__interval": "15s", "$__range": "1h",
                "$instance": ".*"}  # fmt: skip
# PromQL words that are not metric names (functions are told apart by their "(")
KEYWORDS = {"by", "without", "on", "ignoring", "group_left", "group_right", "bool", "and", "or",
            "unless", "offset", "inf", "nan"}  # fmt: skip


def panels() -> list[dict[str, Any]]:
    return list(json.loads(DASHBOARD.read_text())["panels"])


def exprs() -> list[str]:
    out = []
    for panel in panels():
        for target in panel["targets"]:
            expr = target["expr"]
            for var, value in GRAFANA_VARS.items():
                expr = expr.replace(var, value)
            out.append(expr)
    return out


def metric_names(expr: str) -> set[str]:
    """The metric names a PromQL expression selects: label matchers, ranges, grouping
    clauses and strings removed, then every identifier that is not a function or keyword."""
    text = re.sub(r'"(?:[^"\\]|\\.)*"', "", expr)
    text = re.sub(r"\{[^}]*\}", " ", text)
    text = re.sub(r"\[[^\]]*\]", " ", text)
    text = re.sub(r"\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", " ", text)
    names = set()
    for m in re.finditer(r"(?<![\w.])([A-Za-z_:][\w:]*)\s*(\()?", text):
        if m.group(2) is None and m.group(1).lower() not in KEYWORDS:
            names.add(m.group(1))
    return names


def test_the_name_reader_finds_selectors_not_functions_labels_or_keywords() -> None:
    assert metric_names(
        'histogram_quantile(0.99, sum by (le, stage) (rate(a_bucket{x="y{z}"}[5m]))) / '
        "on (instance) group_left (site) b_info * 60 > bool 1e3"
    ) == {"a_bucket", "b_info"}


def test_the_dashboard_is_a_grafana_dashboard_laid_out_without_overlaps() -> None:
    board = json.loads(DASHBOARD.read_text())
    assert board["uid"] == "wolfpack-cell" and board["schemaVersion"] >= 36
    names = [v["name"] for v in board["templating"]["list"]]
    assert names == ["datasource", "instance"]
    ids = [p["id"] for p in board["panels"]]
    assert len(ids) == len(set(ids))
    cells: dict[tuple[int, int], int] = {}
    for p in board["panels"]:
        g = p["gridPos"]
        assert 0 <= g["x"] and g["x"] + g["w"] <= 24, p["title"]
        for x in range(g["x"], g["x"] + g["w"]):
            for y in range(g["y"], g["y"] + g["h"]):
                assert (x, y) not in cells, f"{p['title']} overlaps panel {cells[(x, y)]}"
                cells[(x, y)] = p["id"]
        assert p["datasource"] == {"type": "prometheus", "uid": "${datasource}"}
        refs = [t["refId"] for t in p["targets"]]
        assert refs and len(refs) == len(set(refs)), p["title"]
    titles = " ".join(p["title"] for p in board["panels"])
    for topic in ("Sorted / min", "Stage latency p50 / p99", "Safety state", "Devices",
                  "Outbox", "MCU link"):  # fmt: skip
        assert topic in titles


def test_every_dashboard_expression_parses_with_promtool(tmp_path: Path) -> None:
    promtool = shutil.which("promtool")
    if promtool is None:
        pytest.fail("promtool is not installed: run scripts/system-deps.sh (Debian 'prometheus')")
    rules = {"groups": [{"name": "dashboard", "rules": [
        {"record": f"wolfpack_dashboard:expr_{i}", "expr": e} for i, e in enumerate(exprs())
    ]}]}  # fmt: skip
    path = tmp_path / "rules.yml"
    path.write_text(json.dumps(rules, indent=1))  # JSON is YAML
    out = subprocess.run([promtool, "check", "rules", str(path)], capture_output=True,
                         text=True, timeout=30)  # fmt: skip
    assert out.returncode == 0, out.stdout + out.stderr
    assert f"SUCCESS: {len(exprs())} rules found" in out.stdout + out.stderr


def test_the_dashboard_names_only_metrics_the_node_serves(tmp_path: Path) -> None:
    with equipped_node(tmp_path) as node:
        url = started(node)
        node._act(PublishRecord(record(1)))
        served = {s.name for fam in text_string_to_metric_families(scrape(url))
                  for s in fam.samples}  # fmt: skip
    used: dict[str, str] = {}
    for expr in exprs():
        names = metric_names(expr)
        assert names, f"no metric in {expr!r}"
        for name in names:
            used.setdefault(name, expr)
    unknown = {name: expr for name, expr in used.items() if name not in served}
    assert not unknown, f"the dashboard names metrics the node does not serve: {unknown}"
    # and it shows what the issue asks for
    wanted = ("wolfpack_parcels_total", "wolfpack_stage_latency_seconds_bucket",
              "wolfpack_safety_state", "wolfpack_device_up", "wolfpack_outbox_depth",
              "wolfpack_mcu_retransmits_total", "wolfpack_camera_process_seconds_sum")  # fmt: skip
    assert set(wanted) <= set(used)
