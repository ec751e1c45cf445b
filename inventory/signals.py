"""Signals the inventory sends to what builds on it (the inventory imports none of them)."""

from django.dispatch import Signal

# The tags or zone of some hosts changed, and their ports were re-evaluated
# (``inventory.policy.evaluate_hosts``). Sent with: hosts (a queryset), inside
# the transaction that changed them. Rules of other kinds scoped by tag or
# zone follow (``reach.segmentation``).
hosts_rescoped = Signal()
