"""The ATmega2560 build running in simavr (firmware/simavr/runner.c), for tests: its UART0 on
a pty at ``link``, its pins driven and watched over the runner's stdin/stdout."""

from __future__ import annotations

import json
import os
import queue
import subprocess
import threading
import time
from pathlib import Path
from typing import Any

from tests.firmware.conftest import ELF, SIMAVR

TICKS_PER_CYCLE = 1 / 8  # Timer1 at F_CPU / 8: the firmware's 2 MHz clock


class AvrSim:
    def __init__(self, link: Path, elf: Path = ELF) -> None:
        self.link = link
        self._proc = subprocess.Popen(
            [str(SIMAVR), "--elf", str(elf), "--link", str(link), "--control"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            bufsize=1,
        )
        self.outputs: list[tuple[int, int, int]] = []  # (cycle, pin, value)
        self._replies: queue.Queue[str] = queue.Queue()
        self._n = 0
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()
        deadline = time.monotonic() + 10
        while not os.path.islink(link):
            if self._proc.poll() is not None or time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"the simavr runner did not start: {self._proc.stderr}")
            time.sleep(0.02)

    def _read(self) -> None:
        assert self._proc.stdout is not None
        for line in self._proc.stdout:
            if line.startswith("out "):
                _, cycle, pin, value = line.split()
                self.outputs.append((int(cycle), int(pin), int(value)))
            elif line.startswith(("stats ", "sync")):
                self._replies.put(line.strip())

    def send(self, line: str) -> None:
        assert self._proc.stdin is not None
        self._proc.stdin.write(line + "\n")
        self._proc.stdin.flush()

    def sync(self) -> dict[str, Any]:
        self._n += 1
        tag = f"sync {self._n}"
        self.send(tag)
        stats: dict[str, Any] = {}
        while True:
            line = self._replies.get(timeout=20)
            if line.startswith("stats "):
                stats = json.loads(line[6:])
            elif line == tag:
                return stats

    def stop(self) -> None:
        if self._proc.poll() is None:
            try:
                self.send("quit")
                self._proc.wait(5)
            except (OSError, subprocess.TimeoutExpired):
                self._proc.kill()
                self._proc.wait(5)
        self._reader.join(2)
