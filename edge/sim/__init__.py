"""`wolfpack sim`: the whole simulated cell (world, PLC, MCU, scanner, broker, brain) with
the real node beside it, faults on a schedule, and a report of what happened to each parcel."""
