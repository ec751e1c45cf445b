"""Forms of the scan engine. Every field is parsed into typed values here;
models only ever store the canonical text the parsers give back."""

import ipaddress

from django import forms
from django.conf import settings
from django.utils import timezone

from inventory.models import Zone
from inventory.ports import PortSet, PortSpecError
from reach.models import VantagePoint
from scans.choices import PortScope, ProfileKind, ScanType, ScheduleKind, ScopeAction
from scans.constants import MASSCAN_DEFAULT_RATE, NSE_SCRIPT_ALLOWLIST
from scans.models import ScanProfile, ScanTarget, ScopeRule
from scans.schedules import ScheduleError, parse_cron, parse_timezone
from scans.scope import Scope, ScopeError
from scans.targets import TargetSpecError, format_targets, parse_targets

MAX_SCHEDULE_MINUTES = 7 * 24 * 60
DEFAULT_PROFILE = "standard"


class VantagePointChoiceField(forms.ModelMultipleChoiceField):
    def label_from_instance(self, obj):
        return f"{obj.name} (home of zone {obj.home_of.name})" if obj.is_home else obj.name


class ScanTargetForm(forms.ModelForm):
    targets = forms.CharField(
        widget=forms.Textarea(attrs={"rows": 4, "spellcheck": "false"}),
        help_text=(
            "Addresses, networks (10.0.0.0/24), ranges (10.0.0.1-50) or hostnames, "
            "separated by spaces, commas or new lines."
        ),
    )
    ports = forms.CharField(
        required=False,
        widget=forms.TextInput(attrs={"spellcheck": "false", "placeholder": "e.g. 22,80,443,8000-8100"}),
        help_text="Ports and ranges within 1-65535. Leave empty to use the profile's ports.",
    )
    schedule_kind = forms.ChoiceField(choices=ScheduleKind.choices, label="Schedule")
    schedule_interval = forms.IntegerField(
        required=False,
        min_value=1,
        max_value=MAX_SCHEDULE_MINUTES,
        label="Every (minutes)",
        help_text="For “Every N minutes”: the first run starts at once.",
    )
    schedule_cron = forms.CharField(
        required=False,
        label="Cron expression",
        widget=forms.TextInput(attrs={"spellcheck": "false", "placeholder": "e.g. 0 2 * * * (every night at 02:00)"}),
        help_text="For “Cron expression”: minute hour day month weekday, in the time zone below.",
    )
    schedule_timezone = forms.CharField(label="Time zone", help_text="For cron schedules, e.g. UTC or Europe/Paris.")
    vantage_points = VantagePointChoiceField(
        queryset=VantagePoint.objects.none(),
        required=False,
        label="Scan from",
        widget=forms.SelectMultiple(attrs={"size": 4}),
        help_text="The vantage points to scan it from, one run each. None chosen: the zone's home.",
    )

    class Meta:
        model = ScanTarget
        fields = [
            "name",
            "zone",
            "targets",
            "ports",
            "profile",
            "vantage_points",
            "schedule_kind",
            "schedule_interval",
            "schedule_cron",
            "schedule_timezone",
            "enabled",
        ]

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["zone"].queryset = Zone.objects.all()
        self.fields["profile"].queryset = ScanProfile.objects.all()
        self.fields["vantage_points"].queryset = VantagePoint.objects.select_related("home_of")
        self.fields["zone"].empty_label = None
        self.fields["profile"].empty_label = None
        if not self.instance.pk:
            self.fields["zone"].initial = Zone.default()
            self.fields["profile"].initial = ScanProfile.objects.filter(slug=DEFAULT_PROFILE).first()
            self.fields["schedule_timezone"].initial = settings.TIME_ZONE

    def clean_targets(self):
        try:
            items = parse_targets(self.cleaned_data["targets"], max_addresses=settings.SCAN_MAX_TARGET_ADDRESSES)
            Scope.current().check_items(items)
        except (TargetSpecError, ScopeError) as error:
            raise forms.ValidationError(str(error), code="invalid_target") from None
        return format_targets(items)

    def clean_ports(self):
        text = self.cleaned_data.get("ports", "")
        if not text.strip():
            return ""
        try:
            return str(PortSet.parse(text))
        except PortSpecError as error:
            raise forms.ValidationError(str(error), code="invalid_ports") from None

    def clean_schedule_timezone(self):
        name = self.cleaned_data["schedule_timezone"].strip()
        try:
            parse_timezone(name)
        except ScheduleError as error:
            raise forms.ValidationError(str(error), code="invalid_timezone") from None
        return name

    def clean(self):
        cleaned = super().clean()
        kind = cleaned.get("schedule_kind")
        if kind == ScheduleKind.INTERVAL and not cleaned.get("schedule_interval"):
            self.add_error("schedule_interval", "Enter the number of minutes between runs.")
        if kind == ScheduleKind.CRON:
            try:
                cleaned["schedule_cron"] = parse_cron(cleaned.get("schedule_cron", ""))
            except ScheduleError as error:
                self.add_error("schedule_cron", str(error))
        profile, zone = cleaned.get("profile"), cleaned.get("zone")
        if profile is not None and profile.is_fast_discovery and zone is not None:
            chosen = list(cleaned.get("vantage_points") or []) or [VantagePoint.home(zone)]
            remote = [vantage.name for vantage in chosen if vantage.remote]
            if remote:
                self.add_error(
                    "profile",
                    f"Fast discovery runs masscan on a central or zone worker; {', '.join(remote)} "
                    "is scanned by a remote scanner, which runs nmap only. Choose an nmap profile, "
                    "or scan from a vantage point with workers.",
                )
        if kind != ScheduleKind.INTERVAL:
            cleaned["schedule_interval"] = None
        if kind != ScheduleKind.CRON:
            cleaned["schedule_cron"] = ""
        return cleaned

    def save(self, commit=True):
        target = super().save(commit=False)
        schedule_fields = {"schedule_kind", "schedule_interval", "schedule_cron", "schedule_timezone"}
        if schedule_fields & set(self.changed_data) or (
            target.next_run_at is None and target.schedule_kind != "manual"
        ):
            target.next_run_at = target.schedule.first_slot(timezone.now())
        if commit:
            target.save()
            self.save_m2m()  # where it is scanned from
        return target


class ScanProfileForm(forms.ModelForm):
    """Admins compose profiles from vetted fields; there is no free-text option."""

    scripts = forms.MultipleChoiceField(
        choices=sorted(NSE_SCRIPT_ALLOWLIST.items()),
        required=False,
        widget=forms.CheckboxSelectMultiple,
        help_text="Read-only NSE scripts; their output is shown on the host page.",
    )
    top_ports = forms.IntegerField(min_value=1, max_value=65535, initial=1000)
    max_retries = forms.IntegerField(min_value=0, max_value=10, initial=2)
    # Not required: a form or API client that predates fast discovery gets an nmap profile.
    kind = forms.ChoiceField(choices=ProfileKind.choices, initial=ProfileKind.NMAP, label="Kind", required=False)
    masscan_rate = forms.IntegerField(
        required=False,
        min_value=1,
        initial=MASSCAN_DEFAULT_RATE,
        label="masscan rate (packets/s)",
        help_text="Fast discovery: how fast masscan sweeps.",
    )
    discover_hosts = forms.BooleanField(
        required=False,
        initial=True,
        label="Find live hosts first",
        help_text=(
            "Fast discovery: sweep every port only of the addresses that answer a ping or a SYN to 80/443, "
            "as nmap's host discovery does. Off: every address on every port (addresses x ports / rate seconds)."
        ),
    )

    class Meta:
        model = ScanProfile
        fields = [
            "name",
            "slug",
            "description",
            "kind",
            "scan_type",
            "port_scope",
            "top_ports",
            "version_detection",
            "timing",
            "max_retries",
            "resolve_names",
            "scripts",
            "masscan_rate",
            "discover_hosts",
        ]
        help_texts = {
            "slug": "Short identifier, e.g. web-fast.",
            "port_scope": "Used when a target has no ports of its own.",
        }

    def clean(self):
        cleaned = super().clean()
        if cleaned.get("port_scope") == PortScope.TOP and not cleaned.get("top_ports"):
            self.add_error("top_ports", "Enter how many of the most common ports to scan.")
        if cleaned.get("scan_type") == ScanType.UDP and cleaned.get("port_scope") == PortScope.ALL:
            self.add_error("port_scope", "A UDP scan of all 65,535 ports takes days; choose the most common ports.")
        if cleaned.get("kind") == ProfileKind.FAST_DISCOVERY:
            if cleaned.get("scan_type") == ScanType.UDP:
                self.add_error(
                    "scan_type", "Fast discovery sweeps TCP ports: choose a TCP scan type for nmap's confirm."
                )
            if cleaned.get("port_scope") == PortScope.TOP:
                self.add_error(
                    "port_scope",
                    "Fast discovery sweeps all 65,535 TCP ports (or the target's own ports): masscan has no list "
                    "of the most common ones. Choose all ports.",
                )
        return cleaned

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["masscan_rate"].help_text += f" At most {settings.MASSCAN_MAX_RATE:,} (MASSCAN_MAX_RATE)."

    def clean_kind(self):
        return self.cleaned_data.get("kind") or ProfileKind.NMAP

    def clean_masscan_rate(self):
        rate = self.cleaned_data.get("masscan_rate")
        if rate is None:
            return min(MASSCAN_DEFAULT_RATE, settings.MASSCAN_MAX_RATE)
        if rate > settings.MASSCAN_MAX_RATE:
            raise forms.ValidationError(
                f"{rate:,} packets/s is above the ceiling of {settings.MASSCAN_MAX_RATE:,} that the administrator "
                "set (MASSCAN_MAX_RATE).",
                code="rate_above_ceiling",
            )
        return rate


def canonical_network(text: str) -> str:
    """How a scope rule stores a network: ``203.0.113.7/24`` is ``203.0.113.0/24``."""
    text = text.strip()
    try:
        return str(ipaddress.ip_network(text, strict=False))
    except ValueError:
        raise forms.ValidationError(f"{text[:60]!r} is not an address or a network.", code="invalid") from None


class ScopeRuleForm(forms.ModelForm):
    class Meta:
        model = ScopeRule
        fields = ["network", "action", "reason"]
        help_texts = {"network": "An address or a network such as 203.0.113.0/24 or 2001:db8::/64."}

    def clean_network(self):
        canonical = canonical_network(self.cleaned_data["network"])
        if ScopeRule.objects.filter(network=canonical).exists():
            raise forms.ValidationError(f"There is already a rule for {canonical}.")
        return canonical

    def clean(self):
        cleaned = super().clean()
        network = cleaned.get("network")
        if network and cleaned.get("action") == ScopeAction.ALLOW and ipaddress.ip_network(network).prefixlen < 8:
            self.add_error(
                "network", "Allowing so large a part of the address space is refused; allow the networks you own."
            )
        return cleaned


class ImportForm(forms.Form):
    file = forms.FileField(
        label="Scan file",
        help_text="nmap XML (nmap -oX, any version), or masscan's XML (-oX) or JSON (-oJ, -oD).",
    )
    zone = forms.ModelChoiceField(queryset=Zone.objects.all(), empty_label=None)

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["zone"].initial = Zone.default()
        self.fields["file"].help_text += f" At most {settings.IMPORT_MAX_BYTES // (1024 * 1024)} MB."

    def clean_file(self):
        upload = self.cleaned_data["file"]
        if upload.size > settings.IMPORT_MAX_BYTES:
            raise forms.ValidationError(
                f"The file is {upload.size / 1048576:.1f} MB; imports are limited to "
                f"{settings.IMPORT_MAX_BYTES / 1048576:.0f} MB (IMPORT_MAX_BYTES).",
                code="too_large",
            )
        return upload
