"""`wolfpack config ...`: validate, sign, trust, flash, show, diff and roll back board configs.

Every failure is one line (or, for an invalid config, its list of located errors) with the
cause, never a traceback: a store with a symlink loop, an unreadable trust directory or a
file that is not a config all end in ``error: WHERE: WHY`` and exit status 2 unless a
command documents another.
"""

from __future__ import annotations

import argparse
import difflib
import getpass
import json
import socket
import sys
import time
from collections.abc import Callable
from dataclasses import replace
from functools import wraps
from pathlib import Path

from edge.config import ConfigError, load_board_config
from edge.config.flash import (
    flash_local,
    read_signature_file,
    signature_path,
)
from edge.config.limits import LimitError, read_limited
from edge.config.schema import SCHEMA_PATH, board_schema_text
from edge.config.signing import (
    MAX_SIGNED_VERSION,
    Signature,
    SignatureError,
    generate_keypair,
    key_id,
    load_private_key,
    load_public_key,
    make_private_dir,
    sign,
    write_file_mode,
)
from edge.config.store import ConfigStore, StoreError, VersionRefused
from edge.config.target import SshTarget, TargetError, parse_target

DEFAULT_AUTHOR = f"{getpass.getuser()}@{socket.gethostname()}"
EXIT_ERROR = 2  # the command could not run: a store, a key or a target that cannot be used

Handler = Callable[[argparse.Namespace], int]


def _one_line_errors(handler: Handler) -> Handler:
    """Turn any error a command can meet in the field into one line and exit status 2."""

    @wraps(handler)
    def run(args: argparse.Namespace) -> int:
        try:
            return handler(args)
        except (StoreError, SignatureError, TargetError, LimitError) as exc:
            print(f"error: {' '.join(str(exc).split())}", file=sys.stderr)
        except ConfigError as exc:
            print(exc.render(), file=sys.stderr)
        except OSError as exc:
            where = f"{exc.filename}: " if exc.filename else ""
            print(f"error: {where}{exc.strerror or exc}", file=sys.stderr)
        return EXIT_ERROR

    return run


def register(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser(
        "config",
        help="validate board configs and export their JSON Schema",
        description="Work with board config files (YAML, one per board).",
    )
    cmds = parser.add_subparsers(dest="config_command", metavar="ACTION")
    cmds.required = True

    validate = cmds.add_parser(
        "validate",
        help="check a config file and report every error with file:line:column",
        description="Check one or more board configs. Every problem is reported with "
        "file:line:column, the key path, the value found and what was expected. "
        "Exit status 0 when all are valid, 1 otherwise.",
    )
    validate.add_argument("files", nargs="+", metavar="FILE", help="YAML config file")
    validate.add_argument("--json", action="store_true", help="print results as JSON lines")
    validate.set_defaults(handler=_one_line_errors(_validate))

    schema = cmds.add_parser(
        "schema",
        help=f"write the JSON Schema of board configs (default: {_rel(SCHEMA_PATH)})",
        description="Write the JSON Schema of board configs, for editor autocompletion "
        "(e.g. '# yaml-language-server: $schema=schema.json').",
    )
    schema.add_argument(
        "--out", type=Path, default=SCHEMA_PATH, help="where to write it ('-' for stdout)"
    )
    # issue 14 (runtime): one schema per machine kind (docs/runtime.md)
    schema.add_argument(
        "--machine",
        default="diverter",
        metavar="KIND",
        help="the machine whose board config it describes: diverter (default), arm, amr; "
        "another kind's default file is configs/schema-KIND.json",
    )
    schema.set_defaults(handler=_one_line_errors(_schema))

    keygen = cmds.add_parser(
        "keygen",
        help="create an ed25519 key pair for signing configs",
        description="Create an ed25519 signing key (PEM, mode 0600) and its public key "
        "(KEY.pub). Copy the .pub to each board with 'wolfpack config trust'.",
    )
    keygen.add_argument("--out", type=Path, required=True, help="private key file to create")
    keygen.add_argument("--signer", default=DEFAULT_AUTHOR, help="who owns this key")
    keygen.set_defaults(handler=_one_line_errors(_keygen))

    sign_cmd = cmds.add_parser(
        "sign",
        help="sign a config for one node as one version (writes FILE.sig beside it)",
        description="Sign the exact bytes of a config with an ed25519 key, for one node and "
        "as one version; the detached signature goes to FILE.sig. Any later edit of FILE "
        "invalidates it; a board refuses it if it is another node, or if it already "
        "accepted this version or a newer one (replay, downgrade).",
    )
    sign_cmd.add_argument("file", type=Path, metavar="FILE")
    sign_cmd.add_argument("--key", type=Path, required=True, help="private key from keygen")
    sign_cmd.add_argument("--signer", default=DEFAULT_AUTHOR, help="name recorded in FILE.sig")
    sign_cmd.add_argument(
        "--node",
        default=None,
        metavar="ID",
        help="the node it is for (default: the file's node.id; the file must name the same)",
    )
    sign_cmd.add_argument(
        "--version",
        type=int,
        default=None,
        metavar="N",
        help="its version, higher than any the board has accepted (default: the current "
        "UNIX time in seconds, or one more than FILE.sig's version if that is higher)",
    )
    sign_cmd.set_defaults(handler=_one_line_errors(_sign))

    trust = cmds.add_parser(
        "trust",
        help="make a board trust a public key (then it accepts only signed configs)",
        description="Install a public key in the board's trusted_keys/. Once a board trusts "
        "any key, it refuses configs that are unsigned, signed by another key, or changed "
        "after signing.",
    )
    trust.add_argument("public_key", type=Path, metavar="KEY.pub")
    _add_target(trust, ssh=False)
    trust.set_defaults(handler=_one_line_errors(_trust))

    flash = cmds.add_parser(
        "flash",
        help="validate, check the signature, stamp and atomically install a config",
        description="Install a config on a board's config directory. Steps: validate (an "
        "invalid config is refused before anything is written), check the board's signature "
        "policy (FILE.sig), stamp a version (number, sha256, author, time) and write it "
        "atomically; the previous config is kept as last_good for rollback.",
    )
    flash.add_argument("file", type=Path, metavar="FILE")
    _add_target(flash)
    flash.add_argument("--author", default=DEFAULT_AUTHOR, help="recorded in the version stamp")
    flash.add_argument("--json", action="store_true", help="print the result as JSON")
    flash.add_argument(
        "--health-deadline",
        type=_seconds,
        default=30.0,
        metavar="S",
        help="when a node runs from the directory (DIR/node.pid), tell it to load the new "
        "config (SIGHUP) and wait up to S seconds for it to report healthy on it; otherwise "
        "roll back to the last good config and fail (default 30)",
    )
    flash.set_defaults(handler=_one_line_errors(_flash))

    show = cmds.add_parser(
        "show",
        help="show the board's active config version and its history",
        description="Print the active and last-good versions and the flash/rollback history.",
    )
    _add_target(show)
    show.add_argument("--json", action="store_true", help="print as JSON")
    show.set_defaults(handler=_one_line_errors(_show))

    diff = cmds.add_parser(
        "diff",
        help="show what FILE would change against what the board runs",
        description="Unified diff of the board's active config against FILE. Exit status 0 "
        "when they are identical, 1 when they differ.",
    )
    diff.add_argument("file", type=Path, metavar="FILE")
    _add_target(diff)
    diff.set_defaults(handler=_one_line_errors(_diff))

    rollback = cmds.add_parser(
        "rollback",
        help="make the last known good config (or --version N) active again",
        description="Point the board back at its last known good config, or at a kept "
        "version given with --version.",
    )
    _add_target(rollback)
    rollback.add_argument("--version", type=int, default=None, help="a kept version number")
    rollback.add_argument("--reason", default="manual rollback", help="recorded in history")
    rollback.set_defaults(handler=_one_line_errors(_rollback))


def _seconds(text: str) -> float:
    """A positive, finite number of seconds (argparse type: a bad one is a usage error)."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number of seconds") from None
    if not 0 < value <= 3600:
        raise argparse.ArgumentTypeError(f"{text!r}: expected seconds in (0, 3600]")
    return value


def _add_target(parser: argparse.ArgumentParser, ssh: bool = True) -> None:
    parser.add_argument(
        "--to",
        dest="target",
        required=True,
        metavar="TARGET",
        help="the board's config directory, e.g. /etc/wolfpack"
        + (", or ssh://user@host[:port][/path] (path default /etc/wolfpack)" if ssh else ""),
    )
    if not ssh:
        return
    group = parser.add_argument_group("ssh targets")
    group.add_argument("--ssh-key", type=Path, help="identity file for ssh (ssh -i)")
    group.add_argument(
        "--ssh-option",
        action="append",
        default=[],
        metavar="OPT",
        help="extra ssh option, e.g. UserKnownHostsFile=~/.ssh/boards (repeatable)",
    )
    group.add_argument(
        "--remote-wolfpack",
        default="wolfpack",
        help="path of the wolfpack command on the board (default: wolfpack on its PATH)",
    )


def _target(args: argparse.Namespace) -> Path | SshTarget:
    """The --to of a command; raises TargetError with a readable reason."""
    target = parse_target(args.target)
    if isinstance(target, Path):
        return target
    options: list[str] = []
    if getattr(args, "ssh_key", None):
        options += ["-i", str(args.ssh_key)]
    for opt in getattr(args, "ssh_option", []):
        options += ["-o", opt]
    return replace(target, ssh_options=tuple(options), remote_wolfpack=args.remote_wolfpack)


def _rel(path: Path) -> str:
    try:
        return str(path.relative_to(Path.cwd()))
    except ValueError:
        return str(path)


def _validate(args: argparse.Namespace) -> int:
    failed = 0
    for name in args.files:
        try:
            cfg = load_board_config(name)
        except ConfigError as exc:
            failed += 1
            if args.json:
                issues = [
                    {
                        "file": i.file,
                        "line": i.line,
                        "column": i.column,
                        "path": i.path,
                        "message": i.message,
                    }
                    for i in exc.issues
                ]
                print(json.dumps({"file": name, "valid": False, "errors": issues}))
            else:
                print(f"{name}: INVALID", file=sys.stderr)
                print(exc.render(), file=sys.stderr)
            continue
        if args.json:
            print(json.dumps({"file": name, "valid": True, "node": cfg.node.id}))
        else:
            print(f"{name}: OK (node {cfg.node.id} at site {cfg.node.site})")
    return 1 if failed else 0


def _schema(args: argparse.Namespace) -> int:
    from edge.runtime.machine import MachineError

    try:
        text = board_schema_text(args.machine)
    except MachineError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_ERROR
    if args.machine != "diverter" and args.out == SCHEMA_PATH:
        args.out = SCHEMA_PATH.with_name(f"schema-{args.machine}.json")
    if str(args.out) == "-":
        sys.stdout.write(text)
        return 0
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(text, encoding="utf-8")
    print(f"wrote {_rel(args.out)}")
    return 0


def _keygen(args: argparse.Namespace) -> int:
    try:
        public_path, kid = generate_keypair(args.out, args.signer)
    except FileExistsError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    print(f"wrote {args.out} (private, keep it secret) and {public_path} (key id {kid})")
    return 0


def _sign(args: argparse.Namespace) -> int:
    try:
        private = load_private_key(args.key)
        content = read_limited(args.file)
    except (SignatureError, LimitError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    except OSError as exc:
        print(f"error: {args.file}: cannot read ({exc.strerror})", file=sys.stderr)
        return 1
    config = load_board_config(args.file)  # never sign what no board would accept
    node = args.node or config.node.id
    if node != config.node.id:
        print(
            f"error: {args.file}: its node.id is {config.node.id}, not {node}; a board "
            "refuses a config signed for one node that names another",
            file=sys.stderr,
        )
        return 1
    out = signature_path(args.file)
    version = args.version if args.version is not None else _default_version(out)
    try:
        signature = sign(content, private, args.signer, node, version)
    except ValueError as exc:
        print(f"error: --version {version}: {exc}", file=sys.stderr)
        return 1
    write_file_mode(out, (signature.to_json() + "\n").encode("utf-8"), 0o644)
    print(
        f"wrote {out} (key {signature.key_id}, node {node}, version {version}, "
        f"sha256 {signature.sha256[:16]}...)"
    )
    return 0


def _default_version(sig_path: Path) -> int:
    """The current UNIX time, or one more than an existing FILE.sig's version if higher."""
    version = int(time.time())
    try:
        text = read_signature_file(sig_path)
        if text is not None:
            version = max(version, Signature.from_json(text, str(sig_path)).manifest.version + 1)
    except SignatureError:
        pass  # an old or damaged .sig is replaced
    return min(version, MAX_SIGNED_VERSION)


def _trust(args: argparse.Namespace) -> int:
    try:
        public = load_public_key(args.public_key)
    except SignatureError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    if args.target.startswith("ssh://"):
        print("error: run 'wolfpack config trust' on the board itself", file=sys.stderr)
        return 2
    store = ConfigStore(Path(args.target))
    keys_dir = store.trusted_keys_dir
    with store.lock():
        if keys_dir.is_symlink() or (keys_dir.exists() and not keys_dir.is_dir()):
            raise StoreError(f"{keys_dir}: exists but is not a directory; fix it by hand first")
        make_private_dir(keys_dir)
        kid = key_id(public)
        data = read_limited(args.public_key, 64 * 1024, "public key")
        write_file_mode(keys_dir / f"{kid}.pub", data, 0o644)
    print(f"{args.target} now trusts key {kid}; it accepts only configs signed by trusted keys")
    return 0


def _flash(args: argparse.Namespace) -> int:
    def progress(step: int, total: int, message: str) -> None:
        if not args.json:
            print(f"[{step}/{total}] {message}", flush=True)

    try:
        target = _target(args)
        if isinstance(target, SshTarget):
            return _flash_ssh(args, target, progress)
        result = flash_local(args.file, target, args.author, progress)
    except TargetError as exc:
        return _refused(args, "target unreachable, nothing written", str(exc))
    except ConfigError as exc:
        return _refused(args, "invalid config, nothing written", exc.render())
    except (SignatureError, VersionRefused) as exc:
        return _refused(args, "signature policy, nothing written", str(exc))
    except (StoreError, OSError) as exc:
        return _refused(args, "could not write the board's config directory", str(exc))
    stamp = result.stamp
    if not args.json:
        signed = f"signed by {stamp.signed_by}" if stamp.signed_by else "unsigned (not required)"
        print(
            f"flashed {args.file} to {args.target}: version {stamp.version} "
            f"(sha256 {stamp.sha256[:12]}, {signed}) is active for node {result.node}",
            flush=True,
        )
    checked = _health_check(args, target, stamp.version)
    ok = checked["outcome"] in ("applied", "not_running")
    if args.json:
        print(json.dumps({"ok": ok, "node": result.node, **stamp.__dict__, "health": checked}))
        return 0 if ok else 1
    if not ok:
        print(
            f"ROLLED BACK: version {stamp.version} of {args.file} did not become healthy on "
            f"{args.target}: {checked['why']}\n"
            f"  active again: version {checked.get('active_version', '?')}; "
            f"node: {checked.get('node', '?')}",
            file=sys.stderr,
        )
        return 1
    if checked["outcome"] == "not_running":
        print(f"note: {checked['why']}")
    else:
        print(f"the node is healthy on version {stamp.version}: {checked['why']}")
    return 0


def _flash_ssh(
    args: argparse.Namespace, target: SshTarget, progress: Callable[[int, int, str], None]
) -> int:
    progress(1, 3, f"validating {args.file} here, before anything leaves this machine")
    load_board_config(args.file)
    sig = signature_path(args.file)
    progress(2, 3, f"copying to {target.display} and flashing there (its signature policy)")
    result = target.flash(
        args.file, sig if sig.exists() else None, args.author, args.health_deadline
    )
    health = result.get("health")
    if not result.get("ok") and not isinstance(health, dict):
        return _refused(args, f"by the board: {result.get('refused')}", str(result.get("error")))
    if args.json:
        print(json.dumps(result))
        return 0 if result.get("ok") else 1
    if isinstance(health, dict) and not result.get("ok"):
        print(
            f"ROLLED BACK: version {result['version']} of {args.file} did not become healthy on "
            f"{target.display}: {health.get('why')}\n"
            f"  active again: version {health.get('active_version', '?')}; "
            f"node: {health.get('node', '?')}",
            file=sys.stderr,
        )
        return 1
    progress(3, 3, f"version {result['version']} is active on {target.display}")
    print(
        f"flashed {args.file} to {target.display}: version {result['version']} "
        f"(sha256 {str(result['sha256'])[:12]}) is active for node {result['node']}"
    )
    if isinstance(health, dict):
        if health.get("outcome") == "applied":
            print(f"the node is healthy on version {result['version']}: {health.get('why')}")
        else:
            print(f"note: {health.get('why')}")
    return 0


def _health_check(args: argparse.Namespace, target: Path, version: int) -> dict[str, object]:
    from edge.node.config_apply import reload_and_check

    def say(text: str) -> None:
        if not args.json:
            print(text, flush=True)

    return reload_and_check(target, version, args.health_deadline, say)


def _refused(args: argparse.Namespace, why: str, detail: str) -> int:
    if args.json:
        print(json.dumps({"ok": False, "refused": why, "error": detail}))
    else:
        print(f"REFUSED ({why}):\n{detail}", file=sys.stderr)
    return 1


def _board_state(target: Path | SshTarget) -> dict[str, object]:
    """Active and last-good stamps and the history, from a local or remote board."""
    if isinstance(target, SshTarget):
        code, out, err = target.wolfpack(["config", "show", "--to", target.path, "--json"])
        if code != 0:
            raise TargetError(f"{target.display}: {err.strip() or out.strip()}")
        try:
            state = json.loads(out.strip().splitlines()[-1])
        except (IndexError, ValueError, RecursionError):
            state = None
        if not isinstance(state, dict) or not {"active", "last_good", "history"} <= set(state):
            raise TargetError(f"{target.display}: unexpected answer: {out.strip()[:200]!r}")
        return state
    store = ConfigStore(target)
    active, last_good = store.active(), store.last_good()
    return {
        "active": active.stamp.__dict__ if active else None,
        "last_good": last_good.stamp.__dict__ if last_good else None,
        "history": store.history(),
    }


def _show(args: argparse.Namespace) -> int:
    try:
        state = _board_state(_target(args))
    except (StoreError, TargetError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_ERROR
    if args.json:
        print(json.dumps(state))
        return 0
    if state["active"] is None:
        print(f"{args.target}: no config flashed yet")
        return 1
    for label, st in (("active", state["active"]), ("last good", state["last_good"])):
        if st is None:
            print(f"{label:>9}: none")
            continue
        signed = f"signed by {st['signed_by']}" if st["signed_by"] else "unsigned"
        print(
            f"{label:>9}: version {st['version']}  sha256 {st['sha256'][:12]}  {st['time']}"
            f"  by {st['author']}  {signed}"
        )
    print("history:")
    for entry in state["history"][-10:]:
        detail = entry.get("reason") or entry.get("author", "")
        print(
            f"  {entry.get('time', '?')}  {entry.get('event')}  version {entry.get('version')}"
            f"  {detail}"
        )
    return 0


def _diff(args: argparse.Namespace) -> int:
    try:
        new = read_limited(args.file).decode("utf-8", "replace")
        target = _target(args)
        if isinstance(target, SshTarget):
            state = _board_state(target)
            version = state["active"]["version"] if state["active"] else None
            old = ""
            if version is not None:
                code, old, err = target.ssh(["cat", f"{target.path}/active/config.yaml"])
                if code != 0:
                    raise TargetError(f"{target.display}: cannot read its active config: {err}")
        else:
            active = ConfigStore(target).active()
            old = active.content.decode("utf-8", "replace") if active else ""
            version = active.stamp.version if active else None
    except (StoreError, TargetError, LimitError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except OSError as exc:
        print(f"error: {exc.filename or args.file}: {exc.strerror or exc}", file=sys.stderr)
        return 2
    label = f"{args.target} (version {version})" if version else f"{args.target} (empty)"
    lines = list(
        difflib.unified_diff(
            old.splitlines(keepends=True), new.splitlines(keepends=True), label, str(args.file)
        )
    )
    if not lines:
        print(f"{args.file} is identical to what {args.target} runs")
        return 0
    sys.stdout.writelines(line if line.endswith("\n") else line + "\n" for line in lines)
    return 1


def _rollback(args: argparse.Namespace) -> int:
    try:
        target = _target(args)
        if isinstance(target, SshTarget):
            extra = ["--version", str(args.version)] if args.version is not None else []
            cmd = ["config", "rollback", "--to", target.path, "--reason", args.reason, *extra]
            code, out, err = target.wolfpack(cmd)
            print((out or err).strip(), file=sys.stdout if code == 0 else sys.stderr)
            return code
        stamp = ConfigStore(target).rollback(args.version, args.reason)
    except (StoreError, TargetError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_ERROR
    print(f"{args.target}: version {stamp.version} ({stamp.sha256[:12]}) is active again")
    return 0
