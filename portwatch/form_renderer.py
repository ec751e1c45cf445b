"""Django's form renderer, with ``<select>`` built in Python.

Every list page carries a filter form whose selects (zones, tags, kinds,
risks...) Django renders through a template per option: the selects were a
fifth of a list page's CPU time under load. ``render`` builds exactly the
HTML of Django's ``select.html`` / ``select_option.html`` / ``attrs.html``
(escaped as ``format_html`` escapes, by ``portwatch.html``;
tests/test_form_renderer.py holds the two to the same output) and hands
every other widget to the templates.

Settings: ``FORM_RENDERER = "portwatch.form_renderer.FormRenderer"``.
"""

from django.forms.renderers import DjangoTemplates
from django.utils.safestring import mark_safe

from portwatch.html import html, html_join

SELECT = "django/forms/widgets/select.html"
OPTION = "django/forms/widgets/select_option.html"
CLOSE = mark_safe("\n</select>")  # a constant, nothing to escape


def joined(parts) -> str:
    """Safe pieces joined (each one already escaped by html())."""
    return html_join("", "{}", ((part,) for part in parts))


def attrs(values: dict) -> str:
    """`` name="value"`` for each attribute; True: the bare name; False: left out (as attrs.html)."""
    parts = []
    for name, value in values.items():
        if value is True:
            parts.append(html(" {}", name))
        elif value is not False:
            parts.append(html(' {}="{}"', name, value))
    return joined(parts)


def option(widget: dict) -> str:
    # The option template ends in a newline, which Django's output keeps.
    return html('<option value="{}"{}>{}</option>\n', widget["value"], attrs(widget["attrs"]), widget["label"])


def select(widget: dict) -> str:
    parts = [html('<select name="{}"{}>', widget["name"], attrs(widget["attrs"]))]
    for group_name, group_choices, _ in widget["optgroups"]:
        options = html_join("", "\n  {}", ((option(choice),) for choice in group_choices))
        if group_name:
            parts.append(html('\n  <optgroup label="{}">{}\n  </optgroup>', group_name, options))
        else:
            parts.append(options)
    parts.append(CLOSE)
    return joined(parts)


class FormRenderer(DjangoTemplates):
    def render(self, template_name, context, request=None):
        widget = context.get("widget")
        if template_name == SELECT and all(
            choice.get("template_name") == OPTION for _, choices, _ in widget["optgroups"] for choice in choices
        ):
            return select(widget)
        return super().render(template_name, context, request=request)
