"""The simulated conveyor PLC's register map (documented in docs/modbus.md).

Addresses are 0-based protocol addresses. Reading or writing any address not listed here
answers exception 2 (illegal data address), as real PLCs do.
"""

from __future__ import annotations

import struct

from sim_hardware.plc.world import STATIONS, PlcCommands, PlcStatus

MODEL_NAME = "WP-CONVEYOR-SIM"

# Coils (read-write)
COIL_RUN = 0
COIL_FAULT_RESET = 1  # write 1; the PLC clears it after acting on it
COIL_DIVERTER_1 = 8  # .. 15: diverter 1..8
# Discrete inputs (read-only)
DI_RUNNING = 0
DI_ESTOP = 1  # 1 = e-stop pressed
DI_VFD_FAULT = 2
DI_COMM_LOST = 3  # 1 after the communication watchdog stopped the belt (until a heartbeat)
DI_PHOTO_EYE_1 = 8  # .. 15: 1 = beam blocked
DI_CHUTE_FULL_1 = 16  # .. 23
# Holding registers (read-write)
HR_SPEED_SETPOINT = 0  # 0-1: float32 ABCD, m/s
HR_RAMP = 2  # uint16, mm/s^2
HR_HEARTBEAT = 10  # uint16: the master writes a changing value; see COMM WATCHDOG below
HR_DATA = 100  # 100..1099: general data memory (uint16, starts holding its own address)
HR_DATA_END = 1100
# Input registers (read-only)
IR_SPEED = 0  # 0-1: float32 ABCD, m/s
IR_SPEED_MM_S = 2  # uint16, mm/s
IR_VFD_FAULT_CODE = 3  # uint16, 0 = no fault
IR_PARCEL_COUNT = 4  # 4-5: uint32 CDAB (low word first)
IR_ODOMETER = 6  # 6-9: float64 ABCD, metres
IR_MOTOR_CURRENT = 10  # int16, 0.01 A
IR_VFD_TEMPERATURE = 11  # int16, 0.1 degC
IR_MODEL = 12  # 12-19: string, 8 registers, ABCD
IR_COMM_WATCHDOG_MS = 20  # uint16: the communication watchdog's timeout (0 = off)
IR_END = 21

# COMM WATCHDOG (the communication-loss stop real PLCs and drives are configured for): when
# the PLC is configured with a timeout and HR_HEARTBEAT does not change for that long, it
# clears the run coil, stops the belt on the quick-stop ramp and sets DI_COMM_LOST. A changed
# heartbeat clears DI_COMM_LOST; the belt stays stopped until the master writes run again.
QUICK_STOP_MM_S2 = 10000  # 2.5 m/s to rest in 0.25 s

# Defined address ranges of each table: (start, end) pairs, end exclusive.
DEFINED = {
    "coil": ((0, 2), (COIL_DIVERTER_1, COIL_DIVERTER_1 + STATIONS)),
    "discrete_input": ((0, 4), (DI_PHOTO_EYE_1, DI_CHUTE_FULL_1 + STATIONS)),
    "holding_register": ((0, 3), (HR_HEARTBEAT, HR_HEARTBEAT + 1), (HR_DATA, HR_DATA_END)),
    "input_register": ((0, IR_END),),
}


def _float32(value: float) -> list[int]:
    a, b = struct.unpack(">HH", struct.pack(">f", value))
    return [a, b]


def _float64(value: float) -> list[int]:
    return list(struct.unpack(">HHHH", struct.pack(">d", value)))


class RegisterImage:
    """The four tables of one unit id, and the translation to and from the world."""

    def __init__(self, comm_watchdog_ms: int = 0) -> None:
        self.comm_watchdog_ms = comm_watchdog_ms
        self.comm_lost = False
        self._quick_stop = False
        self._heartbeat_changed = False
        self._silent_s = 0.0
        self.comm_trips = 0
        self.tables: dict[str, dict[int, int]] = {
            table: {a: 0 for start, end in ranges for a in range(start, end)}
            for table, ranges in DEFINED.items()
        }
        hr = self.tables["holding_register"]
        hr[HR_RAMP] = 1000
        for address in range(HR_DATA, HR_DATA_END):
            hr[address] = address
        model = MODEL_NAME.encode().ljust(16, b"\x00")
        for i in range(8):
            self.tables["input_register"][IR_MODEL + i] = int.from_bytes(model[2 * i : 2 * i + 2])
        self.tables["input_register"][IR_COMM_WATCHDOG_MS] = comm_watchdog_ms & 0xFFFF

    def defined(self, table: str, address: int, count: int) -> bool:
        cells = self.tables[table]
        return all(a in cells for a in range(address, address + count))

    def get(self, table: str, address: int, count: int) -> list[int]:
        cells = self.tables[table]
        return [cells[a] for a in range(address, address + count)]

    def set(self, table: str, address: int, values: list[int]) -> None:
        cells = self.tables[table]
        for i, value in enumerate(values):
            a = address + i
            if table == "holding_register" and a == HR_HEARTBEAT and int(value) != cells[a]:
                self._heartbeat_changed = True
            if table == "coil" and a == COIL_RUN and value:
                self._quick_stop = False  # a fresh run command ends the comm-loss stop
            cells[a] = int(value)

    def comm_tick(self, dt: float) -> bool:
        """Advance the communication watchdog by ``dt`` s; True when it trips now and stops
        a belt that was commanded to run."""
        if self._heartbeat_changed:
            self._heartbeat_changed = False
            self._silent_s = 0.0
            self.comm_lost = False
            self.tables["discrete_input"][DI_COMM_LOST] = 0
            return False
        if self.comm_watchdog_ms <= 0 or self.comm_lost:
            return False
        self._silent_s += dt
        if self._silent_s * 1000 < self.comm_watchdog_ms:
            return False
        self.comm_lost = True
        self.comm_trips += 1
        self.tables["discrete_input"][DI_COMM_LOST] = 1
        if not self.tables["coil"][COIL_RUN]:
            return False
        self.tables["coil"][COIL_RUN] = 0
        self._quick_stop = True
        return True

    def commands(self) -> PlcCommands:
        coils = self.tables["coil"]
        hr = self.tables["holding_register"]
        setpoint = struct.unpack(
            ">f", struct.pack(">HH", hr[HR_SPEED_SETPOINT], hr[HR_SPEED_SETPOINT + 1])
        )[0]
        return PlcCommands(
            run=bool(coils[COIL_RUN]),
            fault_reset=bool(coils[COIL_FAULT_RESET]),
            speed_setpoint=setpoint if setpoint == setpoint else 0.0,  # NaN -> 0
            ramp_mm_s2=max(hr[HR_RAMP], QUICK_STOP_MM_S2) if self._quick_stop else hr[HR_RAMP],
            quick_stop=self._quick_stop,
            diverters=tuple(bool(coils[COIL_DIVERTER_1 + i]) for i in range(STATIONS)),
        )

    def publish(self, status: PlcStatus) -> None:
        """Write the world's status into the read-only tables."""
        self.tables["coil"][COIL_FAULT_RESET] = 0
        di = self.tables["discrete_input"]
        di[DI_RUNNING], di[DI_ESTOP] = int(status.running), int(status.estop)
        di[DI_VFD_FAULT] = int(status.vfd_faulted)
        for i in range(STATIONS):
            di[DI_PHOTO_EYE_1 + i] = int(status.photo_eyes[i])
            di[DI_CHUTE_FULL_1 + i] = int(status.chute_full[i])
        ir = self.tables["input_register"]
        ir[IR_SPEED], ir[IR_SPEED + 1] = _float32(status.speed)
        ir[IR_SPEED_MM_S] = min(round(status.speed * 1000), 0xFFFF)
        ir[IR_VFD_FAULT_CODE] = status.vfd_fault_code & 0xFFFF
        count = status.parcel_count & 0xFFFFFFFF
        ir[IR_PARCEL_COUNT], ir[IR_PARCEL_COUNT + 1] = count & 0xFFFF, count >> 16
        for i, word in enumerate(_float64(status.odometer_m)):
            ir[IR_ODOMETER + i] = word
        ir[IR_MOTOR_CURRENT] = round(status.motor_current_a * 100) & 0xFFFF
        ir[IR_VFD_TEMPERATURE] = round(status.vfd_temperature_c * 10) & 0xFFFF
