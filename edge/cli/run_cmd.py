"""`wolfpack run CONFIG`: the node on a board (or beside the simulator)."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import hashlib
import logging
import os
import signal
import sys
import threading
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from edge.config.board import BoardBase, BoardConfig
    from edge.config.store import StoredConfig
    from edge.runtime.node import Node


def register(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser(
        "run",
        help="run the node: the machine (sorting line, arm, vehicle) a board config describes",
        description="Load the board config and run the machine its 'machine:' key names "
        "(diverter, the sorting line, when absent; arm; amr) on the node runtime: connect its "
        "devices and the fleet link, and run its controller and the safety machine until "
        "SIGINT or SIGTERM; then stop the machine, make its devices safe, publish 'offline' "
        "and flush the outbox. The machine starts only on the 'start' command (MQTT: "
        "cmd/start) or, with --start, once at boot when it is ready; after an e-stop or a "
        "fault it needs a 'reset' and a 'start'. Under systemd (Type=notify, WatchdogSec=) it "
        "reports READY and pings the watchdog (docs/runtime.md).",
        epilog="Examples: wolfpack run /etc/wolfpack/config.yaml --health-file "
        "/run/wolfpack/health.json;  wolfpack run --config-dir /etc/wolfpack",
    )
    parser.add_argument("config", nargs="?", help="board config file (YAML)")
    parser.add_argument(
        "--config-dir",
        metavar="DIR",
        help="run the 'active' config of a board's config directory (what 'wolfpack config "
        "flash --to DIR' writes); writes DIR/node.pid and DIR/health.json, and on SIGHUP "
        "re-executes itself to load the new active config (docs/config-flashing.md)",
    )
    parser.add_argument(
        "--start",
        action="store_true",
        help="start the machine once it is ready at boot (simulator, supervised setups)",
    )
    parser.add_argument(
        "--health-file",
        metavar="FILE",
        help="keep FILE updated with the node's health as JSON (read by 'config flash')",
    )
    parser.add_argument(
        "--config-version",
        metavar="V",
        help="the version shown in the state topic (default: a hash of the file)",
    )
    parser.set_defaults(handler=_run)


def _run(args: argparse.Namespace) -> int:
    from edge.config import ConfigError, load_board_config
    from edge.logsetup import setup_logging
    from edge.runtime.machine import MachineError

    if (args.config is None) == (args.config_dir is None):
        print("give either a config FILE or --config-dir DIR (not both)")
        return 2
    if args.config_dir is not None:
        from edge.config.store import ConfigStore, StoreError
        from edge.runtime.config_apply import HEALTH_NAME

        root = Path(args.config_dir)
        # a SIGHUP that comes while starting up means "reload" too, never "die"
        signal.signal(signal.SIGHUP, lambda *_: _RELOAD.set())
        if args.config_version:
            print("note: --config-version is ignored with --config-dir (the store's version)")
        try:
            active = ConfigStore(root).active()
        except StoreError as exc:
            print(f"error: {exc}")
            return 1
        if active is None:
            print(
                f"{root}: no active config "
                f"(flash one with 'wolfpack config flash FILE --to {root}')"
            )
            return 1
        path = active.config_path
        args.config_version = str(active.stamp.version)
        args.health_file = args.health_file or str(root / HEALTH_NAME)
        refused = _admit_active(root, active)
        if isinstance(refused, str):
            print(f"error: {refused}")
            return _failed_start(args, refused)
        board = refused
    else:
        path = Path(args.config)
        try:
            board = load_board_config(path)
        except ConfigError as exc:
            print(exc.render())
            return _failed_start(args, f"invalid config: {exc.render()}")
    if args.node_id is None:
        setup_logging(node=board.node.id, json_lines=args.log_json, level=args.log_level)
    version = args.config_version or hashlib.sha256(_read(path)).hexdigest()[:12]
    try:
        node = build_node(board, version, args.health_file, args.start)
    except MachineError as exc:
        print(f"{path}: {exc}")
        return _failed_start(args, str(exc))
    if args.config_dir is None:
        return asyncio.run(_serve(node))
    return _run_from_store(node, Path(args.config_dir), board, int(version), args.health_file)


def build_node(board: BoardBase, version: str, health_file: str | None, start: bool) -> Node:
    """The runtime hosting the machine ``board.machine`` names (edge/runtime/registry.py)."""
    from edge.runtime.machine import MachineContext, MachineError
    from edge.runtime.node import Node
    from edge.runtime.registry import kind

    k = kind(board.machine)
    if k.name == "diverter" and getattr(board, "cell", None) is None:
        raise MachineError("the config has no 'cell:' section; a diverter line needs one")
    health = Path(health_file) if health_file else None
    ctx = MachineContext(config_version=version, health_file=health, start_when_ready=start)
    try:
        machine = k.create(board, ctx)
    except (ValueError, OSError) as exc:  # the machine refuses this config, or a path
        raise MachineError(f"machine {k.name!r} cannot start: {exc}") from None
    return Node(board, machine, config_version=version, health_file=health_file,
                start_when_ready=start)  # fmt: skip


def _read(path: Path) -> bytes:
    from edge.config.limits import read_limited

    try:
        return read_limited(path)
    except Exception:  # it was read a moment ago; a vanished file only loses the hash
        return str(path).encode()


def _admit_active(root: Path, active: StoredConfig) -> BoardConfig | str:
    """The store's active config checked as a flash checks it (size, signature, then parse).

    The version is not checked against the highest accepted one: the store's own rollback
    may have made an older version active. Returns the BoardConfig, or the refusal as text.
    """
    from edge.config import ConfigError
    from edge.config.flash import admit, read_signature_file
    from edge.config.signing import SignatureError
    from edge.config.store import SIGNATURE_NAME, ConfigStore, StoreError

    name = str(active.config_path)
    try:
        signature = read_signature_file(active.path / SIGNATURE_NAME)
        admitted = admit(
            active.content, signature, ConfigStore(root), name, this_node=None, check_version=False
        )
    except ConfigError as exc:
        return f"invalid config: {' '.join(exc.render().split())}"
    except (SignatureError, StoreError) as exc:
        return f"refused by the signature policy: {exc}"
    return admitted.config


def _run_from_store(node: object, root: Path, board: object, version: int, health: str) -> int:
    """Run the store's active config; on SIGHUP shut down gracefully and re-execute."""
    from edge.runtime import config_apply

    ctx = config_apply.NodeConfigContext(root, board, version)
    config_apply.set_context(ctx)
    pid_file = root / config_apply.PID_NAME
    try:
        pid_file.write_text(f"{os.getpid()}\n")
    except OSError as exc:
        print(f"error: {pid_file}: cannot write the pid file: {exc.strerror or exc}")
        return 1
    ctx.reload = lambda: os.kill(os.getpid(), signal.SIGHUP)
    node._write_health(force=True)  # type: ignore[attr-defined]  # 'boot' on this version
    config_apply.start_pending_watch(ctx, Path(health))
    code = asyncio.run(_serve(node, _RELOAD))
    signal.signal(signal.SIGHUP, lambda *_: _RELOAD.set())  # asyncio put back the default
    if not _RELOAD.is_set() and code != 0:
        # the node failed while a pushed config was on trial: roll back and come back
        if config_apply.fail_pending(root, version, "the node failed (see its log)"):
            _RELOAD.set()
    if _RELOAD.is_set():
        _reexec()
    with contextlib.suppress(OSError, ValueError):
        if int(pid_file.read_text().strip()) == os.getpid():
            pid_file.unlink()
    return code


_RELOAD = threading.Event()


def _reexec() -> None:
    logging.getLogger("wolfpack").warning("reloading: re-executing %s", " ".join(sys.orig_argv))
    for handler in logging.getLogger().handlers:
        handler.flush()
    sys.stdout.flush()
    sys.stderr.flush()
    os.execv(sys.executable, sys.orig_argv)


def _failed_start(args: argparse.Namespace, why: str) -> int:
    """A --config-dir node whose pushed config cannot even start rolls back and re-executes."""
    if args.config_dir is None:
        return 1
    from edge.config.store import ConfigStore, StoreError
    from edge.runtime import config_apply

    root = Path(args.config_dir)
    try:
        active = ConfigStore(root).active()
        if active is not None and config_apply.fail_pending(root, active.stamp.version, why):
            _reexec()
    except (StoreError, OSError) as exc:
        print(f"error: {root}: cannot roll back a pushed config: {exc}")
    return 1


async def _serve(node: object, reload: threading.Event | None = None) -> int:
    from edge.runtime.node import Node

    assert isinstance(node, Node)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    if reload is not None:
        if reload.is_set():  # asked to reload while starting up
            stop.set()

        def on_hup() -> None:
            reload.set()
            stop.set()

        loop.add_signal_handler(signal.SIGHUP, on_hup)
    try:
        await node.run(stop)
    except Exception:
        logging.getLogger("wolfpack").exception("the node failed")
        return 1
    return 0
