"""Moved to ``edge.runtime.reporter`` (the shared node runtime); kept for old imports."""

from edge.runtime.reporter import Reporter

__all__ = ["Reporter"]
