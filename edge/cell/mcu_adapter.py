"""Between the cell core and a real ``McuLink``: strokes become ``schedule_at_count`` /
``cancel_action`` commands, and the MCU's events (``action_done``, ``input_edge``,
``encoder_report``) become the core's facts, stamped with the MCU's encoder counts."""

from __future__ import annotations

import asyncio
import logging
import time

from edge.cell.config import CellConfig
from edge.cell.events import (
    CancelStroke,
    CellEvent,
    ChuteSensor,
    EyeEdge,
    ScheduleStroke,
    StrokeDone,
    StrokeRefused,
    Tick,
)
from firmware_bridge.mcu import McuCommandError, McuLink
from firmware_bridge.mcu import messages as m

log = logging.getLogger("wolfpack.cell.mcu")


class McuDiverter:
    """Owns the mapping parcel <-> MCU action id for one cell's MCU."""

    def __init__(self, link: McuLink, cfg: CellConfig) -> None:
        self.link = link
        self.encoder = cfg.belt.encoder
        self._eyes = {e.mcu_input: e.id for e in cfg.photo_eyes}
        self._chutes = {c.confirm_input: c.id for c in cfg.chutes if c.confirm_input is not None}
        if cfg.reject.confirm_input is not None:
            self._chutes[cfg.reject.confirm_input] = cfg.reject.id
        self._actions: dict[int, int] = {}  # MCU action id -> parcel id
        self._by_parcel: dict[int, int] = {}  # parcel id -> MCU action id

    async def configure(self, outputs: list[int]) -> None:
        """Declare the diverter outputs (safe value 0: retracted)."""
        for pin in outputs:
            await self.link.configure_output(pin, safe_value=0)

    async def schedule(self, action: ScheduleStroke) -> CellEvent | None:
        """Schedule the stroke on the MCU; a refusal comes back as a ``StrokeRefused``."""
        try:
            action_id = await self.link.schedule_at_count(
                action.count,
                pin=action.output,
                duration_s=action.duration_ms / 1000,
                encoder=action.encoder,
            )
        except McuCommandError as exc:
            return StrokeRefused(action.parcel_id, exc.reason, time.monotonic())
        self._actions[action_id] = action.parcel_id
        self._by_parcel[action.parcel_id] = action_id
        return None

    async def cancel(self, action: CancelStroke) -> None:
        action_id = self._by_parcel.pop(action.parcel_id, None)
        if action_id is None:
            return
        try:
            await self.link.cancel_action(action_id)
        except McuCommandError as exc:
            self._forget(action_id)
            if exc.code != m.ERR_NOT_FOUND:  # not_found: it fired, its action_done came first
                raise
        else:
            self._forget(action_id)

    def cancel_all_now(self) -> list[tuple[int, asyncio.Future[m.Message]]]:
        """Cancel every pending action (e-stop), whatever the core believes: the cancels are
        on the wire when this returns. (action id, answer) for each; ``settle`` them."""
        ids = list(self._by_parcel.values())
        self._by_parcel.clear()
        if not ids:
            return []
        return list(zip(ids, self.link.cancel_actions_now(ids), strict=True))

    def settle(self, action_id: int, answer: asyncio.Future[m.Message]) -> None:
        """A cancel's answer is in: forget the action (a stroke that fired before the cancel
        arrived sent its ``action_done`` first, so the core has already heard of it)."""
        self._forget(action_id)
        exc = answer.exception() if not answer.cancelled() else None
        if exc is not None and not (
            isinstance(exc, McuCommandError) and exc.code == m.ERR_NOT_FOUND
        ):
            raise exc

    def _forget(self, action_id: int) -> None:
        # Kept until the MCU answered: its action_done for a stroke that fired just before the
        # cancel arrived comes first on the link and must still reach the core as fired.
        self._actions.pop(action_id, None)

    async def cancel_all(self) -> None:
        """Cancel every pending action and await the answers; the first failure is raised
        after all are settled."""
        sent = self.cancel_all_now()
        await asyncio.gather(*(answer for _, answer in sent), return_exceptions=True)
        failures: list[BaseException] = []
        for action_id, answer in sent:
            try:
                self.settle(action_id, answer)
            except Exception as exc:
                failures.append(exc)
        if failures:
            raise failures[0]

    def pending(self) -> dict[int, int]:
        """Parcel id -> MCU action id of every stroke the MCU holds for this node."""
        return dict(self._by_parcel)

    def adopt(self, actions: dict[int, int]) -> None:
        """Strokes a previous node scheduled (from its journal): their ``action_done`` is
        recognised, and this link's own action ids start past them."""
        for parcel_id, action_id in actions.items():
            self._actions[action_id] = parcel_id
            self._by_parcel[parcel_id] = action_id
        if actions:
            self.link.skip_actions_through(max(actions.values()))

    def translate(self, msg: m.Message) -> CellEvent | None:
        """An MCU event as a cell fact (None if it is not one)."""
        now = time.monotonic()
        if msg.name == "action_done":
            parcel_id = self._actions.pop(msg["action"], None)
            if parcel_id is None:
                return None
            self._by_parcel.pop(parcel_id, None)
            return StrokeDone(parcel_id, msg["count"], now)
        if msg.name == "input_edge":
            pin = msg["pin"]
            if pin in self._eyes:
                return EyeEdge(self._eyes[pin], bool(msg["value"]), msg["count"], now)
            if pin in self._chutes:
                return ChuteSensor(self._chutes[pin], msg["count"], now, bool(msg["value"]))
            return None
        if msg.name == "encoder_report" and msg["encoder"] == self.encoder:
            return Tick(msg["count"], now)
        return None
