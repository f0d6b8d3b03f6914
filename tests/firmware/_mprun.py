# Runs one firmware test function inside MicroPython: _mprun.py <module> <function>.
# An uncaught exception prints its traceback and exits non-zero; success prints PASS.
import sys

module = __import__(sys.argv[1])
getattr(module, sys.argv[2])()
print("PASS")
