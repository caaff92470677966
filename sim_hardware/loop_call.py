"""Control of a simulator whose asyncio loop runs in another thread of the same process."""

from __future__ import annotations

import asyncio
import concurrent.futures
from collections.abc import Callable
from typing import Any, TypeVar

T = TypeVar("T")


def call_on_loop(
    loop: asyncio.AbstractEventLoop, fn: Callable[..., T], *args: Any, timeout: float = 5
) -> T:
    """Run ``fn(*args)`` on ``loop`` (owned by another thread) and return its result."""
    fut: concurrent.futures.Future[T] = concurrent.futures.Future()

    def run() -> None:
        try:
            fut.set_result(fn(*args))
        except BaseException as exc:
            fut.set_exception(exc)

    loop.call_soon_threadsafe(run)
    return fut.result(timeout)
