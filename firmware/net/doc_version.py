# The top-level "version" of a JSON document, found while its bytes stream past and are dropped: a
# shadow delta too large for the heap is still answered with its version (net.mqtt_packets skips
# it, the app reports a config_error for that version). Imported only then.


class TopVersion:
    def __init__(self):
        self.depth = 0
        self.in_str = False
        self.esc = False
        self.want_key = False   # at depth 1, after "{" or ",": a key comes next
        self.key = None         # the depth-1 key being read
        self.last = None        # the last depth-1 key read
        self.num = None         # the digits of "version"'s value while they come
        self.version = None

    def feed(self, data):
        for c in data:
            if self.in_str:
                self._string(c)
            elif c == 34:       # a string starts: a key at depth 1 when one is due
                self.in_str = True
                if self.depth == 1 and self.want_key:
                    self.want_key = False
                    self.key = bytearray()
            elif c == 123 or c == 91:
                self.depth += 1
                self.want_key = self.depth == 1 and c == 123
            elif c == 125 or c == 93:
                self._number_ends()
                self.depth -= 1
            elif self.depth == 1:
                if c == 44:     # ","
                    self._number_ends()
                    self.want_key = True
                elif c == 58:   # ":"
                    self.num = bytearray() if self.last == b"version" else None
                elif self.num is not None and 48 <= c <= 57:
                    self.num.append(c)

    def _string(self, c):
        if self.esc:
            self.esc = False
        elif c == 92:
            self.esc = True
        elif c == 34:
            self.in_str = False
            if self.key is not None:
                self.last = bytes(self.key)
                self.key = None
        elif self.key is not None and len(self.key) < 8:
            self.key.append(c)

    def _number_ends(self):
        if self.depth == 1 and self.num:
            self.version = int(self.num)
        self.num = None
