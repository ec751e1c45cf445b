"""The Redis broker transport, with a fix for a worker that dies when Redis restarts.

Celery 5.7.0 (celery/celery#10242, the fix for #9705) closes the consumer's
connection after ``collect()`` when the broker goes away. With kombu 5.7.0's
Redis transport the first close, inside ``collect()``, stops half-way: the
channel reads the reply of its outstanding BRPOP first, that read raises
``ConnectionError`` (the server is gone), and the channel is left open while
``collect()`` releases the transport. The second close then tries to put the
unacknowledged messages back with a transport that has no connection
parameters left, raises ``AttributeError: 'NoneType' object has no attribute
'hostname'`` (kombu's ``_connparams``), and the worker exits with
"Unrecoverable error" (the same failure as celery/kombu#970, by another path).
Idle workers survive: they hold no unacknowledged message.

The channel below treats a failed read of that last reply as what it is (the
server is gone, there is nothing to read) and closes the rest of the way, so
the worker reconnects. Messages it could not put back stay in Redis's
unacknowledged set when Redis kept them, and PortWatch's own sweep finds the
chunk either way (``scans.services.sweep``): nothing depends on the restore.
Drop this module when kombu's ``Channel.close`` survives a failed read.
"""

from kombu.transport import TRANSPORT_ALIASES, redis


class Channel(redis.Channel):
    def close(self):
        if self._in_poll:
            try:
                self._brpop_read()
            except redis.Empty:
                pass
            except self.connection_errors:
                pass  # the server went away: there is no reply left to read
        super().close()


class Transport(redis.Transport):
    Channel = Channel


def install() -> None:
    """Make redis:// and rediss:// URLs use this transport (kombu looks schemes up here)."""
    for scheme in ("redis", "rediss"):
        TRANSPORT_ALIASES[scheme] = f"{__name__}:Transport"
