"""`wolfpack sim --camera`: the simulated camera as the node's second label source. While the
scanner is silent, labels come from the camera; no parcel is lost."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from edge.sim.faults import parse_faults
from edge.sim.run import CellSimulation, SimOptions


@pytest.mark.timeout(120)
def test_camera_reads_labels_while_the_scanner_is_silent(tmp_path: Path):
    lines: list[str] = []
    options = SimOptions(
        rate_pph=6_000.0,
        duration_s=15.0,
        faults=parse_faults("scanner-silent@2+8"),
        seed=3,
        unreadable_fraction=0.0,
        camera=True,
        camera_fps=8.0,
        workdir=tmp_path,
        drain_timeout_s=15.0,
        progress=lines.append,
    )
    start = time.monotonic()
    report = CellSimulation(options).run()
    wall = time.monotonic() - start
    records = [r for r in (tmp_path / "records.jsonl").read_text().splitlines() if r.strip()]
    sources = report["label_source"]
    print(f"wall {wall:.1f} s; label sources {sources}; lost {report['lost']}")
    assert sources.get("camera", 0) > 0, (sources, lines[-5:])
    assert records
    text = str(report)
    assert report["lost"] == 0, text
