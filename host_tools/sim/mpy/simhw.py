# The virtual board's simulated hardware (MicroPython; imports on CPython too, for tests).
#
# The virtual board's bootstrap calls init(sim_dir) BEFORE the root is remounted on the flash
# folder: everything is read into memory then. sim_dir/scenario.json (written on the host by
# host_tools/sim/scenarios.py: prepare()) holds the physical timeline, the hardware wiring
# (ADC inputs with their transformer ratios, I2C chips), faults and Wi-Fi outages. Without it the
# board runs a quiet nominal grid line.
#
# The machine/network/esp32 stand-ins call:
#   i2c_bus(bus_id) -> Bus: scan(), device(addr) -> chip model or None, and the machine.I2C
#     methods writeto/readfrom_into/readfrom_mem_into/writeto_mem (OSError(19) when nobody answers)
#   adc_read_u16(pin, atten=None), adc_read_uv(pin, atten=None), adc_set_atten(pin, atten)
#     (atten is the machine.ADC constant: 0..3 = 0, 2.5, 6, 11 dB); the waveform is computed per
#     read from the clock, so a paced burst sees a real mains sine
#   wifi_up() -> bool (scripted outages), wifi_rssi() -> dBm, mcu_temperature() -> degC
# Time is measured from init(), times the scenario's time_scale.
# Over 350 lines, knowingly: it is the one simulated world every stand-in shares (signals, ADC,
# I2C buses, Wi-Fi, faults, the bench's quiet mode); the chip models live apart (simhw_chips.py).
import json
import math
import time

import simhw_chips

try:
    from time import ticks_ms, ticks_diff, ticks_add
except ImportError:    # CPython
    def ticks_ms():
        return int(time.monotonic() * 1000)

    def ticks_diff(a, b):
        return a - b

    def ticks_add(a, b):
        return a + b

_ENODEV = 19
FULL_SCALE_V = (0.95, 1.25, 1.75, 3.1)    # per attenuation constant (0, 2.5, 6, 11 dB)
_ADC_OFFSET = 0.02                        # fraction of full scale that reads 0
_KNEE = 0.8                               # above this share of the range the ADC compresses

DEFAULT = {
    "name": "default", "time_scale": 1.0, "loop": True,
    "timeline": {"interval_s": 10, "signals": {"voltage": [24000.0], "current": [300.0],
                                               "temperature": [45.0], "humidity": [50.0],
                                               "pressure": [101325.0]}},
    "hardware": {"mains_hz": 50,
                 "adc": {"34": {"signal": "voltage", "ratio": 30000.0, "bias_v": 1.55,
                                "noise_v": 0.002},
                         "35": {"signal": "current", "ratio": 1000.0, "bias_v": 1.55,
                                "noise_v": 0.002, "phase_deg": -25.0}},
                 "i2c": [{"bus": 0, "chip": "sht3x", "address": 68}],
                 "mcu_temperature": 42.0, "rssi": -58},
    "noise": {"temperature": 0.05, "humidity": 0.2, "pressure": 3.0},
    "faults": [], "wifi_outages": [],
}

_scn = None
_clock_ns = time.time_ns    # the mains phase clock; tests may substitute a virtual one
_ms0 = 0
_ns0 = 0
_seed = 1
_buses = {}
_adc = {}        # pin -> dict(cfg..., atten)
_amp_cache = {}  # pin -> (ticks_ms // 50, amplitude_v)
_quiet = None    # signal -> {timeline index: nominal value} while bench_quiet() holds


def init(sim_dir=None, scenario=None):
    """Load sim_dir/scenario.json (or the given dict) into memory and start the clock."""
    global _scn, _ms0, _ns0, _seed, _quiet
    scn = scenario
    if scn is None and sim_dir:
        try:
            with open(sim_dir + "/scenario.json") as f:
                scn = json.load(f)
        except OSError:
            scn = None
    if scn is None:
        scn = DEFAULT
    for key in DEFAULT:
        if key not in scn:
            scn[key] = DEFAULT[key]
    _scn = scn
    _quiet = None
    _seed = (int(scn.get("seed", 0)) * 2654435761 + 1) & 0xFFFFFFFF or 1
    _ms0 = _world_t0()
    _ns0 = _clock_ns()
    _buses.clear()
    _adc.clear()
    _amp_cache.clear()
    hw = scn["hardware"]
    for pin, cfg in hw.get("adc", {}).items():
        c = dict(cfg)
        c["atten"] = 3
        _adc[int(pin)] = c
    for dev in hw.get("i2c", []):
        bus = i2c_bus(dev.get("bus", 0))
        cls = simhw_chips.CHIPS[dev["chip"]]
        bus.devices[int(dev["address"])] = cls(_World, int(dev["address"]), dev.get("signals", {}))
    return scn


def _world_t0():
    """The world's time zero in ticks_ms: the board's power-on (the supervisor's), so a soft or hard
    reset of the firmware does not restart the physics; this process's start where none is given.
    The unix port's ticks and the host's time.monotonic() are the same CLOCK_MONOTONIC in ms, the
    ESP32-like runtime's masked to 30 bits: compared modulo 2^30 (spans up to 12 days)."""
    try:
        import os
        t0 = int(os.getenv("EDGESHADOW_WORLD_T0_MS") or "")
    except (ValueError, ImportError):
        return ticks_ms()
    now = ticks_ms()
    back = ((now & 0x3FFFFFFF) - (t0 & 0x3FFFFFFF)) & 0x3FFFFFFF
    return ticks_add(now, -back)


def set_clock(fn_ns=None):
    """Drive the mains phase from fn_ns() (nanoseconds) instead of the host clock (tests)."""
    global _clock_ns, _ns0
    _clock_ns = fn_ns or time.time_ns
    _ns0 = _clock_ns()


def _ensure():
    if _scn is None:
        init()


def elapsed():
    """Simulated seconds since init()."""
    _ensure()
    return ticks_diff(ticks_ms(), _ms0) / 1000.0 * _scn.get("time_scale", 1.0)


def rand():
    """0 <= x < 1 from a seeded xorshift32 (the same on every runtime)."""
    global _seed
    x = _seed
    x ^= (x << 13) & 0xFFFFFFFF
    x ^= x >> 17
    x ^= (x << 5) & 0xFFFFFFFF
    _seed = x
    return x / 4294967296.0


def gauss(sigma):
    return (rand() + rand() + rand() - 1.5) * 2.0 * sigma


def _active(f, t):
    return f.get("from_s", 0) <= t and (f.get("until_s") is None or t < f["until_s"])


def _timeline(name, t):
    tl = _scn["timeline"]
    series = tl["signals"].get(name)
    if not series:
        return None
    pos = t / tl.get("interval_s", 10)
    n = len(series)
    i = int(pos)
    frac = pos - i
    if _scn.get("loop", True):
        ia, ib = i % n, (i + 1) % n
    else:
        ia, ib = min(i, n - 1), min(i + 1, n - 1)
    a, b = series[ia], series[ib]
    if _quiet is not None and name in _quiet:
        a, b = _quiet[name].get(ia, a), _quiet[name].get(ib, b)
    if a is None or b is None:
        return a if frac < 0.5 else b
    return a + (b - a) * frac


def value(name, noisy=True):
    """The physical value of a signal now (None if the scenario does not have it)."""
    _ensure()
    t = elapsed()
    for f in _scn["faults"]:
        if f["kind"] == "stuck" and f.get("signal") == name and _active(f, t):
            return _timeline(name, f.get("from_s", 0))
    v = _timeline(name, t)
    sigma = _scn["noise"].get(name) if noisy else None
    if v is not None and sigma:
        v += gauss(sigma)
    return v


def bench_quiet(on=True):
    """Pause the anomaly generator (a board on the bench sees its line's nominal values): a
    timeline's anomalous samples read as the nominal draws they replaced (timeline "quiet":
    signal -> [[index, value], ...]). Faults and sensor noise stay: a faulty scenario still
    fails the bench. Returns how many samples it replaces."""
    global _quiet
    _ensure()
    quiet = _scn["timeline"].get("quiet") or {}
    _quiet = dict((name, dict((int(i), v) for i, v in pairs)) for name, pairs in quiet.items()) if on else None
    _amp_cache.clear()
    return sum(len(pairs) for pairs in quiet.values()) if on else 0


def set_signal(name, value):
    """Hold a physical signal at `value` from now on (a reference applied at the bench)."""
    _ensure()
    _scn["timeline"]["signals"][name] = [value]
    (_scn["timeline"].get("quiet") or {}).pop(name, None)  # a held value has no anomalies
    if _quiet is not None:
        _quiet.pop(name, None)
    _amp_cache.clear()


def fault(address, kind, bus=None):
    """The active device fault of `kind` on `address` (crc faults fire with their probability)."""
    _ensure()
    t = elapsed()
    for f in _scn["faults"]:
        if f["kind"] == kind and f.get("address") == address and _active(f, t) and \
                (bus is None or f.get("bus", 0) == bus):
            if kind == "crc" and rand() >= f.get("probability", 1.0):
                return None
            return f
    return None


class _World:
    value = staticmethod(value)
    fault = staticmethod(fault)
    rand = staticmethod(rand)


class Bus:
    def __init__(self, bus_id):
        self.id = bus_id
        self.devices = {}

    def device(self, addr):
        dev = self.devices.get(addr)
        if dev is None or fault(addr, "disconnected", self.id):
            return None
        return dev

    def _dev(self, addr):
        dev = self.device(addr)
        if dev is None:
            raise OSError(_ENODEV)
        return dev

    def scan(self):
        return [a for a in sorted(self.devices) if self.device(a) is not None]

    def writeto(self, addr, buf, stop=True):
        self._dev(addr).write(bytes(buf))
        return len(buf)

    def readfrom_into(self, addr, buf, stop=True):
        data = self._dev(addr).read(len(buf))
        buf[:len(data)] = data

    def readfrom(self, addr, n, stop=True):
        return self._dev(addr).read(n)

    def writeto_mem(self, addr, memaddr, buf, addrsize=8):
        self._dev(addr).write(_memaddr(memaddr, addrsize) + bytes(buf))

    def readfrom_mem_into(self, addr, memaddr, buf, addrsize=8):
        dev = self._dev(addr)
        dev.write(_memaddr(memaddr, addrsize))
        data = dev.read(len(buf))
        buf[:len(data)] = data


def _memaddr(memaddr, addrsize):
    if addrsize == 16:
        return bytes(((memaddr >> 8) & 0xFF, memaddr & 0xFF))
    return bytes((memaddr & 0xFF,))


def i2c_bus(bus_id=0):
    bus = _buses.get(bus_id)
    if bus is None:
        bus = _buses[bus_id] = Bus(bus_id)
    return bus


# -- ADC ------------------------------------------------------------------------------------------
def adc_set_atten(pin, atten):
    _ensure()
    _adc.setdefault(pin, {})["atten"] = atten


def _pin_volts(pin):
    """The true voltage at the pin now."""
    cfg = _adc.get(pin)
    if cfg is None or "signal" not in cfg:
        return abs(gauss(0.002))    # an unconnected input reads about 0 V
    if cfg.get("kind", "ac") == "dc":
        v = value(cfg["signal"], False)
        return cfg.get("bias_v", 0.0) + (v or 0.0) / cfg.get("ratio", 1.0) + gauss(cfg.get("noise_v", 0.002))
    slot = ticks_ms() // 50
    c = _amp_cache.get(pin)
    if c is None or c[0] != slot:   # the signal's amplitude and the pin's constants, every 50 ms
        v = value(cfg["signal"], False)
        hz = cfg.get("mains_hz") or _scn["hardware"].get("mains_hz", 50)
        c = (slot, math.sqrt(2.0) * (v or 0.0) / cfg.get("ratio", 1.0), int(1e9 / hz),
             math.radians(cfg.get("phase_deg", 0.0)), cfg.get("bias_v", 1.55), cfg.get("noise_v", 0.002))
        _amp_cache[pin] = c
    period_ns = c[2]
    phase = 2.0 * math.pi * ((_sample_ns(cfg) - _ns0) % period_ns) / period_ns
    return c[4] + c[1] * math.sin(phase + c[3]) + gauss(c[5])


# Reads closer than this belong to one burst: up to 1 s, as long as the sim board's drivers accept a
# late read (boards/sim.json max_late_us), since a busy host pauses the virtual board that long
# mid-burst (a pause that ended the burst put the rest of it on another phase: a 3 % RMS error).
_BURST_GAP_NS = 1000000000


def _sample_ns(cfg):
    """When this read samples the signal. With "sample_rate_hz" the pin models a hardware-timed
    ADC (as I2S/DMA sampling on an ESP32 is): within a burst each read is exactly one sample
    period after the previous one, so a host that pauses the virtual board mid-burst (a busy CI
    machine) does not put samples on the wrong phase of the sine. Without it, the host clock."""
    now = _clock_ns()
    rate = cfg.get("sample_rate_hz")
    if not rate:
        return now
    last = cfg.get("_last")
    if last is None or now - last[0] > _BURST_GAP_NS:
        t = now
    else:
        t = last[1] + int(1e9 / rate)
    cfg["_last"] = (now, t)
    return t


def _shape(x):
    """The ESP32-like transfer: linear to the knee, then compressing to full scale (0..0.9)."""
    if x <= _KNEE:
        return x
    d = x - _KNEE
    return x - 2.5 * d * d


_SHAPE_FS = _shape(1.0)   # the transfer at full scale


def _raw12(pin, atten):
    _ensure()
    if atten is None:
        atten = _adc.get(pin, {}).get("atten", 3)
    fs = FULL_SCALE_V[atten]
    x = (_pin_volts(pin) / fs - _ADC_OFFSET) / (1.0 - _ADC_OFFSET)
    if x <= 0.0:
        return 0, fs
    if x >= 1.0:
        return 4095, fs
    return int(4095.0 * _shape(x) / _SHAPE_FS + 0.5), fs


def adc_read_u16(pin, atten=None):
    raw, _ = _raw12(pin, atten)
    return (raw * 65535 + 2047) // 4095


def adc_read_uv(pin, atten=None):
    """What the ESP32's calibrated read_uv() gives: the transfer inverted (quantisation left),
    plus a small residual bow, 0 below the offset, full scale when saturated."""
    raw, fs = _raw12(pin, atten)
    if raw == 0:
        return 0
    if raw == 4095:
        return int(fs * 1e6)
    y = raw / 4095.0 * _SHAPE_FS
    if y <= _KNEE:
        x = y
    else:    # invert x - 2.5 (x - k)^2 = y on the knee
        x = _KNEE + (1.0 - math.sqrt(max(0.0, 1.0 - 10.0 * (y - _KNEE)))) / 5.0
    v = (_ADC_OFFSET + x * (1.0 - _ADC_OFFSET)) * fs + 0.002 * math.sin(math.pi * x)
    return int(v * 1e6)


# -- Wi-Fi and the chip -----------------------------------------------------------------------------
def wifi_up():
    t = elapsed()
    for start, end in _scn["wifi_outages"]:
        if start <= t < end:
            return False
    return True


def wifi_rssi():
    _ensure()
    return int(_scn["hardware"].get("rssi", -58) + gauss(2.0))


def mcu_temperature():
    _ensure()
    base = _scn["hardware"].get("mcu_temperature", 42.0)
    return int(base + 4.0 * (1.0 - math.exp(-elapsed() / 300.0)) + gauss(0.4) + 0.5)


def pin_read(pin):
    return None
