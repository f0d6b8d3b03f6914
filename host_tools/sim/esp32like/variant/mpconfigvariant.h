// The ESP32-like runtime's variant of the unix port: the "standard" variant, plus a ROMFS partition
// (vfs.rom_ioctl) as an ESP32 build with a "romfs" partition has. See romfs_partition.c.
#define MICROPY_CONFIG_ROM_LEVEL (MICROPY_CONFIG_ROM_LEVEL_EXTRA_FEATURES)

#include "variants/mpconfigvariant_common.h"

#undef MICROPY_VFS_ROM_IOCTL
#define MICROPY_VFS_ROM_IOCTL (1)
