"""The firmware in a ROMFS partition: imported in place from flash, not copied into the GC heap.

MicroPython 1.25+ runs .mpy bytecode and its constants in place from a ROMFS partition (read-only,
memory-mapped flash), where a module imported from the filesystem is loaded into the heap. On the
ESP32-like runtime this takes the firmware's imported code from 53 KB of heap to 24 KB. It needs a
MicroPython build with a "romfs" partition (not the stock ESP32_GENERIC image; see
docs.micropython.org, "Working with ROMFS"); `vfs.rom_ioctl` is how the board exposes it, and how
mpremote's `romfs deploy` and this module write it.

The image is built by mpremote's own ROMFS writer (mpremote.romfs.make_romfs) from the .mpy files
deploy would send; /boot.py, /main.py and /otaboot.py (+ otaboot_rom.py) stay on the filesystem (the board runs
/boot.py and /main.py from there, and otaboot decides which app version runs: an OTA update in
/update/ still takes precedence over the ROMFS). On the board, sys.path puts "" (the filesystem)
before "/rom", so the filesystem's copies of the modules in the image are removed.
"""
import base64
import contextlib
import hashlib
import io
import tempfile
from pathlib import Path

from host_tools.errors import EdgeshadowError

ON_FILESYSTEM = ("/boot", "/main", "/otaboot", "/otaboot_rom")  # .py or .mpy
CHUNK = 2048  # bytes of image per command (base64 in the raw REPL: about 2.7 KB on the line)


def split(files):
    """({path: bytes} for the image, {path: bytes} for the filesystem) of deploy's local files."""
    stays = {p for p in files if p.rsplit(".", 1)[0] in ON_FILESYSTEM}
    return ({p: d for p, d in files.items() if p not in stays},
            {p: d for p, d in files.items() if p in stays})


def build_image(rom_files):
    """A ROMFS image of {board path: bytes} (already .mpy where compiled), by mpremote's writer."""
    from mpremote.romfs import make_romfs
    with tempfile.TemporaryDirectory(prefix="edgeshadow-romfs-") as tmp:
        for path, data in rom_files.items():
            dest = Path(tmp) / path.lstrip("/")
            dest.parent.mkdir(parents=True, exist_ok=True)
            dest.write_bytes(data)
        with contextlib.redirect_stdout(io.StringIO()):  # it prints the tree it packs
            return bytes(make_romfs(tmp, mpy_cross=False))


def partition_bytes(link):
    """Bytes of the board's first ROMFS partition, 0 when its MicroPython has none (a link that
    fails still raises)."""
    size = link.eval("(lambda v: len(memoryview(v.rom_ioctl(2, 0))) if hasattr(v, 'rom_ioctl') and "
                     "v.rom_ioctl(1) > 0 else -1)(__import__('vfs'))")
    return size if isinstance(size, int) and size > 0 else 0


def partition_size(link):
    """Bytes of the board's first ROMFS partition; a clear error when its MicroPython has none."""
    size = partition_bytes(link)
    if not size:
        raise EdgeshadowError(f"the board on {link.port} has no ROMFS partition",
                              hint="ROMFS needs a MicroPython build with a 'romfs' partition; "
                                   "on such a board `edgeshadow deploy` puts the firmware on the filesystem")
    return size


def held_sha256(link, n):
    """SHA-256 (hex) of the first n bytes of the board's ROMFS partition 0."""
    return link.exec("import vfs, hashlib, binascii\n"
                     f"print(binascii.hexlify(hashlib.sha256(memoryview(vfs.rom_ioctl(2, 0))[:{n}])"
                     ".digest()).decode())").strip()


def write_image(link, image, on_progress=None):
    """Erase, write and verify the board's ROMFS partition 0 (SHA-256 of what the board holds).
    As on the ESP32 port, vfs.rom_ioctl(2, 0) is the partition object: erased a block at a time
    (ioctl 6), written with writeblocks(block, buf, offset), as mpremote's `romfs deploy` does.
    The first erase block (the image's header) is written last: a cable pulled mid-write leaves a
    partition holding no image, which the board does not mount, never a header over half of one."""
    size = partition_size(link)
    if len(image) > size:
        raise EdgeshadowError(f"the firmware's ROMFS image is {len(image)} bytes; the board's "
                              f"partition holds {size}")
    link.exec("import vfs\ntry:\n vfs.umount('/rom')\nexcept OSError:\n pass\n"
              "_rom = vfs.rom_ioctl(2, 0)\n_bs = _rom.ioctl(5, 0)\n"
              f"for _b in range(({len(image)} + _bs - 1) // _bs):\n _rom.ioctl(6, _b)")
    bs = link.eval("_bs")
    offsets = list(range(0, len(image), CHUNK))
    done = 0
    for offset in [o for o in offsets if o >= bs] + [o for o in offsets if o < bs]:
        chunk = image[offset:offset + CHUNK]
        b64 = base64.b64encode(chunk).decode()
        try:
            link.exec(f"_rom.writeblocks({offset // bs}, __import__('binascii').a2b_base64('{b64}'), {offset % bs})")
        except Exception as e:
            raise EdgeshadowError(f"the board on {link.port} refused a ROMFS write at offset {offset} ({e})")
        done += len(chunk)
        if on_progress:
            on_progress(done, len(image))
    link.exec("_rom.ioctl(3, 0)")
    held = held_sha256(link, len(image))
    if held != hashlib.sha256(image).hexdigest():
        raise EdgeshadowError(f"the board on {link.port} holds another ROMFS image than the one written "
                              f"(SHA-256 {held[:16]}...): its partition may be damaged")
    # mounted again as at start-up (a partition that held no image then is not on sys.path yet)
    link.exec("import vfs, sys\nvfs.mount(vfs.VfsRom(_rom), '/rom')\ndel _rom, _bs\n"
              "if '/rom' not in sys.path:\n sys.path.extend(('/rom', '/rom/lib'))")
    return len(image)


# -- what `edgeshadow deploy` does with the partition ----------------------------------------------
def layout(firmware_dir, board, mpy, rom_size, top_dirs, deployed_dirs):
    """(files for the filesystem, their folders, the folders deploy manages, files for the ROMFS
    image or None). With a ROMFS partition the modules go into the image and their filesystem
    copies (every firmware folder included) are removed."""
    from host_tools.device.firmware_files import local_files
    local, local_dirs = local_files(firmware_dir, board["mpy_arch"] if (mpy or rom_size) else None)
    if not rom_size:
        return local, local_dirs, deployed_dirs, None
    rom, local = split(local)
    return local, set(), set(deployed_dirs) | top_dirs, rom


def partition_for_deploy(link, romfs):
    """Bytes of the board's ROMFS partition when the firmware goes there, else 0."""
    if romfs is False:
        return 0
    return partition_size(link) if romfs else partition_bytes(link)


def put_image(link, rom_files, size, emit):
    """The firmware's ROMFS image on the board (written only when the board holds another one)."""
    image = build_image(rom_files)
    sha = hashlib.sha256(image).hexdigest()
    done = {"bytes": len(image), "sha256": sha, "partition": size, "written": False}
    if held_sha256(link, len(image)) == sha:
        emit("romfs", "unchanged", len(image))
        return done
    emit("romfs", "writing", len(image))
    write_image(link, image)
    done["written"] = True
    emit("romfs", "written", len(image))
    return done
