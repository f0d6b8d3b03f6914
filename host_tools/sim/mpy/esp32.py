# Stand-in for the ESP32 `esp32` module on the virtual board.
try:
    import simhw
except ImportError as e:
    if "simhw" not in str(e):
        raise
    simhw = None

HEAP_DATA = 4
HEAP_EXEC = 1


def mcu_temperature():
    if simhw is not None and hasattr(simhw, "mcu_temperature"):
        return simhw.mcu_temperature()
    return 45


def raw_temperature():
    return int(mcu_temperature() * 9 / 5 + 32)


def idf_heap_info(capabilities):
    return [(113792, 101000, 99000, 98000)]
