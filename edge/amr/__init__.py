"""The AMR / unmanned vehicle machine: a VDA 5050 2.1 vehicle (order core, drive, node)."""
