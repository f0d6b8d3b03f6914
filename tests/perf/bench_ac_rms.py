"""ac_rms on a 1,000-sample burst on the MicroPython unix port: the RMS computation with the
viper kernel (what the driver uses) and plain
Python; plus one whole driver read (acquisition paced at 40 samples/cycle x 25 cycles, 50 Hz)
against a fake ADC, for the time it holds the loop. Prints `figure: value unit` lines."""
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent.parent
MICROPYTHON = ROOT / ".venv" / "bin" / "micropython"

CODE = r"""
import sys, time, math
sys.path.insert(0, '%s/firmware')
from array import array
from drivers import ac_rms
from drivers import _rms_fast
buf = array('i', [int(15500 + 8000 * math.sin(i * 2 * math.pi / 40)) for i in range(1000)])
out = array('i', (0, 0, 0))
def bench(kernel, reps=200):
    ac_rms.rms_of(buf, 1000, out, kernel)
    best = 1e9
    for _ in range(5):
        t = time.ticks_us()
        for _ in range(reps):
            ac_rms.rms_of(buf, 1000, out, kernel)
        best = min(best, time.ticks_diff(time.ticks_us(), t) / reps)
    return best
print('ac_rms_1000_viper: %%.1f us' %% bench(_rms_fast.sums))
print('ac_rms_1000_plain: %%.1f us' %% bench(ac_rms.sums_plain, 20))
class ADC:
    i = 0
    def read_uv(self):
        self.i += 1
        return 1550000 + (self.i %% 40) * 1000
d = ac_rms.ACRMS(ADC(), samples_per_cycle=40, cycles=25)
t = time.ticks_us(); d.read(); total = time.ticks_diff(time.ticks_us(), t)
print('ac_rms_read_1000_samples_50hz: %%d us' %% total)
print('ac_rms_read_worst_sample_lateness: %%d us' %% d.last_late_us)
""" % ROOT


def main():
    proc = subprocess.run([str(MICROPYTHON), "-c", CODE], capture_output=True, text=True, timeout=120)
    sys.stdout.write(proc.stdout)
    if proc.returncode != 0:
        sys.stderr.write(proc.stderr)
    return proc.returncode


if __name__ == "__main__":
    sys.exit(main())
