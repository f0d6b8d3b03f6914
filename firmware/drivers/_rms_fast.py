# Machine-code kernels for ac_rms (imported only where the runtime has the native emitters: the
# ESP32 port and the unix port do; CPython raises ImportError at `import micropython`).
#
# sums(buf, n, out): buf holds n samples (array 'i', units of 100 uV, 0..~33000).
#   out[0] = sum of samples, and sum((x - sum // n) ** 2) = out[2] * 2**29 + out[1]:
#   the square sum is carried in two words so no 32-bit machine word overflows (one centred
#   square is at most 33000**2 < 2**31 - 2**29).
#
# The kernels are compiled on the device, from source, by the runtime's own compiler: decorated
# viper/native code in this file would tie its .mpy to one machine architecture (mpy-cross needs
# -march for it), while the source string keeps the file portable to every board and to the
# mpy-cross check. Where the runtime has no native emitter, exec raises and ac_rms falls back to
# its plain Python loop.
import micropython  # noqa: F401  (ImportError on CPython: no kernels there)

_SOURCE = """
import micropython


@micropython.viper
def sums(buf, n: int, out):
    p = ptr32(buf)
    o = ptr32(out)
    s = 0
    for i in range(n):
        s += p[i]
    m = s // n
    chunk = 1 << 29
    lo = 0
    hi = 0
    for i in range(n):
        d = p[i] - m
        lo += d * d
        if lo >= chunk:
            lo -= chunk
            hi += 1
    o[0] = s
    o[1] = lo
    o[2] = hi
"""

_g = {}
exec(_SOURCE, _g)
sums = _g["sums"]
del _g, _SOURCE  # the source text is not kept in RAM once compiled
