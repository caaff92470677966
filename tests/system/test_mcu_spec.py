"""Over real ptys, against the Python firmware and the C host build alike: one test per open
point of the spec that issue 19 closed (docs/mcu-protocol.md, the sections named in each).

Some tests speak the protocol with a bare ``ReliableEndpoint`` instead of ``McuLink``, to put
on the wire what the host link never sends (an unknown command id, a bad frame, a reset
followed by more commands) and to look at the MCU's answer frame by frame.
"""

from __future__ import annotations

import asyncio
import dataclasses
import os
import time
import tty
from typing import Any

import pytest

from firmware_bridge.mcu import LinkState, McuCommandError, McuLink
from firmware_bridge.mcu import messages as m
from firmware_bridge.mcu.diagnostics import run_pings
from firmware_bridge.mcu.framing import FLAG_SYN, FLAG_UNAK, Frame, FrameDecoder, encode_frame
from firmware_bridge.mcu.reliable import ReliableEndpoint

UNKNOWN_ID = 0x3E  # in the command range, implemented by no firmware


class RawHost:
    """The host side of the protocol without McuLink: the reliable layer over the pty."""

    def __init__(self, path: str) -> None:
        self.fd = os.open(path, os.O_RDWR | os.O_NOCTTY | os.O_NONBLOCK)
        tty.setraw(self.fd)
        self.decoder = FrameDecoder(partial_timeout_s=0.05)
        self.ep = ReliableEndpoint(window=1)
        self.frames: list[Frame] = []
        self.messages: list[m.Message] = []

    def close(self) -> None:
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1

    def write(self, data: bytes) -> None:
        os.write(self.fd, data)

    def pump(self, seconds: float) -> None:
        """Read, acknowledge and decode for ``seconds``."""
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            try:
                data = os.read(self.fd, 4096)
            except BlockingIOError:
                data = b""
            now = time.monotonic()
            frames, bad = self.decoder.feed(data, now) if data else ([], False)
            for frame in frames:
                self.frames.append(frame)
                payload, _ = self.ep.on_frame(frame, now)
                if payload:
                    self.messages += m.decode_payload(payload)
            if bad:
                self.ep.request_nak()
            out = self.ep.take_output(now)
            if out:
                self.write(out)
            if not data:
                time.sleep(0.002)

    def connect(self) -> m.Message:
        """SYN identify, answered by the MCU's SYN frame."""
        self.ep.restart()
        self.ep.queue(m.encode("identify", req=0x4242))
        self.pump(0.3)
        (ident,) = [x for x in self.messages if x.name == "identify_response"]
        self.ep.window = ident["rx_window"]
        return ident

    def send(self, *messages: bytes, wait: float = 0.3) -> None:
        """These messages in one frame (the caller keeps them under max_payload)."""
        self.ep.queue(b"".join(messages))
        self.pump(wait)

    def named(self, name: str) -> list[m.Message]:
        return [x for x in self.messages if x.name == name]


@pytest.fixture
def raw_host() -> Any:
    hosts: list[RawHost] = []

    def open_host(path: str) -> RawHost:
        hosts.append(RawHost(path))
        return hosts[-1]

    yield open_host
    for host in hosts:
        host.close()


# ---- section 4: unknown command ids, answers in order, reset ends its payload ---------------


def test_an_unknown_command_is_answered_error_1_and_the_rest_of_its_frame_skipped(
    start_mcu, raw_host
):
    host = raw_host(start_mcu().path)
    host.connect()
    host.send(
        m.encode("ping", req=10, data=1),
        bytes((UNKNOWN_ID, 11, 0, 0xAA, 0xBB)),
        m.encode("ping", req=12, data=3),
    )
    assert [x["req"] for x in host.named("pong")] == [10]  # the one after it never ran
    (error,) = host.named("error")
    assert error["req"] == 11 and error["code"] == m.ERR_UNKNOWN_COMMAND
    faults = [x for x in host.named("fault") if x["code"] == m.FAULT_BAD_PAYLOAD]
    assert faults and "0x3e" in faults[0]["message"].lower()
    # answers in command order: pong 10 before error 11
    order = [x["req"] for x in host.messages if x.name in ("pong", "error")]
    assert order == [10, 11]


def test_reset_ends_its_payload(start_mcu, raw_host):
    host = raw_host(start_mcu().path)
    host.connect()
    host.send(m.encode("reset", req=20), m.encode("ping", req=21, data=0), wait=0.5)
    assert host.named("pong") == []
    starts = [f for f in host.frames if f.syn and f.payload and f.payload[0] == 0x80]
    assert starts, "no 'started' after the reset"


def test_the_host_fails_commands_the_mcu_skipped_and_never_sends_unlisted_ones(
    start_mcu,
):
    mcu = start_mcu()

    async def main() -> tuple[BaseException | None, BaseException | None]:
        async with McuLink(mcu.path) as link:
            first = link.request_nowait("ping", data=1)
            link.endpoint.queue(bytes((UNKNOWN_ID, 0x01, 0x00)))  # a newer host's command
            skipped = link.request_nowait("get_clock")
            await first
            await link.ping(2)  # answered after get_clock would have been: it was skipped
            skipped_error = skipped.exception() if skipped.done() else None
            # A firmware that does not list get_stats is never sent one.
            assert link.identity is not None
            commands = tuple(c for c in link.identity.commands if c != "get_stats")
            link.identity = dataclasses.replace(link.identity, commands=commands)
            try:
                await link.mcu_stats()
            except McuCommandError as exc:
                return skipped_error, exc
            return skipped_error, None

    skipped_error, unlisted = asyncio.run(main())
    assert isinstance(skipped_error, McuCommandError)
    assert skipped_error.code == m.ERR_UNKNOWN_COMMAND and "skipped" in str(skipped_error)
    assert isinstance(unlisted, McuCommandError) and "not sent" in str(unlisted)
    assert mcu.executed("get_stats") == []


# ---- section 3.3: what a new host SYN resets and keeps; action ids on the host --------------


async def _first_host_leaves_a_stroke(path: str) -> int:
    """A host that configures outputs, drives one, schedules a stroke 300 ms ahead, turns
    encoder reports on and vanishes (the MCU's watchdog stays quiet: 3 s)."""
    link = McuLink(path, watchdog_ms=3000)
    await link.connect()
    await link.configure_output(3, safe_value=0)
    await link.set_output(3, 1)
    await link.configure_output(4, safe_value=0)
    count, _ = await link.read_encoder()
    action = await link.schedule_at_count(count + 150, pin=4, duration_s=0.02)
    await link.set_encoder_report(0, 10)
    await asyncio.sleep(0.05)
    await link.close()
    return action


@pytest.mark.parametrize("adopt", [False, True], ids=["not-adopted", "adopted"])
def test_a_new_host_session_keeps_outputs_and_strokes_and_stops_reports(start_mcu, adopt):
    mcu = start_mcu(process=True)

    async def main() -> tuple[int, list[m.Message], McuLink]:
        action = await _first_host_leaves_a_stroke(mcu.path)
        got: list[m.Message] = []
        second = McuLink(mcu.path, watchdog_ms=3000)
        if adopt:
            second.adopt_actions([action])
        second.on_event(got.append)
        await second.connect()
        await asyncio.sleep(0.6)  # the stroke fires under the new host
        await second.close()
        return action, got, second

    action, got, second = asyncio.run(main())
    assert mcu.outputs()[3] == 1  # an output the last host drove stays driven
    fired = [r for r in mcu.actions_log() if r.action == action and r.target_kind == "count"]
    assert len(fired) == 1  # the pending stroke survived the new session
    done = [x for x in got if x.name == "action_done"]
    if adopt:
        assert [x["action"] for x in done] == [action]
    else:
        assert done == [] and second.stats.foreign_action_done == 1
    # the last host's encoder reports are off until the new host asks
    assert [x for x in got if x.name == "encoder_report"] == []


# ---- section 3.4 / 8.1: a bounded send queue, reports stopped by the watchdog -----------------


def test_with_the_host_gone_the_send_queue_is_bounded_and_the_drops_reported(start_mcu):
    mcu = start_mcu(process=True)
    toggles = 600

    async def main() -> list[m.Message]:
        first = McuLink(mcu.path, watchdog_ms=100, heartbeat_ms=25)
        await first.connect()
        await first.close()  # gone without a word
        await asyncio.sleep(0.3)  # the watchdog trips
        for i in range(toggles):
            mcu.set_input(2, (i + 1) % 2)
        got: list[m.Message] = []
        second = McuLink(mcu.path)
        second.on_event(got.append)
        await second.connect()
        await asyncio.sleep(0.5)
        await second.close()
        return got

    got = asyncio.run(main())
    edges = [x for x in got if x.name == "input_edge" and x["pin"] == 2]
    assert 0 < len(edges) < toggles, len(edges)
    assert edges[-1]["value"] == toggles % 2  # the newest edge is kept (oldest dropped)
    assert [e["clock"] for e in edges] == sorted(e["clock"] for e in edges)
    overflow = [x for x in got if x.name == "fault" and x["code"] == m.FAULT_QUEUE_OVERFLOW]
    assert overflow and "input_edge" in overflow[0]["message"], got[-5:]


def test_a_watchdog_trip_stops_encoder_reports(start_mcu):
    mcu = start_mcu(process=True)

    async def main() -> list[str]:
        names: list[str] = []
        link = McuLink(mcu.path, watchdog_ms=100, heartbeat_ms=20)
        link.on_event(lambda x: names.append(x.name))
        await link.connect()
        await link.set_encoder_report(0, 10)
        await asyncio.sleep(0.15)
        link.suspend_heartbeats = True
        await asyncio.sleep(0.3)
        link.suspend_heartbeats = False
        await asyncio.sleep(0.3)
        await link.close()
        return names

    names = asyncio.run(main())
    assert "watchdog_tripped" in names
    trip = names.index("watchdog_tripped")
    assert "encoder_report" in names[:trip]
    assert "encoder_report" not in names[trip:]


# ---- section 4 / 8.4: outputs are configured before use; config_output drives the safe value --


def test_config_output_drives_the_safe_value_and_unconfigured_outputs_are_refused(start_mcu):
    mcu = start_mcu(process=True)

    async def main() -> tuple[list[int], list[int]]:
        codes: list[int] = []
        async with McuLink(mcu.path) as link:
            await link.configure_output(2, safe_value=1)
            assert mcu.outputs()[2] == 1  # at once, not at the next watchdog trip
            await link.set_output(2, 0)
            await link.configure_output(2, safe_value=1)  # the same again: no change
            assert mcu.outputs()[2] == 0
            for call in (
                link.set_output(5, 1),
                link.schedule_at_clock(link.clock.clock_at(time.monotonic() + 1), pin=5),
            ):
                try:
                    await call
                except McuCommandError as exc:
                    codes.append(exc.code)
            mcu.reset()  # every output unconfigured; the host's setup configures pin 2 again
            for _ in range(200):
                if link.state is LinkState.RESYNCED:
                    break
                await asyncio.sleep(0.01)
            assert link.state is LinkState.RESYNCED
            await link.ping()  # the setup went ahead of it
            return mcu.outputs(), codes

    outputs, codes = asyncio.run(main())
    assert codes == [m.ERR_NOT_CONFIGURED] * 2
    assert outputs[2] == 1  # after the reset, driven safe by the re-sent config_output
    assert mcu.actions_log() == []


# ---- section 8.1: the watchdog is armed by set_watchdog only ----------------------------------


def test_the_watchdog_is_armed_by_set_watchdog_not_by_a_host_syn(start_mcu, raw_host):
    mcu = start_mcu(process=True, watchdog_ms=100)
    host = raw_host(mcu.path)
    host.connect()  # a SYN and an identify, then a host that waits in silence
    time.sleep(0.4)
    assert mcu.watchdog_trips() == []
    host.close()

    async def main() -> None:
        async with McuLink(mcu.path, watchdog_ms=100, heartbeat_ms=20) as link:
            link.suspend_heartbeats = True
            await asyncio.sleep(0.3)
            link.suspend_heartbeats = False

    asyncio.run(main())
    assert len(mcu.watchdog_trips()) == 1


# ---- sections 3.1 / 3.2: the unsynchronised NAK ----------------------------------------------


def test_an_unsynchronised_mcu_naks_a_bad_frame_and_resends_its_syn_on_a_nak(start_mcu, raw_host):
    mcu = start_mcu()
    time.sleep(1.5)  # its 'started' timer has backed off to its maximum
    host = raw_host(mcu.path)
    host.pump(0.05)
    host.frames.clear()
    bad = bytearray(encode_frame(0, 0, m.encode("identify", req=1), FLAG_SYN))
    bad[-1] ^= 0xFF  # CRC error
    host.write(bytes(bad))
    host.pump(0.15)
    assert any(f.is_control and f.flags == FLAG_UNAK for f in host.frames), host.frames
    host.frames.clear()
    host.write(encode_frame(0, 0, b"", FLAG_UNAK))
    host.pump(0.2)
    assert any(f.syn and f.payload[:1] == b"\x80" for f in host.frames), host.frames


def test_connect_at_1e_2_byte_noise_succeeds_for_20_seeds(start_mcu):
    async def connect(path: str) -> float:
        t = time.monotonic()
        async with McuLink(path):  # the host's default timeouts
            return time.monotonic() - t

    took = []
    for seed in range(20):
        mcu = start_mcu(noise=0.01, seed=seed, baud=250000)
        took.append(asyncio.run(connect(mcu.path)))
    assert max(took) < 3.0


# ---- section 3.1: RTO bounds scale with the baud rate ----------------------------------------


def test_9600_baud_pings_cause_no_spurious_retransmission(start_mcu):
    mcu = start_mcu(process=True, baud=9600)

    async def main() -> tuple[Any, dict[str, int]]:
        async with McuLink(mcu.path, baud=9600) as link:
            report = await run_pings(link, 100)
            return report, link.endpoint.counters.as_dict()

    report, host = asyncio.run(main())
    assert report.lost == 0 and report.mcu is not None
    assert host["retransmits"] == 0 and host["timeouts"] == 0
    assert report.mcu["retransmits"] == 0
