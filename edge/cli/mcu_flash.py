"""`wolfpack mcu flash`: write the reference firmware onto a board with avrdude, verify it, then
identify it over the MCU link (docs/firmware.md, "Flashing").

The pieces are plain functions so they can be tested without a board: reading an Intel hex or
ELF image, deciding whether it was built for the board named, the avrdude command line, and
reading avrdude's output for the one-line reason of a failure.
"""

from __future__ import annotations

import re
import struct
from dataclasses import dataclass
from pathlib import Path


class FlashError(Exception):
    """A flash that must not or did not happen: one line, naming the file or port and why."""


@dataclass(frozen=True)
class Board:
    name: str
    mcu: str  # gcc's -mmcu name, also in an ELF's device note
    part: str  # avrdude's -p
    programmer: str  # avrdude's -c for the board's bootloader
    upload_baud: int  # the bootloader's baud rate
    signature: bytes  # the chip's device signature
    flash_bytes: int  # application flash (the bootloader's section excluded)
    firmware_name: str  # what the wolfpack firmware built for it says in identify_response


BOARDS: dict[str, Board] = {
    "mega2560": Board(
        name="mega2560",
        mcu="atmega2560",
        part="atmega2560",
        programmer="wiring",  # the Mega 2560's STK500v2 bootloader
        upload_baud=115200,
        signature=bytes((0x1E, 0x98, 0x01)),
        flash_bytes=256 * 1024 - 8 * 1024,
        firmware_name="wolfpack-mcu-mega2560",
    ),
}
# Signatures avrdude may report for a board on the wrong port, to name it in the refusal.
KNOWN_SIGNATURES = {
    "1e9801": "ATmega2560",
    "1e9703": "ATmega1280",
    "1e950f": "ATmega328P",
    "1e9587": "ATmega32U4",
    "1e9406": "ATmega168",
}
FIRMWARE_PREFIX = b"wolfpack-mcu"


# ---- images -----------------------------------------------------------------------------------
def parse_intel_hex(text: str, where: str = "image") -> dict[int, int]:
    """Address -> byte of an Intel hex file (record types 00, 01, 02, 04; 03/05 ignored).

    Raises FlashError naming the line for a bad record: length, checksum, hex digits, a
    missing end record, or data after it."""
    memory: dict[int, int] = {}
    base = 0
    ended = False
    for number, raw in enumerate(text.splitlines(), 1):
        line = raw.strip()
        if not line:
            continue
        if ended:
            raise FlashError(f"{where}:{number}: data after the end-of-file record")
        if not line.startswith(":"):
            raise FlashError(f"{where}:{number}: not an Intel hex record (no ':')")
        try:
            record = bytes.fromhex(line[1:])
        except ValueError:
            raise FlashError(f"{where}:{number}: not hex digits") from None
        if len(record) < 5 or len(record) != record[0] + 5:
            raise FlashError(f"{where}:{number}: record length does not match its count byte")
        if sum(record) & 0xFF:
            raise FlashError(f"{where}:{number}: checksum mismatch")
        count, address, kind = record[0], (record[1] << 8) | record[2], record[3]
        data = record[4 : 4 + count]
        if kind == 0x00:
            for i, b in enumerate(data):
                memory[base + address + i] = b
        elif kind == 0x01:
            ended = True
        elif kind == 0x02 and count == 2:
            base = ((data[0] << 8) | data[1]) << 4
        elif kind == 0x04 and count == 2:
            base = ((data[0] << 8) | data[1]) << 16
        elif kind in (0x03, 0x05):
            pass  # start addresses: nothing to flash
        else:
            raise FlashError(f"{where}:{number}: unknown record type {kind:#04x}")
    if not ended:
        raise FlashError(f"{where}: no end-of-file record (a truncated file?)")
    return memory


def encode_intel_hex(memory: dict[int, int], width: int = 16) -> str:
    """The Intel hex text of ``memory`` (for tests and tools): 04 records past 64 KiB."""
    lines: list[str] = []
    upper = -1
    addresses = sorted(memory)
    i = 0
    while i < len(addresses):
        start = addresses[i]
        run = [memory[start]]
        while (
            i + len(run) < len(addresses)
            and addresses[i + len(run)] == start + len(run)
            and len(run) < width
            and (start + len(run)) & 0xFFFF != 0
        ):
            run.append(memory[start + len(run)])
        if start >> 16 != upper:
            upper = start >> 16
            lines.append(_record(0, 0x04, bytes(((upper >> 8) & 0xFF, upper & 0xFF))))
        lines.append(_record(start & 0xFFFF, 0x00, bytes(run)))
        i += len(run)
    lines.append(_record(0, 0x01, b""))
    return "\n".join(lines) + "\n"


def _record(address: int, kind: int, data: bytes) -> str:
    body = bytes((len(data), address >> 8, address & 0xFF, kind)) + data
    return ":" + (body + bytes(((-sum(body)) & 0xFF,))).hex().upper()


def elf_device(data: bytes, where: str = "image") -> tuple[str | None, bytes]:
    """The MCU an AVR ELF was built for (from gcc's .note.gnu.avr.deviceinfo) and its
    loadable bytes; FlashError if it is not a 32-bit little-endian AVR ELF."""
    if data[:4] != b"\x7fELF" or data[4] != 1 or data[5] != 1:
        raise FlashError(f"{where}: not a 32-bit little-endian ELF file")
    (machine,) = struct.unpack_from("<H", data, 18)
    if machine != 83:  # EM_AVR
        raise FlashError(f"{where}: an ELF for machine {machine}, not an AVR (83)")
    shoff, = struct.unpack_from("<I", data, 32)  # fmt: skip
    shentsize, shnum, shstrndx = struct.unpack_from("<HHH", data, 46)
    sections = []
    for i in range(shnum):
        name, kind, _flags, _addr, off, size = struct.unpack_from(
            "<IIIIII", data, shoff + i * shentsize
        )
        sections.append((name, kind, off, size))
    strtab_off = sections[shstrndx][2]

    def section_name(offset: int) -> str:
        end = data.index(b"\0", strtab_off + offset)
        return data[strtab_off + offset : end].decode("ascii", "replace")

    device = None
    loadable = bytearray()
    for name, kind, off, size in sections:
        sname = section_name(name)
        if sname == ".note.gnu.avr.deviceinfo":
            # note header (namesz, descsz, type), name "AVR\0", then a descriptor whose string
            # table holds the device name; the device name is the first string in it
            strings = data[off : off + size].split(b"\0")
            names = [s.decode("ascii", "replace") for s in strings if s.startswith(b"at")]
            device = names[0] if names else None
        elif sname in (".text", ".data") and kind == 1:
            loadable += data[off : off + size]
    return device, bytes(loadable)


@dataclass(frozen=True)
class Image:
    path: Path
    fmt: str  # avrdude's format letter: "i" Intel hex, "e" ELF
    size: int  # bytes to flash
    device: str | None  # from an ELF's device note
    firmware_name: str | None  # the wolfpack-mcu-... string found inside, if any


def read_image(path: Path) -> Image:
    """Read and check a firmware image (Intel hex or AVR ELF): FlashError with the reason."""
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        raise FlashError(f"{path}: no such file") from None
    except OSError as exc:
        raise FlashError(f"{path}: cannot read it: {exc.strerror}") from None
    if raw[:4] == b"\x7fELF":
        device, payload = elf_device(raw, str(path))
        fmt, size = "e", len(payload)
    else:
        try:
            text = raw.decode("ascii")
        except UnicodeDecodeError:
            raise FlashError(f"{path}: neither an Intel hex nor an ELF file") from None
        memory = parse_intel_hex(text, str(path))
        if not memory:
            raise FlashError(f"{path}: the image is empty")
        payload = bytes(memory[a] for a in sorted(memory))
        device, fmt, size = None, "i", max(memory) + 1
    match = re.search(rb"wolfpack-mcu[a-z0-9-]*", payload)
    name = match.group().decode() if match else None
    return Image(path, fmt, size, device, name)


def check_image(image: Image, board: Board, force: bool = False) -> list[str]:
    """Refuse an image built for another board; returns warnings for what cannot be told."""
    if image.device is not None and image.device != board.mcu:
        raise FlashError(
            f"{image.path}: built for {image.device}, but --board {board.name} is an {board.mcu}"
        )
    if image.size > board.flash_bytes:
        raise FlashError(
            f"{image.path}: {image.size} bytes do not fit the {board.name}'s "
            f"{board.flash_bytes} bytes of application flash"
        )
    if image.firmware_name is not None and image.firmware_name != board.firmware_name:
        raise FlashError(
            f"{image.path}: it is {image.firmware_name}, not the {board.name} build "
            f"({board.firmware_name})"
        )
    if image.firmware_name is None:
        if not force:
            raise FlashError(
                f"{image.path}: not a wolfpack firmware image (no {board.firmware_name} inside); "
                "--force flashes it anyway"
            )
        return [f"{image.path}: not a wolfpack firmware image; flashing it as --force asks"]
    return []


# ---- avrdude ------------------------------------------------------------------------------------
def avrdude_command(
    board: Board, port: str, image: Image, avrdude: str = "avrdude", baud: int | None = None
) -> list[str]:
    """avrdude writing ``image`` through the board's bootloader, then verifying it (avrdude
    verifies by default: every byte read back). -D: the bootloader erases page by page."""
    return [
        avrdude, "-p", board.part, "-c", board.programmer, "-P", port,
        "-b", str(baud or board.upload_baud), "-D",
        "-U", f"flash:w:{image.path}:{image.fmt}",
    ]  # fmt: skip


_SIG = re.compile(r"[Dd]evice signature = 0x([0-9a-fA-F]{6})")


def avrdude_failure(output: str, board: Board, port: str) -> str:
    """The one-line reason of a failed avrdude run, from its output."""
    sig = _SIG.search(output)
    if sig and bytes.fromhex(sig.group(1)) != board.signature:
        found = sig.group(1).lower()
        chip = KNOWN_SIGNATURES.get(found, "an unknown chip")
        return (
            f"{port}: the board is not a {board.name}: its signature is 0x{found} ({chip}), "
            f"a {board.mcu} has 0x{board.signature.hex()}; nothing was written"
        )
    if re.search(r"verification error|verification mismatch|content mismatch", output, re.I):
        return f"{port}: verification failed: the flash does not read back as written"
    if re.search(r"can't open device|cannot open port|No such file", output, re.I):
        return f"{port}: cannot open the port (is the board plugged in? the path right?)"
    if re.search(r"timeout|not in sync|not responding|getsync", output, re.I):
        return (
            f"{port}: no bootloader answered (a {board.name}? the right port? press reset "
            "just before flashing if its auto-reset is disabled)"
        )
    last = [line.strip() for line in output.splitlines() if line.strip()]
    return f"{port}: avrdude failed: {last[-1] if last else 'no output'}"


def bytes_verified(output: str) -> int | None:
    """How many bytes avrdude says it verified, or None."""
    m = re.search(r"(\d+) bytes of flash verified", output)
    return int(m.group(1)) if m else None
