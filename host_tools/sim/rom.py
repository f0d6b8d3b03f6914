"""A virtual ESP ROM bootloader on a pseudo-terminal, for flashing without hardware.

It speaks the serial protocol documented in esptool's "Serial Protocol" page: SLIP-framed packets;
a request is `00 op size:u16 checksum:u32 data`, a response `01 op size:u16 value:u32 data`, where
the ROM's data ends with four status bytes (status, error, 0, 0). It answers what esptool 5.6 sends
to a ROM (no stub): SYNC (eight replies), READ_REG / WRITE_REG over a small register file holding
the chip magic word, the eFuse MAC and an SPI controller that runs RDID / RDSFDP; GET_SECURITY_INFO
with the chip id (ESP32-S3 and ESP32-C3 only: the ESP32 ROM does not have it); SPI_ATTACH;
SPI_SET_PARAMS; FLASH_BEGIN / DATA / END; FLASH_DEFL_BEGIN / DATA / END; SPI_FLASH_MD5;
CHANGE_BAUDRATE. The flash is a bytearray with NOR semantics: erase sets 0xFF, a write can only
clear bits.

    with VirtualROM(chip="esp32") as rom:
        ...esptool on rom.port (before="no-reset", no stub)...
        rom.flash[0x1000:...]

From esptool: the SLIP framing both ways (esptool.loader.slip_reader reads the requests,
ESPLoader.write frames the responses), the opcodes (ESPLoader.ESP_CMDS) and the data checksum
(ESPLoader.checksum). Written here because esptool has no chip side: the request dispatch, the
flash, and the register file. Register addresses and values are the chips' documented ones (the
technical reference manuals), written out rather than imported from esptool's targets, so a test
that passes shows esptool's idea of each chip and this ROM's agree.
"""
import fcntl
import hashlib
import os
import select
import struct
import termios
import threading
import tty
import zlib
from collections import Counter
from dataclasses import dataclass, field

from esptool.loader import ESPLoader, slip_reader
from esptool.util import FatalError

from host_tools.device.images import build_image  # noqa: F401  (tests build their images here)

MiB = 1024 * 1024
SECTOR = 0x1000

COMMAND_NAMES = {op: name for name, op in ESPLoader.ESP_CMDS.items()}   # 0x08 -> "SYNC"
# ROM error codes (second status byte)
ERR_INVALID_MESSAGE, ERR_FAILED_TO_ACT, ERR_BAD_CRC = ESPLoader.ROM_INVALID_RECV_MSG, 0x06, 0x07
ERR_FLASH_WRITE, ERR_DEFLATE = 0x08, 0x0B

SYNC_PAYLOAD = b"\x07\x07\x12\x20" + 32 * b"\x55"
CHIP_DETECT_MAGIC_REG = 0x40001000
XTAL_HZ = 40_000_000
SPI_CMD_USR = 1 << 18
SPI_USR_MISO = 1 << 28
JEDEC_WINBOND = 0xEF


@dataclass(frozen=True)
class ChipFacts:
    name: str
    magic: int                 # word at 0x40001000
    chip_id: int | None        # GET_SECURITY_INFO chip id; None: command not in this ROM
    spi_base: int
    spi_usr: int               # offsets of the SPI user-command registers
    spi_usr2: int
    spi_miso_dlen: int
    spi_w0: int
    mac_regs: tuple            # (address, how the MAC is laid out: "esp32" | "efuse_block1")
    uart_clkdiv: int           # UART0 clock divider register (baud = XTAL / divider)
    flash_begin_len: int       # FLASH_BEGIN payload: 16 bytes on the ESP32 ROM, 20 later


CHIPS = {
    "esp32": ChipFacts("ESP32", 0x00F01D83, None, 0x3FF42000, 0x1C, 0x24, 0x2C, 0x80,
                       (0x3FF5A000, "esp32"), 0x3FF40014, 16),
    "esp32s3": ChipFacts("ESP32-S3", 0x00000009, 9, 0x60002000, 0x18, 0x20, 0x28, 0x58,
                         (0x60007044, "efuse_block1"), 0x60000014, 20),
    "esp32c3": ChipFacts("ESP32-C3", 0x1B31506F, 5, 0x60002000, 0x18, 0x20, 0x28, 0x58,
                         (0x60008844, "efuse_block1"), 0x60000014, 20),
}


@dataclass
class WireStats:
    """What crossed the wire, counted at the ROM side."""
    bytes_in: int = 0          # host -> chip, SLIP-framed, as received
    bytes_out: int = 0         # chip -> host
    requests: int = 0          # request packets answered (round trips)
    commands: Counter = field(default_factory=Counter)

    @property
    def bytes_total(self):
        return self.bytes_in + self.bytes_out


class _Wire:
    """The pty master seen as a serial port by esptool's SLIP code: slip_reader() reads requests
    through inWaiting()/read(); ESPLoader.write, given this object as its loader (it uses only
    `_port.write` and `trace`), frames the responses. read() waits until data comes or the ROM
    stops, then returns b"" (slip_reader raises FatalError: the serving loop ends)."""

    def __init__(self, fd, stop, stats):
        self.fd, self.stop, self.stats = fd, stop, stats
        self._port = self

    def inWaiting(self):
        return struct.unpack("i", fcntl.ioctl(self.fd, termios.FIONREAD, b"\0\0\0\0"))[0]

    def read(self, n):
        while not self.stop.is_set():
            if select.select([self.fd], [], [], 0.05)[0]:
                data = os.read(self.fd, n)
                self.stats.bytes_in += len(data)
                return data
        return b""

    def write(self, data):
        self.stats.bytes_out += len(data)
        view = memoryview(data)
        while view:
            view = view[os.write(self.fd, view):]

    def trace(self, *_):
        pass


class _RomError(Exception):
    def __init__(self, code):
        super().__init__(code)
        self.code = code


class VirtualROM:
    """An ESP32 / ESP32-S3 / ESP32-C3 in download mode, on a pty, served by a thread."""

    def __init__(self, chip="esp32", flash_size=4 * MiB, mac=None):
        if chip not in CHIPS:
            raise ValueError(f"chip must be one of {', '.join(CHIPS)}, not {chip!r}")
        if flash_size < MiB or flash_size & (flash_size - 1):
            raise ValueError(f"flash_size must be a power of two of at least 1 MiB, not {flash_size}")
        self.chip = chip
        self.facts = CHIPS[chip]
        self.flash = bytearray(b"\xff") * flash_size
        self.mac = tuple(mac) if mac else (0x24, 0x0A, 0xC4, 0x00, 0x00, 0x01)
        self.stats = WireStats()
        self.baud = 115200
        self.attached = False
        self.spi_params = None     # total size esptool told us with SPI_SET_PARAMS
        self.app_starts = 0        # FLASH_END / FLASH_DEFL_END asking to leave the loader
        self.port = None
        self._regs = {}
        self._write = None         # active flash write: dict(offset, end, block, next_seq, defl)
        self._master = self._slave = None
        self._thread = None
        self._stop = threading.Event()
        self._init_registers()

    # -- lifecycle -------------------------------------------------------------------------
    def start(self):
        self._master, self._slave = os.openpty()
        tty.setraw(self._slave)          # no echo, no CR/LF translation: a plain byte pipe
        self.port = os.ttyname(self._slave)
        self._wire = _Wire(self._master, self._stop, self.stats)
        self._stop.clear()
        self._thread = threading.Thread(target=self._serve, name=f"VirtualROM {self.port}", daemon=True)
        self._thread.start()
        return self

    def stop(self):
        self._stop.set()
        if self._thread:
            self._thread.join(timeout=5)
            self._thread = None
        for fd in (self._master, self._slave):
            if fd is not None:
                os.close(fd)
        self._master = self._slave = None

    __enter__ = start

    def __exit__(self, *exc):
        self.stop()

    # -- register file ---------------------------------------------------------------------
    def _init_registers(self):
        f = self.facts
        self._regs[CHIP_DETECT_MAGIC_REG] = f.magic
        self._regs[f.uart_clkdiv] = XTAL_HZ // self.baud
        if self.chip == "esp32":
            # The ESP32 ROM derives its crystal frequency from the RTC calibration value and the
            # 8 MHz clock eFuse (RTCCALICFG1, EFUSE word 4); esptool scales CHANGE_BAUDRATE by
            # it. 1024 * 15625 * 100 / 40 = 40 MHz: a calibrated 40 MHz crystal.
            self._regs[0x3FF5F06C] = 1024 << 7
            self._regs[0x3FF5A010] = 100
        base, layout = f.mac_regs
        m = self.mac
        if layout == "esp32":   # EFUSE_BLK0_RDATA1 = MAC[2:6], RDATA2 low half = MAC[0:2]
            self._regs[base + 4] = int.from_bytes(bytes(m[2:6]), "big")
            self._regs[base + 8] = int.from_bytes(bytes(m[0:2]), "big")
        else:                   # BLOCK1 word 0 = MAC[2:6], word 1 low half = MAC[0:2]
            self._regs[base] = int.from_bytes(bytes(m[2:6]), "big")
            self._regs[base + 4] = int.from_bytes(bytes(m[0:2]), "big")

    def _sfdp(self, addr):   # the signature, then the manufacturer id in the first parameter header
        table = b"SFDP".ljust(0x10, b"\0") + bytes([JEDEC_WINBOND]) + bytes(47)
        return int.from_bytes(table[addr:addr + 4].ljust(4, b"\0"), "little")

    def _run_spi_command(self):
        f = self.facts
        base = f.spi_base
        command = self._regs.get(base + f.spi_usr2, 0) & 0xFF
        if self._regs.get(base + f.spi_usr, 0) & SPI_USR_MISO:
            bits = (self._regs.get(base + f.spi_miso_dlen, 31) & 0x3FF) + 1
            if command == 0x9F:      # RDID: manufacturer, memory type, capacity (log2 of size)
                value = JEDEC_WINBOND | 0x40 << 8 | (len(self.flash).bit_length() - 1) << 16
            elif command == 0x5A:    # RDSFDP with a 24-bit address sent MSB-first
                value = self._sfdp(self._regs.get(base + 0x04, 0) >> 8)
            else:                    # status registers and the rest read as zero
                value = 0
            self._regs[base + f.spi_w0] = value & ((1 << min(bits, 32)) - 1)
        self._regs[base] = self._regs.get(base, 0) & ~SPI_CMD_USR   # command done

    def _write_reg(self, addr, value, mask):
        old = self._regs.get(addr, 0)
        self._regs[addr] = (old & ~mask) | (value & mask)
        if addr == self.facts.spi_base and value & SPI_CMD_USR:
            self._run_spi_command()

    # -- flash -----------------------------------------------------------------------------
    def _erase(self, offset, size):
        start = offset - offset % SECTOR
        end = -(-(offset + size) // SECTOR) * SECTOR
        if end > len(self.flash):
            raise _RomError(ERR_FAILED_TO_ACT)
        self.flash[start:end] = b"\xff" * (end - start)

    def _program(self, offset, data):
        end = offset + len(data)
        if end > len(self.flash):
            raise _RomError(ERR_FLASH_WRITE)
        old = self.flash[offset:end]
        self.flash[offset:end] = bytes(a & b for a, b in zip(old, data)) \
            if old.count(0xFF) != len(old) else data

    def _begin(self, payload, deflate):
        if not self.attached:
            raise _RomError(ERR_FAILED_TO_ACT)
        if len(payload) != self.facts.flash_begin_len:
            raise _RomError(ERR_INVALID_MESSAGE)
        size, blocks, block_size, offset = struct.unpack_from("<IIII", payload)
        self._erase(offset, size)
        # FLASH_DATA blocks are whole blocks (the last one padded with 0xFF); deflated data
        # unpacks to at most the announced size, which esptool rounds up to whole blocks.
        end = offset + (size if deflate else blocks * block_size)
        self._write = {"offset": offset, "end": end, "block": block_size,
                       "blocks": blocks, "next_seq": 0, "written": 0,
                       "defl": zlib.decompressobj() if deflate else None}

    def _data(self, payload, chk, deflate):
        w = self._write
        if w is None or (w["defl"] is None) == deflate or len(payload) < 16:
            raise _RomError(ERR_FAILED_TO_ACT)
        length, seq = struct.unpack_from("<II", payload)
        data = payload[16:]
        if length != len(data):
            raise _RomError(ERR_INVALID_MESSAGE)
        if ESPLoader.checksum(data) != chk & 0xFF:
            raise _RomError(ERR_BAD_CRC)
        if seq != w["next_seq"]:
            raise _RomError(ERR_FAILED_TO_ACT)
        if deflate:
            try:
                data = w["defl"].decompress(data)
            except zlib.error:
                raise _RomError(ERR_DEFLATE)
        at = w["offset"] + w["written"]
        if at + len(data) > w["end"]:
            raise _RomError(ERR_FLASH_WRITE)
        self._program(at, data)
        w["written"] += len(data)
        w["next_seq"] += 1

    def _end(self, payload):
        self._write = None
        if len(payload) >= 4 and struct.unpack_from("<I", payload)[0] in (0, 1):
            self.app_starts += 1    # 0: reboot, 1: run user code; both leave the loader

    # -- protocol --------------------------------------------------------------------------
    def _handle(self, op, payload, chk):
        """Returns (value, data) for the response; raises _RomError for an error status."""
        name, n = COMMAND_NAMES.get(op), len(payload)
        if name == "SYNC":
            return 0x20120707, b""
        if name == "READ_REG" and n == 4:
            return self._regs.get(struct.unpack("<I", payload)[0], 0), b""
        if name == "WRITE_REG" and n and n % 16 == 0:
            for i in range(0, n, 16):
                addr, value, mask, _delay = struct.unpack_from("<IIII", payload, i)
                self._write_reg(addr, value, mask)
        elif name == "GET_SECURITY_INFO" and self.facts.chip_id is not None:
            return 0, struct.pack("<IB7BII", 0, 0, *([0] * 7), self.facts.chip_id, 0)
        elif name == "SPI_ATTACH" and n == 8:
            self.attached = True
        elif name == "SPI_SET_PARAMS" and n == 24:
            self.spi_params = struct.unpack("<6I", payload)[1]
        elif name in ("FLASH_BEGIN", "FLASH_DEFL_BEGIN"):
            self._begin(payload, deflate=name == "FLASH_DEFL_BEGIN")
        elif name in ("FLASH_DATA", "FLASH_DEFL_DATA"):
            self._data(payload, chk, deflate=name == "FLASH_DEFL_DATA")
        elif name in ("FLASH_END", "FLASH_DEFL_END"):
            self._end(payload)
        elif name == "SPI_FLASH_MD5" and n == 16:
            addr, size = struct.unpack_from("<II", payload)
            if addr + size > len(self.flash):
                raise _RomError(ERR_FAILED_TO_ACT)
            return 0, hashlib.md5(self.flash[addr:addr + size]).hexdigest().encode()
        elif name == "CHANGE_BAUDRATE" and n == 8:
            self.baud = struct.unpack_from("<I", payload)[0]
            if self.baud:
                self._regs[self.facts.uart_clkdiv] = XTAL_HZ // self.baud
        else:
            raise _RomError(ERR_INVALID_MESSAGE)
        return 0, b""

    def _respond(self, packet):
        if len(packet) < 8 or packet[0] != 0x00:
            return                              # not a request: the ROM ignores it
        _, op, size, chk = struct.unpack_from("<BBHI", packet)
        payload, name = bytes(packet[8:]), COMMAND_NAMES.get(op, f"0x{op:02X}")
        if size != len(payload) or (name == "SYNC" and payload != SYNC_PAYLOAD):
            return
        self.stats.requests += 1
        self.stats.commands[name] += 1
        try:
            value, data = self._handle(op, payload, chk)
            status = b"\x00\x00\x00\x00"
        except _RomError as e:
            value, data, status = 0, b"", bytes((1, e.code, 0, 0))
        body = data + status
        reply = struct.pack("<BBHI", 0x01, op, len(body), value) + body
        for _ in range(8 if name == "SYNC" else 1):     # the ROM answers SYNC eight times
            ESPLoader.write(self._wire, reply)

    def _serve(self):
        while not self._stop.is_set():
            try:
                for packet in slip_reader(self._wire, self._wire.trace):
                    self._respond(packet)
            except FatalError:
                pass    # noise between frames (the ROM skips it), or stop(): the loop decides
