"""``address__in_cidr``: is an address within a network, in the database.

PostgreSQL stores GenericIPAddressField as ``inet`` and answers with its
``<<=`` operator. SQLite stores text: it calls ``pw_in_cidr``, a function
registered on each new connection (``register_sqlite_functions``). The
right-hand side may be a value (``"10.0.0.0/8"``) or a column (a rule's
``cidr``), so one lookup serves both the search box and the policy.
"""

import ipaddress
from functools import lru_cache

from django.db import models
from django.db.backends.signals import connection_created
from django.dispatch import receiver


class InCidr(models.Lookup):
    lookup_name = "in_cidr"

    def as_postgresql(self, compiler, connection):
        lhs, lhs_params = self.process_lhs(compiler, connection)
        rhs, rhs_params = self.process_rhs(compiler, connection)
        # NULLIF: rules of other scopes hold "" (no network), which is no match.
        return f"{lhs} <<= CAST(NULLIF({rhs}, '') AS inet)", (*lhs_params, *rhs_params)

    def as_sql(self, compiler, connection):
        lhs, lhs_params = self.process_lhs(compiler, connection)
        rhs, rhs_params = self.process_rhs(compiler, connection)
        return f"pw_in_cidr({lhs}, {rhs})", (*lhs_params, *rhs_params)

    def get_db_prep_lookup(self, value, connection):
        # The network is not an address: pass it through untouched.
        return ("%s", [value])


models.GenericIPAddressField.register_lookup(InCidr)


@lru_cache(maxsize=1024)
def _network(text: str):
    try:
        return ipaddress.ip_network(text, strict=False)
    except ValueError:
        return None


def in_cidr(address: str | None, cidr: str | None) -> bool:
    if not address or not cidr:
        return False
    network = _network(cidr)
    if network is None:
        return False
    try:
        return ipaddress.ip_address(address) in network
    except ValueError:
        return False


@receiver(connection_created)
def register_sqlite_functions(sender, connection, **kwargs):
    if connection.vendor == "sqlite":
        connection.connection.create_function("pw_in_cidr", 2, in_cidr, deterministic=True)
