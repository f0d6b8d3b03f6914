"""moto as AWS IoT behaves where it matters to provisioning.

moto's CreateCertificateFromCsr signs a fresh key of its own instead of the CSR's; real AWS signs
the CSR's public key. sign_csrs_as_aws_does makes moto do what AWS does (sign the CSR's key, with an
issuer shaped like AWS IoT's). Used by test_provision (moto in process) and test_readme (moto's HTTP
server, in the test's process)."""
import datetime

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from moto.iot import models as iot_models

from host_tools.cloud import certs


def sign_csrs_as_aws_does(monkeypatch):
    ca_key = ec.generate_private_key(ec.SECP256R1())

    def create_certificate_from_csr(self, csr, set_as_active):
        req = x509.load_pem_x509_csr(csr.encode())
        assert req.is_signature_valid
        now = datetime.datetime.now(datetime.timezone.utc)
        cert = (x509.CertificateBuilder().subject_name(req.subject).issuer_name(certs.aws_device_issuer())
                .public_key(req.public_key()).serial_number(x509.random_serial_number())
                .not_valid_before(now - datetime.timedelta(minutes=1))
                .not_valid_after(datetime.datetime(2049, 12, 31, tzinfo=datetime.timezone.utc))
                .sign(ca_key, hashes.SHA256()))
        pem = cert.public_bytes(serialization.Encoding.PEM).decode()
        return self.register_certificate(pem, ca_certificate_pem=None, set_as_active=set_as_active,
                                         status="INACTIVE")

    monkeypatch.setattr(iot_models.IoTBackend, "create_certificate_from_csr", create_certificate_from_csr)
