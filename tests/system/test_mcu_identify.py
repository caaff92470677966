"""Over real ptys: identify, and refusal of incompatible firmware."""

from __future__ import annotations

import asyncio

import pytest

from firmware_bridge.mcu import IncompatibleFirmwareError, LinkState, McuLink
from firmware_bridge.mcu.identity import PROTOCOL_VERSION, REQUIRED_COMMANDS
from tests.firmware_bridge.mcu.harness import sim_mcu


def test_identify_reports_the_firmware_and_syncs_the_clock(tmp_path):
    with sim_mcu(tmp_path, drift_ppm=40.0) as (_, path):

        async def main():
            async with McuLink(path) as link:
                assert link.state is LinkState.CONNECTED
                return link.identity, link.clock

        ident, clock = asyncio.run(main())
        assert ident.firmware == "wolfpack-sim-mcu" and ident.protocol == PROTOCOL_VERSION
        assert ident.rx_window == 8 and ident.clock_freq == 1_000_000
        assert REQUIRED_COMMANDS <= set(ident.commands)
        assert clock.ready and clock.uncertainty_s < 0.005


def test_firmware_of_another_protocol_is_refused_saying_what_differs(tmp_path):
    with sim_mcu(tmp_path, protocol=PROTOCOL_VERSION + 1) as (_, path):

        async def main():
            link = McuLink(path)
            with pytest.raises(IncompatibleFirmwareError) as err:
                await link.connect()
            assert link.state is LinkState.CLOSED
            return str(err.value)

        text = asyncio.run(main())
        assert path in text and "wolfpack-sim-mcu" in text
        assert (
            f"protocol version {PROTOCOL_VERSION + 1}, this host speaks {PROTOCOL_VERSION}" in text
        )


def test_firmware_lacking_a_needed_command_is_refused(tmp_path):
    with sim_mcu(tmp_path) as (_, path):

        async def main():
            link = McuLink(path, required_commands=REQUIRED_COMMANDS | {"move_arm"})
            with pytest.raises(IncompatibleFirmwareError, match="lacks the commands move_arm"):
                await link.connect()

        asyncio.run(main())
