"""A segmentation rule's violations are worked out by a worker, never lost, never twice.

The page saves and audits; a real Celery worker, nudged when the save
commits, brings the violations in line. A nudge the broker never took
leaves the judgement in the database for beat's periodic task; judging a
rule again records nothing more; a worker that fails halfway leaves the
judgement queued (its transaction rolls back with the violations it began).
"""

import pytest
from django.urls import reverse

from inventory.ports import PortSet
from reach import segmentation, segmentation_writes
from reach.models import RuleJudgement, SegmentationRule, SegmentationViolation, VantagePoint
from reach.tasks import settle_segmentation_rules
from scans.models import Change
from tests.factories import scan
from tests.processes import wait_for

A, B = "198.18.46.1", "198.18.46.2"
ALL_PORTS = {"tcp": PortSet.parse("1-65535")}


def rule_form(office, **fields) -> dict:
    data = {
        "mode": "deny",
        "vantage_points": [str(office.pk)],
        "scope": "global",
        "protocol": "tcp",
        "port_start": "5432",
        "justification": "no databases from the office",
    }
    data.update(fields)
    return data


def violations() -> set:
    return set(SegmentationViolation.objects.values_list("host__address", "port", "rule__mode"))


@pytest.mark.django_db(transaction=True)
def test_a_rule_saved_on_the_page_is_judged_by_a_real_worker(celery_worker, client, admin):
    office = VantagePoint.objects.create(name="office-lan")
    scan(office, {A: {5432: "open"}, B: {5432: "open"}}, probed=ALL_PORTS)
    client.force_login(admin)
    assert client.post(reverse("segmentation-rule-create"), rule_form(office)).status_code == 302
    wait_for(
        lambda: not RuleJudgement.objects.exists(), 60, message=f"the worker to judge; log:\n{celery_worker.log()}"
    )
    assert violations() == {(A, 5432, "deny"), (B, 5432, "deny")}
    assert Change.objects.filter(kind="segmentation_violated").count() == 2

    # Removed on the page: the worker lets the violations go and deletes the rule.
    rule = SegmentationRule.objects.get()
    assert client.post(reverse("segmentation-rule-delete", args=[rule.public_id])).status_code == 302
    wait_for(
        lambda: not SegmentationRule.objects.exists(), 60, message=f"the worker to remove; log:\n{celery_worker.log()}"
    )
    assert violations() == set() and Change.objects.filter(kind="segmentation_kept").count() == 2


@pytest.mark.django_db
@pytest.mark.sqlite
def test_a_nudge_the_broker_refused_leaves_the_judgement_for_beat(
    client, admin, monkeypatch, caplog, django_capture_on_commit_callbacks
):
    office = VantagePoint.objects.create(name="office-lan")
    scan(office, {A: {5432: "open"}}, probed=ALL_PORTS)

    def broker_down():
        raise ConnectionRefusedError("Redis is restarting")

    monkeypatch.setattr(settle_segmentation_rules, "delay", broker_down)
    client.force_login(admin)
    with django_capture_on_commit_callbacks(execute=True):
        response = client.post(reverse("segmentation-rule-create"), rule_form(office))
    assert response.status_code == 302  # the save stands; the person is not told of the broker
    assert "could not reach the broker" in caplog.text
    assert RuleJudgement.objects.count() == 1 and violations() == set()
    settle_segmentation_rules.apply()  # beat's periodic run
    assert violations() == {(A, 5432, "deny")} and not RuleJudgement.objects.exists()


@pytest.mark.django_db
@pytest.mark.sqlite
def test_judging_a_rule_again_records_nothing_more(admin):
    office = VantagePoint.objects.create(name="office-lan")
    scan(office, {A: {5432: "open"}, B: {5432: "open"}}, probed=ALL_PORTS)
    rule = SegmentationRule.objects.create(
        scope="global", protocol="tcp", port_start=5432, port_end=5432, mode="deny", justification="x"
    )
    rule.vantage_points.set([office])
    # Two saves before any worker ran (a redelivered nudge, two workers): two judgements of one rule.
    segmentation_writes.queue_judgement(rule)
    segmentation_writes.queue_judgement(rule)
    assert segmentation_writes.judge_pending() == 2
    assert len(violations()) == 2 and Change.objects.filter(kind="segmentation_violated").count() == 2


@pytest.mark.django_db
@pytest.mark.sqlite
def test_a_judgement_that_fails_halfway_stays_queued_and_writes_nothing(admin, monkeypatch):
    office = VantagePoint.objects.create(name="office-lan")
    scan(office, {A: {5432: "open"}}, probed=ALL_PORTS)
    rule = SegmentationRule.objects.create(
        scope="global", protocol="tcp", port_start=5432, port_end=5432, mode="deny", justification="x"
    )
    rule.vantage_points.set([office])
    segmentation_writes.queue_judgement(rule)
    real = segmentation._record

    def dies_after_recording(*args, **kwargs):
        real(*args, **kwargs)
        raise MemoryError("the worker died")

    monkeypatch.setattr(segmentation, "_record", dies_after_recording)
    with pytest.raises(MemoryError):
        segmentation_writes.judge_pending()
    assert RuleJudgement.objects.count() == 1
    assert violations() == set() and not Change.objects.filter(kind="segmentation_violated").exists()
    monkeypatch.setattr(segmentation, "_record", real)
    assert segmentation_writes.judge_pending() == 1
    assert violations() == {(A, 5432, "deny")} and Change.objects.filter(kind="segmentation_violated").count() == 1


@pytest.mark.django_db
@pytest.mark.sqlite
def test_an_edit_judges_what_the_rule_governed_before_and_after(admin):
    office = VantagePoint.objects.create(name="office-lan")
    scan(office, {A: {5432: "open", 6379: "open"}}, probed=ALL_PORTS)
    rule = SegmentationRule.objects.create(
        scope="global", protocol="tcp", port_start=5432, port_end=5432, mode="deny", justification="x"
    )
    rule.vantage_points.set([office])
    segmentation_writes.queue_judgement(rule)
    segmentation_writes.judge_pending()
    assert violations() == {(A, 5432, "deny")}
    before = SegmentationRule.objects.get(pk=rule.pk)
    rule.port_start = rule.port_end = 6379
    rule.save()
    segmentation_writes.queue_judgement(rule, before)
    segmentation_writes.judge_pending()
    # The old port's violation ended, the new one's began.
    assert violations() == {(A, 6379, "deny")}
    assert Change.objects.filter(kind="segmentation_kept").count() == 1
