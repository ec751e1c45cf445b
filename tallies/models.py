"""Counts kept by the transactions that change them (DESIGN.md, "Scale").

Database triggers on hosts, services and changes (``tallies.triggers``) add
what each statement changed to these rows in the statement's own
transaction, so every writer is counted (the set-based ingest SQL, ORM bulk
writes, the policy's UPDATEs, deletes and their cascades) and a rollback
counts nothing. The overview and /metrics read them (``tallies.read``)
instead of counting the inventory.

A timed figure (changes by ``created_at``, say) has a row per hour and a row
per exact instant: "since T" is the hours after T's hour plus the instants
within T's hour, exact whatever T, and bounded by the hours read, not by the
inventory.
"""

from django.db import models

from tallies.choices import Figure


class Count(models.Model):
    """``n`` of ``figure``, for ``item`` (a zone id, a change kind, or ""),
    within the bucket of ``grain`` seconds starting at ``bucket``.

    The figures kept per port (``tallies.choices.PER_PORT``) name it in
    ``protocol`` and ``port``, and the open ports' figure the service's
    ``name`` too (the risk table rates by port, else by name); the others
    leave them "", 0 and "".
    """

    figure = models.CharField(max_length=16, choices=Figure.choices)
    item = models.CharField(max_length=64, blank=True)
    protocol = models.CharField(max_length=4, blank=True, default="")
    port = models.PositiveIntegerField(default=0)
    name = models.CharField(max_length=64, blank=True, default="")
    grain = models.IntegerField()
    bucket = models.DateTimeField()
    n = models.BigIntegerField()

    class Meta:
        abstract = True

    @property
    def where(self) -> str:
        return (f" {self.port}/{self.protocol}" if self.protocol else "") + (f" ({self.name})" if self.name else "")


class Tally(Count):
    """A committed count."""

    class Meta:
        constraints = [
            # The triggers' upserts (SQLite) and the compaction's; readers
            # scan a figure's buckets of one grain in time order through it.
            models.UniqueConstraint(
                fields=["figure", "grain", "bucket", "item", "protocol", "port", "name"], name="tally_unique_bucket"
            ),
        ]
        indexes = [
            # A filtered exposure matrix reads the per-port rows of its ports (reach.matrix).
            models.Index(fields=["figure", "protocol", "port"], name="tally_port_idx"),
            models.Index(fields=["figure", "protocol", "name"], name="tally_name_idx"),
        ]

    def __str__(self):
        return f"{self.figure} {self.item}{self.where} {self.grain}s@{self.bucket:%Y-%m-%d %H:%M:%S}: {self.n}"


class TallyDelta(Count):
    """What one statement added to the counts, not yet folded into Tally (PostgreSQL).

    Triggers append here and never update a row, so concurrent ingests never
    wait for each other on a counter; ``tallies.maintenance.compact`` folds
    the committed rows into Tally every minute (beat). SQLite has one writer
    at a time: its triggers add to Tally directly.
    """

    class Meta:
        indexes = [
            # Readers read a figure's buckets of one grain, as in Tally.
            models.Index(fields=["figure", "grain", "bucket"], name="tallydelta_bucket_idx"),
            models.Index(fields=["figure", "protocol", "port"], name="tallydelta_port_idx"),
            models.Index(fields=["figure", "protocol", "name"], name="tallydelta_name_idx"),
        ]

    def __str__(self):
        return f"{self.figure} {self.item}{self.where} {self.grain}s@{self.bucket:%Y-%m-%d %H:%M:%S}: {self.n:+}"


class TallyRow(models.Model):
    """Tally and TallyDelta as one relation (a view): what readers sum.

    One statement reads both, in one snapshot, so a compaction committing
    meanwhile neither loses nor doubles a delta.
    """

    # A view has no key; Django wants one. Only ever read through values().
    figure = models.CharField(max_length=16, choices=Figure.choices, primary_key=True)
    item = models.CharField(max_length=64)
    protocol = models.CharField(max_length=4)
    port = models.PositiveIntegerField()
    name = models.CharField(max_length=64)
    grain = models.IntegerField()
    bucket = models.DateTimeField()
    n = models.BigIntegerField()

    class Meta:
        managed = False
        db_table = "tallies_tallyrow"

    def __str__(self):
        return f"{self.figure} {self.item}: {self.n}"
