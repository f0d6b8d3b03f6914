# Deterministic JSON for replay output: the same bytes on CPython and MicroPython by construction.
# Keys sorted; ints as integers; floats to 7 significant digits (at most 6 decimals), about what
# an ESP32's float32 holds, rounded half-up through integer arithmetic (edge.scaled), so the
# ESP32-like runtime agrees with float64 runtimes to the precision it has; strings ASCII with
# \u escapes.
from edge import scaled


def fmt_float(x):
    if x != x or x - x != 0.0:  # NaN or infinity: JSON has no spelling for them
        return "null"
    a = -x if x < 0 else x
    if a >= 1e6:
        return "%d.0" % scaled(x, 1)
    decimals, top = 6, 10
    while decimals and a >= top:  # 7 significant digits (1.234567, 24895.65)
        decimals -= 1
        top *= 10
    unit = 10 ** decimals
    i = int(x)  # the whole part apart: x * unit would not fit float32's 24 bits
    n = i * unit + scaled(x - i, unit)
    sign = "-" if n < 0 else ""
    q, r = divmod(-n if n < 0 else n, unit)
    frac = ("%0*d" % (decimals, r)).rstrip("0") if decimals else ""
    return "%s%d.%s" % (sign, q, frac or "0")


def _str(s, out):
    out.append('"')
    for ch in s:
        c = ord(ch)
        if ch == '"' or ch == "\\":
            out.append("\\" + ch)
        elif 0x20 <= c < 0x7F:
            out.append(ch)
        elif c > 0xFFFF:  # outside the BMP: a surrogate pair, as json.dumps writes it
            c -= 0x10000
            out.append("\\u%04x\\u%04x" % (0xD800 + (c >> 10), 0xDC00 + (c & 0x3FF)))
        else:
            out.append("\\u%04x" % c)
    out.append('"')


def _enc(o, out):
    t = type(o)
    if o is None:
        out.append("null")
    elif t is bool:
        out.append("true" if o else "false")
    elif t is int:
        out.append("%d" % o)
    elif t is float:
        out.append(fmt_float(o))
    elif t is str:
        _str(o, out)
    elif t is list or t is tuple:
        out.append("[")
        first = True
        for v in o:
            if not first:
                out.append(", ")
            first = False
            _enc(v, out)
        out.append("]")
    elif t is dict:
        out.append("{")
        first = True
        for k in sorted(o):
            if not first:
                out.append(", ")
            first = False
            _str(k, out)
            out.append(": ")
            _enc(o[k], out)
        out.append("}")
    else:
        raise TypeError("cannot encode %s" % t)


def dumps(o):
    out = []
    _enc(o, out)
    return "".join(out)
