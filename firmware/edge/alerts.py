# Alert tracking: one Alert per (metric, rule), with debounce and clear_after.
# A raise or a clear is an event the firmware publishes at once, not at the next interval.
RAISED = "raised"
ACTIVE = "active"
CLEARED = "cleared"


class Alert:
    """Turns a rule's per-sample verdicts into alert states.

    `record` is this alert's live dict (metric, rule, severity, state, value, since, reason),
    updated in place each sample while the alert is shown; `update` returns a fresh copy of it as
    the event when the alert is raised or cleared, and None otherwise."""

    def __init__(self, metric, rule, severity="warning", debounce=1, clear_after=1):
        self.metric = metric
        self.rule = rule
        self.severity = severity
        self.debounce = debounce
        self.clear_after = clear_after
        self.hits = 0
        self.goods = 0
        self.active = False
        self.state = None  # None (nothing to show), RAISED, ACTIVE or CLEARED this sample
        self.record = None

    def update(self, hit, value, ts, reason_fn=None):
        if hit:
            self.goods = 0
            self.hits += 1
            if self.active:
                return self._show(ACTIVE, value)
            if self.hits >= self.debounce:
                self.active = True
                self.state = RAISED
                self.record = {"metric": self.metric, "rule": self.rule, "severity": self.severity,
                               "state": RAISED, "value": value, "since": ts,
                               "reason": reason_fn(value) if reason_fn else ""}
                return dict(self.record)
            self.state = None
            return None
        if hit is not None:  # a good sample
            self.hits = 0
            if self.active:
                self.goods += 1
                if self.goods >= self.clear_after:
                    self.active = False
                    self.goods = 0
                    self._show(CLEARED, value)
                    return dict(self.record)
        # no opinion (no value, or a baseline still learning): nothing changes
        if self.active:
            return self._show(ACTIVE, value)
        self.state = None
        return None

    def _show(self, state, value):
        self.state = state
        r = self.record
        r["state"] = state
        r["value"] = value
        return None
