"""A simulated conveyor PLC: Modbus TCP and RTU (on a pty) over a small conveyor world.

``world`` is the physics (replaceable: anything with ``step(dt, commands) -> status``),
``register_map`` the documented register layout, ``engine`` answers Modbus requests with
turnaround, wire time and injected faults, ``tcp_server``/``rtu_server`` carry the frames and
``simulator`` runs it all in a background thread for tests or in the foreground for the CLI.
"""

from sim_hardware.plc.faults import FaultPlan
from sim_hardware.plc.simulator import PlcSimulator
from sim_hardware.plc.world import ConveyorWorld, PlcCommands, PlcStatus, PlcWorld

__all__ = ["ConveyorWorld", "FaultPlan", "PlcCommands", "PlcSimulator", "PlcStatus", "PlcWorld"]
