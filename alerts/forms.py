"""Forms of the alerts pages: channels, alert rules, mutes. Bad input writes nothing."""

import ipaddress
from urllib.parse import urlsplit

import apprise
from django import forms
from django.core.validators import validate_email
from django.utils import timezone

from alerts.addresses import AddressRefused, check_address, destination
from alerts.choices import ChannelKind, MuteScope, WorkerEvent
from alerts.models import AlertRule, Channel, Mute
from alerts.transports import TransportError, check_apprise_url, parse_recipients
from inventory.choices import NO_RISK, PolicyStatus, Severity
from inventory.models import Host, Tag, Zone
from listeners.choices import Scope
from reach.models import VantagePoint
from scans.choices import ChangeKind

MAX_RECIPIENTS = 20
RISK_CHOICES = [(NO_RISK, "any risk"), *((value, f"{label} or worse") for value, label in Severity.choices)]


def clean_network(value: str) -> str:
    value = value.strip()
    if not value:
        return ""
    try:
        return str(ipaddress.ip_network(value, strict=False))
    except ValueError:
        raise forms.ValidationError(f"“{value[:60]}” is not a network such as 10.1.0.0/16.") from None


class ChannelForm(forms.ModelForm):
    target = forms.CharField(
        label="Send to",
        required=False,
        max_length=2000,
        widget=forms.Textarea(attrs={"rows": 2}),
        help_text="Email: addresses separated by commas. Webhook: an http(s) URL. "
        "Chat or push: an Apprise URL such as slack://…, msteams://…, discord://…, tgram://…, ntfy://….",
    )
    rules = forms.ModelMultipleChoiceField(
        queryset=AlertRule.objects.all(),
        required=False,
        widget=forms.CheckboxSelectMultiple,
        label="Alert rules",
        help_text="The changes these rules select are sent to this channel.",
    )

    class Meta:
        model = Channel
        fields = ["name", "kind", "target", "mode", "digest_minutes", "allow_private", "enabled"]
        labels = {"digest_minutes": "Digest every (minutes)", "allow_private": "Allow private addresses"}

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["digest_minutes"].min_value = 1
        self.fields["digest_minutes"].max_value = 7 * 24 * 60
        self.fields["digest_minutes"].widget.attrs.update(min=1, max=7 * 24 * 60)
        if self.instance.pk:
            self.initial.setdefault("rules", list(self.instance.rules.all()))
            if self.instance.kind == ChannelKind.APPRISE and not self.is_bound:
                # The stored URL holds a token: it is never sent back to a browser.
                self.initial["target"] = ""
                self.fields["target"].help_text = "Leave empty to keep the current URL (hidden, it holds a token)."
        else:
            self.initial.setdefault("rules", list(AlertRule.objects.filter(built_in=True)))

    def clean_digest_minutes(self):
        value = self.cleaned_data["digest_minutes"]
        if value is None or not 1 <= value <= 7 * 24 * 60:
            raise forms.ValidationError("A digest is sent every 1 to 10,080 minutes (a week).")
        return value

    def clean(self):
        cleaned = super().clean()
        kind = cleaned.get("kind")
        target = (cleaned.get("target") or "").strip()
        allow_private = cleaned.get("allow_private", False)
        if kind == ChannelKind.APPRISE and not target and self.instance.pk and self.instance.kind == kind:
            target = self.instance.target
        if kind == ChannelKind.EMAIL:
            target = self._clean_recipients(target)
        elif kind == ChannelKind.WEBHOOK:
            self._check_webhook(target, allow_private)
        elif kind == ChannelKind.APPRISE:
            self._check_apprise(target, allow_private)
        elif kind == ChannelKind.LOG:
            target = ""
        cleaned["target"] = target
        self.instance.target = target
        return cleaned

    def _clean_recipients(self, target: str) -> str:
        recipients = parse_recipients(target)
        if not recipients:
            self.add_error("target", "Give at least one email address.")
        elif len(recipients) > MAX_RECIPIENTS:
            self.add_error("target", f"At most {MAX_RECIPIENTS} addresses per channel.")
        else:
            for address in recipients:
                try:
                    validate_email(address)
                except forms.ValidationError:
                    self.add_error("target", f"“{address[:80]}” is not an email address.")
                    break
        return ", ".join(recipients)

    def _check_webhook(self, url: str, allow_private: bool) -> None:
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            self.add_error("target", "A webhook URL starts with http:// or https:// and names a host.")
            return
        try:
            ipaddress.ip_address(parts.hostname)
        except ValueError:
            # A name: checked now if it resolves, and again (pinned) at every delivery.
            try:
                destination(url, allow_private=allow_private)
            except AddressRefused as error:
                if "does not resolve" not in str(error):
                    self.add_error("target", str(error))
            return
        try:
            check_address(parts.hostname, allow_private=allow_private)
            parts.port  # noqa: B018 - raises ValueError for a bad port
        except AddressRefused as error:
            self.add_error("target", str(error))
        except ValueError:
            self.add_error("target", "The URL's port is not a number from 1 to 65535.")

    def _check_apprise(self, url: str, allow_private: bool) -> None:
        if not url:
            self.add_error("target", "Give an Apprise URL, such as slack://TokenA/TokenB/TokenC.")
            return
        if not apprise.Apprise().add(url):
            self.add_error(
                "target", "Apprise does not recognise this URL; see https://github.com/caronc/apprise/wiki for formats."
            )
            return
        try:
            check_apprise_url(url, allow_private=allow_private)
        except TransportError as error:
            if "does not resolve" not in error.message:
                self.add_error("target", error.message)

    def save(self, commit=True):
        channel = super().save(commit=commit)
        if commit:
            channel.rules.set(self.cleaned_data["rules"])
        return channel


class AlertRuleForm(forms.ModelForm):
    kinds = forms.MultipleChoiceField(
        choices=[*ChangeKind.choices, *WorkerEvent.choices],
        required=False,
        widget=forms.CheckboxSelectMultiple,
        label="Changes",
        help_text="None ticked: every kind of change, and a vantage point's workers going silent or coming back.",
    )
    policy_statuses = forms.MultipleChoiceField(
        choices=PolicyStatus.choices,
        required=False,
        widget=forms.CheckboxSelectMultiple,
        label="Port policy",
        help_text="Only ports in these states (host changes have none). None ticked: any.",
    )
    min_risk = forms.TypedChoiceField(choices=RISK_CHOICES, coerce=int, initial=NO_RISK, label="Risk")
    tag = forms.ModelChoiceField(queryset=Tag.objects.all(), required=False, to_field_name="name")
    bind_scopes = forms.MultipleChoiceField(
        choices=Scope.choices,
        required=False,
        widget=forms.CheckboxSelectMultiple,
        label=AlertRule._meta.get_field("bind_scopes").verbose_name,
        help_text=AlertRule._meta.get_field("bind_scopes").help_text,
    )
    channels = forms.ModelMultipleChoiceField(
        queryset=Channel.objects.all(), required=False, widget=forms.CheckboxSelectMultiple
    )
    vantage_points = forms.ModelMultipleChoiceField(
        queryset=VantagePoint.objects.all(),
        required=False,
        widget=forms.CheckboxSelectMultiple,
        label="Seen from",
        help_text=AlertRule._meta.get_field("vantage_points").help_text,
    )

    class Meta:
        model = AlertRule
        fields = [
            "name",
            "enabled",
            "kinds",
            "policy_statuses",
            "min_risk",
            "zone",
            "tag",
            "cidr",
            "vantage_points",
            "home_only",
            "bind_scopes",
            "channels",
        ]
        help_texts = {"zone": "Only hosts of this zone.", "cidr": "Only hosts in this network, e.g. 10.1.0.0/16."}

    def clean_cidr(self):
        return clean_network(self.cleaned_data["cidr"])


class MuteForm(forms.ModelForm):
    tag = forms.ModelChoiceField(queryset=Tag.objects.all(), required=False, to_field_name="name")
    host_address = forms.GenericIPAddressField(label="Host address", required=False, unpack_ipv4=True)

    class Meta:
        model = Mute
        fields = ["scope", "zone", "tag", "cidr", "host_address", "starts_at", "ends_at", "reason"]
        help_texts = {"reason": "Shown with every change the mute holds back, e.g. the change ticket."}
        widgets = {
            "starts_at": forms.DateTimeInput(attrs={"type": "datetime-local"}, format="%Y-%m-%dT%H:%M"),
            "ends_at": forms.DateTimeInput(attrs={"type": "datetime-local"}, format="%Y-%m-%dT%H:%M"),
        }

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["zone"].queryset = Zone.objects.all()

    def clean_cidr(self):
        return clean_network(self.cleaned_data["cidr"])

    def clean_reason(self):
        reason = self.cleaned_data["reason"].strip()
        if not reason:
            raise forms.ValidationError("Say why: a reason is required.")
        return reason

    def clean(self):
        cleaned = super().clean()
        scope = cleaned.get("scope")
        needed = {MuteScope.ZONE: "zone", MuteScope.TAG: "tag", MuteScope.CIDR: "cidr", MuteScope.HOST: "host_address"}
        field = needed.get(scope)
        if field and not cleaned.get(field):
            self.add_error(field, f"A {MuteScope(scope).label.lower()} mute needs this field.")
        for name in ("zone", "tag"):
            if field != name:
                setattr(self.instance, name, None)
        if field != "cidr":
            cleaned["cidr"] = self.instance.cidr = ""
        self.instance.host = None
        if field == "host_address" and cleaned.get("host_address"):
            hosts = list(Host.objects.filter(address=cleaned["host_address"])[:2])
            if len(hosts) != 1:
                self.add_error(
                    "host_address",
                    "No host has this address." if not hosts else "Several zones have this address: mute by network.",
                )
            else:
                self.instance.host = hosts[0]
        starts, ends = cleaned.get("starts_at"), cleaned.get("ends_at")
        if starts and ends:
            if ends <= starts:
                self.add_error("ends_at", "The end must come after the start.")
            elif ends <= timezone.now():
                self.add_error("ends_at", "The end must be in the future.")
        return cleaned
