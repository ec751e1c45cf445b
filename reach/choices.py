"""Choices of vantage points, named once."""

from django.db import models


class VantageStatus(models.TextChoices):
    """Whether anyone scans from a vantage point now (``reach.liveness``)."""

    # At least one live worker consumes its queue.
    LISTENING = "listening", "listening"
    # None does: its scans wait in the queue and its view is stale, not closed.
    SILENT = "silent", "silent"
