"""Modbus master benchmark: our master vs libmodbus (C) and pymodbus's clients, same PLC.

One command: ``.venv/bin/python bench/modbus.py``. It starts the simulated conveyor PLC
(``wolfpack sim plc``) in a child process on loopback (TCP and an RTU pty at a modelled
115200 baud), then measures from this process:

1. transactions/s and CPU per transaction (this process's CPU time / transactions) for the
   same read (10 holding registers) by: our master (``ModbusDevice`` on the lean link),
   libmodbus 3.1 from Debian's libmodbus5 through ctypes, pymodbus's sync client and
   pymodbus's async client; ratios against libmodbus. The PLC's turnaround is 0 here so the
   clients' own cost shows; the server is Python too and caps everyone alike.
2. the poll-cycle time of a 200-tag register map over RTU at 115200 baud 8E1 against its
   wire-time limit: the characters of every planned request and answer at 11 bits each plus
   the 3.5-character (1.75 ms) silent interval before each request. For contrast, the same
   map read one request per tag (what many gateways do).

Each figure is the median of ``--repeat`` runs (the machine is shared: CPU figures move).
"""

from __future__ import annotations

import argparse
import asyncio
import ctypes
import ctypes.util
import logging
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from firmware_bridge.modbus.config import ModbusConfig  # noqa: E402
from firmware_bridge.modbus.datatypes import Table  # noqa: E402
from firmware_bridge.modbus.device import ModbusDevice  # noqa: E402
from firmware_bridge.modbus.link import open_link  # noqa: E402
from firmware_bridge.modbus.planner import ReadRequest  # noqa: E402

ADDRESS, COUNT, UNIT = 100, 10, 1
BAUD = 115200


def start_plc(rtu: Path) -> tuple[subprocess.Popen[str], int]:
    proc = subprocess.Popen(
        [sys.executable, "-m", "edge.cli.main", "--log-level", "warning", "sim", "plc",
         "--port", "0", "--rtu", str(rtu), "--baud", str(BAUD), "--turnaround-ms", "0"],
        cwd=ROOT, stdout=subprocess.PIPE, text=True,
    )  # fmt: skip
    assert proc.stdout is not None
    match = re.search(r":(\d+) units", proc.stdout.readline())
    proc.stdout.readline()
    if match is None:
        proc.kill()
        raise SystemExit("the simulated PLC did not start")
    return proc, int(match.group(1))


def measure(op: Callable[[], object], seconds: float) -> tuple[float, float]:
    """Run ``op`` for about ``seconds``; return (transactions/s, CPU microseconds per tx)."""
    for _ in range(50):
        op()
    n = 0
    cpu0, t0 = time.process_time(), time.perf_counter()
    deadline = t0 + seconds
    while True:
        for _ in range(100):
            op()
        n += 100
        if time.perf_counter() >= deadline:
            break
    wall, cpu = time.perf_counter() - t0, time.process_time() - cpu0
    return n / wall, cpu / n * 1e6


# -- the clients -------------------------------------------------------------------------------


def ours(port: int) -> tuple[Callable[[], object], Callable[[], None]]:
    cfg = ModbusConfig.model_validate(
        {"devices": [{"name": "plc", "tcp": {"host": "127.0.0.1", "port": port},
                      "tags": [{"name": "r", "table": "holding_register", "address": 0}]}]}
    ).devices[0]  # fmt: skip
    dev = ModbusDevice(cfg, open_link(cfg.link))
    req = ReadRequest(Table.HOLDING_REGISTER, ADDRESS, COUNT, ())

    def op() -> object:
        regs = dev.read_registers(req)
        assert regs[0] == ADDRESS
        return regs

    return op, dev.link.close


def libmodbus(port: int) -> tuple[Callable[[], object], Callable[[], None]]:
    name = ctypes.util.find_library("modbus") or "libmodbus.so.5"
    lib = ctypes.CDLL(name)
    lib.modbus_new_tcp.restype = ctypes.c_void_p
    lib.modbus_new_tcp.argtypes = [ctypes.c_char_p, ctypes.c_int]
    for fn in ("modbus_set_slave", "modbus_connect", "modbus_read_registers"):
        getattr(lib, fn).restype = ctypes.c_int
    lib.modbus_set_slave.argtypes = [ctypes.c_void_p, ctypes.c_int]
    lib.modbus_connect.argtypes = [ctypes.c_void_p]
    lib.modbus_read_registers.argtypes = [
        ctypes.c_void_p,
        ctypes.c_int,
        ctypes.c_int,
        ctypes.POINTER(ctypes.c_uint16),
    ]
    lib.modbus_close.argtypes = lib.modbus_free.argtypes = [ctypes.c_void_p]
    ctx = lib.modbus_new_tcp(b"127.0.0.1", port)
    lib.modbus_set_slave(ctx, UNIT)
    if lib.modbus_connect(ctx) != 0:
        raise SystemExit("libmodbus could not connect")
    buf = (ctypes.c_uint16 * COUNT)()

    def op() -> object:
        if lib.modbus_read_registers(ctx, ADDRESS, COUNT, buf) != COUNT:
            raise RuntimeError("libmodbus read failed")
        assert buf[0] == ADDRESS
        return buf

    def close() -> None:
        lib.modbus_close(ctx)
        lib.modbus_free(ctx)

    return op, close


def pymodbus_sync(port: int) -> tuple[Callable[[], object], Callable[[], None]]:
    from pymodbus.client import ModbusTcpClient

    client = ModbusTcpClient("127.0.0.1", port=port)
    client.connect()

    def op() -> object:
        rr = client.read_holding_registers(ADDRESS, count=COUNT, device_id=UNIT)
        assert rr.registers[0] == ADDRESS
        return rr

    return op, client.close


def pymodbus_async(port: int, seconds: float) -> tuple[float, float]:
    from pymodbus.client import AsyncModbusTcpClient

    async def main() -> tuple[float, float]:
        client = AsyncModbusTcpClient("127.0.0.1", port=port)
        await client.connect()
        for _ in range(50):
            await client.read_holding_registers(ADDRESS, count=COUNT, device_id=UNIT)
        n = 0
        cpu0, t0 = time.process_time(), time.perf_counter()
        while time.perf_counter() < t0 + seconds:
            for _ in range(100):
                rr = await client.read_holding_registers(ADDRESS, count=COUNT, device_id=UNIT)
                assert rr.registers[0] == ADDRESS
            n += 100
        wall, cpu = time.perf_counter() - t0, time.process_time() - cpu0
        client.close()
        return n / wall, cpu / n * 1e6

    return asyncio.run(main())


# -- the 200-tag RTU map -----------------------------------------------------------------------

TYPES = ["uint16", "int16", "float32", "int32", "uint16", "float64", "uint32", "uint16"]


def map_200(rtu: Path, *, per_tag: bool) -> ModbusConfig:
    """200 tags of mixed types over the PLC's data memory, a few unused words between some."""
    tags, address = [], 100
    for i in range(200):
        dtype = TYPES[i % len(TYPES)]
        tags.append(
            {
                "name": f"t{i:03d}",
                "table": "holding_register",
                "address": address,
                "type": dtype,
                "order": ["ABCD", "CDAB", "BADC", "DCBA"][i % 4],
            }
        )
        address += {"16": 1, "32": 2, "64": 4}[dtype[-2:]] + (1 if i % 25 == 24 else 0)
    dev = {"name": "plc", "rtu": {"port": str(rtu), "baud": BAUD, "parity": "E"},
           "unit_id": UNIT, "timeout_ms": 1000, "max_gap": 1,
           "max_registers": 1 if per_tag else 125, "tags": tags}  # fmt: skip
    if per_tag:
        dev["max_gap"] = 0
        dev["max_registers"] = 4
    return ModbusConfig.model_validate({"devices": [dev]})


def wire_limit(dev: ModbusDevice) -> float:
    assert dev.cfg.rtu is not None
    char_s, gap = dev.cfg.rtu.char_s, dev.cfg.rtu.interframe_s
    total = 0.0
    for req in dev.plan:
        answer = 5 + (2 * req.count if not req.table.is_bits else (req.count + 7) // 8)
        total += (8 + answer) * char_s + gap
    return total


def cycle(rtu: Path, per_tag: bool, repeat: int) -> tuple[int, float, float]:
    cfg = map_200(rtu, per_tag=per_tag).devices[0]
    dev = ModbusDevice(cfg, open_link(cfg.link))
    if per_tag:  # one request per tag: plan each tag alone
        dev.plan = [r for name in (t.name for t in cfg.tags) for r in dev.plan_for([name])]
    dev.poll()
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        values = dev.poll()
        times.append(time.perf_counter() - t0)
        assert all(v.quality.value == "good" for v in values.values()), values
    dev.link.close()
    return len(dev.plan), statistics.median(times), wire_limit(dev)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=1.5, help="per measurement")
    parser.add_argument("--repeat", type=int, default=3, help="runs per figure (median)")
    args = parser.parse_args()
    logging.disable(logging.WARNING)
    with tempfile.TemporaryDirectory() as tmp:
        rtu = Path(tmp) / "plc-rtu"
        proc, port = start_plc(rtu)
        try:
            rows: dict[str, list[tuple[float, float]]] = {}
            clients: dict[str, Callable[[], tuple[float, float]]] = {}
            for name, factory in (("our master (lean link)", ours), ("libmodbus 3.1 (C)",
                                  libmodbus), ("pymodbus sync client", pymodbus_sync)):  # fmt: skip

                def run(factory=factory) -> tuple[float, float]:
                    op, close = factory(port)
                    try:
                        return measure(op, args.seconds)
                    finally:
                        close()

                clients[name] = run
            clients["pymodbus async client"] = lambda: pymodbus_async(port, args.seconds)
            for _ in range(args.repeat):  # interleaved, so drift hits every client alike
                for name, run in clients.items():
                    rows.setdefault(name, []).append(run())
            report_tx(rows)
            planned = cycle(rtu, per_tag=False, repeat=max(5, args.repeat))
            naive = cycle(rtu, per_tag=True, repeat=1)
            report_cycle(planned, naive)
        finally:
            proc.terminate()
            proc.wait(10)


def report_tx(rows: dict[str, list[tuple[float, float]]]) -> None:
    print(f"\nModbus TCP on loopback, read {COUNT} holding registers, one request in flight, "
          f"median of {len(next(iter(rows.values())))} runs (cpus: {os.cpu_count()})")  # fmt: skip
    peer = statistics.median(r[0] for r in rows["libmodbus 3.1 (C)"])
    head = f"{'client':26} {'tx/s':>9} {'CPU us/tx':>10} {'vs libmodbus':>13}"
    print(head + "\n" + "-" * len(head))
    for name, runs in rows.items():
        rate = statistics.median(r[0] for r in runs)
        cpu = statistics.median(r[1] for r in runs)
        spread = f"  (runs: {', '.join(f'{r[0]:.0f}' for r in runs)})"
        print(f"{name:26} {rate:9.0f} {cpu:10.1f} {rate / peer:12.2f}x{spread}")


def report_cycle(planned: tuple[int, float, float], naive: tuple[int, float, float]) -> None:
    print(f"\n200-tag map over Modbus RTU, modelled {BAUD} baud 8E1 (pty + simulated wire time)")
    head = f"{'plan':28} {'requests':>8} {'cycle ms':>9} {'wire limit ms':>14} {'ratio':>6}"
    print(head + "\n" + "-" * len(head))
    for label, (n, took, limit) in (("planned (ours, max_gap 1)", planned),
                                    ("one request per tag", naive)):  # fmt: skip
        print(f"{label:28} {n:8d} {took * 1e3:9.1f} {limit * 1e3:14.1f} {took / limit:5.2f}x")
    print("goals: our tx/s >= 0.5x libmodbus; planned cycle <= 1.2x its wire-time limit")


if __name__ == "__main__":
    main()
