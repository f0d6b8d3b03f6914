"""Checks on an ESP firmware image, made on the host before anything is written to a board.

An ESP image starts with a 24-byte header: the magic byte 0xE9, the segment count, flash mode and
a flash size/frequency byte, the entry point, then an extended header whose bytes 12..13 are the
chip id (0 = ESP32, 9 = ESP32-S3, 5 = ESP32-C3). Segments follow (8-byte header + data), then an
XOR checksum at the end of a 16-byte-aligned block and, when the extended header says so, a SHA-256
of everything before it. A merged MicroPython build (bootloader + partition table + app) starts
with the bootloader image, so the header checked here is the one the ROM reads first.
"""
import hashlib
import struct
from array import array
from dataclasses import dataclass

from esptool.targets import CHIP_DEFS

from host_tools.errors import EdgeshadowError

IMAGE_MAGIC = 0xE9
_HEADER = struct.Struct("<BBBBI")          # magic, segments, flash mode, size/freq, entry
_EXT_HEADER = struct.Struct("<BBBBHBHH4BB")  # wp pin, 3 drive bytes, chip id, min rev, ..., digest
HEADER_LEN = _HEADER.size + _EXT_HEADER.size  # 24
_SEGMENT = struct.Struct("<II")
_CHECKSUM_MAGIC = 0xEF
MAX_SEGMENTS = 16

SUPPORTED_CHIPS = ("esp32", "esp32s3", "esp32c3")


def chip_label(chip):
    """'esp32s3' -> 'ESP32-S3' (esptool's own name for the chip)."""
    return CHIP_DEFS[chip].CHIP_NAME if chip in CHIP_DEFS else chip


def chip_id(chip):
    """The chip id an image built for `chip` carries in its extended header."""
    return CHIP_DEFS[chip].IMAGE_CHIP_ID


def chip_for_id(image_chip_id):
    """The chip name for an image chip id, or None when no chip esptool knows uses it."""
    for name, cls in CHIP_DEFS.items():
        if cls.IMAGE_CHIP_ID == image_chip_id:
            return name
    return None


def _mb(n):
    return f"{n / 1048576:g} MB"


@dataclass
class ImageInfo:
    chip: str            # chip name ("esp32"), or "chip id N" when unknown
    chip_id: int
    size: int            # bytes in the file
    first_image_len: int  # bytes of the first (bootloader) image, header to digest
    segments: int
    header_flash_size: int | None  # flash size the header asks for, in bytes (None if unreadable)


def _xor_bytes(data):
    """XOR of every byte, fast: fold 8-byte words first."""
    head = len(data) - len(data) % 8
    words = array("Q", bytes(data[:head]))
    acc = 0
    for w in words:
        acc ^= w
    out = 0
    for _ in range(8):
        out ^= acc & 0xFF
        acc >>= 8
    for b in data[head:]:
        out ^= b
    return out


def _header_flash_size(chip, size_freq):
    if chip not in CHIP_DEFS:
        return None
    code = size_freq & 0xF0
    for name, value in getattr(CHIP_DEFS[chip], "FLASH_SIZES", {}).items():
        if value == code:
            return int(name[:-2]) * (1048576 if name.endswith("MB") else 1024)
    return None


def inspect_image(data, source="image"):
    """Parse and verify the first image in `data`. Raises EdgeshadowError naming what is wrong."""
    if len(data) < HEADER_LEN:
        raise EdgeshadowError(f"{source} is {len(data)} bytes: too short to be an ESP firmware "
                              f"image (its header alone is {HEADER_LEN} bytes)")
    magic, nseg, _mode, size_freq, _entry = _HEADER.unpack_from(data, 0)
    if magic != IMAGE_MAGIC:
        raise EdgeshadowError(f"{source} starts with byte 0x{magic:02X}, expected the ESP image magic "
                              f"0xE9: it is not an ESP firmware image")
    ext = _EXT_HEADER.unpack_from(data, _HEADER.size)
    image_chip_id, digest_flag = ext[4], ext[-1]
    chip = chip_for_id(image_chip_id) or f"chip id {image_chip_id}"
    if nseg == 0 or nseg > MAX_SEGMENTS:
        raise EdgeshadowError(f"{source}: header says {nseg} segments, expected 1 to {MAX_SEGMENTS}")
    if digest_flag not in (0, 1):
        raise EdgeshadowError(f"{source}: header byte 23 (hash appended) is {digest_flag}, expected 0 or 1")
    pos = HEADER_LEN
    seg_ranges = []
    for i in range(nseg):
        if pos + _SEGMENT.size > len(data):
            raise EdgeshadowError(f"{source} is truncated: it ends at byte {len(data)}, inside the "
                                  f"header of segment {i + 1} of {nseg}")
        _addr, length = _SEGMENT.unpack_from(data, pos)
        pos += _SEGMENT.size
        if pos + length > len(data):
            raise EdgeshadowError(f"{source} is truncated: segment {i + 1} of {nseg} needs {length} "
                                  f"bytes from offset {pos} but the file ends at byte {len(data)}")
        seg_ranges.append((pos, pos + length))
        pos += length
    checksum_at = pos + 15 - pos % 16  # checksum is the last byte of the 16-byte-aligned block
    end = checksum_at + 1 + (32 if digest_flag else 0)
    if end > len(data):
        raise EdgeshadowError(f"{source} is truncated: the image needs {end} bytes (segments, "
                              f"checksum{' and SHA-256' if digest_flag else ''}) but the file has {len(data)}")
    checksum = _CHECKSUM_MAGIC
    for a, b in seg_ranges:
        checksum ^= _xor_bytes(memoryview(data)[a:b])
    if checksum != data[checksum_at]:
        raise EdgeshadowError(f"{source} is corrupt: its checksum byte is 0x{data[checksum_at]:02X} "
                              f"but the segments add up to 0x{checksum:02X}")
    if digest_flag:
        stored = bytes(data[checksum_at + 1:end])
        if hashlib.sha256(memoryview(data)[:checksum_at + 1]).digest() != stored:
            raise EdgeshadowError(f"{source} is corrupt: the SHA-256 stored at byte {checksum_at + 1} "
                                  f"does not match the image")
    return ImageInfo(chip=chip, chip_id=image_chip_id, size=len(data), first_image_len=end,
                     segments=nseg, header_flash_size=_header_flash_size(chip, size_freq))


def check_image_for_board(data, board, source="image"):
    """Everything that must hold before `data` is written to `board` (a board definition dict).

    Returns the ImageInfo; raises EdgeshadowError with what was found and what was expected.
    """
    board_chip = board["chip"]
    info = inspect_image(data, source)
    if info.chip_id != chip_id(board_chip):
        raise EdgeshadowError(
            f"{source} is built for {chip_label(info.chip)} (chip id {info.chip_id}) but board "
            f"{board['name']} has an {chip_label(board_chip)} (chip id {chip_id(board_chip)})")
    offset, flash_size = board["image_offset"], board["flash_size"]
    if offset + info.size > flash_size:
        raise EdgeshadowError(
            f"{source} is {info.size} bytes; written at 0x{offset:X} it would end at "
            f"0x{offset + info.size:X}, past the {_mb(flash_size)} flash of board {board['name']}")
    if info.header_flash_size and info.header_flash_size > flash_size:
        raise EdgeshadowError(
            f"{source} is built for {_mb(info.header_flash_size)} of flash (image header) but board "
            f"{board['name']} has {_mb(flash_size)}")
    return info
