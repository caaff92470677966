"""`wolfpack sim plc`: the simulated conveyor PLC on Modbus TCP and/or RTU (a pty)."""

from __future__ import annotations

import argparse
import asyncio
import sys


def _units(text: str) -> list[int]:
    try:
        units = [int(part) for part in text.split(",") if part.strip()]
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"expected unit ids like 1,2,3, got {text!r}") from exc
    if not units or any(not 1 <= u <= 247 for u in units):
        raise argparse.ArgumentTypeError(f"unit ids are 1-247, got {text!r}")
    return units


def register(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser(
        "plc",
        help="simulated conveyor PLC on Modbus TCP and RTU (pty)",
        description="Run a simulated conveyor PLC: belt with VFD, photo-eyes, e-stop, "
        "diverters and chute sensors, behind the register map of docs/modbus.md. It "
        "answers on Modbus TCP and, with --rtu, on a pty reached through a stable symlink, "
        "modelling the PLC's turnaround and, on RTU, the wire time at --baud. Fault flags "
        "make it misbehave on purpose.",
        epilog="Example: wolfpack sim plc --port 5020 --rtu /tmp/wp-plc-rtu --units 1,2,3; "
        "then: mbpoll -m tcp -p 5020 -a 1 -t 3:float -B -r 1 -c 1 127.0.0.1",
    )
    parser.add_argument("--host", default="127.0.0.1", help="TCP address (default 127.0.0.1)")
    parser.add_argument(
        "--port", type=int, default=5020, help="TCP port; 0 picks a free one (default 5020)"
    )
    parser.add_argument("--no-tcp", action="store_true", help="serve RTU only")
    parser.add_argument("--rtu", metavar="PATH", help="also serve RTU on a pty linked here")
    parser.add_argument("--baud", type=int, default=19200, help="modelled RTU baud rate")
    parser.add_argument("--parity", choices=["N", "E", "O"], default="E", help="RTU parity")
    parser.add_argument(
        "--units", type=_units, default=[1], help="unit ids answered, e.g. 1,2,3 (default 1)"
    )
    parser.add_argument(
        "--turnaround-ms", type=float, default=1.0, help="PLC processing time per request"
    )
    parser.add_argument(
        "--comm-watchdog-ms", type=int, default=0, metavar="MS",
        help="stop the belt (quick stop) when the master's heartbeat register (holding "
        "register 10) has not changed for this long, as a PLC configured for communication "
        "loss does; 0 = off (default)",
    )  # fmt: skip
    faults = parser.add_argument_group("faults")
    faults.add_argument("--no-answer", action="store_true", help="never answer (a dead PLC)")
    faults.add_argument(
        "--no-answer-unit", type=int, action="append", default=[], metavar="UNIT",
        help="this unit id stays silent (repeatable)",
    )  # fmt: skip
    faults.add_argument(
        "--exception", type=int, metavar="CODE", help="answer every request with this "
        "Modbus exception code (2 = illegal data address, 4 = device failure, 6 = busy)",
    )  # fmt: skip
    faults.add_argument("--slow-ms", type=float, default=0.0, help="extra delay per answer")
    faults.add_argument("--estop", action="store_true", help="start with the e-stop pressed")
    faults.add_argument("--vfd-fault", type=int, default=0, metavar="CODE", help="VFD fault")
    parser.add_argument("--duration", type=float, help="stop after this many seconds")
    parser.set_defaults(handler=_run)


def _run(args: argparse.Namespace) -> int:
    from sim_hardware.plc import PlcSimulator

    if not 0 <= args.comm_watchdog_ms <= 65535:
        print("wolfpack sim plc: --comm-watchdog-ms must be 0..65535", file=sys.stderr)
        return 2
    if args.no_tcp and not args.rtu:
        print("wolfpack sim plc: --no-tcp needs --rtu PATH", file=sys.stderr)
        return 2
    sim = PlcSimulator(
        host=args.host,
        port=None if args.no_tcp else args.port,
        rtu_link=args.rtu,
        baud=args.baud,
        parity=args.parity,
        units=args.units,
        turnaround_s=args.turnaround_ms / 1000,
        comm_watchdog_ms=args.comm_watchdog_ms,
    )
    plan = sim.fault()
    plan.no_answer = args.no_answer
    plan.exception = args.exception
    plan.delay_s = args.slow_ms / 1000
    for unit in args.no_answer_unit:
        sim.fault(unit).no_answer = True
    for unit in args.units:
        world = sim.world(unit)
        world.estop = args.estop
        world.vfd_fault_code = args.vfd_fault

    def ready(s: PlcSimulator) -> None:
        if s.tcp is not None:
            print(f"plc: modbus tcp on {args.host}:{s.tcp.port} units {args.units}", flush=True)
        if args.rtu:
            print(f"plc: modbus rtu on {args.rtu} ({args.baud} baud {args.parity})", flush=True)

    async def main() -> None:
        task = asyncio.create_task(sim.run_forever(ready))
        if args.duration is not None:
            await asyncio.sleep(args.duration)
            sim.stop_soon()
        await task

    try:
        asyncio.run(main())
    except OSError as exc:
        where = f"{args.host}:{args.port}" if not args.no_tcp else args.rtu
        print(f"wolfpack sim plc: cannot serve on {where}: {exc}", file=sys.stderr)
        return 1
    return 0
