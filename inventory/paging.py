"""Pages of a list without counting it: ``COUNT(*)`` over a million filtered
ports costs more than the page itself, so a page fetches one row more than
it shows to know whether there is a next one."""

from dataclasses import dataclass

from django.core.exceptions import BadRequest

MAX_PAGE = 10_000


@dataclass
class Page:
    object_list: list
    number: int
    has_next: bool
    per_page: int

    @property
    def has_previous(self) -> bool:
        return self.number > 1

    @property
    def start_index(self) -> int:
        return (self.number - 1) * self.per_page + 1 if self.object_list else 0

    @property
    def end_index(self) -> int:
        return self.start_index + len(self.object_list) - 1 if self.object_list else 0


def page_of(queryset, page: str | None, per_page: int = 100) -> Page:
    try:
        number = int(page or 1)
    except ValueError:
        raise BadRequest("The page number must be a whole number.") from None
    if not 1 <= number <= MAX_PAGE:
        raise BadRequest(f"The page number must be between 1 and {MAX_PAGE}; narrow the filters instead.")
    start = (number - 1) * per_page
    rows = list(queryset[start : start + per_page + 1])
    return Page(rows[:per_page], number, len(rows) > per_page, per_page)
