"""CRC-16/CCITT-FALSE, the frame check of the MCU link.

Parameters: width 16, poly 0x1021, init 0xFFFF, no reflection, xorout 0x0000; check value
0x29B1 for b"123456789". ``binascii.crc_hqx`` computes exactly this in C, so the host needs no
table of its own; firmware uses the usual 256-entry table or the bitwise loop.
"""

from __future__ import annotations

import binascii

CRC_INIT = 0xFFFF
CRC_POLY = 0x1021
CRC_CHECK = 0x29B1  # crc16(b"123456789")


def crc16(data: bytes | bytearray | memoryview) -> int:
    """CRC-16/CCITT-FALSE of ``data``."""
    return binascii.crc_hqx(data, CRC_INIT)
