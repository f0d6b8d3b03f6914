"""Virtual hardware: the virtual board (pty + real MicroPython) and the virtual ROM bootloader."""
