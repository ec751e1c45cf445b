"""The top bar's navigation: its groups, their links, and which one is the current page.

One list, read by ``base.html`` through the ``navigation`` context processor,
so that a new page is added in one place and the current-page mark (and the
role a link needs) cannot drift from the links themselves.
"""

from dataclasses import dataclass
from functools import cache

from portwatch.links import Link as UrlLink
from portwatch.roles import Role, role_of


@dataclass(frozen=True)
class Link:
    title: str
    url_name: str
    role: Role = Role.VIEWER


GROUPS: list[tuple[str, list[Link]]] = [
    (
        "Inventory",
        [
            Link("Overview", "overview"),
            Link("Hosts", "host-list"),
            Link("Ports", "port-list"),
            Link("Exposure", "exposure-matrix"),
            Link("Certificates", "certificate-list"),
            Link("Zones", "zone-list"),
            Link("Vantage points", "vantage-list"),
            Link("Tags", "assignment-list"),
        ],
    ),
    (
        "Review",
        [
            Link("Review queue", "review-queue"),
            Link("Changes", "change-list"),
            Link("Rules", "rule-list"),
            Link("Segmentation", "segmentation-rule-list"),
            Link("Risks", "risk-list"),
        ],
    ),
    (
        "Scans",
        [
            Link("Targets", "target-list"),
            Link("Runs", "run-list"),
            Link("Profiles", "profile-list"),
            Link("Scope", "scope"),
            Link("Import a scan", "import", Role.ADMIN),
            Link("Host report", "listener-upload", Role.REVIEWER),
        ],
    ),
    ("Alerts", [Link("Notifications", "notification-list")]),
    (
        "Settings",
        [
            Link("Your settings", "personal-settings"),
            Link("Audit log", "audit-list"),
            Link("Lockouts", "lockout-list", Role.ADMIN),
            Link("API token", "api-token"),
            Link("Password", "password_change"),
        ],
    ),
]


# Every page reverses every link of the menu (portwatch.links: without reverse()'s per-call set-up).
_link = cache(UrlLink)


@dataclass(frozen=True)
class NavLink:
    title: str
    url: str
    current: bool


def _owner(path: str, urls: list[str]) -> str | None:
    """The link whose address is the longest prefix of ``path`` ("/" only for itself): a host's page is under Hosts."""
    owners = [url for url in urls if (path == url if url == "/" else path.startswith(url))]
    return max(owners, key=len, default=None)


def navigation(request) -> dict:
    """``nav_groups``: [(group title, [NavLink, ...], holds the current page)] for the signed-in user."""
    user = getattr(request, "user", None)
    if user is None or not user.is_authenticated:
        return {}
    role = role_of(user)
    visible = [
        (title, [(_link(link.url_name)(), link) for link in links if role >= link.role]) for title, links in GROUPS
    ]
    current = _owner(request.path, [url for _, pairs in visible for url, _ in pairs])
    groups = []
    for title, pairs in visible:
        links = [NavLink(link.title, url, url == current) for url, link in pairs]
        if links:
            groups.append((title, links, any(link.current for link in links)))
    return {"nav_groups": groups}
