"""The simulated warehouse for the AMR machine: map, vehicles with their drive MCUs, ground
truth (collisions, off the map), and the reference master control (master.py)."""
