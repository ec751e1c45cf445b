"""Choices of the certificates app, named once."""

from django.db import models


class Finding(models.TextChoices):
    """What is wrong with a port's current certificate (several may hold)."""

    EXPIRED = "expired", "expired"
    # Within CERT_EXPIRY_WARN_DAYS of its end.
    EXPIRING = "expiring", "expiring soon"
    SELF_SIGNED = "self_signed", "self-signed"
    # RSA under 2048 bits, or signed over SHA-1 (or MD5).
    WEAK_KEY = "weak_key", "weak key"
