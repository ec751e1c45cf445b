"""The rows' fast paths give exactly what Django's own functions give.

``portwatch.html.html`` / ``html_join`` stand in for ``format_html`` /
``format_html_join`` and ``portwatch.links.Link`` for ``reverse`` on every
row of the long lists; if either drifted from Django, a page would show
unescaped text from a scanned host or a wrong link. So each is compared with
Django's on hostile and unusual values, not just on the examples the pages use.
"""

import uuid
from datetime import UTC, date, datetime
from decimal import Decimal

import pytest
from django.urls import NoReverseMatch, reverse, set_script_prefix, set_urlconf
from django.utils.functional import lazy
from django.utils.html import format_html, format_html_join
from django.utils.safestring import SafeString, mark_safe

from inventory.choices import Decision, HostStatus, PolicyStatus, PortState, Protocol, RiskCategory, Severity
from inventory.models import HOST_URL, PORT_URL, RULE_URL, Host, PortRule, RiskRule, Service
from portwatch.choices_display import display
from portwatch.html import html, html_join
from portwatch.links import Link
from reach.models import VANTAGE_URL
from scans.choices import ChangeKind, Trigger
from scans.models import RUN_URL, Change, ScanRun

pytestmark = pytest.mark.sqlite


class Marked:
    """A third-party object that renders itself (the __html__ convention)."""

    def __html__(self):
        return "<b>kept</b>"

    def __str__(self):
        return "<b>str</b>"


class Plain:
    def __str__(self):
        return '<img src=x onerror="alert(1)">'


class TextSubclass(str):
    pass


lazy_text = lazy(lambda: "<i>lazy & late</i>", str)()

VALUES = [
    "",
    "plain",
    '"><script>alert(1)</script>',
    "it's & <that>",
    "\x00\u202e\ufeff𝔘",
    "{0} {} {name}",  # braces in a value are text, not format fields
    SafeString("<em>already safe</em>"),
    mark_safe("<strong>marked</strong>"),
    TextSubclass("<u>subclass</u>"),
    lazy_text,
    Marked(),
    Plain(),
    0,
    -7,
    65535,
    True,
    False,
    None,
    1.5,
    float("nan"),
    Decimal("1.10"),
    Protocol.TCP,
    PolicyStatus.REJECTED,
    date(2026, 12, 6),
    datetime(2026, 12, 6, 12, 0, tzinfo=UTC),
    uuid.UUID("12345678-1234-5678-1234-567812345678"),
    ["<a>", 1],
    {"k": "<v>"},
    b"<bytes>",
]


@pytest.mark.parametrize("value", VALUES, ids=repr)
def test_html_escapes_as_format_html(value):
    for template in ("{}", '<td class="x">{}</td>', "<a title='{0}'>{0}</a>"):
        ours, django = html(template, value), format_html(template, value)
        assert ours == django
        assert isinstance(ours, SafeString)


def test_html_join_is_format_html_join():
    rows = [(value, index) for index, value in enumerate(VALUES)]
    for sep in ("\n", "", "<br>", mark_safe("<hr>")):
        ours = html_join(sep, "<li>{} #{}</li>", iter(rows))
        assert ours == format_html_join(sep, "<li>{} #{}</li>", iter(rows))
        assert isinstance(ours, SafeString)
    assert html_join("\n", "{}", iter([])) == format_html_join("\n", "{}", iter([])) == ""


@pytest.mark.parametrize(
    ("link", "name", "args"),
    [
        (HOST_URL, "host-detail", [uuid.uuid4()]),
        (HOST_URL, "host-detail", [str(uuid.uuid4())]),
        (PORT_URL, "port-detail", [uuid.uuid4(), "tcp", 22]),
        (PORT_URL, "port-detail", [uuid.uuid4(), "udp", 65535]),
        (PORT_URL, "port-detail", [uuid.uuid4(), "a b%c?d#e", 0]),  # quoted as reverse quotes it
        (PORT_URL, "port-detail", [uuid.uuid4(), "é", "443"]),
        (RULE_URL, "rule-detail", [uuid.uuid4()]),
        (RUN_URL, "run-detail", [uuid.uuid4()]),
        (VANTAGE_URL, "vantage-detail", ["office-lan"]),
        (VANTAGE_URL, "vantage-detail", ["a_b-0"]),
        (Link("overview"), "overview", []),
    ],
)
def test_link_is_reverse(link, name, args):
    assert link(*args) == reverse(name, args=args)


@pytest.mark.parametrize(
    ("link", "args"),
    [
        (HOST_URL, ["not-a-uuid"]),
        (HOST_URL, [12]),
        (HOST_URL, []),
        (PORT_URL, [uuid.uuid4(), "tcp"]),
        (PORT_URL, [uuid.uuid4(), "tcp", "22x"]),
        (PORT_URL, [uuid.uuid4(), "a/b", 22]),  # str converters refuse a slash
        (PORT_URL, [uuid.uuid4(), "tcp", -1]),
        (VANTAGE_URL, ["no spaces"]),
        (VANTAGE_URL, ["<script>"]),
        (Link("no-such-page"), []),
    ],
)
def test_link_refuses_what_reverse_refuses(link, args):
    with pytest.raises(NoReverseMatch) as ours:
        link(*args)
    with pytest.raises(NoReverseMatch) as django:
        reverse(link.name, args=args)
    assert str(ours.value) == str(django.value)


def test_link_follows_the_script_prefix_and_a_request_urlconf():
    public_id = uuid.uuid4()
    try:
        set_script_prefix("/portwatch/")
        assert HOST_URL(public_id) == reverse("host-detail", args=[public_id]) == f"/portwatch/hosts/{public_id}/"
        set_script_prefix("/100%/")
        assert HOST_URL(public_id) == reverse("host-detail", args=[public_id])
    finally:
        set_script_prefix("/")
    try:
        # A per-request URLconf (request.urlconf) is reverse()'s business.
        set_urlconf("tests.urls_elsewhere")
        assert HOST_URL(public_id) == reverse("host-detail", args=[public_id]) == f"/elsewhere/{public_id}/"
    finally:
        set_urlconf(None)


def test_link_builds_the_site_urls_itself(monkeypatch, settings):
    """What the rows get during a request (Django sets ROOT_URLCONF for each) is built without reverse()."""

    def no_reverse(*args, **kwargs):
        raise AssertionError("reverse() was called")

    public_id = uuid.uuid4()
    expected = reverse("port-detail", args=[public_id, "tcp", 22])
    monkeypatch.setattr("portwatch.links.reverse", no_reverse)
    for urlconf in (None, settings.ROOT_URLCONF):
        try:
            set_urlconf(urlconf)
            assert PORT_URL(public_id, "tcp", 22) == expected
        finally:
            set_urlconf(None)


DISPLAYED = [
    (Host, "status", HostStatus),
    (Service, "state", PortState),
    (Change, "kind", ChangeKind),
    (ScanRun, "trigger", Trigger),
    (RiskRule, "severity", Severity),
    (RiskRule, "category", RiskCategory),
    (PortRule, "decision", Decision),
]


@pytest.mark.parametrize(("model", "name", "choices"), DISPLAYED, ids=lambda value: getattr(value, "__name__", value))
def test_display_is_get_foo_display(model, name, choices):
    field = model._meta.get_field(name)
    values = [value for value, _ in field.flatchoices]
    assert values
    # the enum members code assigns before saving, values outside the choices, nothing
    values += [*choices, "", "not-a-choice", "<b>", 0, 99, None]
    instance = model()
    for value in values:
        setattr(instance, name, value)
        assert display(instance, name) == getattr(instance, f"get_{name}_display")(), value
