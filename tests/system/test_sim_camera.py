"""`wolfpack sim --camera-only`: the simulated camera as the node's only label source (the node
has no scanner). Every label routed is the parcel's own (0 mis-sorted), no parcel is lost, no
record is a phantom, and the report scores the camera against the world's truth."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from edge.sim.run import CellSimulation, SimOptions


@pytest.mark.timeout(150)
def test_the_camera_alone_routes_only_parcels_own_labels(tmp_path: Path):
    lines: list[str] = []
    options = SimOptions(
        rate_pph=6_000.0,
        duration_s=12.0,
        seed=3,
        camera_only=True,
        camera_fps=15.0,
        workdir=tmp_path,
        drain_timeout_s=15.0,
        progress=lines.append,
    )
    start = time.monotonic()
    report = CellSimulation(options).run()
    wall = time.monotonic() - start
    cam = report["camera"]
    sources = report["label_source"]
    print(f"wall {wall:.1f} s; label sources {sources}; camera {cam}")
    text = str({k: report[k] for k in ("mis_sorted", "lost", "records_unmatched", "rejected")})
    assert set(sources) <= {"camera", "none"}, sources  # no scanner on this node
    assert sources.get("camera", 0) > 0, (sources, lines[-5:])
    assert report["mis_sorted"] == 0, text
    assert report["lost"] == 0, text
    assert report["records_unmatched"]["count"] == 0, text  # no phantom, no second record
    assert cam["labels"] == sources["camera"] and cam["labels_wrong"] == 0, cam
    assert cam["fps"] is not None and cam["fps"] > 0, cam
    assert cam["size_error_mm"]["n"] > 0 and cam["size_error_mm"]["p50"] < 40, cam
    assert cam["class_accuracy"] is not None and cam["class_accuracy"] > 0.7, cam
    assert 0 < cam["legible_in_view"] <= report["legible"], cam
