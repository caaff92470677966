"""Over real ptys: identify, and refusal of incompatible firmware (Python and C firmware)."""

from __future__ import annotations

import asyncio

import pytest

from firmware_bridge.mcu import IncompatibleFirmwareError, LinkState, McuLink
from firmware_bridge.mcu.identity import PROTOCOL_VERSION, REQUIRED_COMMANDS


def test_identify_reports_the_firmware_and_syncs_the_clock(start_mcu):
    mcu = start_mcu(drift_ppm=40.0)
    path = mcu.path

    async def main():
        async with McuLink(path) as link:
            assert link.state is LinkState.CONNECTED
            return link.identity, link.clock

    ident, clock = asyncio.run(main())
    assert ident.firmware == mcu.identity["firmware"] and ident.protocol == PROTOCOL_VERSION
    assert ident.rx_window == mcu.identity["rx_window"] and ident.clock_freq == 1_000_000
    assert REQUIRED_COMMANDS <= set(ident.commands)
    assert clock.ready and clock.uncertainty_s < 0.005


def test_firmware_of_another_protocol_is_refused_saying_what_differs(start_mcu):
    mcu = start_mcu(protocol=PROTOCOL_VERSION + 1)
    path = mcu.path

    async def main():
        link = McuLink(path)
        with pytest.raises(IncompatibleFirmwareError) as err:
            await link.connect()
        assert link.state is LinkState.CLOSED
        return str(err.value)

    text = asyncio.run(main())
    assert path in text and mcu.identity["firmware"] in text
    assert f"protocol version {PROTOCOL_VERSION + 1}, this host speaks {PROTOCOL_VERSION}" in text


def test_firmware_lacking_a_needed_command_is_refused(mcu_firmware):
    path = mcu_firmware

    async def main():
        link = McuLink(path, required_commands=REQUIRED_COMMANDS | {"move_arm"})
        with pytest.raises(IncompatibleFirmwareError, match="lacks the commands move_arm"):
            await link.connect()

    asyncio.run(main())
