"""Report-by-exception: decide whether a telemetry group's new values are worth sending.

A group is sent every ``interval_s`` whatever happens (so a silent node is visibly alive),
and between periods when a numeric value moved more than its deadband since the last send, or
a non-numeric value changed (a reading that fails, ``null``, is a change); never more often
than ``min_interval_s``.

Some fields change all the time and are not news by themselves: running totals (frames sent,
encoder count, strokes) and details beside a summary (each thermal zone beside the hottest).
A group names them in ``quiet``: they ride along with every send without causing one, unless
the config gives them a deadband (``retransmits: 10``: send early once ten more happened).
"""

from __future__ import annotations

from collections.abc import Collection
from typing import Any

from fleet_link.config import TelemetryGroupConfig

_DEFAULT = TelemetryGroupConfig()


class Deadband:
    def __init__(self, groups: dict[str, TelemetryGroupConfig]) -> None:
        self._groups = groups
        self._last: dict[str, tuple[float, dict[str, Any]]] = {}

    def decide(
        self, group: str, values: dict[str, Any], now: float, quiet: Collection[str] = ()
    ) -> str | None:
        """'periodic' or 'change' when the values should be sent now, else None. A field in
        ``quiet`` counts as a change only when it has a deadband of its own."""
        cfg = self._groups.get(group, _DEFAULT)
        last = self._last.get(group)
        if last is None:
            return self._sent(group, values, now, "periodic")
        sent_at, sent = last
        elapsed = now - sent_at
        if elapsed >= cfg.interval_s:
            return self._sent(group, values, now, "periodic")
        if elapsed < cfg.min_interval_s:
            return None
        if self._moved(values, sent, cfg.deadbands, quiet):
            return self._sent(group, values, now, "change")
        return None

    def forget(self, group: str) -> None:
        """The next values of ``group`` are sent whatever they are (e.g. after a restart)."""
        self._last.pop(group, None)

    def _sent(self, group: str, values: dict[str, Any], now: float, reason: str) -> str:
        self._last[group] = (now, dict(values))
        return reason

    @staticmethod
    def _moved(
        values: dict[str, Any],
        sent: dict[str, Any],
        bands: dict[str, float],
        quiet: Collection[str] = (),
    ) -> bool:
        if values.keys() != sent.keys():
            return True
        for key, value in values.items():
            if key in quiet and key not in bands:
                continue
            before = sent[key]
            numeric = isinstance(value, int | float) and not isinstance(value, bool)
            if numeric and isinstance(before, int | float) and not isinstance(before, bool):
                if abs(value - before) > bands.get(key, 0.0):
                    return True
            elif value != before:
                return True
        return False
