"""Read and change a thing's desired state: on the local shadow service (MQTT) or on AWS (boto3).

Both clients have `get(thing) -> shadow document` (state desired/reported/delta, metadata,
version) and `set_desired(thing, desired) -> update/accepted document`, and raise EdgeshadowError
with AWS's code and message when the shadow service rejects a request.

`parse_assignments` (host_tools.cloud.desired) builds the desired fragment from key=value words.
Thing names are checked before anything is sent (AWS's characters; a topic separator in a name
would send the request where no service answers).
"""
import json

from host_tools.cloud.certs import validate_thing
from host_tools.cloud.desired import parse_assignments  # noqa: F401 (API)
from host_tools.cloud.mqtt_clients import AdminClient
from host_tools.errors import EdgeshadowError


def _rejected(thing, doc):
    return EdgeshadowError(f"the shadow service rejected the request for {thing}: "
                           f"{doc.get('code')} {doc.get('message')}")


class LocalShadow(AdminClient):
    """A shadow client over MQTT on the local broker, with the admin certificate."""

    def _request(self, thing, op, body):
        ok, doc = self.request(f"$aws/things/{validate_thing(thing)}/shadow/{op}", body, "the shadow service",
                               hint="is the shadow service running (`edgeshadow broker`)?")
        if not ok:
            raise _rejected(thing, doc)
        return doc

    def get(self, thing):
        return self._request(thing, "get", {})

    def set_desired(self, thing, desired):
        return self._request(thing, "update", {"state": {"desired": desired}})


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
        return self._call(validate_thing(thing), self._client.get_thing_shadow)

    def set_desired(self, thing, desired):
        payload = json.dumps({"state": {"desired": desired}}).encode()
        return self._call(validate_thing(thing), self._client.update_thing_shadow, payload=payload)

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
