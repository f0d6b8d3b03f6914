# One thing's pipeline: calibrate -> detect -> alerts -> diagnoses, one sample at a time.
# Nothing here reads a clock: the caller passes `ts` (unix seconds).
from edge import calibration, rules as _rules, diagnosis, round_half_up, status as _st
from edge.alerts import Alert, RAISED, ACTIVE, CLEARED


class _Check:
    # A rule with its alert; `limit` marks range/rating rules (their hits make a sample suspect).
    def __init__(self, c, cfg):
        self.rule = _rules.build(c, cfg)
        self.limit = c["type"] in _rules.LIMIT_RULES
        self.zscore = c["type"] == "zscore"
        self.alert = Alert(c["metric"], _rules.rule_name(c), c.get("severity", "warning"),
                           c.get("debounce", 1), c.get("clear_after", 1))
        self.relearned = False


class Device:
    """Device(cfg) validates and layers cfg (raising edge.config.ConfigError) unless it comes
    validated (validated=True: edge.config.load's result), then
    `process(ts, raw, status=None)` runs one sample: raw is {metric: number or None}, status the
    read status of failed reads ({metric: edge.status code}).

    The result's `alerts` dicts are live views valid until the next process() call (copy them to
    keep them); `events` are fresh copies the caller owns: publish them at once."""

    def __init__(self, cfg, validated=False):
        if not validated:  # the board validates once (app.py) and passes validated=True
            from edge import config
            cfg = config.load(cfg)
        self.cfg = cfg
        self.thing = cfg["thing"]
        self.metrics = tuple(sorted(cfg["metrics"]))
        self.chains = {}
        for m in self.metrics:
            self.chains[m] = calibration.build_chain(cfg["metrics"][m].get("calibration"))
        checks = [_Check(c, cfg) for c in cfg.get("rules") or ()]
        # per metric: its limit checks first (they decide `suspect`), then the others, config order
        self.checks = tuple((m, tuple([k for k in checks if k.alert.metric == m and k.limit] +
                                      [k for k in checks if k.alert.metric == m and not k.limit]))
                            for m in self.metrics)
        self.all_checks = tuple(k for _, ks in self.checks for k in ks)
        self.models = tuple(k for k in self.all_checks if hasattr(k.rule, "see"))  # edge.model
        self.diagnoses = diagnosis.build(cfg)

    def calibrate(self, metric, raw):
        """The calibrated value of one raw reading, without detection (for bench tests).
        Stateful stages (ema, mean, median) remember it."""
        return None if raw is None else self.chains[metric](raw)

    def relearn(self, metric=None):
        """Restart zscore learning (all metrics, or one); their alerts clear at the next sample."""
        n = 0
        for k in self.all_checks:
            if k.zscore and (metric is None or k.alert.metric == metric):
                k.rule.relearn()
                k.relearned = True
                n += 1
        return n

    def adopt(self, old):
        """Take over the active alerts of `old`, the device this one replaces after a config
        change: a metric still anomalous stays one alert, a fixed one clears with an event at the
        next sample. Returns the cleared events of active alerts whose rule no longer exists."""
        mine = {}
        for k in self.all_checks:
            mine[(k.alert.metric, k.alert.rule)] = k.alert
        gone = []
        for k in old.all_checks:
            a = k.alert
            if not a.active:
                continue
            new = mine.get((a.metric, a.rule))
            if new is None:
                a.record["state"] = CLEARED
                a.record["reason"] = "rule removed"
                gone.append(dict(a.record))
            else:
                new.active = True
                new.hits = a.hits
                new.record = a.record
                new.record["severity"] = new.severity
        return gone

    def process(self, ts, raw, status=None):
        values, statuses = self._calibrated(raw, status)
        for k in self.models:
            k.rule.see(values)
        alerts = []
        events = self._detect(values, ts, alerts)
        diags = []
        for d in self.diagnoses:
            c = d.confidence(values)
            if c >= d.min and c > 0:
                # two decimals, rounded alike in float32 and float64 (shadow, replay, monitor)
                diags.append({"name": d.name, "confidence": round_half_up(c, 100)})
        for k in self.models:  # edge.model: its confidence is already a whole percent / 100
            if k.alert.active and k.rule.diag is not None:
                diags.append(k.rule.diag)
        return {"ts": ts, "thing": self.thing, "values": values, "status": statuses,
                "alerts": alerts, "events": events or [], "diagnoses": diags}

    def _calibrated(self, raw, status):
        """({metric: calibrated value or None}, {metric: read status})."""
        values = {}
        statuses = {}
        chains = self.chains
        for m in self.metrics:
            r = raw.get(m)
            if r is None:
                values[m] = None
                statuses[m] = (status and status.get(m)) or _st.NO_DATA
            else:
                try:
                    v = chains[m](r)
                except (ArithmeticError, ValueError):  # e.g. int(inf) in a round stage
                    v = None
                if v is not None and not -1e12 <= v <= 1e12:  # inf, nan, or no physical quantity
                    v = None
                values[m] = v
                statuses[m] = _st.OK if v is not None else _st.OUT_OF_PHYSICAL_RANGE
        return values, statuses

    def _detect(self, values, ts, alerts):
        """Run every rule; active alerts' records go to `alerts`; returns the events (or None)."""
        events = None
        for m, checks in self.checks:
            v = values[m]
            suspect = False
            for k in checks:
                rule = k.rule
                if k.relearned:
                    k.relearned = False
                    hit = False if k.alert.active else None
                    k.alert.goods = k.alert.clear_after - 1 if k.alert.active else 0
                else:
                    hit = rule.check(v, ts, suspect)
                    if hit and k.limit:
                        suspect = True
                a = k.alert
                ev = a.update(hit, v, ts, rule.reason)
                if ev is not None:
                    if events is None:
                        events = []
                    events.append(ev)
                if a.state is not None:
                    alerts.append(a.record)
        return events
