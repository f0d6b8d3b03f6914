// A ROMFS partition for the ESP32-like runtime, as an ESP32 MicroPython build with a "romfs"
// partition has one: vfs.rom_ioctl() over a file mapped into memory (flash on the board: outside the
// GC heap, so .mpy bytecode and constants in it are used in place, not copied into the heap).
//
//   EDGESHADOW_ROMFS=path   the partition's file (the virtual board keeps it in its sim/ folder);
//                           created erased (0xFF) when absent. Without it: no partition.
//   EDGESHADOW_ROMFS_SIZE   its size in bytes when created (default 256 KiB)
//   EDGESHADOW_ROMFS_TIMING "erase_us,page_us": time a 4 KB erase and a 256 B page write take
//                           (default "45000,400": an ESP32's SPI flash, W25Q32JV typical tSE, tPP),
//                           so a copy into the partition takes as long as on a board and a power
//                           cut can land in the middle of one; "0,0" for none
//
// As on the ESP32 port (ports/esp32/esp32_partition.c), vfs.rom_ioctl answers only 1 (how many
// partitions) and 2 (the partition): rom_ioctl(2, 0) is a Partition object, readable as a buffer
// (the memory-mapped flash: memoryview(dev)) and written through its block device methods, as
// mpremote's `romfs deploy` does on an ESP32:
//   dev.ioctl(4, 0) blocks, dev.ioctl(5, 0) block size (4096), dev.ioctl(6, n) erase block n,
//   dev.writeblocks(n, buf) erase then write (len(buf) a multiple of 4096),
//   dev.writeblocks(n, buf, off) write only (erased first), dev.readblocks(n, buf[, off]).
// rom_ioctl(3..6) (write prepare/write/complete) are refused with -EINVAL, as on the ESP32.
// Writes behave as NOR flash does: a write can only clear bits (new = old & data), so a block must
// be erased before it is written. A process killed mid-write leaves what it had written (the map is
// shared with the file), as a power cut does.
//
// The unix port's main.c has its own (empty, read-only) mp_vfs_rom_ioctl; the build links this one
// in its place with -Wl,--wrap=mp_vfs_rom_ioctl.
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "py/runtime.h"
#include "py/mperrno.h"
#include "extmod/vfs.h"

#define ROMFS_BLOCK (4096)  // the ESP32's flash erase block

static uint8_t *part = NULL;
static size_t part_size = 0;
static int part_tried = 0;
static useconds_t erase_us = 45000, page_us = 400;

static void part_open(void) {
    if (part_tried) {
        return;
    }
    part_tried = 1;
    const char *timing = getenv("EDGESHADOW_ROMFS_TIMING");
    if (timing != NULL) {
        char *end;
        erase_us = (useconds_t)strtoul(timing, &end, 10);
        page_us = *end == ',' ? (useconds_t)strtoul(end + 1, NULL, 10) : 0;
    }
    const char *path = getenv("EDGESHADOW_ROMFS");
    if (path == NULL || *path == '\0') {
        return;
    }
    const char *size_env = getenv("EDGESHADOW_ROMFS_SIZE");
    size_t size = size_env ? (size_t)strtoul(size_env, NULL, 0) : 256 * 1024;
    int fd = open(path, O_RDWR | O_CREAT, 0644);
    if (fd < 0) {
        return;
    }
    struct stat st;
    if (fstat(fd, &st) == 0 && st.st_size == 0) {
        uint8_t erased[ROMFS_BLOCK];
        memset(erased, 0xff, sizeof(erased));
        for (size_t done = 0; done < size; done += sizeof(erased)) {
            if (write(fd, erased, sizeof(erased)) != (ssize_t)sizeof(erased)) {
                close(fd);
                return;
            }
        }
    } else if (fstat(fd, &st) == 0) {
        size = (size_t)st.st_size;
    }
    void *map = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    close(fd);
    if (map == MAP_FAILED) {
        return;
    }
    part = map;
    part_size = size;
}

static void part_check(mp_int_t offset, size_t len) {
    if (part == NULL || offset < 0 || (size_t)offset + len > part_size) {
        mp_raise_OSError(MP_EINVAL);
    }
}

static void part_erase(mp_int_t offset, size_t len) {  // esp_partition_erase_range: aligned only
    part_check(offset, len);
    if (offset % ROMFS_BLOCK || len % ROMFS_BLOCK) {
        mp_raise_OSError(MP_EINVAL);
    }
    for (size_t done = 0; done < len; done += ROMFS_BLOCK) {
        memset(part + offset + done, 0xff, ROMFS_BLOCK);
        if (erase_us) {
            usleep(erase_us);
        }
    }
}

static mp_obj_t rom_part_readblocks(size_t n_args, const mp_obj_t *args) {
    mp_int_t offset = mp_obj_get_int(args[1]) * ROMFS_BLOCK + (n_args == 4 ? mp_obj_get_int(args[3]) : 0);
    mp_buffer_info_t buf;
    mp_get_buffer_raise(args[2], &buf, MP_BUFFER_WRITE);
    part_check(offset, buf.len);
    memcpy(buf.buf, part + offset, buf.len);
    return mp_const_none;
}
static MP_DEFINE_CONST_FUN_OBJ_VAR_BETWEEN(rom_part_readblocks_obj, 3, 4, rom_part_readblocks);

static mp_obj_t rom_part_writeblocks(size_t n_args, const mp_obj_t *args) {
    mp_int_t offset = mp_obj_get_int(args[1]) * ROMFS_BLOCK;
    mp_buffer_info_t buf;
    mp_get_buffer_raise(args[2], &buf, MP_BUFFER_READ);
    if (n_args == 3) {
        part_erase(offset, buf.len);  // a simple write erases first
    } else {
        offset += mp_obj_get_int(args[3]);  // an extended write: erased before, explicitly
    }
    part_check(offset, buf.len);
    const uint8_t *src = buf.buf;
    for (size_t i = 0; i < buf.len; i++) {
        part[offset + i] &= src[i];
        if (page_us && ((offset + i) % 256 == 255 || i + 1 == buf.len)) {
            usleep(page_us);  // each 256 B page written takes its program time
        }
    }
    return mp_const_none;
}
static MP_DEFINE_CONST_FUN_OBJ_VAR_BETWEEN(rom_part_writeblocks_obj, 3, 4, rom_part_writeblocks);

static mp_obj_t rom_part_ioctl(mp_obj_t self_in, mp_obj_t cmd_in, mp_obj_t arg_in) {
    switch (mp_obj_get_int(cmd_in)) {
        case MP_BLOCKDEV_IOCTL_INIT:
        case MP_BLOCKDEV_IOCTL_DEINIT:
            return MP_OBJ_NEW_SMALL_INT(0);
        case MP_BLOCKDEV_IOCTL_SYNC:
            msync(part, part_size, MS_SYNC);
            return MP_OBJ_NEW_SMALL_INT(0);
        case MP_BLOCKDEV_IOCTL_BLOCK_COUNT:
            return MP_OBJ_NEW_SMALL_INT(part_size / ROMFS_BLOCK);
        case MP_BLOCKDEV_IOCTL_BLOCK_SIZE:
            return MP_OBJ_NEW_SMALL_INT(ROMFS_BLOCK);
        case MP_BLOCKDEV_IOCTL_BLOCK_ERASE:
            part_erase(mp_obj_get_int(arg_in) * ROMFS_BLOCK, ROMFS_BLOCK);
            return MP_OBJ_NEW_SMALL_INT(0);
    }
    return mp_const_none;
}
static MP_DEFINE_CONST_FUN_OBJ_3(rom_part_ioctl_obj, rom_part_ioctl);

static mp_int_t rom_part_get_buffer(mp_obj_t self_in, mp_buffer_info_t *bufinfo, mp_uint_t flags) {
    if (part == NULL || flags != MP_BUFFER_READ) {
        return 1;  // read-only, as the ESP32's mapped partition
    }
    bufinfo->buf = part;
    bufinfo->len = part_size;
    bufinfo->typecode = 'B';
    return 0;
}

static void rom_part_print(const mp_print_t *print, mp_obj_t self_in, mp_print_kind_t kind) {
    mp_printf(print, "<Partition type=1, subtype=143, address=0, size=%u, label=romfs, encrypted=0>",
        (unsigned)part_size);
}

static const mp_rom_map_elem_t rom_part_locals_table[] = {
    { MP_ROM_QSTR(MP_QSTR_readblocks), MP_ROM_PTR(&rom_part_readblocks_obj) },
    { MP_ROM_QSTR(MP_QSTR_writeblocks), MP_ROM_PTR(&rom_part_writeblocks_obj) },
    { MP_ROM_QSTR(MP_QSTR_ioctl), MP_ROM_PTR(&rom_part_ioctl_obj) },
};
static MP_DEFINE_CONST_DICT(rom_part_locals, rom_part_locals_table);

static MP_DEFINE_CONST_OBJ_TYPE(
    rom_part_type,
    MP_QSTR_Partition,
    MP_TYPE_FLAG_NONE,
    print, rom_part_print,
    buffer, rom_part_get_buffer,
    locals_dict, &rom_part_locals
    );

static const mp_obj_base_t rom_part_obj = { &rom_part_type };

mp_obj_t __wrap_mp_vfs_rom_ioctl(size_t n_args, const mp_obj_t *args) {
    part_open();
    mp_int_t cmd = mp_obj_get_int(args[0]);
    if (cmd == MP_VFS_ROM_IOCTL_GET_NUMBER_OF_SEGMENTS) {
        return MP_OBJ_NEW_SMALL_INT(part ? 1 : 0);
    }
    if (cmd == MP_VFS_ROM_IOCTL_GET_SEGMENT && part != NULL && n_args >= 2 && mp_obj_get_int(args[1]) == 0) {
        return MP_OBJ_FROM_PTR(&rom_part_obj);
    }
    return MP_OBJ_NEW_SMALL_INT(-MP_EINVAL);  // as the ESP32 port: no WRITE_PREPARE/WRITE/COMPLETE
}
