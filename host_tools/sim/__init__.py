"""The virtual board: the real MicroPython unix port behind a pseudo-terminal, used by mpremote,
ampy and BoardLink exactly as a board on USB.

- board.py: VirtualBoard (one board's folder and lifetime), start_boards/stop_boards.
- supervisor.py: the process bridging the user's serial port to MicroPython, turning soft resets,
  machine.reset(), deep sleep, an unfed watchdog and a deadlocked process into board-like reboots.
- firmware_process.py: starting and killing that MicroPython process, its exit codes and messages.
- rom.py: VirtualROM, a chip in download mode (the ROM bootloader) for esptool and `edgeshadow flash`.
- mpy/: what the board's MicroPython imports: the bootstrap (_boot_sim.py) and stand-ins for
  machine, network, esp32 and ntptime (simhw.py holds the simulated hardware they read).
"""
