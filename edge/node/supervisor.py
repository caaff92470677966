"""Moved to ``edge.runtime.supervisor`` (the shared node runtime); kept for old imports."""

from edge.runtime.supervisor import CrashReport, Supervisor, TaskFactory, TaskStatus

__all__ = ["CrashReport", "Supervisor", "TaskFactory", "TaskStatus"]
