"""A simulated fixed barcode scanner on a pty and/or a TCP port (docs/line-devices.md)."""

from sim_hardware.scanner.device import ScannerOptions, SimScanner
from sim_hardware.scanner.thread import SimScannerThread

__all__ = ["ScannerOptions", "SimScanner", "SimScannerThread"]
