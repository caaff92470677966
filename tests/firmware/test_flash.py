"""`wolfpack mcu flash` without a board: the image checks, the refusals, the avrdude command it
builds, and the Intel hex reader (hypothesis: it round-trips and never fails but with a
FlashError naming the line)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import pytest
from hypothesis import given
from hypothesis import strategies as st

from edge.cli.main import main
from edge.cli.mcu_flash import (
    BOARDS,
    FlashError,
    avrdude_command,
    avrdude_failure,
    encode_intel_hex,
    parse_intel_hex,
    read_image,
)
from tests.firmware.conftest import ELF, HEX
from tests.firmware.stk500v2 import FakeBootloader

BOARD = BOARDS["mega2560"]


@dataclass
class Run:
    returncode: int
    stdout: str
    stderr: str


@pytest.fixture
def wolfpack(capsys: pytest.CaptureFixture[str]) -> Callable[..., Run]:
    """`wolfpack ARGS` in this process (the CLI's own main; its start-up costs a second)."""

    def run(*args: str) -> Run:
        try:
            code = main(list(args))
        except SystemExit as exc:  # argparse's errors
            code = int(exc.code or 0)
        out = capsys.readouterr()
        return Run(code, out.out, out.err)

    return run


@pytest.fixture
def flash(wolfpack: Callable[..., Run]) -> Callable[..., Run]:
    return lambda *args: wolfpack("mcu", "flash", "--board", "mega2560", *args)


def test_dry_run_checks_the_build_and_prints_the_avrdude_command(firmware_make, tmp_path, flash):
    port = str(tmp_path / "ttyACM0")
    out = flash("--port", port, "--dry-run", str(HEX))
    assert out.returncode == 0, out.stderr
    assert "(wolfpack-mcu-mega2560, " in out.stdout
    expected = f"avrdude -p atmega2560 -c wiring -P {port} -b 115200 -D -U flash:w:{HEX}:i"
    assert expected in out.stdout
    elf = flash("--port", port, "--dry-run", str(ELF))
    assert elf.returncode == 0 and f"flash:w:{ELF}:e" in elf.stdout


def test_argument_errors_are_one_line(tmp_path, flash, wolfpack):
    missing = flash("--port", "/dev/null", str(tmp_path / "nope.hex"))
    assert missing.returncode == 2 and f"{tmp_path / 'nope.hex'}: no such file" in missing.stderr
    no_board = wolfpack("mcu", "flash", "--port", "/dev/null", str(tmp_path / "x.hex"))
    assert no_board.returncode == 2 and "--board" in no_board.stderr
    other = wolfpack("mcu", "flash", "--board", "uno", "--port", "/dev/null", "x.hex")
    assert other.returncode == 2 and "invalid choice: 'uno'" in other.stderr
    bad = tmp_path / "bad.hex"
    bad.write_text(":0400000001020304F0\n:00000001FF\n")  # checksum should be F2
    out = flash("--port", "/dev/null", str(bad))
    assert out.returncode == 2 and f"{bad}:1: checksum mismatch" in out.stderr
    assert "Traceback" not in out.stderr


def test_an_image_of_another_board_is_refused(firmware_make, tmp_path, flash):
    uno = tmp_path / "uno.hex"  # a wolfpack build for another board
    uno.write_text(encode_intel_hex(dict(enumerate(b"\x0c\x94wolfpack-mcu-uno\x00"))))
    out = flash("--port", "/dev/null", "--dry-run", str(uno))
    assert out.returncode == 2
    assert "it is wolfpack-mcu-uno, not the mega2560 build" in out.stderr
    elf = tmp_path / "m328p.elf"  # the ELF's device note says another chip
    elf.write_bytes(ELF.read_bytes().replace(b"atmega2560", b"atmega328p"))
    out = flash("--port", "/dev/null", "--dry-run", str(elf))
    assert out.returncode == 2 and "built for atmega328p, but --board mega2560" in out.stderr
    foreign = tmp_path / "blink.hex"  # not a wolfpack image: only with --force
    foreign.write_text(encode_intel_hex(dict(enumerate(b"\x0c\x94\x00\x00blink"))))
    assert flash("--port", "/dev/null", "--dry-run", str(foreign)).returncode == 2
    forced = flash("--port", "/dev/null", "--dry-run", "--force", str(foreign))
    assert forced.returncode == 0 and "warning: " in forced.stderr


def test_a_chip_of_another_signature_is_named_in_the_refusal():
    output = (
        "avrdude: Device signature = 0x1e950f (probably m328p)\n"
        "avrdude error: expected signature for ATmega2560 is 1E 98 01\n"
    )
    text = avrdude_failure(output, BOARD, "/dev/ttyACM0")
    assert "not a mega2560: its signature is 0x1e950f (ATmega328P)" in text
    assert "nothing was written" in text
    assert "no bootloader answered" in avrdude_failure(
        "avrdude: stk500v2_ReceiveMessage(): timeout\n", BOARD, "/dev/ttyACM0"
    )


def test_the_real_images_read_as_the_mega2560_build(firmware_make):
    for path in (HEX, ELF):
        image = read_image(path)
        assert image.firmware_name == "wolfpack-mcu-mega2560" and 0 < image.size < 64 * 1024
    assert read_image(ELF).device == "atmega2560"
    assert avrdude_command(BOARD, "/dev/x", read_image(HEX))[:4] == [
        "avrdude",
        "-p",
        "atmega2560",
        "-c",
    ]


memories = st.dictionaries(st.integers(0, 0x3FFFF), st.integers(0, 255), max_size=300)


@given(memories)
def test_intel_hex_round_trips(memory):
    assert parse_intel_hex(encode_intel_hex(memory)) == memory


@given(memories, st.data())
def test_a_corrupted_hex_file_is_read_or_refused_with_its_line(memory, data):
    text = encode_intel_hex(memory)
    pos = data.draw(st.integers(0, len(text) - 1))
    char = data.draw(st.sampled_from("0123456789ABCDEFG:\n x"))
    bad = text[:pos] + char + text[pos + 1 :]
    try:
        parse_intel_hex(bad, "f.hex")
    except FlashError as exc:
        assert str(exc).startswith("f.hex")


# ---- the real avrdude against a stand-in for the Mega's STK500v2 bootloader on a pty ---------


def test_flash_writes_and_verifies_the_image_through_the_bootloader(firmware_make, tmp_path, flash):
    board = FakeBootloader(tmp_path / "ttyACM0")
    try:
        out = flash("--port", str(board.link), "--no-identify", str(HEX))
    finally:
        board.close()
    assert out.returncode == 0, out.stderr
    assert "Writing | ####" in out.stderr and "Reading | ####" in out.stderr  # avrdude's progress
    image = parse_intel_hex(HEX.read_text())
    assert f"wrote and verified {len(image)} bytes" in out.stdout
    assert set(image) <= board.written  # every byte of the image written
    assert all(board.flash[a] == b for a, b in image.items())


def test_a_board_with_another_chip_is_refused_and_nothing_written(firmware_make, tmp_path, flash):
    board = FakeBootloader(tmp_path / "ttyUSB0", signature=bytes((0x1E, 0x95, 0x0F)))
    try:
        out = flash("--port", str(board.link), "--no-identify", str(HEX))
    finally:
        board.close()
    assert out.returncode == 1
    assert "not a mega2560: its signature is 0x1e950f (ATmega328P)" in out.stderr
    assert board.written == set()


def test_a_verification_failure_is_reported(firmware_make, tmp_path, flash):
    board = FakeBootloader(tmp_path / "ttyACM1", bad_cell=100)
    try:
        out = flash("--port", str(board.link), "--no-identify", str(HEX))
    finally:
        board.close()
    assert out.returncode == 1
    assert "verification failed: the flash does not read back as written" in out.stderr


def test_after_flashing_the_new_firmware_is_identified(mcu_firmware, mcu_kind, capsys):
    from edge.cli.mcu_cmd import _identify_after_flash

    name = {"python": "wolfpack-sim-mcu", "c": "wolfpack-mcu"}[mcu_kind]
    assert _identify_after_flash(mcu_firmware, 250000, name, 0.0) == 0
    assert f"now running {name} 1.0.0 (protocol 2)" in capsys.readouterr().out
    assert _identify_after_flash(mcu_firmware, 250000, "wolfpack-mcu-mega2560", 0.0) == 1
