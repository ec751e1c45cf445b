"""A real OpenLDAP server for the tests: Debian's slapd, on a free loopback port, in a temporary directory.

The directory holds people and groups the way a company's does: a viewer, a
reviewer, an admin (by group membership), someone in no PortWatch group, and
one whose uid collides with a local account. Group membership can be changed
while it runs (``move``), through the server itself (``ldapmodify``), so a
test can take a role away in the directory and watch the next login follow.
"""

import shutil
import subprocess
import time
from pathlib import Path

from tests.processes import _Process
from tests.stack import free_port

SLAPD = "/usr/sbin/slapd"
SUFFIX = "dc=portwatch,dc=test"
ADMIN_DN = f"cn=admin,{SUFFIX}"
ADMIN_PASSWORD = "directory-admin-secret"  # a throwaway test directory
PEOPLE = f"ou=people,{SUFFIX}"
GROUPS = f"ou=groups,{SUFFIX}"
GROUP_DNS = {role: f"cn=portwatch-{role}s,{GROUPS}" for role in ("viewer", "reviewer", "admin")}
PASSWORDS = {"vera": "vera-pass-1", "rex": "rex-pass-2", "ada": "ada-pass-3", "nobody": "nobody-pass-4", "admin": "x-5"}
MEMBERS = {"viewer": ["vera"], "reviewer": ["rex"], "admin": ["ada"]}

CONFIG = """\
include /etc/ldap/schema/core.schema
include /etc/ldap/schema/cosine.schema
include /etc/ldap/schema/inetorgperson.schema
include /etc/ldap/schema/nis.schema
modulepath /usr/lib/ldap
moduleload back_mdb
pidfile {root}/slapd.pid
database mdb
maxsize 16777216
suffix "{suffix}"
rootdn "{admin}"
rootpw {password}
directory {root}/data
"""


def _person(uid: str) -> str:
    return (
        f"dn: uid={uid},{PEOPLE}\nobjectClass: inetOrgPerson\nuid: {uid}\ncn: {uid.title()} Example\n"
        f"sn: Example\nmail: {uid}@portwatch.test\nuserPassword: {PASSWORDS[uid]}\n\n"
    )


def _group(role: str, members: list[str]) -> str:
    # groupOfNames needs a member at all times: the directory's admin stays in each, so a test can empty it.
    lines = f"member: {ADMIN_DN}\n" + "".join(f"member: uid={uid},{PEOPLE}\n" for uid in members)
    return f"dn: {GROUP_DNS[role]}\nobjectClass: groupOfNames\ncn: portwatch-{role}s\n{lines}\n"


def available() -> bool:
    return Path(SLAPD).exists() and shutil.which("slapadd") is not None and shutil.which("ldapmodify") is not None


class Slapd(_Process):
    def __init__(self, root: Path):
        self.root = root
        self.port = free_port()
        self.uri = f"ldap://127.0.0.1:{self.port}"
        (root / "data").mkdir(parents=True)
        config = root / "slapd.conf"
        config.write_text(CONFIG.format(root=root, suffix=SUFFIX, admin=ADMIN_DN, password=ADMIN_PASSWORD))
        entries = f"dn: {SUFFIX}\nobjectClass: dcObject\nobjectClass: organization\ndc: portwatch\no: PortWatch\n\n"
        entries += f"dn: {PEOPLE}\nobjectClass: organizationalUnit\nou: people\n\n"
        entries += f"dn: {GROUPS}\nobjectClass: organizationalUnit\nou: groups\n\n"
        entries += "".join(_person(uid) for uid in PASSWORDS)
        entries += "".join(_group(role, members) for role, members in MEMBERS.items())
        (root / "entries.ldif").write_text(entries)
        subprocess.run(
            ["slapadd", "-f", str(config), "-l", str(root / "entries.ldif")], check=True, capture_output=True
        )
        self.log_path = root / "slapd.log"
        self._log = open(self.log_path, "wb")  # noqa: SIM115 - closed in stop()
        # -d: stay in the foreground (logging what it does), so the test owns the process.
        self.process = subprocess.Popen(
            [SLAPD, "-f", str(config), "-h", f"{self.uri}/", "-d", "stats"],
            stdout=self._log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        deadline = time.monotonic() + 20
        while self._search("(uid=vera)").returncode != 0:
            if self.process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"slapd did not start:\n{self.log()[-3000:]}")
            time.sleep(0.2)

    def _search(self, query: str) -> subprocess.CompletedProcess:
        return subprocess.run(
            ["ldapsearch", "-x", "-H", self.uri, "-D", ADMIN_DN, "-w", ADMIN_PASSWORD, "-b", SUFFIX, query],
            capture_output=True,
            text=True,
        )

    def move(self, uid: str, *, leave: str | None = None, join: str | None = None) -> None:
        """Take ``uid`` out of one role's group and/or put it into another's, on the running server."""
        changes = ""
        if leave:
            changes += f"dn: {GROUP_DNS[leave]}\nchangetype: modify\ndelete: member\nmember: uid={uid},{PEOPLE}\n\n"
        if join:
            changes += f"dn: {GROUP_DNS[join]}\nchangetype: modify\nadd: member\nmember: uid={uid},{PEOPLE}\n\n"
        subprocess.run(
            ["ldapmodify", "-x", "-H", self.uri, "-D", ADMIN_DN, "-w", ADMIN_PASSWORD],
            input=changes,
            text=True,
            check=True,
            capture_output=True,
        )
