"""Putting a config on a board: validate, check the signature policy, stamp, write atomically.

Every step reports progress, and every refusal happens before anything is written, so a
refused config never touches the board's directory.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from edge.config.board import BoardConfig
from edge.config.loader import parse_config_text
from edge.config.signing import Signature, SignatureError, load_trusted_keys, verify
from edge.config.store import ConfigStore, VersionStamp

Progress = Callable[[int, int, str], None]


@dataclass(frozen=True)
class FlashResult:
    stamp: VersionStamp
    node: str
    signature_checked: bool


def signature_path(config_path: Path) -> Path:
    return config_path.with_name(config_path.name + ".sig")


def flash_local(
    config_path: Path,
    target: Path,
    author: str,
    progress: Progress = lambda step, total, msg: None,
) -> FlashResult:
    """Flash one config file into a board's config directory; raise before writing on refusal.

    Raises ConfigError (invalid config), SignatureError (policy refused), StoreError (the
    directory cannot be written or is damaged).
    """
    total = 3
    progress(1, total, f"validating {config_path}")
    try:
        content = config_path.read_bytes()
    except OSError as exc:
        raise SignatureError(f"{config_path}: cannot read ({exc.strerror})") from None
    config = parse_config_text(content.decode("utf-8", "replace"), str(config_path), BoardConfig)

    progress(2, total, "checking the signature policy")
    store = ConfigStore(target)
    trusted = load_trusted_keys(store.trusted_keys_dir)
    sig_path = signature_path(config_path)
    signature = None
    signature_text = None
    if sig_path.exists():
        signature_text = sig_path.read_text(encoding="utf-8")
        signature = Signature.from_json(signature_text, str(sig_path))
    signed_by = None
    if trusted:
        verify(content, signature, trusted, str(config_path))
        signed_by = signature.key_id if signature is not None else None

    progress(3, total, f"writing to {target} (atomic: temp, fsync, rename)")
    stamp = store.install(content, signature_text, author, str(config_path), signed_by)
    return FlashResult(stamp=stamp, node=config.node.id, signature_checked=bool(trusted))
