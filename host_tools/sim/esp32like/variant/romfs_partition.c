// A ROMFS partition for the ESP32-like runtime, as an ESP32 MicroPython build with a "romfs"
// partition has one: vfs.rom_ioctl() over a file mapped into memory (flash on the board: outside the
// GC heap, so .mpy bytecode and constants in it are used in place, not copied into the heap).
//
//   EDGESHADOW_ROMFS=path   the partition's file (the virtual board keeps it in its sim/ folder);
//                           created erased (0xFF) when absent. Without it: no partition.
//   EDGESHADOW_ROMFS_SIZE   its size in bytes when created (default 256 KiB)
//
// Writes behave as NOR flash does: a write can only clear bits (new = old & data), so a block must
// be erased (WRITE_PREPARE) before it is written, as mpremote's `romfs deploy` does.
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

static void part_open(void) {
    if (part_tried) {
        return;
    }
    part_tried = 1;
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

mp_obj_t __wrap_mp_vfs_rom_ioctl(size_t n_args, const mp_obj_t *args) {
    part_open();
    mp_int_t cmd = mp_obj_get_int(args[0]);
    if (cmd == MP_VFS_ROM_IOCTL_GET_NUMBER_OF_SEGMENTS) {
        return MP_OBJ_NEW_SMALL_INT(part ? 1 : 0);
    }
    if (part == NULL || n_args < 2 || mp_obj_get_int(args[1]) != 0) {
        return MP_OBJ_NEW_SMALL_INT(-MP_EINVAL);
    }
    switch (cmd) {
        case MP_VFS_ROM_IOCTL_GET_SEGMENT:
            return mp_obj_new_memoryview('B', part_size, part);

        case MP_VFS_ROM_IOCTL_WRITE_PREPARE: {  // (3, id, length): erase what the image needs
            size_t len = n_args > 2 ? (size_t)mp_obj_get_int(args[2]) : part_size;
            if (len > part_size) {
                return MP_OBJ_NEW_SMALL_INT(-MP_EINVAL);
            }
            len = (len + ROMFS_BLOCK - 1) / ROMFS_BLOCK * ROMFS_BLOCK;
            memset(part, 0xff, len < part_size ? len : part_size);
            return MP_OBJ_NEW_SMALL_INT(4);  // the smallest write
        }

        case MP_VFS_ROM_IOCTL_WRITE: {  // (4, id, offset, buf)
            if (n_args < 4) {
                return MP_OBJ_NEW_SMALL_INT(-MP_EINVAL);
            }
            mp_int_t offset = mp_obj_get_int(args[2]);
            mp_buffer_info_t buf;
            mp_get_buffer_raise(args[3], &buf, MP_BUFFER_READ);
            if (offset < 0 || (size_t)offset + buf.len > part_size) {
                return MP_OBJ_NEW_SMALL_INT(-MP_EINVAL);
            }
            const uint8_t *src = buf.buf;
            for (size_t i = 0; i < buf.len; i++) {
                part[offset + i] &= src[i];
            }
            return MP_OBJ_NEW_SMALL_INT(0);
        }

        case MP_VFS_ROM_IOCTL_WRITE_COMPLETE:
            msync(part, part_size, MS_SYNC);
            return MP_OBJ_NEW_SMALL_INT(0);
    }
    return MP_OBJ_NEW_SMALL_INT(-MP_EINVAL);
}
