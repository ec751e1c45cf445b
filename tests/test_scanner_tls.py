"""A remote scanner reaches the central broker over TLS, the broker's certificate checked against a CA.

The README tells remote sites to use ``rediss://...?ssl_cert_reqs=required&ssl_ca_certs=...``;
this starts a TLS-only redis-server with a certificate from a CA made here
(openssl), runs a real ``manage.py run_scanner`` against it, and reads its
signed heartbeat off the broker through TLS.
"""

import base64
import json
import shutil
import subprocess

import pytest
import redis

from scans import orders
from tests.processes import ScannerProcess, wait_for
from tests.stack import free_port

KEY = "5e" * 32


def _openssl(*argv, cwd):
    subprocess.run(["openssl", *argv], cwd=cwd, check=True, capture_output=True)


@pytest.fixture
def tls_redis(tmp_path):
    if shutil.which("openssl") is None or shutil.which("redis-server") is None:
        pytest.skip("openssl and redis-server are needed (apt-get install openssl redis-server)")
    _openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", "ca.key", "-out", "ca.pem", "-days", "1",
             "-subj", "/CN=portwatch-test-ca", cwd=tmp_path)  # fmt: skip
    _openssl("req", "-newkey", "rsa:2048", "-nodes", "-keyout", "server.key", "-out", "server.csr",
             "-subj", "/CN=127.0.0.1", cwd=tmp_path)  # fmt: skip
    (tmp_path / "san.ext").write_text("subjectAltName=IP:127.0.0.1\n")
    _openssl("x509", "-req", "-in", "server.csr", "-CA", "ca.pem", "-CAkey", "ca.key", "-CAcreateserial",
             "-out", "server.pem", "-days", "1", "-extfile", "san.ext", cwd=tmp_path)  # fmt: skip
    port = free_port()
    server = subprocess.Popen(
        ["redis-server", "--port", "0", "--tls-port", str(port), "--bind", "127.0.0.1", "--save", "",
         "--tls-cert-file", "server.pem", "--tls-key-file", "server.key", "--tls-ca-cert-file", "ca.pem",
         "--tls-auth-clients", "no"],
        cwd=tmp_path, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True,
    )  # fmt: skip
    client = redis.Redis(host="127.0.0.1", port=port, ssl=True, ssl_ca_certs=str(tmp_path / "ca.pem"))

    def answers():
        try:
            return client.ping()
        except redis.ConnectionError:
            return False

    try:
        wait_for(answers, 20, interval=0.1, message="the TLS redis-server")
        yield f"rediss://127.0.0.1:{port}/0?ssl_cert_reqs=required&ssl_ca_certs={tmp_path / 'ca.pem'}", client
    finally:
        server.terminate()
        server.wait(timeout=20)


def test_a_remote_scanner_talks_to_the_broker_over_tls_only_and_signs_what_it_sends(tmp_path, tls_redis):
    url, client = tls_redis
    var = tmp_path / "scanner-var"
    var.mkdir()
    scanner = ScannerProcess(tmp_path / "scanner.log", var, vantage="office-lan", key=KEY, REDIS_URL=url)
    try:
        wait_for(lambda: client.llen("default") > 0, 30, message=f"a heartbeat:\n{scanner.log()[-2000:]}")
        message = json.loads(client.lpop("default"))
        assert message["headers"]["task"] == "scans.tasks.scanner_alive"
        (heartbeat, signature), _, _ = json.loads(base64.b64decode(message["body"]))
        orders.verify(orders.HEARTBEAT, heartbeat, signature, KEY)
        assert (heartbeat["vantage"], heartbeat["stopping"]) == ("office-lan", False)
        # It consumes its vantage point's queue, on the TLS broker.
        assert "scan-from.office-lan" in scanner.log()
    finally:
        scanner.stop()
    assert not list(var.rglob("*.sqlite3*"))
