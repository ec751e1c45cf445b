"""``reverse()`` for the links a list repeats on every row, without its per-call set-up.

``reverse("host-detail", args=[id])`` resolves the name, converts the
arguments, then formats a regular expression of the whole route, looks it up
in ``re``'s cache and searches the result with it: about 40 µs a call. A page
of hosts, ports or changes makes a hundred or more such calls (each row
links its host, its port, its run), a tenth of a list page's CPU time under
load.

``Link(name)(*args)`` does the same steps with what does not change between
calls read once: the route's format string, its converters and its compiled
expression (per URLconf and script prefix). So it returns exactly what
``reverse(name, args=args)`` returns (tests/test_row_fastpaths.py holds the
two to each other), and anything it does not handle (a namespaced name, a
name with several routes, arguments that do not fit) goes through
``reverse`` itself, errors included.
"""

import re
from urllib.parse import quote

from django.urls import get_resolver, get_script_prefix, get_urlconf, reverse
from django.utils.http import RFC3986_SUBDELIMS, escape_leading_slashes

# reverse()'s quoting: the safe characters of RFC 3986's pchar.
_SAFE = RFC3986_SUBDELIMS + "/~:@"
_NOT_HANDLED = object()


class Link:
    def __init__(self, name: str):
        self.name = name
        # Read at the first call for each URLconf (Django sets ROOT_URLCONF, or a
        # request's own, for every request; the URLconf loads after the models).
        self._routes = {}

    def _read_route(self, urlconf):
        if ":" in self.name:
            return _NOT_HANDLED
        possibilities = get_resolver(urlconf).reverse_dict.getlist(self.name)
        if len(possibilities) != 1 or len(possibilities[0][0]) != 1:
            return _NOT_HANDLED
        ((result, params),), pattern, _defaults, converters = possibilities[0]
        return result, params, pattern, converters, {}

    def __call__(self, *args) -> str:
        urlconf = get_urlconf()
        route = self._routes.get(urlconf)
        if route is None:
            route = self._routes[urlconf] = self._read_route(urlconf)
        if route is _NOT_HANDLED or len(args) != len(route[1]):
            return reverse(self.name, args=args)
        result, params, pattern, converters, compiled = route
        texts = {}
        for param, value in zip(params, args, strict=True):
            converter = converters.get(param)
            if converter is None:
                texts[param] = str(value)
                continue
            try:
                texts[param] = converter.to_url(value)
            except ValueError:
                return reverse(self.name, args=args)
        prefix = get_script_prefix()
        regex = compiled.get(prefix)
        if regex is None:
            regex = compiled[prefix] = re.compile(f"^{re.escape(prefix)}{pattern}")
        candidate = prefix + result % texts
        if regex.search(candidate) is None:
            return reverse(self.name, args=args)  # raises NoReverseMatch, as it would have
        return escape_leading_slashes(quote(candidate, safe=_SAFE))
