"""Certificates for the demo fleet's HTTPS listeners, made when the fleet starts.

The demo shows the Certificates page with something on it: one web server's
certificate issued by a pretend internal CA and expiring within the warning
(``CERT_EXPIRY_WARN_DAYS``), which it renews in a later step (a
``certificate_changed``), and another's self-signed. Each is made once per
process with the ``cryptography`` package (EC P-256 keys, quick to make) and
served from an ``ssl.SSLContext``; nothing is written outside a temporary
directory, which goes when the context is loaded.
"""

import datetime
import functools
import ssl
import tempfile
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

CA_NAME = "PortWatch Demo Internal CA"


@functools.cache
def _ca() -> tuple[ec.EllipticCurvePrivateKey, x509.Name]:
    return ec.generate_private_key(ec.SECP256R1()), x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, CA_NAME)])


@functools.cache
def server_context(common_name: str, *, days_left: int, self_signed: bool = False) -> ssl.SSLContext:
    """A server context presenting a certificate for ``common_name`` that expires ``days_left`` days from now."""
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])
    issuer_key, issuer = (key, subject) if self_signed else _ca()
    now = datetime.datetime.now(datetime.UTC)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(days=1))
        .not_valid_after(now + datetime.timedelta(days=days_left))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName(common_name)]), critical=False)
        .sign(issuer_key, hashes.SHA256())
    )
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    with tempfile.TemporaryDirectory() as directory:
        chain = Path(directory) / "chain.pem"
        chain.write_bytes(
            certificate.public_bytes(serialization.Encoding.PEM)
            + key.private_bytes(
                serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
            )
        )
        context.load_cert_chain(chain)
    return context
