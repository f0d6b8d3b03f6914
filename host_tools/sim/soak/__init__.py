"""`edgeshadow soak`: virtual boards against the local stack under a chaos schedule, then a report.

N virtual boards (the ESP32-like runtime when it is built, at the board's own GC heap with the
firmware's modules in its ROMFS partition, or --heap) run the firmware against Mosquitto and the
shadow service for a set time while a seeded schedule SIGKILLs or restarts the broker, SIGKILLs the
shadow service (a process of its own here), SIGKILLs boards' firmware (a crash: the board reboots),
power-cycles boards with their spool's meta.json corrupted and stray files added in between, drops
a board's Wi-Fi (each board reaches the broker through a loopback relay of its own, which the
stand-in for Wi-Fi cuts and holds down), and sends valid and hostile desired-state deltas. A
monitor counts every reading by (thing, seq).

After the schedule, chaos stops and the boards drain their spools; then the boards stop and each
one's spool on flash tells what it produced and what is still waiting. The report: readings
produced, delivered, lost (neither delivered nor on flash), duplicated (beyond the spool's bound:
per reboot meta_every - 1, per reconnect the unacknowledged window), out of order; reconnect
times; reboots, watchdog resets, crashes, MemoryErrors; hostile deltas applied; wall time per
phase. Exit 1 on any loss, crash, hostile delta applied, board that did not reconnect, or
duplicates beyond the bound.

The broker only listens once the monitor has subscribed again (relays hold the boards back until
then), so a reading the monitor missed is a reading lost, not a monitor that was late.

Modules: runner (set-up, run, drain), chaos (the schedule and each event), stack (relays, the
shadow service process, the monitor), report (the counts and their text).
"""
from host_tools.sim.soak.chaos import HOSTILE, schedule  # noqa: F401
from host_tools.sim.soak.report import format_report  # noqa: F401
from host_tools.sim.soak.runner import MARK, Soak, check_workdir, run  # noqa: F401
