"""Builds firmware/ (both targets and the simavr runner) once per session for these tests."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

FIRMWARE = Path(__file__).resolve().parents[2] / "firmware"
BUILD = FIRMWARE / "build"
ELF = BUILD / "mega2560" / "wolfpack-mcu.elf"
HEX = BUILD / "mega2560" / "wolfpack-mcu.hex"
HOST = BUILD / "host" / "wolfpack-mcu-host"
SIMAVR = BUILD / "simavr" / "wolfpack-simavr"
TESTLIB = BUILD / "host" / "libwpcore.so"


@pytest.fixture(scope="session")
def firmware_make() -> subprocess.CompletedProcess[str]:
    """`make -C firmware all simavr testlib`: a failed build fails every test that needs it."""
    out = subprocess.run(
        ["make", "-C", str(FIRMWARE), "all", "simavr", "testlib"],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert out.returncode == 0, f"make -C firmware failed:\n{out.stdout}\n{out.stderr}"
    return out
