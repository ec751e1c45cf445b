"""TLS listeners on loopback with certificates the test makes (the ``cryptography`` package).

Each listener completes a TLS handshake with whoever connects (nmap's
version detection and ssl-cert), reads a little and closes. A listener's
certificate can be swapped between two scans: the next connection gets the
new one. OpenSSL's security level is lowered on the server side only, so that
it serves weak certificates (RSA 1024, SHA-1) as a badly kept server would.
"""

import datetime
import socket
import ssl
import tempfile
import threading
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from cryptography.x509.oid import NameOID


@dataclass(frozen=True)
class MadeCertificate:
    cert_pem: bytes
    key_pem: bytes

    @property
    def certificate(self) -> x509.Certificate:
        return x509.load_pem_x509_certificate(self.cert_pem)

    @property
    def sha256(self) -> str:
        return self.certificate.fingerprint(hashes.SHA256()).hex()


_ca_cache: dict[str, tuple] = {}


def _ca():
    """One test CA (issuer of the certificates that are not self-signed)."""
    if "ca" not in _ca_cache:
        key = ec.generate_private_key(ec.SECP256R1())
        name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "PortWatch Test CA")])
        now = datetime.datetime.now(datetime.UTC)
        cert = (
            x509.CertificateBuilder()
            .subject_name(name)
            .issuer_name(name)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(days=1))
            .not_valid_after(now + datetime.timedelta(days=3650))
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .sign(key, hashes.SHA256())
        )
        _ca_cache["ca"] = (key, cert)
    return _ca_cache["ca"]


def make_certificate(
    common_name: str,
    *,
    days_left: float = 365,
    sans: tuple[str, ...] = (),
    self_signed: bool = False,
    rsa_bits: int | None = None,
    sha1: bool = False,
) -> MadeCertificate:
    """A certificate valid until ``days_left`` days from now (negative: expired), issued by the test CA
    unless ``self_signed``; an EC P-256 key unless ``rsa_bits``; signed over SHA-1 with ``sha1`` (self-signed
    with an RSA key: see ``_resign_sha1``)."""
    key = (
        rsa.generate_private_key(public_exponent=65537, key_size=rsa_bits)
        if rsa_bits
        else ec.generate_private_key(ec.SECP256R1())
    )
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])
    now = datetime.datetime.now(datetime.UTC)
    if self_signed:
        issuer_name, signing_key = subject, key
    else:
        ca_key, ca_cert = _ca()
        issuer_name, signing_key = ca_cert.subject, ca_key
    builder = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer_name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(days=400))
        .not_valid_after(now + datetime.timedelta(days=days_left))
    )
    if sans:
        builder = builder.add_extension(
            x509.SubjectAlternativeName([x509.DNSName(name) for name in sans]), critical=False
        )
    cert = builder.sign(signing_key, hashes.SHA256())
    cert_pem = cert.public_bytes(serialization.Encoding.PEM)
    if sha1:
        cert_pem = _resign_sha1(cert, signing_key)
    return MadeCertificate(
        cert_pem,
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()),
    )


# sha256WithRSAEncryption and sha1WithRSAEncryption (1.2.840.113549.1.1.11 / .5): same length in DER.
_SHA256_RSA = bytes.fromhex("06092a864886f70d01010b")
_SHA1_RSA = bytes.fromhex("06092a864886f70d010105")


def _resign_sha1(cert: x509.Certificate, key) -> bytes:
    """The certificate signed over SHA-1 instead: the ``cryptography`` builder no longer signs with SHA-1,
    so the signed part's algorithm is swapped and signed again by hand (the weak certificate old servers
    still serve)."""
    tbs = cert.tbs_certificate_bytes
    assert tbs.count(_SHA256_RSA) == 1, "an RSA key signed over SHA-256 expected"
    tbs = tbs.replace(_SHA256_RSA, _SHA1_RSA)
    signature = key.sign(tbs, padding.PKCS1v15(), hashes.SHA1())  # noqa: S303 - the weak case under test
    algorithm = _der(0x30, _SHA1_RSA + b"\x05\x00")
    der = _der(0x30, tbs + algorithm + _der(0x03, b"\x00" + signature))
    return x509.load_der_x509_certificate(der).public_bytes(serialization.Encoding.PEM)


def _der(tag: int, content: bytes) -> bytes:
    length = len(content)
    if length < 0x80:
        return bytes((tag, length)) + content
    encoded = length.to_bytes((length.bit_length() + 7) // 8, "big")
    return bytes((tag, 0x80 | len(encoded))) + encoded + content


class TlsListeners:
    """TLS listeners, one accepting thread each; ``serve`` again on a listening port swaps its certificate."""

    def __init__(self):
        self._dir = tempfile.TemporaryDirectory(prefix="pw-tls-")
        self._contexts: dict[tuple[str, int], ssl.SSLContext] = {}
        self._sockets: dict[tuple[str, int], socket.socket] = {}
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []

    def serve(self, address: str, port: int, made: MadeCertificate) -> None:
        self._contexts[(address, port)] = self._context(made)
        if (address, port) in self._sockets:
            return  # swapped: the next connection gets the new certificate
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((address, port))
        sock.listen(64)
        sock.settimeout(0.1)
        self._sockets[(address, port)] = sock
        thread = threading.Thread(target=self._accept, args=(address, port, sock), daemon=True)
        thread.start()
        self._threads.append(thread)

    def stop(self) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(timeout=5)
        for sock in self._sockets.values():
            sock.close()
        self._dir.cleanup()

    def _context(self, made: MadeCertificate) -> ssl.SSLContext:
        folder = Path(tempfile.mkdtemp(dir=self._dir.name))
        (folder / "cert.pem").write_bytes(made.cert_pem)
        (folder / "key.pem").write_bytes(made.key_pem)
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        # Serve weak certificates too (RSA 1024, SHA-1): what the test is about.
        context.set_ciphers("DEFAULT:@SECLEVEL=0")
        context.minimum_version = ssl.TLSVersion.TLSv1_2
        context.load_cert_chain(folder / "cert.pem", folder / "key.pem")
        return context

    def _accept(self, address: str, port: int, sock: socket.socket) -> None:
        while not self._stop.is_set():
            try:
                conn, _ = sock.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            context = self._contexts[(address, port)]
            threading.Thread(target=_handshake, args=(context, conn), daemon=True).start()


def _handshake(context: ssl.SSLContext, conn: socket.socket) -> None:
    conn.settimeout(10)
    try:
        with context.wrap_socket(conn, server_side=True) as tls:
            tls.recv(1024)
    except (OSError, ssl.SSLError):
        pass
    finally:
        conn.close()


def put_certificate(service, made: MadeCertificate, *, current: bool = True, now=None):
    """A certificate on ``service`` straight into the database (pages and API tests; scans record them
    through ``certs.record``, whose rows it makes), current unless said; returns the Sighting."""
    from django.utils import timezone

    from certs.models import Sighting
    from certs.parsing import parse_pem
    from certs.record import certificate_rows

    now = now or timezone.now()
    facts = parse_pem(made.cert_pem.decode())
    certificate = certificate_rows([facts], now)[facts.sha256]
    return Sighting.objects.create(
        service=service,
        certificate=certificate,
        current=current,
        first_seen=now,
        last_seen=now,
        not_after=certificate.not_after,
    )
