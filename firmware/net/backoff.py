# Exponential backoff with full jitter, as the AWS SDKs reconnect (aws-c-mqtt defaults):
# wait = random(0, min(cap, base * 2^n)), never below `floor`; n resets after `reset_after` s connected.
import random


class Backoff:
    def __init__(self, base=1.0, cap=120.0, reset_after=30.0, floor=1.0, rand=random.random):
        if not (0 < base <= cap):
            raise ValueError("backoff: need 0 < base <= cap")
        self.base = base
        self.cap = cap
        self.reset_after = reset_after
        self.floor = floor
        self._rand = rand
        self.attempts = 0
        self._up_since = None

    def delay(self):
        """Seconds to wait before the next attempt; each call counts as one failure."""
        ceiling = self.base * (1 << min(self.attempts, 30))
        if ceiling > self.cap:
            ceiling = self.cap
        self.attempts += 1
        d = self._rand() * ceiling
        return d if d > self.floor else (self.floor if self.floor < ceiling else ceiling)

    def connected(self, now):
        """The link came up at `now` (seconds, any monotonic clock)."""
        self._up_since = now

    def disconnected(self, now):
        """The link went down at `now`: a link that stayed up long enough resets the count."""
        if self._up_since is not None and now - self._up_since >= self.reset_after:
            self.attempts = 0
        self._up_since = None
