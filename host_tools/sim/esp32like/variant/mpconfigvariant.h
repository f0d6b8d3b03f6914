// The ESP32-like runtime's variant of the unix port: the "standard" variant, plus a ROMFS partition
// (vfs.rom_ioctl) as an ESP32 build with a "romfs" partition has. See romfs_partition.c.
#define MICROPY_CONFIG_ROM_LEVEL (MICROPY_CONFIG_ROM_LEVEL_EXTRA_FEATURES)

#include "variants/mpconfigvariant_common.h"

#undef MICROPY_VFS_ROM_IOCTL
#define MICROPY_VFS_ROM_IOCTL (1)

// Ctrl-C schedules KeyboardInterrupt (raised by the VM at its next check), as on the ESP32; the
// standard unix build longjmps out of the SIGINT handler instead (../kbd_sched.c says why not).
#undef MICROPY_ASYNC_KBD_INTR
#define MICROPY_ASYNC_KBD_INTR (0)
