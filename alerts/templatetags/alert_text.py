"""Escaping of text scanned hosts control, for the media that are not HTML.

HTML is autoescaped by Django. Plain text has no markup, but a hostname with
a line break could forge a line of the message, and bidirectional overrides
could make it read differently than it is: both are replaced. Chat tools
(through Apprise, sent as Markdown) also interpret Markdown, Slack's
``<url|text>`` links and ``<!channel>`` pings, and ``@everyone`` mentions.
"""

import re

from django import template

register = template.Library()

# C0 and C1 controls, line and paragraph separators, bidi embeddings/overrides/isolates.
_CONTROL = re.compile("[\x00-\x1f\x7f-\x9f\u2028\u2029\u202a-\u202e\u2066-\u2069]")
_MARKDOWN = re.compile(r"([\\`*_~\[\](){}#+\-.!|])")


@register.filter
def plain(value) -> str:
    """One line of text, with control characters replaced."""
    return _CONTROL.sub("\ufffd", "" if value is None else str(value))


@register.filter
def chat(value) -> str:
    """Text for a Markdown chat message: no markup, links, pings or mentions survive."""
    text = plain(value)
    # Angle brackets start Slack links and pings; @ starts mentions (a zero-width
    # space after it breaks them); the rest is Markdown, escaped with backslashes.
    text = text.replace("<", "\u2039").replace(">", "\u203a").replace("&", "\uff06").replace("@", "@\u200b")
    return _MARKDOWN.sub(r"\\\1", text)
