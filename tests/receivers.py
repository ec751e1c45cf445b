"""Real receivers on loopback for alert tests and the alerts benchmark.

- ``WebhookReceiver``: an HTTP server in a thread that records every POST, and
  can answer as a broken receiver would (an error, a redirect, no answer), or
  be stopped and started again on the same port.
- ``SmtpSink``: a real SMTP server (aiosmtpd) that keeps the messages it gets.
"""

import email
import email.policy
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from aiosmtpd.controller import Controller

from tests.stack import free_port


@dataclass
class Received:
    path: str
    headers: dict
    body: bytes
    at: float  # time.time() when the body was read

    def json(self):
        import json

        return json.loads(self.body)

    @property
    def key(self) -> str:
        return self.headers.get("idempotency-key", "")


@dataclass
class WebhookReceiver:
    """Answers 204 unless told otherwise through ``mode``."""

    mode: str = "ok"  # ok | 503 | 400 | redirect | hang
    port: int = field(default_factory=free_port)
    requests: list[Received] = field(default_factory=list)
    hang_seconds: float = 30

    def __post_init__(self):
        self._server = None
        self._stop_hanging = threading.Event()
        self.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/hook"

    def start(self):
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def do_POST(self):
                length = int(self.headers.get("Content-Length", "0"))
                body = self.rfile.read(length)
                mode = receiver.mode
                if mode == "hang":
                    receiver._stop_hanging.wait(receiver.hang_seconds)
                    return
                headers = {name.lower(): value for name, value in self.headers.items()}
                receiver.requests.append(Received(self.path, headers, body, time.time()))
                if mode == "redirect":
                    self.send_response(302)
                    self.send_header("Location", "http://169.254.169.254/latest/meta-data/")
                    self.end_headers()
                elif mode in ("503", "400"):
                    self.send_response(int(mode))
                    self.send_header("Content-Type", "text/plain")
                    self.end_headers()
                    self.wfile.write(b"receiver says no")
                else:
                    self.send_response(204)
                    self.end_headers()

        self._server = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        self._server.daemon_threads = True
        threading.Thread(target=self._server.serve_forever, daemon=True).start()

    def stop(self):
        if self._server is not None:
            self._stop_hanging.set()
            self._server.shutdown()
            self._server.server_close()
            self._server = None
            self._stop_hanging = threading.Event()

    def keys(self) -> list[str]:
        return [request.key for request in self.requests]


class _Collect:
    def __init__(self):
        self.messages: list[email.message.EmailMessage] = []

    async def handle_DATA(self, server, session, envelope):
        message = email.message_from_bytes(envelope.content, policy=email.policy.default)
        message["X-Envelope-To"] = ", ".join(envelope.rcpt_tos)
        self.messages.append(message)
        return "250 OK"


class SmtpSink:
    def __init__(self):
        self.port = free_port()
        self.handler = _Collect()
        self.controller = Controller(self.handler, hostname="127.0.0.1", port=self.port)
        self.controller.start()

    @property
    def messages(self):
        return self.handler.messages

    def stop(self):
        self.controller.stop()
