"""Checks on an ESP firmware image, made on the host before anything is written to a board.

esptool's image loader reads the image (esptool.bin_image.LoadFirmwareImage: the header, the
extended header with the chip id, every segment, the checksum byte and the appended SHA-256); this
module turns what it found into sentences and compares it with the board definition. A merged
MicroPython build (bootloader + partition table + app) starts with the bootloader image, so the
image checked here is the one the ROM reads first.
"""
import io
import struct
from dataclasses import dataclass

from esptool.bin_image import (ELFSection, ESP32C3FirmwareImage, ESP32FirmwareImage,
                               ESP32S3FirmwareImage, LoadFirmwareImage)
from esptool.loader import ESPLoader
from esptool.targets import CHIP_DEFS
from esptool.util import FatalError, flash_size_bytes, get_key_from_value

from host_tools.errors import EdgeshadowError

HEADER_LEN = 24            # common header (8 bytes) + extended header (16): what the ROM reads first
MAX_SEGMENTS = 16          # the ROM's limit (esptool's verify() says the same after loading)
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
        if getattr(cls, "IMAGE_CHIP_ID", None) == image_chip_id:
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


def _load(data, chip, source):
    """esptool's loader on `data`, its complaints turned into one sentence naming `source`."""
    try:
        return LoadFirmwareImage(chip, bytes(data))
    except FatalError as e:
        reason = str(e).split(". ")[0]
        if reason.startswith("End of file"):
            raise EdgeshadowError(f"{source} is truncated: {reason[0].lower()}{reason[1:]}")
        raise EdgeshadowError(f"{source} is not a valid ESP firmware image: {reason}")
    except (struct.error, TypeError):   # esptool read past the end (a segment header, the checksum)
        raise EdgeshadowError(f"{source} is truncated: it ends at byte {len(data)}, before the "
                              f"end of its segments and checksum")
    except RuntimeError:                # esptool's own check of the "hash appended" byte
        raise EdgeshadowError(f"{source}: header byte 23 (hash appended) is {data[23]}, expected 0 or 1")


def inspect_image(data, source="image"):
    """Load and verify the first image in `data`. Raises EdgeshadowError naming what is wrong."""
    if len(data) < HEADER_LEN:
        raise EdgeshadowError(f"{source} is {len(data)} bytes: too short to be an ESP firmware "
                              f"image (its header alone is {HEADER_LEN} bytes)")
    try:   # esptool's header reader first: a bad magic or segment count says more than "truncated"
        segments = ESP32FirmwareImage().load_common_header(io.BytesIO(bytes(data[:8])),
                                                           ESPLoader.ESP_IMAGE_MAGIC)
    except FatalError:
        raise EdgeshadowError(f"{source} starts with byte 0x{data[0]:02X}, expected the ESP image magic "
                              f"0x{ESPLoader.ESP_IMAGE_MAGIC:02X}: it is not an ESP firmware image")
    if not 1 <= segments <= MAX_SEGMENTS:
        raise EdgeshadowError(f"{source}: header says {segments} segments, expected 1 to {MAX_SEGMENTS}")
    image = _load(data, "esp32", source)             # the layout every ESP32-family chip shares
    chip = chip_for_id(image.chip_id)
    if chip in SUPPORTED_CHIPS and chip != "esp32":
        image = _load(data, chip, source)            # that chip's flash size codes
    if image.checksum != image.calculate_checksum():
        raise EdgeshadowError(f"{source} is corrupt: its checksum byte is 0x{image.checksum:02X} "
                              f"but the segments add up to 0x{image.calculate_checksum():02X}")
    end = image.data_length or 0
    if image.append_digest:
        if len(image.stored_digest) < 32:
            raise EdgeshadowError(f"{source} is truncated: its SHA-256 needs bytes {end} to "
                                  f"{end + 32} but the file has {len(data)}")
        if image.stored_digest != image.calc_digest:
            raise EdgeshadowError(f"{source} is corrupt: the SHA-256 stored at byte {end} "
                                  f"does not match the image")
        end += 32
    size_name = get_key_from_value(image.ROM_LOADER.FLASH_SIZES, image.flash_size_freq & 0xF0)
    return ImageInfo(chip=chip or f"chip id {image.chip_id}", chip_id=image.chip_id, size=len(data),
                     first_image_len=end, segments=len(image.segments),
                     header_flash_size=flash_size_bytes(size_name) if size_name else None)


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


def build_image(chip, payload, flash_size="4MB"):
    """An app image for `chip` built with esptool's own image classes: one flash-mapped (DROM)
    segment holding `payload`, flash size/frequency set in the header. Returns the bytes.
    Tests and `edgeshadow sim --bootloader --image` use it to flash something without a download."""
    cls = {"esp32": ESP32FirmwareImage, "esp32s3": ESP32S3FirmwareImage,
           "esp32c3": ESP32C3FirmwareImage}[chip]
    rom = cls.ROM_LOADER
    image = cls()
    image.entrypoint = rom.IROM_MAP_START
    image.flash_size_freq = rom.FLASH_SIZES[flash_size]
    image.segments = [ELFSection(b".flash.rodata", rom.DROM_MAP_START + 0x20, bytes(payload), 0)]
    return image.save(None)
