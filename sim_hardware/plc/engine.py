"""Answers decoded Modbus requests like a PLC: one at a time, after its turnaround time.

It is the datastore pymodbus's request PDUs run against (``async_getValues`` /
``async_setValues``), so pymodbus itself builds every answer, including exception answers.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

from pymodbus.constants import ExcCodes
from pymodbus.pdu import ExceptionResponse, ModbusPDU

from sim_hardware.plc.faults import FaultPlan
from sim_hardware.plc.register_map import RegisterImage

_TABLE_OF_FUNCTION = {
    1: "coil", 5: "coil", 15: "coil",
    2: "discrete_input",
    3: "holding_register", 6: "holding_register", 16: "holding_register",
    22: "holding_register", 23: "holding_register",
    4: "input_register",
}  # fmt: skip


class PlcEngine:
    def __init__(
        self, units: Sequence[int], turnaround_s: float = 0.0, comm_watchdog_ms: int = 0
    ) -> None:
        self.images = {unit: RegisterImage(comm_watchdog_ms) for unit in units}
        self.turnaround_s = turnaround_s
        self.faults = FaultPlan()  # applies to every unit
        self.unit_faults: dict[int, FaultPlan] = {}
        self.requests = 0
        self._busy = asyncio.Lock()

    def fault_for(self, unit: int) -> FaultPlan:
        return self.unit_faults.get(unit, self.faults)

    async def answer(self, request: ModbusPDU, extra_delay_s: float = 0.0) -> ModbusPDU | None:
        """The response to send, or None for silence (unknown unit or injected fault)."""
        unit = request.dev_id
        fault = self.fault_for(unit)
        if unit not in self.images or fault.drops():
            return None
        async with self._busy:  # one request at a time, like a PLC's comms task
            delay = self.turnaround_s + fault.delay_s + extra_delay_s
            if delay > 0:
                await asyncio.sleep(delay)
            self.requests += 1
            if fault.exception is not None:
                response: ModbusPDU = ExceptionResponse(request.function_code, fault.exception)
            else:
                response = await request.datastore_update(self, unit)  # type: ignore[arg-type]
        response.dev_id = unit
        response.transaction_id = request.transaction_id
        return response

    # The datastore interface pymodbus's request PDUs call.
    async def async_getValues(
        self, device_id: int, func_code: int, address: int, count: int = 1
    ) -> list[int] | list[bool] | ExcCodes:
        table = _TABLE_OF_FUNCTION.get(func_code)
        if table is None:
            return ExcCodes.ILLEGAL_FUNCTION
        image = self.images[device_id]
        if not image.defined(table, address, count):
            return ExcCodes.ILLEGAL_ADDRESS
        values = image.get(table, address, count)
        if table in ("coil", "discrete_input"):
            return [bool(v) for v in values]
        return values

    async def async_setValues(
        self, device_id: int, func_code: int, address: int, values: Sequence[int] | Sequence[bool]
    ) -> ExcCodes | None:
        table = _TABLE_OF_FUNCTION.get(func_code)
        if table not in ("coil", "holding_register"):
            return ExcCodes.ILLEGAL_FUNCTION
        image = self.images[device_id]
        if not image.defined(table, address, len(values)):
            return ExcCodes.ILLEGAL_ADDRESS
        image.set(table, address, [int(v) for v in values])
        return None

    def device_ids(self) -> list[int]:
        return list(self.images)
