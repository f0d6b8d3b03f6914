"""`edgeshadow ports`: the serial ports of this machine, ESP32 USB bridges marked."""
from host_tools.device.ports import list_ports
from host_tools.output import add_json_arg, emit, say


def register(sub):
    p = sub.add_parser(
        "ports", help="list serial ports, with the ESP32 boards' USB bridges marked",
        description="List the serial ports pyserial finds. Ports behind a USB bridge that ESP32 "
                    "boards carry (CP210x 10c4:ea60, CH340 1a86:7523, CH9102 1a86:55d4, FTDI "
                    "0403:6001/6010/6015, Espressif native USB 303a:*) are marked with *; "
                    "`--port auto` on flash, deploy, inject, logs, bench and calibrate picks the "
                    "marked port when there is exactly one. Virtual boards (`edgeshadow sim`) are "
                    "pseudo-terminals and are not listed: use the port `sim` prints.")
    add_json_arg(p, "the ports")
    p.set_defaults(func=do_ports)


def do_ports(args):
    ports = list_ports()

    def show():
        if not ports:
            say("no serial ports found")
            return
        width = max(len(p.device) for p in ports)
        for p in ports:
            what = " ".join(x for x in (p.bridge and f"[{p.bridge}]", p.description) if x)
            print(f"{'*' if p.bridge else ' '} {p.device:<{width}}  {p.usb_id or '-':9}  {what}".rstrip(),
                  flush=True)
        n = sum(1 for p in ports if p.bridge)
        say(f"{n} ESP32 candidate(s) marked *" + ("; `--port auto` picks it" if n == 1 else ""))

    emit(args, {"ports": [p.to_json() for p in ports],
                "candidates": [p.device for p in ports if p.bridge]}, show)
    return 0
