"""Bounds on what a config may be, checked before anything expensive looks at it.

A board config is a few kilobytes of YAML. Anything much bigger, deeper or more numerous is a
mistake or an attack (a "billion laughs" document, 44 MB of YAML that takes gigabytes to
parse), and it reaches the board from the network (``config_push``) as well as from a
technician. So the raw bytes are size-checked first (before the signature, before decoding),
then decoded as strict UTF-8, then parsed with limits on nesting depth and node count; YAML
aliases (``*name``) are refused outright because no board config needs them and they are how
a small file expands into an enormous one.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

MAX_CONFIG_BYTES = 1024 * 1024  # a real board config is a few KB
MAX_SIGNATURE_BYTES = 64 * 1024  # a .sig file is a few hundred bytes
MAX_DEPTH = 32  # the deepest board config nests about 6 levels
MAX_NODES = 10_000  # scalars + mappings + sequences; a board config has a few hundred


class LimitError(Exception):
    """Content refused by a limit before it was parsed; the message says where and why."""


def check_size(size: int, name: str, limit: int = MAX_CONFIG_BYTES) -> None:
    if size > limit:
        raise LimitError(
            f"{name}: {size} bytes is over the limit of {limit} bytes for a config; refused "
            "before parsing"
        )


def read_limited(path: Path, limit: int = MAX_CONFIG_BYTES, what: str = "config") -> bytes:
    """The bytes of a regular file of at most ``limit`` bytes; LimitError or OSError otherwise.

    Reads through one descriptor (fstat, then at most limit+1 bytes), so a FIFO, a device
    such as /dev/zero or a file that grows while being read can neither hang nor exhaust
    memory.
    """
    fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            raise LimitError(f"{path}: not a regular file; a {what} must be one")
        if info.st_size > limit:
            raise LimitError(
                f"{path}: {info.st_size} bytes is over the limit of {limit} bytes for a "
                f"{what}; refused before parsing"
            )
        chunks: list[bytes] = []
        size = 0
        while size <= limit:
            chunk = os.read(fd, min(65536, limit + 1 - size))
            if not chunk:
                break
            chunks.append(chunk)
            size += len(chunk)
    finally:
        os.close(fd)
    data = b"".join(chunks)
    if len(data) > limit:
        raise LimitError(
            f"{path}: over the limit of {limit} bytes for a {what} (it grew while being read)"
        )
    return data


def decode_utf8(content: bytes, name: str) -> str:
    """Strict UTF-8 (a leading BOM allowed); LimitError naming the byte offset otherwise."""
    try:
        return content.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        bad = content[exc.start : exc.start + 4]
        raise LimitError(
            f"{name}: not UTF-8: byte offset {exc.start} (0x{bad[:1].hex()}): {exc.reason}; "
            "save the file as UTF-8"
        ) from None
