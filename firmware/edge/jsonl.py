# Deterministic JSON for replay output: the same bytes on CPython and MicroPython by construction.
# Keys sorted; ints as integers; floats rounded half-up to 6 decimals through integer arithmetic
# (json.dumps uses each runtime's own float repr, which differ); strings ASCII with \u escapes.
_SCALE = 1000000


def fmt_float(x):
    if x != x or x - x != 0.0:  # NaN or infinity: JSON has no spelling for them
        return "null"
    if -1e15 < x < 1e15:
        n = int((x * _SCALE + 0.5) // 1)
        sign = "-" if n < 0 else ""
        q, r = divmod(-n if n < 0 else n, _SCALE)
        frac = ("%06d" % r).rstrip("0") or "0"
        return "%s%d.%s" % (sign, q, frac)
    return "%d.0" % int(x)


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
