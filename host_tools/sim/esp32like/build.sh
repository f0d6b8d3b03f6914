#!/usr/bin/env bash
# Builds the ESP32-like runtime: the MicroPython unix port compiled the way an ESP32 runs Python.
#   -m32                 32-bit objects, 31-bit small ints, 30-bit ticks (ticks_ms period 2^30)
#   float32              MICROPY_FLOAT_IMPL_FLOAT: single-precision floats, as on the ESP32
#   mbedTLS              the ssl module; its allocations stay outside the GC heap, as on the ESP32
#   asyncio, ssl frozen  as in the ESP32 port's firmware (they cost no GC heap there either)
#   ROMFS partition      vfs.rom_ioctl over a memory-mapped file (variant/romfs_partition.c), as an
#                        ESP32 build with a "romfs" partition has
#   input kept           the REPL does not flush typed-ahead input, as a board's UART buffer keeps it
#   Ctrl-C scheduled     KeyboardInterrupt raised by the VM at its next check, as the ESP32's UART
#                        interrupt does, never longjmp'd out of the signal handler (kbd_sched.c)
# Run it with `-X heapsize=110k` for an ESP32-WROOM's GC heap (boards/*.json: gc_heap).
#
#   build.sh SRC OUT      SRC: a MicroPython 1.2x source archive (.tar.xz/.tar.gz) or checkout
#                         OUT: the binary to write (e.g. .venv/bin/micropython-esp32like)
set -euo pipefail
src=${1:?usage: build.sh SRC OUT}
out=${2:?usage: build.sh SRC OUT}
here=$(cd "$(dirname "$0")" && pwd)
jobs=$(nproc 2>/dev/null || echo 2)

if ! printf 'int main(void){return 0;}\n' | gcc -m32 -x c - -o /dev/null 2>/dev/null; then
    echo "esp32like: gcc cannot build 32-bit programs (install gcc-multilib)" >&2
    exit 2
fi
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
if [ -d "$src" ]; then
    tree=$(cd "$src" && pwd)
elif [ -f "$src" ]; then
    echo "esp32like: unpacking $src" >&2
    tar -xf "$src" -C "$work"
    tree=$(find "$work" -mindepth 1 -maxdepth 1 -type d | head -1)
else
    echo "esp32like: no MicroPython source at $src" >&2
    exit 2
fi
[ -f "$tree/ports/unix/Makefile" ] || { echo "esp32like: $src is not a MicroPython source tree (no ports/unix/Makefile)" >&2; exit 2; }

log="$work/build.log"
# The board keeps what the host typed while code ran (uart_noflush.c says why).
gcc -m32 -O2 -c "$here/uart_noflush.c" -o "$work/uart_noflush.o"
# Ctrl-C raises KeyboardInterrupt between bytecodes, as on the board (kbd_sched.c says why).
gcc -m32 -O2 -c "$here/kbd_sched.c" -o "$work/kbd_sched.o"
echo "esp32like: building mpy-cross" >&2
make -s -C "$tree/mpy-cross" -j"$jobs" >"$log" 2>&1 || { tail -30 "$log" >&2; exit 1; }
echo "esp32like: building the unix port (-m32, float32, mbedTLS); about a minute on 2 cores" >&2
make -s -C "$tree/ports/unix" -j"$jobs" VARIANT_DIR="$here/variant" \
    MICROPY_PY_FFI=0 MICROPY_PY_BTREE=0 MICROPY_SSL_MBEDTLS=1 \
    FROZEN_MANIFEST="$here/manifest.py" \
    CFLAGS_EXTRA='-m32 -DMICROPY_FLOAT_IMPL=MICROPY_FLOAT_IMPL_FLOAT' LDFLAGS_EXTRA="-m32 -Wl,--wrap=tcsetattr -Wl,--wrap=mp_vfs_rom_ioctl -Wl,--wrap=sigaction $work/uart_noflush.o $work/kbd_sched.o" \
    BUILD="$work/build" PROG=micropython-esp32like >>"$log" 2>&1 || { tail -30 "$log" >&2; exit 1; }

# The binary must be what it claims: 32-bit small ints, 30-bit ticks, float32, ssl and asyncio.
"$work/build/micropython-esp32like" -c "
import sys, time, ssl, asyncio, vfs
assert vfs.rom_ioctl(1) == 0, 'ROMFS without EDGESHADOW_ROMFS'
assert sys.maxsize == 2**31 - 1, 'not 32-bit'
assert time.ticks_add(0, -1) == 2**30 - 1, 'ticks are not 30-bit'
assert 1.0 + 1e-8 == 1.0 and str(1/3) == '0.33333334', 'floats are not single precision'
" || { echo "esp32like: the built binary failed its self-check" >&2; exit 1; }
mkdir -p "$(dirname "$out")"
cp "$work/build/micropython-esp32like" "$out.tmp" && mv "$out.tmp" "$out"
echo "esp32like: built $out" >&2
