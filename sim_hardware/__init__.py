"""Simulated hardware: MCU firmware on a pty, PLCs, camera, belt world, reference brain."""
