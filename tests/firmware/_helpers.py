# Small assertion helpers that work the same on CPython and MicroPython (no pytest there).
import os


def raises(exc_type, fn, *args, **kwargs):
    """Call fn and return the exception it raised; fail if it raised nothing or something else."""
    try:
        fn(*args, **kwargs)
    except exc_type as e:
        return e
    raise AssertionError("expected %s" % exc_type.__name__)


def approx(a, b, rel=1e-6, abs_=1e-9):
    return abs(a - b) <= max(abs_, rel * max(abs(a), abs(b)))


def tmpdir(prefix="edgeshadow-test"):
    """A new empty directory under /tmp (MicroPython has no tempfile)."""
    import binascii
    base = "/tmp/%s-%s" % (prefix, binascii.hexlify(os.urandom(6)).decode())
    os.mkdir(base)
    return base
