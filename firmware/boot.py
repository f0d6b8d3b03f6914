# Runs first on every boot, before main.py. Keep it short and never blocking: a board that hangs
# here cannot be reached from the REPL.
import gc

gc.collect()
