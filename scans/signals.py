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

# Sent inside the ingest's transaction, once the chunk's (or file's) writes are
# settled and before ``changes_recorded``, with: run, chunk, zone, now, and
# certificates (an iterable, read once, of (address, protocol, port, PEM) from
# nmap's ssl-cert, scans.nmap_xml). A receiver returns a Counter of the kinds
# of the changes it recorded (with this run and chunk), so they are announced
# with the chunk's own.
certificates_observed = Signal()
