"""Signals that carry the scan engine's output downstream.

``changes_recorded`` is sent inside the transaction that wrote the changes, so
a receiver that writes rows (the alert outbox) commits or rolls back with
them. Receivers must not do slow work: they run while the ingest holds locks.
"""

from django.dispatch import Signal

# Sent with: run (ScanRun, or None for changes a rule made), changes (a
# queryset of saved Change rows) and, when there is no run, key (what makes
# their notifications unique: a second send with the same key adds nothing).
changes_recorded = Signal()
