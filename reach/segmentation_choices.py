"""Choices of segmentation rules, named once (apart from reach's other choices while the
vantage point pages are built in parallel; they may share ``reach/choices.py`` later)."""

from django.db import models


class SegmentationMode(models.TextChoices):
    """What a segmentation rule says about the vantage points it lists."""

    # Must not be reachable from the listed vantage points.
    DENY = "deny", "not reachable from"
    # Reachable only from the listed vantage points: any other reaching it is a violation.
    ONLY = "only", "reachable only from"
    # May be reachable from the listed vantage points, whatever a broader rule
    # says: the exception ("nothing in dc1 from office-lan, except 443").
    ALLOW = "allow", "may be reachable from"


# Modes that speak about every vantage point, listed or not (see reach.segmentation).
SPEAKS_FOR_ALL = frozenset({SegmentationMode.ONLY})
