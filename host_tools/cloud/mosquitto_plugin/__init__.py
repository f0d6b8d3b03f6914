"""The local broker's SUBSCRIBE check and what Mosquitto 2.0.11 does with idle connections (issue 13).

Mosquitto 2.0's acl_file grants every SUBSCRIBE and only filters what is delivered
("FIXME - implement ACL subscription strings" in src/security_default.c), so a device subscribing to
`#` or to another thing's topics got SUBACK "granted" and then nothing. AWS IoT checks the filter
against the policy's iot:Subscribe resources and refuses it. `edgeshadow_acl.c` beside this file,
built by `make setup` (`make mosquitto-plugin`, against Debian's mosquitto-dev) into ACL_PLUGIN,
reads the same acl file and refuses a filter unless every topic it can match is readable under one
rule for that client: SUBACK 0x80 on MQTT 3.1.1, 0x87 Not authorized on MQTT 5. Without the plugin
the broker starts with a warning and grants such filters, as before.

Idle connections: a connection that never sends CONNECT (no TLS at all, or TLS and nothing more)
gets Mosquitto's default keep-alive, 60 s, and is closed at 1.5 times that, swept every 5 s: 90 to
95 s (measured 95.4 s for 500). 2.0.11 has no TLS-handshake or CONNECT timeout option, and a plugin
sees no client before CONNECT. `max_connections` is not set: idle connections would take the slots
the devices need, while the open-file limit is far above a local fleet. Each idle connection costs
Mosquitto about 42 KB (2000 measured); the broker listens on 127.0.0.1 unless told otherwise.
"""
import logging

from host_tools import ROOT

ACL_PLUGIN = ROOT / ".venv" / "lib" / "mosquitto_edgeshadow_acl.so"

log = logging.getLogger("edgeshadow.broker")


def config_lines(plugin, acl_path):
    """mosquitto.conf lines loading the plugin on acl_path; [] (and a warning) when it is not built."""
    if plugin is None or not plugin.is_file():
        log.warning("%s is missing (`make setup` builds it): SUBSCRIBE requests the ACL denies are "
                    "answered as granted, unlike AWS IoT", plugin)
        return []
    return [f"plugin {plugin}", f"plugin_opt_acl_file {acl_path}"]
