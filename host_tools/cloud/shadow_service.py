"""The local AWS IoT Device Shadow service: the MQTT front end of host_tools.cloud.shadow_store.

`ShadowService` connects to a broker with its own client certificate (CN
edgeshadow-shadow-service), subscribes to every thing's shadow request topics (classic and named:
update, get, delete) and publishes what `ShadowStore` answers on the response topics, in AWS's
order: accepted or rejected, then delta, then documents. It subscribes again after every reconnect,
so a broker restart costs no more than the reconnect delay (0.2 to 2 s).
"""
import logging
import time

from host_tools.cloud.mqtt_clients import ServiceClient, no_delay, tls_context  # noqa: F401 (API)
from host_tools.cloud.shadow_store import (MAX_DEPTH, MAX_STATE_BYTES, MAX_TOKEN_BYTES,  # noqa: F401 (API)
                                           ShadowStore, delta_of, is_rejected)

log = logging.getLogger("edgeshadow.shadow")

REQUEST_FILTERS = [f"$aws/things/+/shadow/{op}" for op in ("update", "get", "delete")] + \
                  [f"$aws/things/+/shadow/name/+/{op}" for op in ("update", "get", "delete")]


def parse_topic(topic):
    """'$aws/things/T/shadow[/name/N]/op' -> (thing, name or None, op) or None."""
    parts = topic.split("/")
    if len(parts) == 5 and parts[:2] == ["$aws", "things"] and parts[3] == "shadow":
        return parts[2], None, parts[4]
    if len(parts) == 7 and parts[:2] == ["$aws", "things"] and parts[3:5] == ["shadow", "name"]:
        return parts[2], parts[5], parts[6]
    return None


class ShadowService(ServiceClient):
    """Answers shadow requests of every thing on a broker (paho-mqtt network thread)."""

    CLIENT_ID = "edgeshadow-shadow-service"
    WHAT = "the shadow service"
    REQUEST_FILTERS = REQUEST_FILTERS
    STORE = ShadowStore
    handled = 0  # requests answered

    def _on_message(self, client, userdata, msg):
        where = parse_topic(msg.topic)
        if where is None:
            return
        thing, name, op = where
        base = msg.topic.rsplit("/", 1)[0]
        try:
            if op == "update":
                response, delta, documents = self.store.update(thing, msg.payload, name)
                ok = not is_rejected(response)
                out = [(f"{base}/update/{'accepted' if ok else 'rejected'}", response)]
                if delta is not None:
                    out.append((f"{base}/update/delta", delta))
                if documents is not None:
                    out.append((f"{base}/update/documents", documents))
            elif op in ("get", "delete"):
                response = getattr(self.store, op)(thing, msg.payload, name)
                out = [(f"{base}/{op}/{'rejected' if is_rejected(response) else 'accepted'}", response)]
            else:
                return
        except Exception as e:  # a broken state file must not kill the service thread
            log.exception("shadow request on %s failed", msg.topic)
            out = [(f"{base}/{op}/rejected", {"code": 500, "message": f"Internal service failure ({e})",
                                              "timestamp": int(time.time())})]
        for topic, doc in out:
            self._publish(topic, doc)
        self.handled += 1
