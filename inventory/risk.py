"""Risk of an exposed port, from the editable risk table (``RiskRule``).

A port matches the rule for its protocol and number, else a rule for the
service name nmap identified on it (Redis moved to port 7000 is still Redis).
The table is small: it is read once per request (``RiskTable.current``).
"""

from dataclasses import dataclass

from inventory.models import RiskRule


@dataclass(frozen=True)
class RiskTable:
    by_port: dict
    by_name: dict

    @classmethod
    def load(cls) -> "RiskTable":
        by_port, by_name = {}, {}
        for rule in RiskRule.objects.all():
            if rule.port is not None:
                by_port[(rule.protocol, rule.port)] = rule
            if rule.service_name:
                by_name.setdefault((rule.protocol, rule.service_name), rule)
        return cls(by_port, by_name)

    def for_port(self, protocol: str, port: int | None, name: str = "") -> RiskRule | None:
        if port is None:
            return None
        return self.by_port.get((protocol, port)) or (self.by_name.get((protocol, name)) if name else None)
