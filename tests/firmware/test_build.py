"""`make -C firmware` builds the host firmware and the ATmega2560 firmware, prints avr-size,
and the AVR build stays within its flash and RAM bounds (docs/firmware.md, "Sizes")."""

from __future__ import annotations

import subprocess

from tests.firmware.conftest import ELF, HEX, HOST

FLASH_MAX = 32 * 1024  # of the ATmega2560's 256 KiB: the firmware stays small and portable
RAM_MAX = 6 * 1024  # static RAM of its 8 KiB: at least 2 KiB stay for the stack


def _sections(elf) -> dict[str, int]:
    out = subprocess.run(["avr-size", "-A", str(elf)], capture_output=True, text=True, check=True)
    sizes: dict[str, int] = {}
    for line in out.stdout.splitlines():
        parts = line.split()
        if len(parts) == 3 and parts[0].startswith(".") and parts[1].isdigit():
            sizes[parts[0]] = int(parts[1])
    return sizes


def test_make_builds_both_targets_and_prints_the_avr_size(firmware_make):
    assert HOST.is_file() and ELF.is_file() and HEX.is_file()
    assert "Program:" in firmware_make.stdout and "Data:" in firmware_make.stdout  # avr-size
    lines = HEX.read_text().split()
    assert lines[0].startswith(":") and lines[-1] == ":00000001FF"  # Intel hex, with its end


def test_the_avr_build_fits_its_flash_and_ram_bounds(firmware_make):
    s = _sections(ELF)
    flash = s[".text"] + s.get(".data", 0)
    ram = s.get(".data", 0) + s.get(".bss", 0) + s.get(".noinit", 0)
    print(f"ATmega2560 build: flash {flash} bytes, static RAM {ram} bytes")
    assert 0 < flash <= FLASH_MAX, f"flash {flash} bytes > {FLASH_MAX}"
    assert 0 < ram <= RAM_MAX, f"static RAM {ram} bytes > {RAM_MAX}"
