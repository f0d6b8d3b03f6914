# Runs first on every boot, before main.py. Keep it short and never blocking: a board that hangs
# here cannot be reached from the REPL.
import gc
import sys

try:  # OTA: the active app slot (and a pending one's trial count) before anything is imported
    import otaboot
    otaboot.select()
except Exception as e:
    print("ota: slot selection failed (%r): running the factory firmware" % (e,))
sys.modules.pop("otaboot", None)
gc.collect()
