"""Signals that carry the scan engine's output downstream.

``changes_recorded`` is sent inside the transaction that wrote the changes, so
a receiver that writes rows (the alert outbox) commits or rolls back with
them. Receivers must not do slow work: they run while the ingest holds locks.
"""

from django.dispatch import Signal

# Sent with: run (ScanRun), changes (list of Change, saved).
changes_recorded = Signal()
