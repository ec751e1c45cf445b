"""The form renderer builds selects in Python: the same HTML as Django's templates, escaped the same way."""

import pytest
from django import forms
from django.forms.renderers import DjangoTemplates
from django.http import QueryDict

from alerts.forms import AlertRuleForm, ChannelForm, MuteForm
from inventory.filters import AuditFilter, HostFilter, ServiceFilter
from inventory.forms import AssignmentRuleForm, HostForm, PortRuleForm, ReviewForm, RiskRuleForm
from inventory.models import Tag, Zone
from portwatch.form_renderer import FormRenderer
from reach.segmentation_forms import SegmentationRuleFilter, SegmentationRuleForm, SegmentationViolationFilter
from scans.filters import ChangeFilter
from scans.forms import ScanProfileForm, ScanTargetForm, ScopeRuleForm

pytestmark = [pytest.mark.django_db, pytest.mark.sqlite]

HOSTILE = '"><script>alert(1)</script>&amp;'


def _both(field) -> tuple[str, str]:
    return (
        field.as_widget(renderer=DjangoTemplates()) if hasattr(field, "as_widget") else "",
        field.as_widget(renderer=FormRenderer()),
    )


def _forms():
    query = QueryDict("zone=dc1&tag=" + HOSTILE + "&kind=port_opened&kind=port_closed&risk=3&policy=unreviewed")
    for filterset in (
        HostFilter,
        ServiceFilter,
        ChangeFilter,
        AuditFilter,
        SegmentationRuleFilter,
        SegmentationViolationFilter,
    ):
        yield filterset.__name__, filterset(query).form
        yield filterset.__name__ + " unbound", filterset().form
    for form in (
        AlertRuleForm,
        ChannelForm,
        MuteForm,
        AssignmentRuleForm,
        HostForm,
        PortRuleForm,
        RiskRuleForm,
        ReviewForm,
        ScanProfileForm,
        ScanTargetForm,
        ScopeRuleForm,
        SegmentationRuleForm,
    ):
        try:
            yield form.__name__, form()
        except TypeError:  # a form that needs the request or a user: its fields are checked through the filters
            continue


def test_every_select_renders_as_django_renders_it():
    Zone.objects.create(name="dc1")
    Tag.objects.create(name=HOSTILE)
    Tag.objects.create(name="web")
    selects = 0
    for name, form in _forms():
        for bound in form:
            if not isinstance(bound.field.widget, forms.Select):
                continue
            selects += 1
            django_html = bound.as_widget(widget=bound.field.widget).__str__()
            ours = bound.field.widget.render(
                bound.html_name, bound.value(), bound.build_widget_attrs({}), FormRenderer()
            )
            theirs = bound.field.widget.render(
                bound.html_name, bound.value(), bound.build_widget_attrs({}), DjangoTemplates()
            )
            assert ours == theirs, (name, bound.name)
            assert "<script>" not in ours and django_html
    assert selects > 20


def test_optgroups_and_bare_attributes_render_as_django_renders_them():
    widget = forms.SelectMultiple(attrs={"size": 3, "required": True, "disabled": False, "data-x": HOSTILE})
    choices = [("", "any"), (HOSTILE, [("a", HOSTILE), ("b", "B")]), ("c", "C")]
    widget.choices = choices
    for value in (None, ["a", "c"], [HOSTILE]):
        assert widget.render("k", value, renderer=FormRenderer()) == widget.render(
            "k", value, renderer=DjangoTemplates()
        )


def test_other_widgets_still_go_through_the_templates():
    widget = forms.TextInput(attrs={"placeholder": HOSTILE})
    assert widget.render("q", HOSTILE, renderer=FormRenderer()) == widget.render(
        "q", HOSTILE, renderer=DjangoTemplates()
    )
