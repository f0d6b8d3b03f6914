"""Read and change a thing's desired state: on the local shadow service (MQTT) or on AWS (boto3).

Both clients have `get(thing) -> shadow document` (state desired/reported/delta, metadata,
version) and `set_desired(thing, desired) -> update/accepted document`, and raise EdgeshadowError
with AWS's code and message when the shadow service rejects a request.

`parse_assignments(["interval_s=5", "mqtt.keepalive_s=60", "name=pump"])` builds the desired
fragment: values are JSON when they parse as JSON, strings otherwise; dots nest keys; `key=null`
removes a key.
"""
import json
import threading
import uuid

from host_tools.errors import EdgeshadowError


def parse_assignments(items):
    desired = {}
    for i, item in enumerate(items, 1):
        key, sep, raw = item.partition("=")
        if not sep:
            raise EdgeshadowError(f"assignment {i} ({item!r}) has no '=': write key=value, e.g. interval_s=5")
        parts = key.split(".")
        if not key or any(not p for p in parts):
            raise EdgeshadowError(f"assignment {i} ({item!r}) has an empty key: write key=value or a.b=value")
        try:
            value = json.loads(raw)
        except ValueError:
            value = raw
        node = desired
        for depth, p in enumerate(parts[:-1]):
            nxt = node.setdefault(p, {})
            if not isinstance(nxt, dict):
                raise EdgeshadowError(f"assignment {i} ({item!r}): {'.'.join(parts[:depth + 1])} "
                                      "is already set to a value, it cannot also hold keys")
            node = nxt
        if parts[-1] in node and isinstance(node[parts[-1]], dict) != isinstance(value, dict):
            raise EdgeshadowError(f"assignment {i} ({item!r}): {key} is given twice")
        node[parts[-1]] = value
    if not desired:
        raise EdgeshadowError("nothing to set: give at least one key=value")
    return desired


def _rejected(thing, doc):
    return EdgeshadowError(f"the shadow service rejected the request for {thing}: "
                           f"{doc.get('code')} {doc.get('message')}")


class LocalShadow:
    """A shadow client over MQTT on the local broker, with the admin certificate."""

    def __init__(self, host, port, ca, cert, key, timeout=10.0):
        import paho.mqtt.client as mqtt
        from host_tools.cloud.shadow_service import tls_context
        self.host, self.port, self.timeout = host, port, timeout
        self._replies = {}
        self._cond = threading.Condition()
        self._suback = threading.Event()
        self._connected = threading.Event()
        self._refused = None
        c = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=f"edgeshadow-admin-{uuid.uuid4().hex[:8]}",
                        protocol=mqtt.MQTTv311)
        c.tls_set_context(tls_context(ca, cert, key))
        c.on_connect = self._on_connect
        c.on_subscribe = lambda cl, ud, mid, rcs, pr: self._suback.set()
        c.on_message = self._on_message
        self._client = c
        try:
            c.connect(host, port, keepalive=30)
        except OSError as e:
            raise EdgeshadowError(f"cannot reach the local broker at {host}:{port}: {e}",
                                  hint="is `edgeshadow broker` running?")
        c.loop_start()
        if not self._connected.wait(timeout) or self._refused:
            self.close()
            raise EdgeshadowError(f"the local broker at {host}:{port} did not accept the admin client: "
                                  f"{self._refused or f'no answer within {timeout:.0f} s'}")

    def _on_connect(self, client, userdata, flags, reason_code, properties):
        if reason_code.is_failure:
            self._refused = str(reason_code)
        else:
            from host_tools.cloud.shadow_service import no_delay
            no_delay(client)
        self._connected.set()

    @classmethod
    def from_state(cls, workdir=None, timeout=10.0):
        from host_tools.cloud.broker import read_state
        s = read_state(workdir)
        return cls(s["host"], s["port"], s["ca"], s["admin_cert"], s["admin_key"], timeout)

    def _on_message(self, client, userdata, msg):
        try:
            doc = json.loads(msg.payload)
        except ValueError:
            return
        token = doc.get("clientToken") if isinstance(doc, dict) else None
        if token:
            with self._cond:
                self._replies[token] = (msg.topic, doc)
                self._cond.notify_all()

    def _request(self, thing, op, body):
        base = f"$aws/things/{thing}/shadow/{op}"
        self._suback.clear()
        self._client.subscribe([(base + "/accepted", 1), (base + "/rejected", 1)])
        if not self._suback.wait(self.timeout):
            raise EdgeshadowError(f"the local broker did not confirm the subscription to {base}/+")
        token = uuid.uuid4().hex
        body = dict(body, clientToken=token)
        self._client.publish(base, json.dumps(body), qos=1)
        with self._cond:
            if not self._cond.wait_for(lambda: token in self._replies, self.timeout):
                raise EdgeshadowError(f"no answer on {base}/accepted or /rejected within {self.timeout:.0f} s",
                                      hint="is the shadow service running (`edgeshadow broker`)?")
            topic, doc = self._replies.pop(token)
        self._client.unsubscribe([base + "/accepted", base + "/rejected"])
        if topic.endswith("/rejected"):
            raise _rejected(thing, doc)
        doc.pop("clientToken", None)
        return doc

    def get(self, thing):
        return self._request(thing, "get", {})

    def set_desired(self, thing, desired):
        return self._request(thing, "update", {"state": {"desired": desired}})

    def close(self):
        try:
            self._client.disconnect()
        finally:
            self._client.loop_stop()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


class AwsShadow:
    """The same operations on AWS IoT through boto3 `iot-data` (credentials from the usual chain)."""

    def __init__(self, region=None, endpoint_url=None, client=None):
        if client is None:
            import boto3
            import botocore.exceptions
            try:
                client = boto3.client("iot-data", region_name=region, endpoint_url=endpoint_url)
            except botocore.exceptions.NoRegionError:
                raise EdgeshadowError("no AWS region given", hint="pass --region or set AWS_DEFAULT_REGION")
        self._client = client

    def _call(self, thing, fn, **kw):
        import botocore.exceptions
        try:
            out = fn(thingName=thing, **kw)
        except botocore.exceptions.ClientError as e:
            err = e.response.get("Error", {})
            status = e.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
            if err.get("Code") == "ResourceNotFoundException":
                raise EdgeshadowError(f"AWS IoT has no shadow for {thing} ({err.get('Message')})")
            raise EdgeshadowError(f"AWS IoT rejected the request for {thing}: {status} "
                                  f"{err.get('Code')}: {err.get('Message')}")
        except botocore.exceptions.NoCredentialsError:
            raise EdgeshadowError("no AWS credentials found", hint="configure them with `aws configure`")
        except botocore.exceptions.BotoCoreError as e:
            raise EdgeshadowError(f"cannot reach AWS IoT: {e}")
        return json.loads(out["payload"].read())

    def get(self, thing):
        return self._call(thing, self._client.get_thing_shadow)

    def set_desired(self, thing, desired):
        payload = json.dumps({"state": {"desired": desired}}).encode()
        return self._call(thing, self._client.update_thing_shadow, payload=payload)

    def close(self):
        pass

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def open_shadow(aws=False, region=None, endpoint_url=None, workdir=None, timeout=10.0):
    """The client `edgeshadow shadow` uses: AWS with aws=True, else the running local broker."""
    if aws:
        return AwsShadow(region, endpoint_url)
    return LocalShadow.from_state(workdir, timeout)
