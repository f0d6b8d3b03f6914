# The "model" rule: a metric checked against a learned model of the device's normal behaviour
# (trained on the host by `edgeshadow train`; the device only evaluates it). The baseline is the
# model's weights and thresholds in the config: nothing here learns, so a persistent fault is never
# taken for the new normal; only a new config (train, shadow delta) changes what is normal.
#
# Everything after reading the values is integer arithmetic, so the ESP32 (32-bit floats) and
# CPython (64-bit floats) take the same decisions: each value becomes value * scale steps, rounded
# once with half-way points up (near-halves count as halves, see steps()), and every later sum,
# product, filter and comparison is on Python ints, which every runtime computes exactly alike.
#
#   expected = (w[0] + w[1]*f1 + ... ) >> frac, in steps of the metric, where the features are
#     per input [metric, scale, power, tau_s]: (steps ** power), first-order low-passed with time
#     constant tau_s (a conductor's thermal lag) when tau_s > 0;
#     with "daily": 4096 * sin and cos of the time of day (ts % 86400, a table; no float trig).
#   `train` picks frac so that every product and sum stays a small int on a 32-bit board
#   (under 2^30: no heap allocation; a larger one is still exact, only slower).
#   z = (actual - expected) * 256 // sd   (1/256 of the residual's trained deviation)
# Statistics, each an integer moving average (no buffers): the mean of z over ~32 samples (a
# shift: hot joint, drift, broken relationship), the mean squared sample-to-sample change of z
# (noise: a degrading sensor), the run of unchanged readings (a frozen sensor), and, over ~512
# samples, how z moves with the load term (the diagnosis: the load effect gone or amplified).
# Each threshold is a pair [on, off]: hit at >= on, good again below off (hysteresis).
from compat import const

_KM = const(5)      # mean of z: about 32 samples
_KR = const(5)      # roughness: about 32 samples
_KL = const(9)      # load relation: about 512 samples
_ZMAX = const(8192)  # |z| clamp, 32 sd: keeps products small ints on a 32-bit board
_FAST = const(360)  # a shift that rose within 360 samples (an hour at 10 s) is no drift
# round(4096 * sin(90 degrees * i / 24)), i = 0..24: a quarter day in 15-minute steps
_QSIN = (0, 268, 535, 799, 1060, 1317, 1567, 1812, 2048, 2276, 2493, 2701, 2896, 3080, 3250,
         3406, 3547, 3674, 3784, 3879, 3956, 4017, 4061, 4087, 4096)


def day_sin(t):
    """4096 * sin(2 pi t / 86400) for t seconds into the day, linear between 15-minute steps."""
    q = t // 21600
    r = t - q * 21600
    if q & 1:
        r = 21600 - r
    i = r // 900
    f = r - i * 900
    a = _QSIN[i]
    if f:
        a += (_QSIN[i + 1] - a) * f // 900
    return -a if q & 2 else a


def steps(v, scale):
    """v * scale to the nearest int, half-way points up, alike in float32 and float64: a value
    within 0.005 of a half counts as one. A reading with 2 decimals at scale 1 (a fraction of
    .49 or .50) or at scale 10^decimals (a fraction near 0) lies farther than float32's error from
    that line while |v * scale| < 40000 (error < 0.0025) and < 1e5 respectively."""
    y = v * scale
    n = int(y)  # toward zero
    d = y - n
    if d >= 0.495:
        return n + 1
    if d <= -0.505:
        return n - 1
    return n


class Model:
    def __init__(self, c, cfg):
        self.metric = c["metric"]
        self.scale = c["scale"]
        ins = c["inputs"]
        self.names = [i[0] for i in ins]
        self.scales = [i[1] for i in ins]
        self.squares = [i[2] == 2 for i in ins]
        self.taus = [i[3] for i in ins]
        self.daily = c.get("daily", False)
        self.w = list(c["w"])
        self.frac = c.get("frac", 16)
        self.sd = c["sd"]
        self.shift_on, self.shift_off = c["shift"]
        self.rough_on, self.rough_off = c["rough"]
        self.frozen = c.get("frozen", 0)
        load = c.get("load")
        self.load = -1 if load is None else load[0]
        self.gm = 0 if load is None else load[1]
        self.excess = c.get("excess", "excess_load")
        # no opinion until the lags have forgotten the unknown start (a conductor's history)
        self.warm_s = c.get("warm_s", 5 * max(self.taus + [0]))
        n = len(ins)
        self.feat = [0] * n
        self.lp = [None] * n
        self.values = None
        self.t0 = self.last_t = None
        self.prev_x = self.prev_z = None
        self.run = 0
        self.m = self.r = 0                          # accumulators, scaled by 2^_KM, 2^_KR
        self.sg = self.sz = self.sgg = self.szg = self.szz = 0  # load relation, x 2^_KL
        self.n = 0
        self.flag = self.shifted = self.fast = False
        self.rise = 0
        self.label = None
        self.diag = None
        self.pct = 0
        self.x = self.e = 0

    def see(self, values):
        """The pipeline hands over the sample's calibrated values before the rules run."""
        self.values = values

    def _expected(self, t):
        """The expected value in steps, or None when an input is missing; updates the filters."""
        values, w, feat = self.values, self.w, self.feat
        dt = 0 if self.last_t is None else t - self.last_t
        acc = w[0]
        lps, taus = self.lp, self.taus
        j = 0
        for m in self.names:
            v = values.get(m)
            if v is None:
                return None
            b = steps(v, self.scales[j])
            if self.squares[j]:
                b = b * b
            lp = lps[j]
            tau = taus[j]
            if tau and lp is not None:
                if dt > 0:  # alpha = dt / (tau + dt) in 1/4096: the same steps on every board
                    lp += (b - lp) * ((dt << 12) // (tau + dt)) >> 12
            else:
                lp = b
            lps[j] = lp
            feat[j] = lp
            j += 1
            acc += w[j] * lp
        if self.daily:
            tod = t % 86400
            acc += w[j + 1] * day_sin(tod) + w[j + 2] * day_sin((tod + 21600) % 86400)
        return acc >> self.frac

    def check(self, v, ts, suspect):
        if v is None:
            return None
        t = int(ts)
        e = self._expected(t)
        if e is None:
            return None
        if self.t0 is None:
            self.t0 = t
        self.last_t = t
        x = steps(v, self.scale)
        self.x, self.e = x, e
        run = self.run + 1 if x == self.prev_x else 1
        self.prev_x = x
        self.run = run
        if t - self.t0 < self.warm_s:  # the filters start from the first sample: let them settle
            return None
        z = (x - e) * 256 // self.sd
        self._follow(-_ZMAX if z < -_ZMAX else _ZMAX if z > _ZMAX else z)
        return self._decide(run)

    def _follow(self, z):
        """The filters on z (clamped): mean, roughness, and the load relation's moving means."""
        pz, self.prev_z = self.prev_z, z
        self.m += z - (self.m >> _KM)
        if pz is not None:
            d = z - pz
            self.r += (d * d >> 8) - (self.r >> _KR)
        if self.load >= 0:
            g = ((self.w[self.load + 1] * self.feat[self.load] >> self.frac) - self.gm) * 16 // self.sd
            g = -1024 if g < -1024 else 1024 if g > 1024 else g
            zz = z >> 4
            # moving means over the last ~512 samples (plain means until there are that many)
            n = self.n + 1 if self.n < 512 else 512
            self.n = n
            self.sg += ((g << _KL) - self.sg) // n
            self.sz += ((zz << _KL) - self.sz) // n
            self.sgg += ((g * g << _KL) - self.sgg) // n
            self.szg += ((zz * g << _KL) - self.szg) // n
            self.szz += ((zz * zz << _KL) - self.szz) // n

    def _decide(self, run):
        """Hit or not from the filters (with hysteresis), and the diagnosis it names."""
        m = self.m >> _KM
        am = -m if m < 0 else m
        rough = self.r >> _KR
        on = self.flag
        frozen = self.frozen and run >= self.frozen
        noisy = rough >= (self.rough_off if on else self.rough_on)
        shifted = am >= (self.shift_off if on else self.shift_on)
        # how fast the shift came: samples since the mean was last under the lower threshold
        self.rise = self.rise + 1 if am >= self.shift_off else 0
        if shifted and not self.shifted:
            self.fast = self.rise < _FAST
        self.shifted = shifted
        self.flag = hit = frozen or noisy or shifted
        if not hit:
            self.label = None
            return False
        if frozen:
            label, pct = "frozen_sensor", 100
        elif noisy:
            label, pct = "degradation", _pct(rough, self.rough_on)
        else:
            label, pct = self._relation(m), _pct(am, self.shift_on)
        if label != self.label or self.diag is None:  # a new dict only when the diagnosis changes
            self.diag = {"name": label + ":" + self.metric, "confidence": pct / 100}
            self.pct = pct
        elif pct != self.pct:
            self.diag["confidence"] = pct / 100
            self.pct = pct
        self.label = label
        return True

    def _relation(self, m):
        """What a shift looks like against the load term: its effect gone, amplified, or a drift.
        With the load moving, by how the residual follows it; before it has moved, by the onset:
        a calibration drift takes hours to get here, a joint heats or a relation breaks at once."""
        if self.load < 0:
            return "drift"
        mg, mz = self.sg >> _KL, self.sz >> _KL
        var = (self.sgg >> _KL) - mg * mg
        cov = (self.szg >> _KL) - mz * mg
        # the load moved by 0.5 sd or more, and the residual follows it (correlation over 0.77)
        if var >= 64 and 5 * cov * cov >= 3 * var * ((self.szz >> _KL) - mz * mz):
            if 2 * cov <= -var:
                return "broken_relationship"
            if 4 * cov >= var:
                return self.excess
        if self.fast and self.gm:
            return self.excess if (m > 0) == (self.gm > 0) else "broken_relationship"
        return "drift"

    def reason(self, v):
        return "%s: expected %s, got %s" % (self.label or "anomaly", _fmt(self.e, self.scale),
                                             _fmt(self.x, self.scale))


def _pct(stat, on):
    p = 50 + 50 * (stat - on) // (on or 1)
    return 50 if p < 50 else 100 if p > 100 else p


def _fmt(n, scale):
    if scale == 1:
        return "%d" % n
    d = len("%d" % scale) - 1  # scale is 10^d
    s = "-" if n < 0 else ""
    q, r = divmod(-n if n < 0 else n, scale)
    return "%s%d.%0*d" % (s, q, d, r)
