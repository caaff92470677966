"""Keeps the node's tasks alive: a task that crashes is logged, reported and restarted with
exponential backoff; a task that keeps crashing is still retried, never silently dropped.

Why not asyncio.TaskGroup: one failing task would cancel all the others, and a cell must keep
its belt under control while, say, the scanner driver restarts.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

log = logging.getLogger("wolfpack.node")

TaskFactory = Callable[[], Awaitable[None]]
CrashReport = Callable[[str, BaseException, int, float], None]


@dataclass
class TaskStatus:
    name: str
    restarts: int = 0
    last_error: str = ""
    running: bool = False
    started: float = field(default_factory=time.monotonic)


class Supervisor:
    def __init__(
        self,
        on_crash: CrashReport | None = None,
        min_backoff_s: float = 0.1,
        max_backoff_s: float = 10.0,
        stable_after_s: float = 30.0,
    ) -> None:
        """``on_crash(name, error, restarts, delay_s)`` is told of every crash before the
        restart; ``stable_after_s`` of clean running resets a task's backoff."""
        self.on_crash = on_crash
        self.min_backoff_s = min_backoff_s
        self.max_backoff_s = max_backoff_s
        self.stable_after_s = stable_after_s
        self.status: dict[str, TaskStatus] = {}
        self._tasks: dict[str, asyncio.Task[None]] = {}
        self._stopping = False

    def start(self, name: str, factory: TaskFactory) -> None:
        """Run ``factory()`` under supervision. A task that returns normally is done."""
        if name in self._tasks:
            raise ValueError(f"task {name!r} is already supervised")
        self.status[name] = TaskStatus(name)
        self._tasks[name] = asyncio.create_task(self._keep(name, factory), name=name)

    async def _keep(self, name: str, factory: TaskFactory) -> None:
        status = self.status[name]
        backoff = self.min_backoff_s
        while not self._stopping:
            status.running, status.started = True, time.monotonic()
            try:
                await factory()
                status.running = False
                return
            except asyncio.CancelledError:
                status.running = False
                raise
            except Exception as exc:  # every crash is reported, then the task restarts
                status.running = False
                if time.monotonic() - status.started >= self.stable_after_s:
                    backoff = self.min_backoff_s
                status.restarts += 1
                status.last_error = f"{type(exc).__name__}: {exc}"
                log.error(
                    "task %s crashed (%s); restart %d in %.1f s",
                    name, status.last_error, status.restarts, backoff, exc_info=exc,
                )  # fmt: skip
                if self.on_crash is not None:
                    try:
                        self.on_crash(name, exc, status.restarts, backoff)
                    except Exception:
                        log.exception("reporting the crash of %s failed", name)
                await asyncio.sleep(backoff)
                backoff = min(self.max_backoff_s, backoff * 2)

    async def stop(self, timeout: float = 5.0) -> None:
        """Cancel every task and wait for them (each gets ``timeout`` to clean up)."""
        self._stopping = True
        tasks = list(self._tasks.values())
        for task in tasks:
            task.cancel()
        if tasks:
            await asyncio.wait(tasks, timeout=timeout)
        self._tasks.clear()
