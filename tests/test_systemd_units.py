"""The shipped systemd unit and its real-time drop-in, checked by systemd's own parser
(`systemd-analyze verify`): a misspelt key is only a warning in a board's journal, where a
technician would never see why the node runs at normal priority."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
UNITS = REPO / "configs" / "systemd"


def _verify(tmp_path: Path, *dropins: str) -> subprocess.CompletedProcess[str]:
    exe = shutil.which("systemd-analyze")
    assert exe, "systemd-analyze missing: scripts/system-deps.sh installs systemd"
    unit = (UNITS / "wolfpack.service").read_text()
    # the board's install path does not exist here: point ExecStart at a real executable
    unit = unit.replace("/opt/wolfpack-edge/.venv/bin/wolfpack", sys.executable)
    (tmp_path / "wolfpack.service").write_text(unit)
    d = tmp_path / "wolfpack.service.d"
    d.mkdir()
    for name in dropins:
        text = (UNITS / name).read_text()
        (d / name.replace("wolfpack-", "")).write_text(text)
    env = {**os.environ, "SYSTEMD_UNIT_PATH": f"{tmp_path}:"}
    return subprocess.run(
        [exe, "verify", "--man=no", str(tmp_path / "wolfpack.service")],
        capture_output=True, text=True, env=env, timeout=60,
    )  # fmt: skip


def test_the_unit_and_the_realtime_dropin_parse_without_a_warning(tmp_path: Path):
    r = _verify(tmp_path, "wolfpack-realtime.conf")
    assert r.returncode == 0 and (r.stdout + r.stderr).strip() == "", r.stdout + r.stderr


def test_a_bad_key_in_a_dropin_is_reported(tmp_path: Path):
    """The check can fail: systemd's parser reads the drop-in and names a bad value."""
    bad = UNITS / "wolfpack-realtime.conf"
    (tmp_path / "bad").mkdir()
    r = _verify(tmp_path / "bad")
    assert r.returncode == 0
    d = tmp_path / "bad" / "wolfpack.service.d"
    (d / "realtime.conf").write_text(bad.read_text() + "CPUSchedulingPriority=high\n")
    r = subprocess.run(
        ["systemd-analyze", "verify", "--man=no", str(tmp_path / "bad" / "wolfpack.service")],
        capture_output=True, text=True, timeout=60,
        env={**os.environ, "SYSTEMD_UNIT_PATH": f"{tmp_path / 'bad'}:"},
    )  # fmt: skip
    assert "realtime.conf" in r.stderr and "priority" in r.stderr, r.stderr
