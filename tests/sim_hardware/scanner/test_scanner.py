"""The simulated scanner seen from raw OS interfaces: a pty read with os.read, a TCP socket."""

from __future__ import annotations

import os
import socket
import time

import pytest

from sim_hardware.scanner import ScannerOptions, SimScannerThread


def _read_until(fd_or_sock: int | socket.socket, n_lines: int, sep: bytes = b"\r\n") -> bytes:
    buf = b""
    deadline = time.monotonic() + 5
    while buf.count(sep) < n_lines and time.monotonic() < deadline:
        if isinstance(fd_or_sock, socket.socket):
            buf += fd_or_sock.recv(65536)
        else:
            try:
                buf += os.read(fd_or_sock, 65536)
            except BlockingIOError:
                time.sleep(0.005)
    return buf


def test_pty_symlink_carries_framed_reads_and_vanishes_on_stop(tmp_path):
    link = tmp_path / "scanner"
    with SimScannerThread(ScannerOptions(link=str(link), framing="stx-etx")) as t:
        assert link.is_symlink() and os.readlink(link).startswith("/dev/pts/")
        fd = os.open(link, os.O_RDWR | os.O_NOCTTY | os.O_NONBLOCK)
        try:
            assert t.scan("ABC") and t.scan("DEF")
            assert _read_until(fd, 2, b"\x03") == b"\x02ABC\x03\x02DEF\x03"
        finally:
            os.close(fd)
    assert not link.exists()


def test_no_read_rate_is_honoured_and_reproducible_with_a_seed():
    def run() -> list[str]:
        with SimScannerThread(ScannerOptions(tcp_port=0, no_read_rate=0.25, seed=3)) as t:
            for n in range(2000):
                t.scan(f"L{n}")
            return list(t.sim.sent)

    first = run()
    assert first == run()
    rate = first.count("NoRead") / len(first)
    assert 0.21 < rate < 0.29
    assert all(s == "NoRead" or s == f"L{n}" for n, s in enumerate(first))


def test_tcp_clients_each_get_every_read_and_trigger_bytes_may_be_split():
    opts = ScannerOptions(tcp_port=0, trigger_command="\x16T\r", framing="crlf")
    with SimScannerThread(opts) as t:
        port = t.sim.tcp_port
        assert port
        with (
            socket.create_connection(("127.0.0.1", port)) as a,
            socket.create_connection(("127.0.0.1", port)) as b,
        ):
            deadline = time.monotonic() + 3
            while t.call(lambda: t.sim.connected_clients) < 2 and time.monotonic() < deadline:
                time.sleep(0.01)
            t.scan("IN-VIEW")
            a.sendall(b"\x16")  # the trigger split over two segments still counts once
            time.sleep(0.05)
            a.sendall(b"T\r")
            assert _read_until(a, 1) == b"IN-VIEW\r\n"
            assert _read_until(b, 1) == b"IN-VIEW\r\n"
            a.sendall(b"\x16T\r")  # the label was taken: nothing in view is a no-read
            assert _read_until(a, 1) == b"NoRead\r\n"
        assert t.sim.stats.triggers == 2


def test_options_refuse_a_scanner_with_no_line_or_a_bad_rate():
    with pytest.raises(ValueError, match="pty link path, a TCP port"):
        ScannerOptions()
    with pytest.raises(ValueError, match="within"):
        ScannerOptions(tcp_port=0, no_read_rate=1.5)


def test_noise_at_a_rate_is_reproducible_and_leaves_the_readings_intact():
    from sim_hardware.scanner.device import NOISE_KINDS

    def run(rate: float) -> tuple[bytes, list[str], int]:
        opts = ScannerOptions(tcp_port=0, no_read_rate=0.1, seed=5)
        with SimScannerThread(opts) as t:
            port = t.sim.tcp_port
            assert port
            with socket.create_connection(("127.0.0.1", port), timeout=5) as s:
                deadline = time.monotonic() + 5
                while t.call(lambda: t.sim.connected_clients) < 1:
                    assert time.monotonic() < deadline
                    time.sleep(0.01)
                t.call(t.sim.set_noise, rate)
                for n in range(400):
                    t.scan(f"L{n:04d}")
                t.call(t.sim.set_noise, 0.0)
                t.scan("LAST")
                noise = t.call(lambda: t.sim.stats.noise)
                data = _read_until(s, 401 + noise)
            return data, list(t.sim.sent), noise

    _, sent_quiet, none = run(0.0)
    data, sent, noise = run(0.25)
    assert none == 0 and sent == sent_quiet  # the no-read draws do not move with noise
    assert 70 < noise < 130, noise
    lines = data.split(b"\r\n")[:-1]
    assert len(lines) == 401 + noise
    known = set(sent)
    assert [ln.decode() for ln in lines if ln.decode("latin-1") in known] == sent
    garbage = [ln for ln in lines if ln.decode("latin-1") not in known]
    assert len(garbage) == noise
    kinds = {
        "nul": any(set(g) == {0} for g in garbage),
        "junk": any(g.startswith(b"1NOISE") for g in garbage),
        "oversize": any(len(g) > 256 for g in garbage),
        "control": any(g[:1] in (b"\x01", b"\x1b", b"\x7f") for g in garbage),
    }
    assert set(kinds) == set(NOISE_KINDS) and all(kinds.values()), kinds


def test_a_bad_noise_rate_is_refused():
    with pytest.raises(ValueError, match="noise rate 2"):
        ScannerOptions(tcp_port=0, noise_rate=2)
