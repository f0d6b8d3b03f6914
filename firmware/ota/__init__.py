# Over-the-air updates: the AWS IoT Jobs agent (jobs.py, always loaded with the network; small),
# the job runner (agent.py, with stream.py for MQTT-based file delivery: imported only while a job
# runs), signed manifests (manifest.py, ecdsa.py). The slot pointer itself is /otaboot.py, which
# updates never replace.


class OtaError(Exception):
    """status: the job status to report (REJECTED before anything was written, else FAILED)."""

    def __init__(self, status, reason):
        super().__init__(reason)
        self.status = status
        self.reason = reason
