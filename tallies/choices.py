"""The figures kept by triggers, named once."""

from datetime import UTC, datetime, timedelta

from django.db import models


class Figure(models.TextChoices):
    """What a Tally row counts. Untimed figures have one row per item; timed
    ones a row per hour and a row per exact instant (see ``tallies.models``)."""

    HOSTS = "hosts", "hosts, by zone"
    UNREACHABLE = "unreachable", "unreachable hosts"
    # Hosts by zone and when a completed scan last covered them (overdue hosts).
    SCANNED = "scanned", "hosts, by zone and last scan"
    OPEN = "open", "open ports"
    UNREVIEWED = "unreviewed", "open ports no rule or review decided on"
    VIOLATING = "violating", "open ports a rule or review rejected"
    # The unreviewed ports again, by first seen (the review backlog's ages).
    WAITING = "waiting", "unreviewed ports, by first seen"
    CHANGES = "changes", "changes, by kind and time"
    # The exposure matrix's cells (reach.matrix): open ports and segmentation
    # violations by vantage point and zone or tag (items: tallies.sources).
    EXPOSED = "exposed", "open ports, by vantage point and zone or tag"
    VIOLATED = "violated", "segmentation violations, by vantage point and zone or tag"
    # The same per protocol and port (and the violations per rule), for the
    # matrix narrowed to ports, risk or a rule: a few rows per port read.
    # The host's own view (listeners.PortFinding): ports by finding and by
    # the report's time, so "fresh findings" is a window read like "changes in 24 h".
    FINDINGS = "findings", "host-report findings, by kind and report time"
    EXPOSED_PORT = "exposed_port", "open ports, by vantage point, zone, tag and port"
    VIOLATED_PORT = "violated_port", "segmentation violations, by rule, vantage point, zone, tag and port"


# The figures whose rows name a protocol and port (the others' are "" and 0).
PER_PORT = (Figure.EXPOSED_PORT, Figure.VIOLATED_PORT)


# A Tally row's grain: the width of its time bucket, in seconds. EXACT rows
# of a timed figure are kept per instant (an ingest stamps its rows with one
# instant, so there are few); untimed figures have EXACT rows at EPOCH.
EXACT = 0
HOUR = 3600
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)

# Change rows older than this are dropped (the overview reads 7 days back).
CHANGES_KEPT = timedelta(days=8)
