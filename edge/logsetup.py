"""Process-wide logging: readable text for a technician, JSON lines for a log shipper.

Every line carries the node id, so logs merged from a fleet still say which board spoke.
"""

from __future__ import annotations

import json
import logging
import socket
import sys
import time
from typing import Any, TextIO

# LogRecord attributes that are not user-supplied ``extra=`` fields.
_STANDARD_ATTRS = set(logging.LogRecord("", 0, "", 0, "", None, None).__dict__) | {
    "message",
    "asctime",
    "node",
}


class _NodeFilter(logging.Filter):
    def __init__(self, node: str) -> None:
        super().__init__()
        self.node = node

    def filter(self, record: logging.LogRecord) -> bool:
        record.node = self.node
        return True


class _TextFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        stamp = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(record.created))
        extras = _extras(record)
        tail = "".join(f" {k}={v}" for k, v in extras.items())
        line = (
            f"{stamp}.{int(record.msecs):03d} {record.levelname:<7} [{record.node}] "
            f"{record.name}: {record.getMessage()}{tail}"
        )
        if record.exc_info:
            line += "\n" + self.formatException(record.exc_info)
        return line


class _JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        payload: dict[str, Any] = {
            "ts": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
            + f".{int(record.msecs):03d}Z",
            "level": record.levelname.lower(),
            "node": record.node,
            "logger": record.name,
            "msg": record.getMessage(),
        }
        payload.update(_extras(record))
        if record.exc_info:
            payload["exc"] = self.formatException(record.exc_info)
        return json.dumps(payload, default=str)


def _extras(record: logging.LogRecord) -> dict[str, Any]:
    return {k: v for k, v in record.__dict__.items() if k not in _STANDARD_ATTRS}


def setup_logging(
    node: str | None = None,
    json_lines: bool = False,
    level: str = "info",
    stream: TextIO | None = None,
) -> None:
    """Configure the root logger once per process; later calls replace the handler."""
    handler = logging.StreamHandler(stream or sys.stderr)
    handler.addFilter(_NodeFilter(node or socket.gethostname()))
    handler.setFormatter(_JsonFormatter() if json_lines else _TextFormatter())
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level.upper())
