"""Putting a config on a board: size, signature, then parse; stamp; write atomically.

The order is the point. Whatever the source (a technician's ``config flash``, a
``config_push`` from the network, the node starting on its active version), the bytes are
size-checked first, then the signature is checked over them (trusted key, this node, a
version newer than any accepted), and only then is the YAML decoded and parsed, with limits.
A hostile file therefore costs a hash and a signature check, never a parse. Every refusal
happens before anything is written, so a refused config never touches the board's directory.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from edge.config.board import BoardConfig
from edge.config.errors import ConfigError
from edge.config.limits import MAX_SIGNATURE_BYTES, LimitError, check_size, read_limited
from edge.config.loader import parse_config_bytes
from edge.config.signing import Manifest, Signature, SignatureError, load_trusted_keys, verify
from edge.config.store import ConfigStore, VersionStamp

Progress = Callable[[int, int, str], None]


@dataclass(frozen=True)
class FlashResult:
    stamp: VersionStamp
    node: str
    signature_checked: bool


@dataclass(frozen=True)
class Admitted:
    """A config that passed every check, ready to install or run."""

    config: BoardConfig
    signature_text: str | None  # what to store beside it (None: unsigned)
    signed_by: str | None  # the trusted key id that vouched for it (None: no policy)
    manifest: Manifest | None  # the verified manifest (None: no policy)


def signature_path(config_path: Path) -> Path:
    return config_path.with_name(config_path.name + ".sig")


def read_signature_file(path: Path) -> str | None:
    """The text of ``path`` (a .sig beside a config), None when there is none."""
    try:
        raw = read_limited(path, MAX_SIGNATURE_BYTES, "signature file")
    except FileNotFoundError:
        return None
    except LimitError as exc:
        raise SignatureError(str(exc)) from None
    except OSError as exc:
        raise SignatureError(f"{path}: cannot read ({exc.strerror or exc})") from None
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        raise SignatureError(f"{path}: not a readable signature file (not UTF-8)") from None


def board_node(store: ConfigStore) -> str | None:
    """Which node this board is: the node of its active config (None for a fresh board)."""
    active = store.active()
    if active is None:
        return None
    if active.stamp.node:
        return active.stamp.node
    with contextlib.suppress(ConfigError):  # an older stamp: read the (trusted) active file
        return parse_config_bytes(active.content, str(active.config_path), BoardConfig).node.id
    return None


def admit(
    content: bytes,
    signature_text: str | None,
    store: ConfigStore,
    name: str,
    this_node: str | None,
    check_version: bool = True,
) -> Admitted:
    """Check ``content`` in the safe order; raise before any parse when it is refused.

    Raises ConfigError (too big, not UTF-8, invalid), SignatureError (the policy refused
    it, or the policy cannot be read) or StoreError (the board's directory cannot be read).
    ``this_node``: the board's node id, when known; a config signed for another is refused.
    ``check_version``: refuse a signed version not above the highest accepted (off at the
    node's own start, which may run a version it rolled back to).
    """
    try:
        check_size(len(content), name)
    except LimitError as exc:
        raise ConfigError.single(name, str(exc).split(": ", 1)[-1]) from None
    trusted = load_trusted_keys(store.trusted_keys_dir)  # fails closed
    signature = None
    if signature_text is not None:
        signature = Signature.from_json(signature_text, f"{name}'s signature")
    manifest = None
    if trusted:
        manifest = verify(content, signature, trusted, name)
        if this_node is not None and manifest.node != this_node:
            raise SignatureError(
                f"{name}: signed for node {manifest.node}, this node is {this_node}; refused"
            )
        if check_version:
            highest = store.highest_signed_version()
            if manifest.version <= highest:
                raise SignatureError(
                    f"{name}: signed version {manifest.version} is not newer than version "
                    f"{highest}, the highest this board has accepted: a replay or a downgrade "
                    "is refused (to go back, 'wolfpack config rollback' on the board, or sign "
                    "it again with a higher --version)"
                )
    config = parse_config_bytes(content, name, BoardConfig)
    if manifest is not None and config.node.id != manifest.node:
        raise SignatureError(
            f"{name}: signed for node {manifest.node}, but the file's node.id is "
            f"{config.node.id}; refused"
        )
    return Admitted(
        config=config,
        signature_text=signature.to_json() if signature is not None else None,
        signed_by=signature.key_id if manifest is not None and signature is not None else None,
        manifest=manifest,
    )


def flash_local(
    config_path: Path,
    target: Path,
    author: str,
    progress: Progress = lambda step, total, msg: None,
) -> FlashResult:
    """Flash one config file into a board's config directory; raise before writing on refusal.

    Raises ConfigError (too big, not UTF-8, invalid), SignatureError (policy refused, or
    unreadable: fail closed), StoreError (the directory cannot be written or is damaged;
    VersionRefused when a concurrent flash got there first with a newer signed version).
    """
    total = 3
    progress(1, total, f"reading {config_path} and checking its size")
    try:
        content = read_limited(config_path)
    except LimitError as exc:
        raise ConfigError.single(str(config_path), str(exc).split(": ", 1)[-1]) from None
    except FileNotFoundError:
        raise ConfigError.single(str(config_path), "file not found") from None
    except OSError as exc:
        raise ConfigError.single(str(config_path), f"cannot read: {exc.strerror or exc}") from None
    store = ConfigStore(target)
    progress(2, total, "checking the signature policy, then validating")
    admitted = admit(
        content,
        read_signature_file(signature_path(config_path)),
        store,
        str(config_path),
        this_node=board_node(store),
    )
    progress(3, total, f"writing to {target} (atomic: temp, fsync, rename)")
    manifest = admitted.manifest
    stamp = store.install(
        content,
        admitted.signature_text,
        author,
        str(config_path),
        admitted.signed_by,
        node=admitted.config.node.id,
        signed_version=manifest.version if manifest is not None else None,
    )
    return FlashResult(
        stamp=stamp, node=admitted.config.node.id, signature_checked=manifest is not None
    )
