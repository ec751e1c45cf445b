"""The default scan scope, and schedule kinds for targets saved before them."""

from django.db import migrations

# (network, action, reason, locked)
DEFAULT_SCOPE = [
    ("127.0.0.0/8", "allow", "IPv4 loopback", False),
    ("::1/128", "allow", "IPv6 loopback", False),
    ("10.0.0.0/8", "allow", "RFC 1918 private network", False),
    ("172.16.0.0/12", "allow", "RFC 1918 private network", False),
    ("192.168.0.0/16", "allow", "RFC 1918 private network", False),
    ("100.64.0.0/10", "allow", "RFC 6598 shared address space", False),
    ("fc00::/7", "allow", "IPv6 unique local addresses", False),
    ("169.254.0.0/16", "exclude", "IPv4 link-local, including cloud metadata 169.254.169.254", True),
    ("fe80::/10", "exclude", "IPv6 link-local", True),
    ("100.100.100.200/32", "exclude", "Alibaba Cloud metadata service", True),
    ("fd00:ec2::254/128", "exclude", "AWS IPv6 metadata service", True),
]


def create(apps, schema_editor):
    ScopeRule = apps.get_model("scans", "ScopeRule")
    for network, action, reason, locked in DEFAULT_SCOPE:
        ScopeRule.objects.get_or_create(network=network, defaults={"action": action, "reason": reason, "locked": locked})
    ScanTarget = apps.get_model("scans", "ScanTarget")
    ScanTarget.objects.filter(schedule_interval__isnull=False).update(schedule_kind="interval")


class Migration(migrations.Migration):
    dependencies = [("scans", "0003_scope_schedules_confirmation")]

    operations = [migrations.RunPython(create, migrations.RunPython.noop)]
