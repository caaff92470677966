"""The simulated sorting-arm cell: the MuJoCo world (``world``, built from ``config`` by
``model``), the arm MCU on a pty coupled to it (``mcu``), and the whole cell with its camera
and the oracle controller (``cell``, ``oracle``). docs/sim-arm-world.md describes the world.
Nothing here is imported by a board install: MuJoCo is a simulator dependency."""
