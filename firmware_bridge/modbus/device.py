"""One Modbus device: planned reads, decoding, quality, and backoff while offline.

A device that stops answering costs its line at most one timeout per backoff period: after
a failed poll it is 'offline' and skipped until its backoff expires, then probed once
without retries. Backoff doubles up to ``backoff_max_ms`` and resets on the first answer.
"""

from __future__ import annotations

import logging
import struct
import time
from collections import deque
from collections.abc import Iterable
from dataclasses import replace

from pymodbus.pdu import DecodePDU, ModbusPDU
from pymodbus.pdu.bit_message import WriteSingleCoilRequest
from pymodbus.pdu.register_message import (
    WriteMultipleRegistersRequest,
    WriteSingleRegisterRequest,
)

from firmware_bridge.modbus.codec import CodecError, Value, decode
from firmware_bridge.modbus.config import ModbusDeviceConfig, ModbusTag
from firmware_bridge.modbus.datatypes import Table
from firmware_bridge.modbus.errors import (
    ModbusError,
    ModbusExceptionError,
    ModbusProtocolError,
    ModbusTimeoutError,
)
from firmware_bridge.modbus.link import ModbusLink
from firmware_bridge.modbus.planner import ReadRequest, Span, plan_reads
from firmware_bridge.modbus.quality import Quality, TagValue
from firmware_bridge.modbus.writer import check_write

log = logging.getLogger("wolfpack.modbus")

_READ_FUNCTION = {
    Table.COIL: 1,
    Table.DISCRETE_INPUT: 2,
    Table.HOLDING_REGISTER: 3,
    Table.INPUT_REGISTER: 4,
}
_READ = struct.Struct(">BHH")
_ANSWERS = DecodePDU(is_server=False)


def span_of(tag: ModbusTag) -> Span:
    return Span(tag.name, tag.table, tag.address, tag.count)


class ModbusDevice:
    def __init__(self, cfg: ModbusDeviceConfig, link: ModbusLink) -> None:
        self.cfg = cfg
        self.link = link
        self.plan = self.plan_for(tag.name for tag in cfg.tags)
        self.online = True
        self.last_error: ModbusError | None = None
        self.next_probe = 0.0  # monotonic time an offline device may be tried again
        self._backoff = cfg.backoff_ms / 1000
        self._values: dict[str, TagValue] = {}
        self.poll_starts: deque[float] = deque(maxlen=1000)  # monotonic, for diagnostics

    @property
    def timeout(self) -> float:
        return self.cfg.timeout_ms / 1000

    def plan_for(self, names: Iterable[str]) -> list[ReadRequest]:
        spans = [span_of(self.cfg.tag(name)) for name in names]
        return plan_reads(spans, self.cfg.max_registers, self.cfg.max_bits, self.cfg.max_gap)

    def due(self, now: float) -> bool:
        """An online device is always due; an offline one only when its backoff expired."""
        return self.online or now >= self.next_probe

    # -- reading -----------------------------------------------------------------------------

    def transact(self, pdu: bytes, retries: int | None = None) -> bytes:
        """One transaction with this device's timeout; retries after timeouts or link drops."""
        tries = 1 + (self.cfg.retries if retries is None else retries)
        for attempt in range(tries):
            try:
                return self.link.transact(self.cfg.unit_id, pdu, self.timeout)
            except (ModbusExceptionError, ModbusProtocolError):
                raise
            except ModbusError as exc:
                if attempt + 1 == tries:
                    raise type(exc)(f"device {self.cfg.name}: {exc}") from exc
        raise AssertionError("unreachable")

    def read_registers(self, req: ReadRequest, retries: int | None = None) -> list[int]:
        """Read one planned request: registers, or bits as 0/1, exactly ``req.count``."""
        pdu = _READ.pack(_READ_FUNCTION[req.table], req.address, req.count)
        answer = self.transact(pdu, retries)
        size = (req.count + 7) // 8 if req.table.is_bits else 2 * req.count
        if len(answer) != 2 + size or answer[1] != size:
            raise ModbusProtocolError(
                f"device {self.cfg.name}: asked {req.count} at {req.table.value} "
                f"{req.address}, got {len(answer) - 2} bytes"
            )
        if req.table.is_bits:
            data = answer[2:]
            return [(data[i >> 3] >> (i & 7)) & 1 for i in range(req.count)]
        return list(struct.unpack_from(f">{req.count}H", answer, 2))

    def poll(self, names: Iterable[str] | None = None) -> dict[str, TagValue]:
        """Read the named tags (default all) once; return every one with its quality."""
        start = time.monotonic()
        self.poll_starts.append(start)
        plan = self.plan if names is None else self.plan_for(names)
        retries = None if self.online else 0
        results: dict[str, TagValue] = {}
        failure: ModbusError | None = None
        for req in plan:
            if failure is not None:
                self._fail(req.tags, failure, results)
                continue
            try:
                regs = self.read_registers(req, retries)
            except ModbusExceptionError as exc:
                # The device is alive and said no: these tags are bad, the rest go on.
                for span in req.tags:
                    results[span.name] = self._bad(span.name, exc.cause)
                continue
            except ModbusError as exc:
                failure = exc
                self._fail(req.tags, exc, results)
                continue
            now = time.time()
            for span in req.tags:
                tag = self.cfg.tag(span.name)
                offset = span.address - req.address
                try:
                    value: Value = decode(tag.encoding, regs[offset : offset + span.count])
                except CodecError as exc:
                    results[span.name] = self._bad(span.name, f"cannot decode: {exc}")
                    continue
                results[span.name] = TagValue(
                    self.cfg.name, tag.name, value, tag.unit, Quality.GOOD, now
                )
        self._health(failure, start)
        self._values.update(results)
        return results

    def _bad(self, name: str, cause: str) -> TagValue:
        unit = self.cfg.tag(name).unit
        return TagValue(self.cfg.name, name, None, unit, Quality.BAD, time.time(), cause)

    def _fail(self, spans: Iterable[Span], exc: ModbusError, out: dict[str, TagValue]) -> None:
        now = time.time()
        for span in spans:
            last = self._values.get(span.name)
            if (
                last is not None
                and last.value is not None
                and now - last.timestamp <= self.cfg.stale_after_s
            ):
                out[span.name] = TagValue(
                    last.device, last.tag, last.value, last.unit, Quality.STALE,
                    last.timestamp, exc.cause,
                )  # fmt: skip
            else:
                out[span.name] = self._bad(span.name, exc.cause)

    def _health(self, failure: ModbusError | None, start: float) -> None:
        if failure is None:
            if not self.online:
                log.info("modbus device %s is back online", self.cfg.name)
            self.online, self.last_error = True, None
            self._backoff = self.cfg.backoff_ms / 1000
            return
        if self.online:
            log.warning("modbus device %s offline: %s", self.cfg.name, failure)
        else:
            self._backoff = min(self._backoff * 2, self.cfg.backoff_max_ms / 1000)
        self.online, self.last_error = False, failure
        self.next_probe = start + self._backoff
        if isinstance(failure, ModbusTimeoutError | ModbusProtocolError):
            return
        self.link.close()

    def values(self) -> dict[str, TagValue]:
        """The latest value of every tag read so far, aged to now (see ``age``)."""
        now = time.time()
        return {name: self.age(value, now) for name, value in self._values.items()}

    def age(self, value: TagValue, now: float) -> TagValue:
        """Downgrade a value nobody refreshed: good -> stale -> bad after ``stale_after``.

        An offline device is only probed once per backoff period, so its values are aged
        here rather than waiting for the next probe.
        """
        if value.value is None or now - value.timestamp <= self.cfg.stale_after_s:
            return value
        if value.quality is Quality.GOOD:
            return replace(value, quality=Quality.STALE, cause="not refreshed")
        if value.quality is Quality.STALE:
            return replace(value, quality=Quality.BAD, value=None)
        return value

    # -- writing -----------------------------------------------------------------------------

    def write(
        self, name: str, value: Value, verify: bool | None = None, retries: int | None = None
    ) -> list[int]:
        """Write one read-write tag after checking it against the config; return registers.

        With ``verify`` (default: the tag's ``verify_write``) the tag is read back and must
        hold exactly what was written. ``retries`` overrides the device's (a heartbeat is
        better sent again fresh than retried late).
        """
        tag = self.cfg.tag(name)
        regs = check_write(self.cfg.name, tag, value)
        if tag.table is Table.COIL:
            request: ModbusPDU = WriteSingleCoilRequest(address=tag.address, bits=[bool(regs[0])])
        elif len(regs) == 1:
            request = WriteSingleRegisterRequest(address=tag.address, registers=regs)
        else:
            request = WriteMultipleRegistersRequest(address=tag.address, registers=regs)
        pdu = bytes([request.function_code]) + request.encode()
        echo = _ANSWERS.decode(self.transact(pdu, retries))
        if echo is None or echo.address != tag.address:
            raise ModbusProtocolError(f"device {self.cfg.name}: bad answer to write of {name}")
        if verify if verify is not None else tag.verify_write:
            back = self.read_registers(self.plan_for([name])[0])
            if back != regs:
                raise ModbusProtocolError(
                    f"device {self.cfg.name}: tag {name} read back {back} after writing {regs}"
                )
        return regs
