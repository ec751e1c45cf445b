"""Certificates from nmap's ssl-cert: the reader keeps the PEM (bounded), the pure parser reads it; hostile input."""

import io
from pathlib import Path

import pytest

from certs.constants import PEM_MAX
from certs.parsing import CertificateError, parse_pem
from scans.constants import CERTIFICATE_PEM_MAX
from scans.nmap_xml import NmapXmlReader
from tests.tls_lab import make_certificate

pytestmark = pytest.mark.sqlite

REAL = Path(__file__).parent / "fixtures" / "nmap" / "lab_tls_ssl_cert.xml"


def read_ports(text: str):
    (host,) = NmapXmlReader(io.BytesIO(text.encode())).hosts()
    return host.ports


def test_the_reader_keeps_the_certificate_that_real_nmap_wrote():
    (port,) = read_ports(REAL.read_text())

    assert port.port == 41443
    assert port.certificate.startswith("-----BEGIN CERTIFICATE-----\n")
    assert port.certificate.endswith("-----END CERTIFICATE-----")
    # The script's text output stays as it was, bounded.
    assert dict(port.scripts)["ssl-cert"].startswith("Subject: commonName=<b>evil</b>.lab")
    facts = parse_pem(port.certificate)
    # Markup in a subject is text: kept as written (RFC 4514 escapes), escaped where shown.
    assert facts.subject == r"CN=\<b\>evil\</b\>.lab"
    assert facts.sans == ("a.lab",)
    assert (facts.key_type, facts.key_bits, facts.signature_algorithm) == ("RSA", 2048, "sha256WithRSAEncryption")
    assert facts.self_signed and not facts.weak_key
    assert len(facts.sha256) == 64


def test_the_reader_drops_a_certificate_too_long_or_not_a_certificate():
    text = REAL.read_text()
    start = text.index('<elem key="pem">') + len('<elem key="pem">')
    end = text.index("</elem>", start)
    huge = text[:start] + "-----BEGIN CERTIFICATE-----&#xa;" + "A" * (CERTIFICATE_PEM_MAX + 1) + text[end:]
    other = text[:start] + "&lt;script&gt;alert(1)&lt;/script&gt;" + text[end:]

    assert read_ports(huge)[0].certificate == ""
    assert read_ports(other)[0].certificate == ""
    # The port itself is read as before.
    assert read_ports(huge)[0].port == read_ports(other)[0].port == 41443


def test_only_ssl_cert_gives_a_certificate():
    text = REAL.read_text().replace('<script id="ssl-cert"', '<script id="banner"')

    assert read_ports(text)[0].certificate == ""


@pytest.mark.parametrize(
    "text, reason",
    [
        ("", "empty"),
        ("not a certificate", "Not one PEM certificate"),
        ("-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----", "cannot be read"),
        ("-----BEGIN CERTIFICATE-----\n" + "A" * PEM_MAX + "\n-----END CERTIFICATE-----", "more than"),
        ("-----BEGIN CERTIFICATE-----\n\u00e9\u00e9\n-----END CERTIFICATE-----", "cannot be read"),
    ],
)
def test_bad_pem_is_refused_with_the_reason(text, reason):
    with pytest.raises(CertificateError, match=reason):
        parse_pem(text)


def test_two_certificates_in_one_text_are_refused():
    one = make_certificate("one.lab").cert_pem.decode()
    two = make_certificate("two.lab").cert_pem.decode()

    with pytest.raises(CertificateError, match="Not one PEM certificate"):
        parse_pem(one + two)


def test_weak_keys_and_signatures_and_self_signed_are_told_apart():
    strong = parse_pem(make_certificate("ok.lab", rsa_bits=2048).cert_pem.decode())
    small = parse_pem(make_certificate("small.lab", rsa_bits=1024).cert_pem.decode())
    sha1 = parse_pem(make_certificate("sha1.lab", rsa_bits=2048, self_signed=True, sha1=True).cert_pem.decode())
    mine = parse_pem(make_certificate("mine.lab", self_signed=True).cert_pem.decode())

    assert (strong.weak_key, strong.self_signed, strong.issuer) == (False, False, "CN=PortWatch Test CA")
    assert small.weak_key and small.key_bits == 1024
    assert sha1.weak_key and sha1.signature_hash == "sha1" and sha1.self_signed
    assert mine.self_signed and not mine.weak_key and (mine.key_type, mine.key_bits) == ("EC", 256)


def test_a_long_list_of_names_is_cut():
    made = make_certificate("x" * 64, sans=tuple(f"host{i}.lab" for i in range(150)))

    facts = parse_pem(made.cert_pem.decode())

    assert len(facts.sans) == 100
    assert facts.subject == "CN=" + "x" * 64
