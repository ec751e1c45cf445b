"""Forms of the scan engine. Every field is parsed into typed values here;
models only ever store the canonical text the parsers give back."""

import ipaddress

from django import forms
from django.conf import settings
from django.utils import timezone

from inventory.models import Zone
from inventory.ports import PortSet, PortSpecError
from reach.models import VantagePoint
from scans.choices import PortScope, ScanType, ScheduleKind, ScopeAction
from scans.constants import NSE_SCRIPT_ALLOWLIST
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

    class Meta:
        model = ScanProfile
        fields = [
            "name",
            "slug",
            "description",
            "scan_type",
            "port_scope",
            "top_ports",
            "version_detection",
            "timing",
            "max_retries",
            "resolve_names",
            "scripts",
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
        return cleaned


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
