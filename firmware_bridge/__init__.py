"""Talks to devices: the MCU serial link, line devices and Modbus RTU/TCP register maps."""
