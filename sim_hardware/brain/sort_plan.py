"""The sort plan: which chute a label's destination goes to. One documented rule, so the
world's ground truth and the reference brain agree on what "the right chute" is.

Rule: take the ASCII digits 0-9 of the label text as one integer N; the chute is
``sort_stations[N mod len(sort_stations)]``. Code 128 labels carry 6 digits, 2D labels 'WP' +
10 digits, so every sort chute receives about the same share. Optional ``routes`` map a text
prefix to a chute first (longest prefix wins), as a real sort plan pins some customers.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

_ASCII_DIGITS = frozenset("0123456789")  # not str.isdigit: that takes '²' and other scripts


class SortPlanError(ValueError):
    """A label the plan cannot route (no digits and no matching route)."""


def chute_for_label(
    text: str, sort_stations: Sequence[int], routes: Mapping[str, int] | None = None
) -> int:
    if not sort_stations:
        raise SortPlanError("the sort plan has no sort chutes")
    if routes:
        for prefix in sorted(routes, key=len, reverse=True):
            if text.startswith(prefix):
                return routes[prefix]
    digits = "".join(c for c in text if c in _ASCII_DIGITS)
    if not digits:
        raise SortPlanError(f"label {text!r} has no digits and matches no route")
    return sort_stations[int(digits) % len(sort_stations)]
