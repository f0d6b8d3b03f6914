# Read status codes: short interned strings, so passing one around allocates nothing.
# A failed read is `None` plus one of these, never NaN and never an exception into the loop.
OK = "ok"
TIMEOUT = "timeout"
CRC = "crc"
DISCONNECTED = "disconnected"
OUT_OF_PHYSICAL_RANGE = "out_of_physical_range"  # also: a calibration stage dropped the value
NO_DATA = "no_data"
ERROR = "error"

ALL = (OK, TIMEOUT, CRC, DISCONNECTED, OUT_OF_PHYSICAL_RANGE, NO_DATA, ERROR)
