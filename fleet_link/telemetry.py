"""Report-by-exception: decide whether a telemetry group's new values are worth sending.

A group is sent every ``interval_s`` whatever happens (so a silent node is visibly alive),
and between periods when a numeric value moved more than its deadband since the last send, or
a non-numeric value changed; never more often than ``min_interval_s``.
"""

from __future__ import annotations

from typing import Any

from fleet_link.config import TelemetryGroupConfig

_DEFAULT = TelemetryGroupConfig()


class Deadband:
    def __init__(self, groups: dict[str, TelemetryGroupConfig]) -> None:
        self._groups = groups
        self._last: dict[str, tuple[float, dict[str, Any]]] = {}

    def decide(self, group: str, values: dict[str, Any], now: float) -> str | None:
        """'periodic' or 'change' when the values should be sent now, else None."""
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
        if self._moved(values, sent, cfg.deadbands):
            return self._sent(group, values, now, "change")
        return None

    def _sent(self, group: str, values: dict[str, Any], now: float, reason: str) -> str:
        self._last[group] = (now, dict(values))
        return reason

    @staticmethod
    def _moved(values: dict[str, Any], sent: dict[str, Any], bands: dict[str, float]) -> bool:
        if values.keys() != sent.keys():
            return True
        for key, value in values.items():
            before = sent[key]
            numeric = isinstance(value, int | float) and not isinstance(value, bool)
            if numeric and isinstance(before, int | float) and not isinstance(before, bool):
                if abs(value - before) > bands.get(key, 0.0):
                    return True
            elif value != before:
                return True
        return False
