"""The cloud side: the local Mosquitto broker and certificates, the local shadow and jobs services
(the embedded stand-ins for AWS IoT), AWS provisioning with boto3, OTA jobs, the fleet monitor."""
