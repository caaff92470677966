"""Round-trip diagnostics over a live link: what `wolfpack mcu ping` and the bench report."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from firmware_bridge.mcu.errors import McuError
from firmware_bridge.mcu.link import McuLink


def percentile(values: list[float], q: float) -> float:
    """Nearest-rank percentile (q in 0..100) of ``values``; nan when empty."""
    if not values:
        return float("nan")
    ordered = sorted(values)
    k = max(0, min(len(ordered) - 1, round(q / 100 * len(ordered) + 0.5) - 1))
    return ordered[k]


@dataclass
class PingReport:
    requested: int
    completed: int = 0
    lost: int = 0
    errors: list[str] = field(default_factory=list)
    rtts: list[float] = field(default_factory=list)
    seconds: float = 0.0
    host: dict[str, int] = field(default_factory=dict)
    mcu: dict[str, int] | None = None

    @property
    def rate(self) -> float:
        return self.completed / self.seconds if self.seconds else 0.0

    def as_dict(self) -> dict[str, Any]:
        return {
            "requested": self.requested,
            "completed": self.completed,
            "lost": self.lost,
            "errors": self.errors[:10],
            "seconds": round(self.seconds, 4),
            "round_trips_per_s": round(self.rate, 1),
            "rtt_ms": {
                "p50": round(percentile(self.rtts, 50) * 1000, 3),
                "p99": round(percentile(self.rtts, 99) * 1000, 3),
                "max": round(max(self.rtts, default=float("nan")) * 1000, 3),
            },
            "host": self.host,
            "mcu": self.mcu,
        }


def host_counters(link: McuLink) -> dict[str, int]:
    c, d = link.endpoint.counters, link.decoder.stats
    return {
        "frames_sent": c.frames_sent,
        "frames_received": c.frames_received,
        "retransmits": c.retransmits,
        "timeouts": c.timeouts,
        "naks_sent": c.naks_sent,
        "naks_received": c.naks_received,
        "duplicates": c.duplicates,
        "out_of_order": c.out_of_order,
        "bad_frames_received": d.bad_frames,
        "crc_errors": d.crc_errors,
        "garbage_bytes": d.garbage_bytes,
        "reconnects": link.stats.reconnects,
        "mcu_resets": link.stats.mcu_resets,
        # docs/mcu-protocol.md 3.2, 3.3, 4: recovery while unsynchronised, a previous host's
        # strokes ignored, commands the MCU skipped
        "unsynced_naks_sent": c.unaks_sent,
        "syn_resends": c.syn_resends,
        "foreign_action_done": link.stats.foreign_action_done,
        "skipped_commands": link.stats.skipped_commands,
    }


async def run_pings(
    link: McuLink,
    count: int,
    *,
    inflight: int = 1,
    timeout: float = 2.0,
    progress: Callable[[int, int], None] | None = None,
) -> PingReport:
    """``count`` pings, at most ``inflight`` outstanding; a ping unanswered after ``timeout``
    seconds counts as lost."""
    report = PingReport(count)
    sem = asyncio.Semaphore(inflight)
    done = 0

    async def one(i: int) -> None:
        nonlocal done
        async with sem:
            t = time.monotonic()
            try:
                await link.request("ping", timeout=timeout, data=i)
            except McuError as exc:
                report.lost += 1
                report.errors.append(f"ping {i}: {exc}")
            else:
                report.rtts.append(time.monotonic() - t)
                report.completed += 1
            done += 1
            if progress is not None:
                progress(done, count)

    start = time.monotonic()
    await asyncio.gather(*(one(i) for i in range(count)))
    report.seconds = time.monotonic() - start
    report.host = host_counters(link)
    try:
        report.mcu = await link.mcu_stats()
    except McuError:
        report.mcu = None
    return report
