"""Logging filters for the console (settings.LOGGING)."""

import logging


class DropRoutine(logging.Filter):
    """Drop INFO records whose message starts with one of ``prefixes``.

    For loggers that say something worth reading and something routine at the
    same level: Celery beat logs "beat: Starting..." once and "Scheduler:
    Sending due task" every few seconds, both at INFO.
    """

    def __init__(self, prefixes: list[str]):
        super().__init__()
        self.prefixes = tuple(prefixes)

    def filter(self, record: logging.LogRecord) -> bool:
        return record.levelno > logging.INFO or not str(record.msg).startswith(self.prefixes)
