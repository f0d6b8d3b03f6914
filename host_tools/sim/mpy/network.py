# Stand-in for the ESP32 `network` module on the virtual board. The unix port reaches the host's
# network directly; WLAN only models the link state the firmware sees, with scripted outages
# (simhw.wifi_up()) and a signal strength (simhw.wifi_rssi()).
import _simenv

try:
    import simhw
except ImportError as e:
    if "simhw" not in str(e):
        raise
    simhw = None

STA_IF = 0
AP_IF = 1
STAT_IDLE = 1000
STAT_CONNECTING = 1001
STAT_GOT_IP = 1010
STAT_NO_AP_FOUND = 201
STAT_WRONG_PASSWORD = 202
STAT_CONNECT_FAIL = 203
STAT_BEACON_TIMEOUT = 200
AUTH_OPEN = 0
AUTH_WPA2_PSK = 3

_hostname = "edgeshadow-sim"


def hostname(name=None):
    global _hostname
    if name is None:
        return _hostname
    _hostname = name


def _link_up():
    if _simenv.flag("wifi_down"):
        return False
    if simhw is not None and hasattr(simhw, "wifi_up"):
        return bool(simhw.wifi_up())
    return True


class WLAN:
    _state = {}

    def __init__(self, interface_id=STA_IF):
        self._if = interface_id
        st = WLAN._state.get(interface_id)
        if st is None:
            st = WLAN._state[interface_id] = {"active": False, "ssid": None}
        self._st = st

    def active(self, on=None):
        if on is None:
            return self._st["active"]
        self._st["active"] = bool(on)
        if not on:
            self._st["ssid"] = None

    def connect(self, ssid=None, key=None, bssid=None):
        if not self._st["active"]:
            raise OSError("Wifi Not Started")
        self._st["ssid"] = ssid or ""

    def disconnect(self):
        self._st["ssid"] = None

    def isconnected(self):
        return self._st["active"] and self._st["ssid"] is not None and _link_up()

    def status(self, param=None):
        if param == "rssi":
            return self.config("rssi")
        if not self._st["active"] or self._st["ssid"] is None:
            return STAT_IDLE
        return STAT_GOT_IP if _link_up() else STAT_BEACON_TIMEOUT

    def config(self, *args, **kw):
        if kw:
            return None
        key = args[0]
        if key == "rssi":
            if not self.isconnected():
                raise OSError("STA must be connected")
            if simhw is not None and hasattr(simhw, "wifi_rssi"):
                return int(simhw.wifi_rssi())
            return -58
        if key == "mac":
            import machine
            return machine.unique_id()
        if key in ("ssid", "essid"):
            return self._st["ssid"] or ""
        if key in ("hostname", "dhcp_hostname"):
            return _hostname
        raise ValueError("unknown config param")

    def ifconfig(self, config=None):
        if config is not None:
            return None
        if not self.isconnected():
            return ("0.0.0.0", "0.0.0.0", "0.0.0.0", "0.0.0.0")
        return ("127.0.0.1", "255.0.0.0", "127.0.0.1", "127.0.0.1")

    def scan(self):
        return [(b"edgeshadow-sim", b"\x24\x0a\xc4\x00\x00\x01", 6, -58, AUTH_WPA2_PSK, False)]
