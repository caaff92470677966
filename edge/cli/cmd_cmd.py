"""`wolfpack cmd`: an operator's command to one node (start, stop, reset, status, ping).

It publishes the command as the brain SDK does (``{"request_id", "ts", "args"}``, QoS 1, not
retained), waits for the node's ``cmd_result`` and prints it. The exit code says how it went,
so a script can act on it: 0 done, 3 refused by the node, 4 no answer in time, 5 the broker
was unreachable, refused the credential or hung up (the ACL denies this user the command).
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import sys
import threading
import time
import uuid
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from fleet_link.brain import Brain

EXIT_OK = 0
EXIT_USAGE = 2
EXIT_REFUSED = 3
EXIT_TIMEOUT = 4
EXIT_BROKER = 5
OPERATOR_COMMANDS = ("start", "stop", "reset", "status", "ping")
PASSWORD_ENV = "WOLFPACK_MQTT_PASSWORD"


def register(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser(
        "cmd",
        help="send an operator command (start, stop, reset, status, ping) to a node and wait",
        description="Send one operator command to one node through the site's broker, wait for "
        "its result and print it. With the shipped ACL (configs/mosquitto/acl) an operator "
        "credential (operator-<name>) may send exactly these commands.\n\n"
        "exit codes: 0 done; 2 bad arguments; 3 refused by the node (the reason is printed); "
        "4 no answer within --timeout; 5 broker unreachable, credential refused, or the broker "
        "hung up on the command (the ACL denies it to this user)",
        epilog="examples:\n"
        "  wolfpack cmd status --node cell-07 --site sim --broker 127.0.0.1:1883\n"
        "  wolfpack cmd stop --node cell-07 --site dc-berlin \\\n"
        "      --broker mqtts://mqtt.dc-berlin.example:8883 --ca-file ca.crt \\\n"
        "      --username operator-alice --password-file ~/.wolfpack-operator\n"
        "  wolfpack cmd reset --node cell-07 --site sim --broker 127.0.0.1:1883 --json",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("command", choices=OPERATOR_COMMANDS, help="the command to send")
    parser.add_argument("--node", required=True, help="node id, the 4th topic level")
    parser.add_argument("--site", required=True, help="site id, the 3rd topic level")
    add_broker_options(parser, "operator-<name>: may send start, stop, reset, status, ping")
    parser.add_argument(
        "--timeout",
        type=float,
        default=10.0,
        help="seconds to wait for the node's answer (default: 10)",
    )
    parser.add_argument(
        "--request-id",
        help="request id (default: a new one). Sending an id again gets the first result "
        "again, marked as a replay, and the node does not act again",
    )
    parser.add_argument("--json", action="store_true", help="print the result body as JSON")
    parser.set_defaults(handler=_cmd)


def add_broker_options(parser: argparse.ArgumentParser, user_help: str) -> None:
    """--broker, --username, --password-file, --ca-file: the same for every MQTT command."""
    parser.add_argument(
        "--broker",
        required=True,
        help="HOST:PORT, mqtt://HOST:PORT or mqtts://HOST:PORT (TLS, with --ca-file)",
    )
    parser.add_argument("--username", help=f"broker credential ({user_help})")
    parser.add_argument(
        "--password-file",
        type=Path,
        help=f"file holding the password (or set {PASSWORD_ENV}; never on the command line)",
    )
    parser.add_argument("--ca-file", help="CA certificate that signed an mqtts:// broker")


class UsageError(ValueError):
    """A bad argument, said in one line."""


def broker_url(text: str) -> str:
    """``HOST:PORT`` (or a bare host) as ``mqtt://HOST:PORT``; URLs checked as they are."""
    from fleet_link.config import parse_broker_url

    url = text if "://" in text else f"mqtt://{text}"
    try:
        parse_broker_url(url)
    except ValueError as exc:
        raise UsageError(f"--broker {text!r}: {exc}") from None
    return url


def read_password(args: argparse.Namespace) -> str | None:
    """The password from --password-file, else from the environment; None without one."""
    if args.password_file is None:
        return os.environ.get(PASSWORD_ENV) or None
    try:
        return args.password_file.read_text(encoding="utf-8").strip()
    except (OSError, UnicodeDecodeError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
        raise UsageError(f"--password-file {args.password_file}: {reason}") from None


def _cmd(args: argparse.Namespace) -> int:
    from fleet_link import topics

    prog = f"wolfpack cmd {args.command}"
    try:
        url = broker_url(args.broker)
        topics.check_level(args.site, "--site")
        topics.check_level(args.node, "--node")
        if not 0 < args.timeout <= 3600:
            raise UsageError(f"--timeout {args.timeout}: expected 0 < seconds <= 3600")
        if args.request_id is not None and not 0 < len(args.request_id) <= 128:
            raise UsageError("--request-id: expected 1-128 characters")
        password = read_password(args)
    except (UsageError, ValueError) as exc:
        print(f"{prog}: {exc}", file=sys.stderr)
        return EXIT_USAGE
    return _send(args, prog, url, password)


def _send(args: argparse.Namespace, prog: str, url: str, password: str | None) -> int:
    from fleet_link.brain import Brain

    try:
        brain = Brain(
            url,
            args.site,
            username=args.username,
            password=password,
            ca_file=args.ca_file,
            client_id=f"wolfpack-cmd-{uuid.uuid4().hex[:8]}",
            request_replays=False,  # an operator may not send 'replay' (the ACL hangs up)
        )
    except (ValueError, OSError) as exc:  # a CA file that does not load, say
        print(f"{prog}: {exc}", file=sys.stderr)
        return EXIT_USAGE
    dropped = threading.Event()
    on_disconnect = brain._client.on_disconnect

    def _dropped(*a: Any) -> None:
        dropped.set()
        if on_disconnect is not None:
            on_disconnect(*a)

    brain._client.on_disconnect = _dropped
    try:
        start_brain(brain, min(args.timeout, 10.0))
    except (ConnectionError, OSError, ValueError) as exc:
        print(f"{prog}: cannot connect to {url}: {exc}", file=sys.stderr)
        return EXIT_BROKER
    try:
        dropped.clear()
        rid = args.request_id or f"{args.username or 'cli'}-{uuid.uuid4().hex[:12]}"
        future = brain.send_command(args.node, args.command, {}, request_id=rid)
        deadline = time.monotonic() + args.timeout
        while not future.done() and time.monotonic() < deadline:
            if dropped.is_set():
                print(
                    f"{prog}: the broker closed the connection after the command was sent: "
                    f"the ACL does not let {args.username or 'an anonymous client'} publish "
                    f"cmd/{args.command} of {args.node} on site {args.site} (or the "
                    "connection failed)",
                    file=sys.stderr,
                )
                return EXIT_BROKER
            time.sleep(0.02)
        if not future.done():
            print(f"{prog}: {_no_answer(brain, args)}", file=sys.stderr)
            return EXIT_TIMEOUT
        result = future.result()
    finally:
        brain.stop()
    body: dict[str, Any] = {
        "node": result.node,
        "command": result.command,
        "request_id": result.request_id,
        "ok": result.ok,
    }
    if result.ok:
        body["result"] = result.result
    else:
        body["error"] = result.error or {}
    if result.replayed:
        body["replayed"] = True
    if args.json:
        print(json.dumps(body, indent=2, sort_keys=True))
    else:
        print(render_result(body))
    return EXIT_OK if result.ok else EXIT_REFUSED


def start_brain(brain: Brain, wait_s: float) -> None:
    """Start a Brain and wait until it is subscribed; raise ConnectionError saying why not,
    at once when the broker refuses the credential (rather than after ``wait_s``)."""
    refused: list[str] = []
    on_connect = brain._client.on_connect

    def _on_connect(client: Any, userdata: Any, flags: Any, reason: Any, props: Any) -> None:
        if getattr(reason, "is_failure", False):
            refused.append(str(reason))
        on_connect(client, userdata, flags, reason, props)

    brain._client.on_connect = _on_connect
    try:  # a refused or unroutable address said at once, not after wait_s
        socket.create_connection((brain.host, brain.port), timeout=min(wait_s, 5.0)).close()
    except OSError as exc:
        raise ConnectionError(exc.strerror or str(exc) or type(exc).__name__) from None
    brain.start(wait_s=0)
    deadline = time.monotonic() + wait_s
    while not brain.connected.wait(0.05):
        if refused or time.monotonic() > deadline:
            brain.stop()
            if refused:
                raise ConnectionError(f"the broker refused the credential: {refused[0]}")
            raise ConnectionError(f"no connection within {wait_s:g} s (unreachable?)")


def _no_answer(brain: Brain, args: argparse.Namespace) -> str:
    state = brain.nodes.get(args.node)
    head = f"no answer from {args.node} within {args.timeout:g} s"
    if state is None:
        return (
            f"{head}; the broker holds no state of {args.node} on site {args.site} either "
            "(right --site and --node?)"
        )
    if state.status != "online":
        reason = state.body.get("reason", "")
        since = time.strftime("%H:%M:%S", time.localtime(state.received))
        return f"{head}; its last state is {state.status} ({reason}), known since {since}"
    return f"{head}; it is online (busy, or its command lane is full): try again"


def render_result(body: dict[str, Any]) -> str:
    """A result as a person reads it: one line, and a small table for status and ping."""
    from fleet_link.monitor import printable

    node, name = printable(str(body["node"])), printable(str(body["command"]))
    lines: list[str] = []
    if body.get("ok"):
        result = body.get("result") or {}
        state = result.get("state")
        head = f"{node}: {name} done" + (f", state {printable(str(state))}" if state else "")
        lines.append(head)
        if name in ("status", "ping"):
            lines.extend(_table(result))
    else:
        err = body.get("error") or {}
        code = printable(str(err.get("code", "?")))
        lines.append(
            f"{node}: {name} refused ({code}): {printable(str(err.get('message', '')), 300)}"
        )
    if body.get("replayed"):
        lines.append(
            f"note: request id {printable(str(body.get('request_id')))} was answered before; "
            "this is that first result again, the node did not act again"
        )
    return "\n".join(lines)


def _table(result: dict[str, Any]) -> list[str]:
    rows: list[tuple[str, str]] = []

    def walk(prefix: str, value: Any) -> None:
        if isinstance(value, dict) and value and len(rows) < 200:
            for key in sorted(value, key=str):
                walk(f"{prefix}.{key}" if prefix else str(key), value[key])
        elif isinstance(value, list):
            rows.append((prefix, ", ".join(str(v) for v in value) or "-"))
        else:
            rows.append((prefix, "-" if value is None or value == {} else str(value)))

    walk("", result)
    from fleet_link.monitor import printable

    width = max((len(printable(k, 48)) for k, _ in rows), default=0)
    return [f"  {printable(k, 48).ljust(width)}  {printable(v, 120)}" for k, v in rows]
