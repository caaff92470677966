"""Applying a config to a running node: reload, health check, automatic rollback, outcome.

Used from both sides of a board's config directory (see docs/config-flashing.md):

* ``wolfpack config flash FILE --to DIR`` installs a version, then :func:`reload_and_check`
  sends SIGHUP to the node named by ``DIR/node.pid`` and watches ``DIR/health.json`` until the
  node reports the new version healthy, or rolls back to ``last_good`` when the deadline
  passes.
* ``wolfpack run --config-dir DIR`` runs the store's ``active`` config; on SIGHUP it
  re-executes itself. A remote push (the ``config_push`` command over MQTT) installs the
  version and writes ``DIR/pending.json`` before the re-exec; the new process calls
  :func:`start_pending_watch`, which decides "applied" or "rolled_back" and publishes the
  outcome, retained, on ``wolfpack/v1/<site>/<node>/config/status``.

The outcome is published by a short-lived paho client of its own (same broker, credentials and
TLS as the node's link, client id ``<link id>-config``), because the fleet link keeps no
retained channel besides its state and fleet_link/ is not this module's to change. The
outcome also stays in ``DIR/config_status.json`` until it has been published, so a rollback
that re-executes the node is reported by the process that comes back.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import signal
import threading
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

from edge.config.limits import MAX_CONFIG_BYTES, MAX_SIGNATURE_BYTES
from edge.config.store import ConfigStore, StoreError
from fleet_link.link import apply_credentials

log = logging.getLogger("wolfpack.node.config")

PID_NAME = "node.pid"
HEALTH_NAME = "health.json"
PENDING_NAME = "pending.json"
STATUS_NAME = "config_status.json"
DEFAULT_DEADLINE_S = 30.0

Say = Callable[[str], None]


# ---- files of the config directory --------------------------------------------------------------
def _write_json(path: Path, data: dict[str, Any]) -> None:
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    with open(tmp, "w", encoding="utf-8") as out:
        out.write(json.dumps(data) + "\n")
        out.flush()
        os.fsync(out.fileno())
    os.replace(tmp, path)


def _read_json(path: Path) -> dict[str, Any] | None:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def running_node(root: Path) -> int | None:
    """The pid in ``root/node.pid`` when that process is alive, else None."""
    try:
        pid = int((Path(root) / PID_NAME).read_text().strip())
    except (OSError, ValueError):
        return None
    return pid if _alive(pid) else None


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # a zombie (exited, not yet reaped by its parent) is not a running node
    with contextlib.suppress(OSError):
        stat = Path(f"/proc/{pid}/stat").read_text()
        if stat.rsplit(")", 1)[1].split()[0] == "Z":
            return False
    return True


def describe_health(health: dict[str, Any] | None) -> str:
    if not health:
        return "no health reported"
    text = f"state {health.get('state')}"
    if health.get("devices_missing"):
        text += f", devices missing: {', '.join(map(str, health['devices_missing']))}"
    if health.get("degraded"):
        text += f", degraded: {', '.join(map(str, health['degraded']))}"
    if health.get("why"):
        text += f" ({health['why']})"
    return text


def wait_healthy(
    root: Path,
    version: str,
    deadline_s: float,
    pid: int | None,
    say: Say = lambda text: None,
    health_file: Path | None = None,
) -> tuple[bool, str]:
    """Wait until the health file shows ``version`` healthy; (ok, why-not) at the deadline."""
    path = health_file or Path(root) / HEALTH_NAME
    start = time.monotonic()
    end = start + deadline_s
    last_said = 0.0
    seen: dict[str, Any] | None = None
    while True:
        health = _read_json(path)
        on_version = health is not None and str(health.get("config_version")) == version
        if on_version:
            seen = health
            if health.get("healthy"):
                return True, describe_health(health)
        now = time.monotonic()
        if pid is not None and not _alive(pid):
            return False, f"the node did not start: process {pid} exited"
        if now >= end:
            break
        if now - last_said >= 1.0:
            last_said = now
            where = describe_health(seen) if seen else "waiting for the node to load it"
            say(f"  {now - start:4.1f}/{deadline_s:g} s: version {version}: {where}")
        time.sleep(0.1)
    if seen is None:
        return False, (
            f"the node did not start: no health for version {version} within {deadline_s:g} s"
        )
    return False, f"not healthy within {deadline_s:g} s: {describe_health(seen)}"


# ---- the technician's side: `config flash` -------------------------------------------------------
def reload_and_check(
    root: Path,
    version: int,
    deadline_s: float = DEFAULT_DEADLINE_S,
    say: Say = lambda text: None,
) -> dict[str, Any]:
    """Tell the node in ``root`` to load the active version; roll back if it is not healthy.

    Returns {outcome: applied | rolled_back | not_running | rollback_failed, version, why, ...}
    and records it in history.jsonl.
    """
    store = ConfigStore(root)
    pid = running_node(root)
    if pid is None:
        result = {
            "outcome": "not_running",
            "version": version,
            "why": f"no running node ({root / PID_NAME} names no live process); "
            "the config stays active and is loaded at the next start",
        }
        return result  # nothing happened beyond the flash itself: no history line
    say(f"telling the node (pid {pid}) to load version {version} (SIGHUP)")
    os.kill(pid, signal.SIGHUP)
    ok, why = wait_healthy(root, str(version), deadline_s, pid, say)
    if ok:
        result = {"outcome": "applied", "version": version, "why": why}
        _record(store, result)
        return result
    say(f"version {version} is not healthy: {why}; rolling back to the last good version")
    try:
        back = store.rollback(reason=f"health check failed for version {version}: {why}")
    except StoreError as exc:
        result = {"outcome": "rollback_failed", "version": version, "why": f"{why}; {exc}"}
        _record(store, result)
        return result
    result = {
        "outcome": "rolled_back",
        "version": version,
        "why": why,
        "active_version": back.version,
    }
    pid = running_node(root)
    if pid is None:
        result["node"] = "not running; it loads the last good version at its next start"
    else:
        say(f"telling the node (pid {pid}) to load version {back.version} again (SIGHUP)")
        os.kill(pid, signal.SIGHUP)
        back_ok, back_why = wait_healthy(root, str(back.version), deadline_s, pid, say)
        result["node"] = (
            f"healthy again on version {back.version}"
            if back_ok
            else f"version {back.version} not healthy either: {back_why}"
        )
    _record(store, result)
    return result


def _record(store: ConfigStore, result: dict[str, Any]) -> None:
    entry = {"event": "health_check", **result, "time": _utc()}
    with contextlib.suppress(OSError):
        store._append_history(entry)


def _utc() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())


# ---- the node's side: `wolfpack run --config-dir`, config_push -----------------------------------
class NodeConfigContext:
    """What the running node knows about its config directory (set by `wolfpack run`)."""

    def __init__(self, root: Path, board: Any, version: int) -> None:
        self.root = Path(root)
        self.board = board
        self.version = version
        self.reload: Callable[[], None] = lambda: os.kill(os.getpid(), signal.SIGHUP)


_context: NodeConfigContext | None = None


def set_context(ctx: NodeConfigContext | None) -> None:
    global _context
    _context = ctx


_PUSH_SCHEMA = {
    "type": "object",
    "required": ["config"],
    "properties": {
        "config": {"type": "string", "minLength": 1, "maxLength": MAX_CONFIG_BYTES},
        "signature": {"type": "string", "maxLength": MAX_SIGNATURE_BYTES},
        "deadline_s": {"type": "number", "exclusiveMinimum": 0, "maximum": 600},
        "author": {"type": "string"},
        "request_id": {"type": "string"},
    },
}


def register_commands(registry: Any) -> None:
    """Register ``config_push`` on the fleet link's command registry (called by FleetBridge)."""
    registry.register(
        "config_push",
        config_push,
        _PUSH_SCHEMA,
        "install a signed config (validate, signature policy, write, reload, health check, "
        "automatic rollback); the outcome goes retained to config/status",
    )


def config_push(args: dict[str, Any]) -> dict[str, Any]:
    """The ``config_push`` command (runs on the link's command thread).

    Checked in the safe order of :func:`edge.config.flash.admit`: size, then the signature
    (trusted key, signed for this node, a version newer than any accepted), and only then the
    YAML, parsed with limits. So an unsigned or foreign push costs a hash, never a parse.
    """
    from edge.config import ConfigError
    from edge.config.flash import admit
    from edge.config.signing import SignatureError
    from edge.config.store import VersionRefused
    from fleet_link.commands import CommandError

    ctx = _context
    if ctx is None:
        raise CommandError(
            "unsupported", "this node was not started with --config-dir; it cannot take configs"
        )
    if (ctx.root / PENDING_NAME).exists():
        raise CommandError("busy", "a pushed config is still being checked; try again later")
    content = str(args["config"]).encode("utf-8")
    store = ConfigStore(ctx.root)
    name = "pushed config"
    try:
        signature_text = _push_signature_text(store, args.get("signature"), name)
        admitted = admit(content, signature_text, store, name, this_node=ctx.board.node.id)
    except ConfigError as exc:
        raise CommandError("invalid", exc.render()) from None
    except (SignatureError, VersionRefused) as exc:
        raise CommandError("signature", str(exc)) from None
    except StoreError as exc:
        raise CommandError("store", str(exc)) from None
    deadline_s = float(args.get("deadline_s") or DEFAULT_DEADLINE_S)
    request_id = str(args.get("request_id") or uuid.uuid4().hex)
    manifest = admitted.manifest
    try:
        stamp = store.install(
            content,
            admitted.signature_text,
            str(args.get("author") or "mqtt"),
            "mqtt",
            admitted.signed_by,
            node=admitted.config.node.id,
            signed_version=manifest.version if manifest is not None else None,
        )
    except VersionRefused as exc:
        raise CommandError("signature", str(exc)) from None
    except (StoreError, OSError) as exc:
        raise CommandError("store", str(exc)) from None
    _write_json(
        ctx.root / PENDING_NAME,
        {
            "version": stamp.version,
            "previous": ctx.version,
            "deadline_s": deadline_s,
            "deadline": time.time() + deadline_s,
            "request_id": request_id,
        },
    )
    log.warning("config version %d pushed; reloading the node", stamp.version)
    # let the command's reply leave before the node shuts down for the re-exec
    threading.Timer(0.3, ctx.reload).start()
    return {
        "accepted": True,
        "version": stamp.version,
        "previous": ctx.version,
        "deadline_s": deadline_s,
        "request_id": request_id,
        "status_topic": "config/status",
    }


def _push_signature_text(store: ConfigStore, signature: Any, name: str) -> str | None:
    """The pushed ``signature`` as a .sig text; a bare one is refused where a policy exists.

    A bare base64 ed25519 signature (the format before node and version were bound) says
    nothing about which node or version it is for, so a board with trusted keys refuses it.
    """
    from edge.config.signing import SignatureError, load_trusted_keys

    if not signature:
        return None
    text = str(signature)
    if text.lstrip().startswith("{"):
        return text
    if load_trusted_keys(store.trusted_keys_dir):
        raise SignatureError(
            f"{name}: a bare signature binds neither a node nor a version and is no longer "
            "accepted; send the whole FILE.sig that 'wolfpack config sign FILE --key K' writes"
        )
    return None  # no policy: a signature nobody can check is not stored


def start_pending_watch(
    ctx: NodeConfigContext, health_file: Path, reload: Callable[[], None] | None = None
) -> threading.Thread | None:
    """At node start: publish an unpublished outcome; watch a pending push to its verdict."""
    threading.Thread(target=_publish_stored_status, args=(ctx,), daemon=True).start()
    pending = _read_json(ctx.root / PENDING_NAME)
    if pending is None:
        return None
    if int(pending.get("version", -1)) != ctx.version:
        # the node came back on another version (e.g. restarted after a rollback): not ours
        _finish(ctx, pending, "rolled_back", "the node restarted on another version", None)
        return None
    thread = threading.Thread(
        target=_watch, args=(ctx, pending, health_file, reload or ctx.reload), daemon=True
    )
    thread.start()
    return thread


def fail_pending(root: Path, version: int, why: str) -> bool:
    """The node could not run ``version``: if it is a pushed config on trial, roll it back.

    Returns True when the caller should re-execute (the rollback was made)."""
    pending = _read_json(Path(root) / PENDING_NAME)
    if pending is None or int(pending.get("version", -1)) != version:
        return False
    store = ConfigStore(root)
    why = f"the node did not start: {why}"
    try:
        back = store.rollback(reason=f"health check failed for version {version}: {why}")
    except StoreError as exc:
        ctx = NodeConfigContext(root, None, version)
        _finish(ctx, pending, "rollback_failed", f"{why}; {exc}", None, publish=False)
        return False
    ctx = NodeConfigContext(root, None, version)
    _finish(ctx, pending, "rolled_back", why, back.version, publish=False)
    return True


def _watch(
    ctx: NodeConfigContext,
    pending: dict[str, Any],
    health_file: Path,
    reload: Callable[[], None],
) -> None:
    remaining = max(0.0, float(pending.get("deadline", 0)) - time.time())
    ok, why = wait_healthy(ctx.root, str(ctx.version), remaining, None, health_file=health_file)
    if ok:
        _finish(ctx, pending, "applied", why, None)
        return
    store = ConfigStore(ctx.root)
    try:
        back = store.rollback(reason=f"health check failed for version {ctx.version}: {why}")
    except StoreError as exc:
        _finish(ctx, pending, "rollback_failed", f"{why}; {exc}", None)
        return
    _finish(ctx, pending, "rolled_back", why, back.version, publish=False)
    log.error("config version %d rolled back to %d: %s", ctx.version, back.version, why)
    reload()


def _finish(
    ctx: NodeConfigContext,
    pending: dict[str, Any],
    outcome: str,
    why: str,
    active: int | None,
    publish: bool = True,
) -> None:
    status = {
        "version": pending.get("version"),
        "outcome": outcome,
        "why": why,
        "ts": _utc(),
        "previous": pending.get("previous"),
        "request_id": pending.get("request_id"),
        "active_version": active if active is not None else ctx.version,
        "published": False,
    }
    _write_json(ctx.root / STATUS_NAME, status)
    _record(ConfigStore(ctx.root), {k: v for k, v in status.items() if k != "published"})
    with contextlib.suppress(FileNotFoundError):
        (ctx.root / PENDING_NAME).unlink()
    if publish:
        _publish_stored_status(ctx)


_publish_lock = threading.Lock()


def _publish_stored_status(ctx: NodeConfigContext) -> None:
    with _publish_lock:
        status = _read_json(ctx.root / STATUS_NAME)
        if status is None or status.get("published"):
            return
        body = {k: v for k, v in status.items() if k != "published"}
        if ctx.board.mqtt is None:
            return
        if publish_retained_status(ctx.board, body):
            status["published"] = True
            _write_json(ctx.root / STATUS_NAME, status)


def status_topic(site: str, node: str) -> str:
    from fleet_link import topics

    return f"{topics.node_prefix(site, node)}/config/status"


_status_link: Any = None  # the running node's EdgeLink, when there is one


def set_status_link(link: Any) -> None:
    """The running node's fleet link: config/status then goes out on its connection."""
    global _status_link
    _status_link = link


def publish_retained_status(board: Any, body: dict[str, Any], timeout: float = 10.0) -> bool:
    """Publish ``body`` retained on the node's config/status topic: on the running node's
    own connection when there is one (a second connection with the node's credential would
    knock the node off a broker that binds client id to user), else with a client of its
    own (no node runs: `config flash` on the board)."""
    link = _status_link
    if link is not None and link.node == board.node.id:
        ok = bool(link.publish_retained("config/status", body, timeout))
        if ok:
            log.info("config status published on the node's link: %s", body.get("outcome"))
        else:
            log.warning("config status not published within %.0f s; kept for later", timeout)
        return ok
    from urllib.parse import urlsplit

    import paho.mqtt.client as mqtt
    from paho.mqtt.enums import CallbackAPIVersion

    cfg = board.mqtt
    url = urlsplit(cfg.broker)
    client_id = (cfg.client_id or f"wolfpack-{board.node.site}-{board.node.id}") + "-config"
    v5 = cfg.protocol == "5"
    client = mqtt.Client(
        CallbackAPIVersion.VERSION2,
        client_id=client_id,
        protocol=mqtt.MQTTv5 if v5 else mqtt.MQTTv311,
    )
    apply_credentials(client, cfg)
    topic = status_topic(board.node.site, board.node.id)
    default_port = 8883 if url.scheme == "mqtts" else 1883
    try:
        client.connect(url.hostname or "127.0.0.1", url.port or default_port, keepalive=30)
        client.loop_start()
        info = client.publish(topic, json.dumps(body), qos=1, retain=True)
        info.wait_for_publish(timeout)
        ok = info.is_published()
    except Exception as exc:  # the outcome stays in config_status.json for the next start
        log.warning("config status not published on %s: %s", topic, exc)
        return False
    finally:
        with contextlib.suppress(Exception):
            client.disconnect()
            client.loop_stop()
    if ok:
        log.info("config status published on %s: %s", topic, body.get("outcome"))
    return ok
