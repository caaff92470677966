"""A crashed task is restarted with growing backoff and every crash is reported."""

from __future__ import annotations

import asyncio

from edge.node.supervisor import Supervisor


def test_crashing_task_is_restarted_and_reported() -> None:
    async def main() -> tuple[list[tuple[str, str, int, float]], int]:
        reports: list[tuple[str, str, int, float]] = []
        runs = 0

        async def flaky() -> None:
            nonlocal runs
            runs += 1
            if runs <= 3:
                raise RuntimeError(f"boom {runs}")
            await asyncio.sleep(10)

        sup = Supervisor(
            on_crash=lambda n, e, r, d: reports.append((n, str(e), r, d)),
            min_backoff_s=0.01,
            max_backoff_s=0.03,
        )
        sup.start("flaky", flaky)
        await asyncio.sleep(0.3)
        assert sup.status["flaky"].running
        await sup.stop()
        return reports, runs

    reports, runs = asyncio.run(main())
    assert runs == 4
    assert [r[:3] for r in reports] == [
        ("flaky", "boom 1", 1), ("flaky", "boom 2", 2), ("flaky", "boom 3", 3)
    ]  # fmt: skip
    assert [r[3] for r in reports] == [0.01, 0.02, 0.03]  # doubled, capped


def test_a_task_that_returns_is_done_and_stop_cancels_the_rest() -> None:
    async def main() -> bool:
        done = asyncio.Event()
        cancelled = asyncio.Event()

        async def once() -> None:
            done.set()

        async def forever() -> None:
            try:
                await asyncio.sleep(100)
            finally:
                cancelled.set()

        sup = Supervisor()
        sup.start("once", once)
        sup.start("forever", forever)
        await asyncio.wait_for(done.wait(), 1)
        await asyncio.sleep(0.01)
        assert not sup.status["once"].running and sup.status["once"].restarts == 0
        await sup.stop()
        return cancelled.is_set()

    assert asyncio.run(main())
