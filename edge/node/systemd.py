"""Moved to ``edge.runtime.systemd`` (the shared node runtime); kept for old imports."""

from edge.runtime.systemd import Notifier

__all__ = ["Notifier"]
