"""mbpoll, an independent C client (libmodbus), reads the simulated PLC and agrees with the
world model, 32-bit float included, over TCP and RTU."""

from __future__ import annotations

import re
import shutil
import struct
import subprocess
import time

import pytest

from sim_hardware.plc import PlcSimulator
from sim_hardware.plc.register_map import HR_SPEED_SETPOINT, IR_SPEED


def mbpoll(*args: str) -> list[str]:
    if shutil.which("mbpoll") is None:
        pytest.fail("mbpoll is not installed: run scripts/system-deps.sh (Debian package)")
    out = subprocess.run(
        ["mbpoll", "-1", "-0", "-q", *args], capture_output=True, text=True, timeout=20
    )
    assert out.returncode == 0, out.stdout + out.stderr
    return re.findall(r"^\[\d+\]:\s+(\S+)", out.stdout, re.M)


def settle(plc: PlcSimulator, setpoint: float) -> None:
    regs = struct.unpack(">HH", struct.pack(">f", setpoint))
    image = plc.engine.images[1]
    image.set("holding_register", HR_SPEED_SETPOINT, list(regs))
    image.set("coil", 0, [1])
    deadline = time.monotonic() + 10
    while plc.world(1).speed != pytest.approx(setpoint) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert plc.world(1).speed == pytest.approx(setpoint)
    time.sleep(0.05)  # one more tick publishes the settled speed


def test_mbpoll_reads_the_belt_speed_float_over_tcp(plc):
    settle(plc, 1.75)
    tcp = ["-m", "tcp", "-p", str(plc.port), "-a", "1"]
    speed = mbpoll(*tcp, "-t", "3:float", "-B", "-r", str(IR_SPEED), "-c", "1", "127.0.0.1")
    assert float(speed[0]) == pytest.approx(plc.world(1).speed)
    setpoint = mbpoll(*tcp, "-t", "4:float", "-B", "-r", "0", "-c", "1", "127.0.0.1")
    assert float(setpoint[0]) == 1.75
    flags = mbpoll(*tcp, "-t", "1", "-r", "0", "-c", "3", "127.0.0.1")
    status = plc.world(1).status()
    assert flags == [str(int(status.running)), str(int(status.estop)), "0"]


def test_mbpoll_reads_over_rtu_on_the_pty(plc):
    settle(plc, 1.25)
    rtu = ["-m", "rtu", "-b", "115200", "-P", "even", "-a", "1"]
    speed = mbpoll(*rtu, "-t", "3:float", "-B", "-r", "0", "-c", "1", str(plc.rtu.link))
    assert float(speed[0]) == pytest.approx(plc.world(1).speed)
    mm_s = mbpoll(*rtu, "-t", "3", "-r", "2", "-c", "1", str(plc.rtu.link))
    assert int(mm_s[0]) == round(plc.world(1).speed * 1000)


def test_mbpoll_writes_reach_the_world(plc):
    tcp = ["-m", "tcp", "-p", str(plc.port), "-a", "1"]
    subprocess.run(
        ["mbpoll", "-1", "-0", "-q", *tcp, "-t", "0", "-r", "8", "127.0.0.1", "1"],
        check=True, capture_output=True, timeout=20,
    )  # fmt: skip
    time.sleep(0.05)
    assert plc.engine.images[1].commands().diverters[0] is True
