"""Real nmap (-sV and ssl-cert, the built-in "TLS certificates" profile) against real TLS listeners on loopback."""

from unittest import mock

import pytest

from certs.models import Certificate, Sighting
from inventory.models import Zone
from scans import chunks, services
from scans.choices import ChangeKind, RunStatus
from scans.models import Change, ScanProfile, ScanTarget
from tests.lab import next_lab_prefix
from tests.tls_lab import TlsListeners, make_certificate

pytestmark = [pytest.mark.django_db, pytest.mark.lab]

PORT = 41443


@pytest.fixture
def tls():
    listeners = TlsListeners()
    yield listeners
    listeners.stop()


def scan(addresses, ports=str(PORT)):
    target = ScanTarget.objects.create(
        name=f"tls {addresses[0]}",
        zone=Zone.default(),
        targets="\n".join(addresses),
        ports=ports,
        profile=ScanProfile.objects.get(slug="tls"),
    )
    return rescan(target)


def rescan(target):
    with mock.patch("scans.queueing.send_on_commit"):
        run = services.start_run(target)
    for chunk in run.chunks.all():
        assert chunks.run_chunk(chunk.pk) is chunks.ChunkOutcome.DONE
    run.refresh_from_db()
    assert run.status == RunStatus.SUCCEEDED, run.error
    return run


def current(address, port=PORT) -> Certificate:
    return Sighting.objects.get(service__host__address=address, service__port=port, current=True).certificate


def test_each_kind_of_certificate_is_recorded_with_its_facts(tls):
    prefix = next_lab_prefix()
    made = {
        "valid": make_certificate("valid.lab", days_left=300, sans=("valid.lab", "www.valid.lab")),
        "expired": make_certificate("expired.lab", days_left=-3),
        "expiring": make_certificate("expiring.lab", days_left=5),
        "self_signed": make_certificate("self.lab", self_signed=True),
        "rsa1024": make_certificate("small.lab", rsa_bits=1024),
        "sha1": make_certificate("sha1.lab", rsa_bits=2048, self_signed=True, sha1=True),
    }
    addresses = {}
    for number, (name, certificate) in enumerate(made.items(), start=1):
        addresses[name] = f"{prefix}.{number}"
        tls.serve(addresses[name], PORT, certificate)

    run = scan(list(addresses.values()))

    for name, address in addresses.items():
        assert current(address).sha256 == made[name].sha256, name
    valid = current(addresses["valid"])
    assert valid.subject == "CN=valid.lab"
    assert valid.issuer == "CN=PortWatch Test CA"
    assert valid.sans == ["valid.lab", "www.valid.lab"]
    assert (valid.key_type, valid.key_bits) == ("EC", 256)
    assert valid.signature_algorithm == "ecdsa-with-SHA256"
    assert valid.serial == format(made["valid"].certificate.serial_number, "x")
    assert valid.not_after.replace(microsecond=0) == made["valid"].certificate.not_valid_after_utc
    assert not valid.self_signed and not valid.weak_key
    assert current(addresses["self_signed"]).self_signed
    assert (current(addresses["rsa1024"]).key_type, current(addresses["rsa1024"]).key_bits) == ("RSA", 1024)
    assert current(addresses["rsa1024"]).weak_key
    sha1 = current(addresses["sha1"])
    assert sha1.weak_key and sha1.signature_hash == "sha1" and sha1.self_signed
    assert current(addresses["expired"]).not_after < run.finished_at
    # A port's first certificate is not a change.
    assert not Change.objects.filter(run=run, kind=ChangeKind.CERTIFICATE_CHANGED).exists()


def test_a_certificate_swapped_between_two_scans_is_one_change_with_before_and_after(tls):
    prefix = next_lab_prefix()
    address, steady = f"{prefix}.1", f"{prefix}.2"
    old, new = make_certificate("old.lab", days_left=20), make_certificate("new.lab", days_left=400)
    tls.serve(address, PORT, old)
    tls.serve(steady, PORT, make_certificate("steady.lab"))
    first = scan([address, steady])
    target = first.target

    tls.serve(address, PORT, new)
    second = rescan(target)

    # The chunk's task delivered again (a worker lost before its ack): nothing more.
    for chunk in second.chunks.all():
        chunks.run_chunk(chunk.pk)
    changed = Change.objects.filter(kind=ChangeKind.CERTIFICATE_CHANGED)
    assert changed.count() == 1
    change = changed.get()
    assert (change.run, change.host.address, change.port) == (second, address, PORT)
    assert change.before["fingerprint"] == old.sha256 and change.before["subject"] == "CN=old.lab"
    assert change.after["fingerprint"] == new.sha256 and change.after["subject"] == "CN=new.lab"
    assert change.after["not_after"].startswith(new.certificate.not_valid_after_utc.date().isoformat())
    history = Sighting.objects.filter(service__host__address=address).order_by("first_seen", "id")
    assert [(s.certificate.sha256, s.current) for s in history] == [(old.sha256, False), (new.sha256, True)]

    # The same certificate again: nothing new.
    third = rescan(target)
    assert not Change.objects.filter(run=third, kind=ChangeKind.CERTIFICATE_CHANGED).exists()
