"""A certificate's facts from its PEM text: pure, nothing written anywhere.

The PEM comes from nmap's ``ssl-cert`` script (``scans.nmap_xml`` keeps its
structured ``<elem key="pem">``, bounded). It is text from a scanned host, so
it is hostile: its size is checked before anything is decoded, anything that
is not exactly one X.509 certificate is refused with ``CertificateError``,
and every name read from it is cut to a bounded length (and escaped wherever
it is shown, by whoever shows it).

Why nmap's script and not a TLS handshake from the worker: the scan already
connects to every open port, and ``-sV`` finds TLS on any port number (it
marks the service ``tunnel="ssl"``, which is what ssl-cert's port rule
asks); the certificate then travels in the nmap XML that already reaches the
centre from remote scanners (which hold no database credentials) and in
imported nmap files. A handshake of our own would be a second connection per
port, a second network path to keep within the scan scope, and nothing for
imports or remote scanners.
"""

from dataclasses import dataclass
from datetime import UTC, datetime

from cryptography import x509
from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import dsa, ec, ed448, ed25519, rsa

from certs.constants import (
    NAME_MAX,
    PEM_MAX,
    SAN_MAX,
    SANS_MAX,
    WEAK_RSA_BITS,
    WEAK_SIGNATURE_HASHES,
)

_BEGIN = "-----BEGIN CERTIFICATE-----"
_END = "-----END CERTIFICATE-----"


class CertificateError(ValueError):
    """The text is not one well-formed X.509 certificate in PEM."""


@dataclass(frozen=True)
class CertificateFacts:
    """What PortWatch records of a certificate; every text field bounded."""

    sha256: str
    subject: str
    issuer: str
    sans: tuple[str, ...]
    serial: str
    not_before: datetime
    not_after: datetime
    key_type: str
    key_bits: int
    signature_algorithm: str
    # The hash the issuer signed with ("sha256"; "" for Ed25519 and the like).
    signature_hash: str
    self_signed: bool
    pem: str

    @property
    def weak_key(self) -> bool:
        """RSA under WEAK_RSA_BITS, or a signature over SHA-1 (or MD5)."""
        return (
            self.key_type == "RSA" and self.key_bits < WEAK_RSA_BITS
        ) or self.signature_hash in WEAK_SIGNATURE_HASHES


def parse_pem(text: str) -> CertificateFacts:
    """The facts of the single certificate in ``text``; raises CertificateError for anything else."""
    if not isinstance(text, str) or not text:
        raise CertificateError("No certificate: the text is empty.")
    if len(text) > PEM_MAX:
        raise CertificateError(f"The certificate is {len(text)} characters long, more than {PEM_MAX}.")
    text = text.strip()
    if not text.startswith(_BEGIN) or not text.endswith(_END) or text.count(_BEGIN) != 1:
        raise CertificateError("Not one PEM certificate (-----BEGIN CERTIFICATE----- ... -----END CERTIFICATE-----).")
    try:
        certificate = x509.load_pem_x509_certificate(text.encode("ascii"))
    except (ValueError, UnicodeEncodeError) as error:
        raise CertificateError(f"The certificate cannot be read: {str(error)[:200]}") from None
    try:
        return _facts(certificate, text)
    except (ValueError, x509.DuplicateExtension, x509.UnsupportedGeneralNameType) as error:
        # Malformed extensions are only decoded on access.
        raise CertificateError(f"The certificate cannot be read: {str(error)[:200]}") from None


def _facts(certificate: x509.Certificate, pem: str) -> CertificateFacts:
    der_hash = certificate.fingerprint(hashes.SHA256()).hex()
    key_type, key_bits = _key(certificate)
    subject = _name(certificate.subject)
    issuer = _name(certificate.issuer)
    return CertificateFacts(
        sha256=der_hash,
        subject=subject,
        issuer=issuer,
        sans=_sans(certificate),
        serial=_bounded(format(certificate.serial_number, "x"), NAME_MAX),
        not_before=certificate.not_valid_before_utc.astimezone(UTC),
        not_after=certificate.not_valid_after_utc.astimezone(UTC),
        key_type=key_type,
        key_bits=key_bits,
        signature_algorithm=_signature_algorithm(certificate),
        signature_hash=_signature_hash(certificate),
        self_signed=_self_signed(certificate),
        pem=pem,
    )


def _name(name: x509.Name) -> str:
    return _bounded(name.rfc4514_string(), NAME_MAX)


def _sans(certificate: x509.Certificate) -> tuple[str, ...]:
    try:
        extension = certificate.extensions.get_extension_for_class(x509.SubjectAlternativeName)
    except x509.ExtensionNotFound:
        return ()
    names = []
    for general_name in extension.value:
        if len(names) >= SANS_MAX:
            break
        if isinstance(general_name, x509.DNSName | x509.UniformResourceIdentifier | x509.RFC822Name):
            names.append(_bounded(general_name.value, SAN_MAX))
        elif isinstance(general_name, x509.IPAddress):
            names.append(str(general_name.value))
    return tuple(dict.fromkeys(names))


def _key(certificate: x509.Certificate) -> tuple[str, int]:
    try:
        key = certificate.public_key()
    except (ValueError, TypeError):
        return "unknown", 0
    if isinstance(key, rsa.RSAPublicKey):
        return "RSA", key.key_size
    if isinstance(key, ec.EllipticCurvePublicKey):
        return "EC", key.key_size
    if isinstance(key, dsa.DSAPublicKey):
        return "DSA", key.key_size
    if isinstance(key, ed25519.Ed25519PublicKey):
        return "Ed25519", 256
    if isinstance(key, ed448.Ed448PublicKey):
        return "Ed448", 456
    return "unknown", 0


def _signature_algorithm(certificate: x509.Certificate) -> str:
    oid = certificate.signature_algorithm_oid
    return _bounded(getattr(oid, "_name", "") or oid.dotted_string, 64)


def _signature_hash(certificate: x509.Certificate) -> str:
    try:
        algorithm = certificate.signature_hash_algorithm
    except UnsupportedAlgorithm:
        return ""
    return algorithm.name if algorithm is not None else ""


def _self_signed(certificate: x509.Certificate) -> bool:
    """Issued by its own subject and signed by its own key (a name match alone proves nothing)."""
    if certificate.issuer != certificate.subject:
        return False
    try:
        certificate.verify_directly_issued_by(certificate)
    except InvalidSignature:
        return False
    except (ValueError, TypeError, UnsupportedAlgorithm):
        # A signature ``cryptography`` no longer checks (SHA-1, MD5): issued
        # by itself is all that can be said, and all that matters here.
        return True
    return True


def _bounded(text: str, limit: int) -> str:
    # PostgreSQL text cannot hold NUL; the rest is escaped where shown.
    text = text.replace("\x00", "")
    return text[:limit]
