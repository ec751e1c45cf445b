"""Transports: how a notification leaves PortWatch, one class per channel kind.

``transport_for(channel).notify(message)`` sends or raises TransportError;
``permanent=True`` means retrying cannot help (a 4xx, a refused address, an
invalid URL), so the notification goes to the failed list at once.
"""

import hashlib
import hmac
import json
import logging
import re
import time
from email.utils import make_msgid
from urllib.parse import urlsplit

import apprise
import certifi
import urllib3
from django.conf import settings
from django.core.mail import EmailMultiAlternatives
from django.core.serializers.json import DjangoJSONEncoder

from alerts.addresses import AddressRefused, check_host, destination
from alerts.choices import ChannelKind
from alerts.messages import Message
from alerts.models import Channel

logger = logging.getLogger(__name__)

# Bytes of a webhook's response body kept for the error message.
RESPONSE_EXCERPT = 300
# Status codes worth retrying; any other non-2xx answer is permanent.
RETRYABLE_STATUS = frozenset({408, 425, 429, 500, 502, 503, 504})
# Apprise schemes whose URL names a server of the user's choosing: checked like webhooks.
APPRISE_HOST_SCHEMES = frozenset(
    {"json", "jsons", "xml", "xmls", "form", "forms", "ntfy", "ntfys", "gotify", "gotifys", "mmost", "mmosts"}
    | {"rocket", "rockets", "matrix", "matrixs", "apprise", "apprises", "mailto", "mailtos", "mqtt", "mqtts"}
)


class TransportError(Exception):
    def __init__(self, message: str, *, permanent: bool = False):
        super().__init__(message)
        self.message = message
        self.permanent = permanent


class Transport:
    def __init__(self, channel: Channel):
        self.channel = channel

    def notify(self, message: Message) -> None:
        raise NotImplementedError


class EmailTransport(Transport):
    """Plain text and HTML through Django's mail settings (EMAIL_HOST, ...)."""

    def notify(self, message: Message) -> None:
        recipients = parse_recipients(self.channel.target)
        notification = message.notification
        email = EmailMultiAlternatives(
            subject=message.subject,
            body=message.render("email_body.txt"),
            to=recipients,
            headers={
                # The same Message-ID on every attempt: mail systems drop the repeat.
                "Message-ID": make_msgid(idstring=str(notification.public_id), domain="portwatch"),
                "X-PortWatch-Notification": str(notification.public_id),
            },
        )
        email.attach_alternative(message.render("email_body.html"), "text/html")
        try:
            email.send()
        except (ConnectionError, TimeoutError, OSError) as error:
            # smtplib's errors are OSErrors; a refused recipient is not worth retrying.
            import smtplib  # noqa: PLC0415

            permanent = isinstance(error, smtplib.SMTPRecipientsRefused | smtplib.SMTPSenderRefused)
            raise TransportError(f"SMTP: {error}", permanent=permanent) from error


def parse_recipients(text: str) -> list[str]:
    return [part.strip() for part in text.replace(";", ",").replace("\n", ",").split(",") if part.strip()]


def signature(secret: str, timestamp: str, body: bytes) -> str:
    """HMAC-SHA256 over ``<timestamp>.<body>``; receivers also check the timestamp is recent."""
    mac = hmac.new(secret.encode(), timestamp.encode() + b"." + body, hashlib.sha256)
    return mac.hexdigest()


class WebhookTransport(Transport):
    """POST the message as JSON, signed, to a checked and pinned address; no redirects."""

    def notify(self, message: Message) -> None:
        try:
            dest = destination(self.channel.target, allow_private=self.channel.allow_private)
        except AddressRefused as error:
            raise TransportError(str(error), permanent=True) from None
        body = json.dumps(message.as_json(), cls=DjangoJSONEncoder, ensure_ascii=False).encode()
        timestamp = str(int(time.time()))
        host_header = dest.host if dest.port in (80, 443) else f"{dest.host}:{dest.port}"
        if ":" in dest.host and not host_header.startswith("["):
            host_header = f"[{dest.host}]" if dest.port in (80, 443) else f"[{dest.host}]:{dest.port}"
        headers = {
            "Host": host_header,
            "Content-Type": "application/json; charset=utf-8",
            "User-Agent": "PortWatch-Webhook/1",
            "Idempotency-Key": str(message.notification.public_id),
            "X-PortWatch-Event": message.notification.kind,
            "X-PortWatch-Timestamp": timestamp,
            "X-PortWatch-Signature": f"sha256={signature(self.channel.signing_secret, timestamp, body)}",
        }
        timeout = urllib3.Timeout(
            connect=settings.ALERT_WEBHOOK_CONNECT_TIMEOUT,
            read=settings.ALERT_WEBHOOK_READ_TIMEOUT,
            total=settings.ALERT_WEBHOOK_CONNECT_TIMEOUT + settings.ALERT_WEBHOOK_READ_TIMEOUT,
        )
        if dest.scheme == "https":
            pool = urllib3.HTTPSConnectionPool(
                dest.address,
                dest.port,
                timeout=timeout,
                retries=False,
                cert_reqs="CERT_REQUIRED",
                ca_certs=certifi.where(),
                server_hostname=dest.host,
                assert_hostname=dest.host,
            )
        else:
            pool = urllib3.HTTPConnectionPool(dest.address, dest.port, timeout=timeout, retries=False)
        where = f"{dest.host}:{dest.port}" + (f" ({dest.address})" if dest.address != dest.host else "")
        try:
            with pool:
                response = pool.urlopen(
                    "POST", dest.path, body=body, headers=headers, redirect=False, preload_content=False
                )
                excerpt = response.read(RESPONSE_EXCERPT, decode_content=False).decode("utf-8", "replace")
                response.release_conn()
        except urllib3.exceptions.NewConnectionError as error:  # a subclass of the timeout error
            raise TransportError(f"could not connect to {where}: {_reason(error)}") from None
        except urllib3.exceptions.TimeoutError as error:
            raise TransportError(f"timed out talking to {where}: {_reason(error)}") from None
        except urllib3.exceptions.SSLError as error:
            raise TransportError(f"TLS error with {where}: {_reason(error)}") from None
        except (urllib3.exceptions.HTTPError, OSError) as error:
            raise TransportError(f"could not connect to {where}: {_reason(error)}") from None
        status = response.status
        if 200 <= status < 300:
            return
        if 300 <= status < 400:
            location = response.headers.get("Location", "")
            raise TransportError(
                f"HTTP {status} redirect to {location[:200]!r}: webhooks do not follow redirects; "
                "set the channel's URL to the final address.",
                permanent=True,
            )
        detail = f"HTTP {status} from the receiver: {excerpt.strip()[:RESPONSE_EXCERPT]}"
        raise TransportError(detail, permanent=status not in RETRYABLE_STATUS)


def _reason(error: Exception) -> str:
    """The cause without urllib3's "HTTPConnectionPool(host=..., port=...): " prefix."""
    reason = str(getattr(error, "reason", None) or error)
    reason = re.sub(r"^(?:None: |[\w.]+\(host=[^)]*\): )+", "", reason)
    reason = re.sub(r"^Failed to establish a new connection: \[Errno -?\d+\] ", "", reason)
    return reason[:300]


class AppriseTransport(Transport):
    """Slack, Teams, Discord, Telegram, ntfy... through Apprise (https://github.com/caronc/Apprise)."""

    def notify(self, message: Message) -> None:
        url = self.channel.target
        check_apprise_url(url, allow_private=self.channel.allow_private)
        sender = apprise.Apprise()
        if not sender.add(url):
            raise TransportError("Apprise does not accept this URL.", permanent=True)
        body = message.render("chat.md").strip()
        with apprise.LogCapture(level=logging.WARNING) as captured:
            ok = sender.notify(title=message.subject, body=body, body_format=apprise.NotifyFormat.MARKDOWN)
        if not ok:
            text = captured.getvalue().strip().splitlines()
            raise TransportError(f"Apprise: {text[-1][:300] if text else 'the service did not accept the message'}")


def check_apprise_url(url: str, *, allow_private: bool) -> None:
    """Apprise URLs that name a server are held to the webhook address rules."""
    parts = urlsplit(url)
    if parts.scheme.lower() not in APPRISE_HOST_SCHEMES or not parts.hostname:
        return
    try:
        port = parts.port or 443
        check_host(parts.hostname, port, allow_private=allow_private)
    except (AddressRefused, ValueError) as error:
        raise TransportError(str(error), permanent=True) from None


class LogTransport(Transport):
    """One JSON line per notification in ALERT_LOG_FILE (var/alerts.log by default)."""

    def notify(self, message: Message) -> None:
        line = json.dumps(message.as_json(), cls=DjangoJSONEncoder, ensure_ascii=True)
        try:
            with open(settings.ALERT_LOG_FILE, "a", encoding="utf-8") as log:
                log.write(line + "\n")
        except OSError as error:
            raise TransportError(f"could not write {settings.ALERT_LOG_FILE}: {error.strerror}") from None


TRANSPORTS: dict[str, type[Transport]] = {
    ChannelKind.EMAIL: EmailTransport,
    ChannelKind.WEBHOOK: WebhookTransport,
    ChannelKind.APPRISE: AppriseTransport,
    ChannelKind.LOG: LogTransport,
}


def transport_for(channel: Channel) -> Transport:
    return TRANSPORTS[channel.kind](channel)
