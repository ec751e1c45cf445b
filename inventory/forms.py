import ipaddress
import re

from django import forms
from django.core.validators import MaxValueValidator, MinValueValidator
from django.utils import timezone

from inventory import binds
from inventory.choices import Decision, RuleScope
from inventory.constants import PORT_MAX, PORT_MIN
from inventory.models import AssignmentRule, Host, HostTag, PortRule, RiskRule, Tag, Zone
from inventory.review import DecisionRequest

_TAG = re.compile(r"^[a-z0-9][a-z0-9_-]{0,62}$")
MAX_TAGS = 50


class ZoneForm(forms.ModelForm):
    class Meta:
        model = Zone
        fields = ["name", "description", "central"]
        help_texts = {"name": "Lower-case letters, digits and dashes, e.g. dc1. Its scan queue is scan.<name>."}


class RiskRuleForm(forms.ModelForm):
    class Meta:
        model = RiskRule
        fields = ["protocol", "port", "service_name", "label", "category", "severity"]

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["port"].min_value = PORT_MIN
        self.fields["port"].max_value = PORT_MAX
        self.fields["port"].validators += [MinValueValidator(PORT_MIN), MaxValueValidator(PORT_MAX)]
        self.fields["port"].widget.attrs.update(min=PORT_MIN, max=PORT_MAX)
        if self.instance.builtin:
            # A built-in rule keeps what it matches; its label and severity are yours.
            for name in ("protocol", "port", "service_name"):
                self.fields[name].disabled = True

    def clean_service_name(self):
        return self.cleaned_data["service_name"].strip().lower()

    def clean(self):
        cleaned = super().clean()
        if cleaned.get("port") is None and not cleaned.get("service_name") and not self.has_error("port"):
            raise forms.ValidationError("Give a port, a service name, or both.")
        return cleaned


def parse_tag_names(text: str) -> list[str]:
    """``"web, pci"`` -> ["web", "pci"]; raises ValidationError for a name that is not a slug."""
    names = []
    for raw in text.replace(",", " ").split():
        name = raw.strip().lower()
        if not _TAG.match(name):
            raise forms.ValidationError(
                f"“{raw[:40]}” is not a tag name: use lower-case letters, digits and dashes (at most 63)."
            )
        if name not in names:
            names.append(name)
    if len(names) > MAX_TAGS:
        raise forms.ValidationError(f"At most {MAX_TAGS} tags.")
    return names


def tags_named(names: list[str]) -> list[Tag]:
    existing = {tag.name: tag for tag in Tag.objects.filter(name__in=names)}
    return [existing.get(name) or Tag.objects.create(name=name) for name in names]


class HostForm(forms.ModelForm):
    tag_names = forms.CharField(
        label="Tags", required=False, help_text="Separated by spaces or commas, e.g. web pci. New tags are created."
    )

    class Meta:
        model = Host
        fields = ["name", "zone", "owner"]
        help_texts = {"zone": "Moving a host to another zone keeps its ports and history."}

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        if self.instance.pk and not self.is_bound:
            manual = HostTag.objects.filter(host=self.instance, rule__isnull=True).select_related("tag")
            self.initial["tag_names"] = " ".join(sorted(item.tag.name for item in manual))

    def clean_tag_names(self):
        return parse_tag_names(self.cleaned_data["tag_names"])

    def clean(self):
        cleaned = super().clean()
        zone = cleaned.get("zone")
        if (
            zone
            and zone.pk != self.instance.zone_id
            and Host.objects.filter(zone=zone, address=self.instance.address).exists()
        ):
            self.add_error("zone", f"Zone {zone} already has a host {self.instance.address}.")
        return cleaned


class ScopedRuleForm(forms.ModelForm):
    """What forms of rules scoped like port rules share: the scope's fields, the ports, a justification.

    Subclasses name their model and fields in ``Meta`` (``PortRuleForm``, ``reach``'s segmentation rules).
    """

    ticket = forms.URLField(
        required=False, max_length=500, assume_scheme="https", help_text="Link to the ticket or change request."
    )
    tag = forms.ModelChoiceField(queryset=Tag.objects.all(), required=False, to_field_name="name")
    host_address = forms.GenericIPAddressField(label="Host address", required=False, unpack_ipv4=True)
    host_zone = forms.ModelChoiceField(queryset=Zone.objects.all(), required=False, label="Host's zone")

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        for name in ("port_start", "port_end"):
            self.fields[name].min_value = PORT_MIN
            self.fields[name].max_value = PORT_MAX
            self.fields[name].validators += [MinValueValidator(PORT_MIN), MaxValueValidator(PORT_MAX)]
            self.fields[name].widget.attrs.update(min=PORT_MIN, max=PORT_MAX)
        self.fields["port_end"].required = False
        if self.instance.pk and self.instance.host_id and not self.is_bound:
            self.initial["host_address"] = self.instance.host.address
            self.initial["host_zone"] = self.instance.host.zone

    def clean_justification(self):
        text = self.cleaned_data["justification"].strip()
        if not text:
            raise forms.ValidationError("Say why: a justification is required.")
        return text

    def clean(self):
        cleaned = super().clean()
        scope = cleaned.get("scope")
        if cleaned.get("port_start") is not None and cleaned.get("port_end") is None:
            cleaned["port_end"] = self.instance.port_end = cleaned["port_start"]
        # Keep only the field of the chosen scope; ask for it when missing.
        needed = {RuleScope.ZONE: "zone", RuleScope.TAG: "tag", RuleScope.CIDR: "cidr"}
        for other in ("zone", "tag"):
            if needed.get(scope) != other:
                cleaned[other] = None
                setattr(self.instance, other, None)
        if scope != RuleScope.CIDR:
            cleaned["cidr"] = self.instance.cidr = ""
        if scope in needed and not cleaned.get(needed[scope]) and not self.has_error(needed[scope]):
            self.add_error(needed[scope], "Required for this scope.")
        self.instance.host = None
        if scope == RuleScope.HOST:
            address, zone = cleaned.get("host_address"), cleaned.get("host_zone")
            host = Host.objects.filter(address=address, **({"zone": zone} if zone else {})).first()
            if not address:
                self.add_error("host_address", "Required for a single-host scope.")
            elif host is None:
                self.add_error("host_address", f"No known host {address}{f' in zone {zone}' if zone else ''}.")
            else:
                self.instance.host = host
        return cleaned


class PortRuleForm(ScopedRuleForm):
    def clean_listen_on(self):
        try:
            return binds.normalised(self.cleaned_data.get("listen_on") or "")
        except binds.BindSpecError as error:
            raise forms.ValidationError(str(error)) from None

    class Meta:
        model = PortRule
        fields = [
            "decision",
            "scope",
            "zone",
            "tag",
            "cidr",
            "protocol",
            "port_start",
            "port_end",
            "listen_on",
            "justification",
            "owner",
            "ticket",
            "expires_at",
        ]
        labels = {"port_start": "First port", "port_end": "Last port"}
        help_texts = {"port_end": "The same as the first port for a single port.", "zone": "For a zone scope."}
        widgets = {
            "justification": forms.Textarea(attrs={"rows": 3}),
            "expires_at": forms.DateTimeInput(attrs={"type": "datetime-local"}, format="%Y-%m-%dT%H:%M"),
        }


class AssignmentRuleForm(forms.ModelForm):
    tag_names = forms.CharField(label="Tags", required=False, help_text="Given to every host in the network.")

    class Meta:
        model = AssignmentRule
        fields = ["cidr", "zone", "owner"]
        help_texts = {"cidr": "e.g. 10.1.0.0/16", "owner": "Given to hosts whose owner no person has set."}

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        if self.instance.pk and not self.is_bound:
            self.initial["tag_names"] = " ".join(tag.name for tag in self.instance.tags.all())

    def clean_cidr(self):
        value = self.cleaned_data["cidr"].strip()
        try:
            return str(ipaddress.ip_network(value, strict=False))
        except ValueError:
            raise forms.ValidationError(f"“{value[:60]}” is not a network such as 10.1.0.0/16.") from None

    def clean_tag_names(self):
        return parse_tag_names(self.cleaned_data["tag_names"])

    def clean(self):
        cleaned = super().clean()
        if not cleaned.get("tag_names") and not cleaned.get("owner") and not self.errors:
            raise forms.ValidationError("Give tags, an owner, or both: a rule that assigns nothing does nothing.")
        return cleaned


class ReviewForm(forms.Form):
    """One decision for the ports chosen on the page (``tokens``, see inventory.review)."""

    decision = forms.ChoiceField(choices=Decision.choices, widget=forms.RadioSelect)
    scope = forms.ChoiceField(
        choices=[
            (RuleScope.HOST, "this host"),
            (RuleScope.TAG, "this tag"),
            (RuleScope.CIDR, "this network"),
            (RuleScope.ZONE, "this zone"),
            (RuleScope.GLOBAL, "everywhere"),
        ],
        initial=RuleScope.HOST,
        label="Applies to",
    )
    tag = forms.ModelChoiceField(queryset=Tag.objects.all(), required=False, to_field_name="name")
    cidr = forms.CharField(required=False, label="Network (CIDR)", max_length=64)
    justification = forms.CharField(
        widget=forms.Textarea(attrs={"rows": 2}),
        max_length=2000,
        error_messages={"required": "Say why: a justification is required."},
    )
    owner = forms.CharField(required=False, max_length=150)
    ticket = forms.URLField(required=False, max_length=500, assume_scheme="https")
    expires_at = forms.DateTimeField(
        required=False,
        label="Expires",
        widget=forms.DateTimeInput(attrs={"type": "datetime-local"}),
        help_text="Optional: the ports become unreviewed again then.",
    )

    def __init__(self, *args, tokens: list[str] | None = None, **kwargs):
        super().__init__(*args, **kwargs)
        self.token_list = tokens or []

    def clean_justification(self):
        text = self.cleaned_data["justification"].strip()
        if not text:
            raise forms.ValidationError("Say why: a justification is required.")
        return text

    def clean_cidr(self):
        value = self.cleaned_data["cidr"].strip()
        if not value:
            return ""
        try:
            return str(ipaddress.ip_network(value, strict=False))
        except ValueError:
            raise forms.ValidationError(f"“{value[:60]}” is not a network such as 10.1.0.0/16.") from None

    def clean_expires_at(self):
        value = self.cleaned_data["expires_at"]
        if value is not None and value <= timezone.now():
            raise forms.ValidationError("The expiry must be in the future.")
        return value

    def clean(self):
        cleaned = super().clean()
        if not self.token_list:
            raise forms.ValidationError("Choose at least one port.")
        if cleaned.get("scope") == RuleScope.TAG and not cleaned.get("tag"):
            self.add_error("tag", "Choose the tag.")
        if cleaned.get("scope") == RuleScope.CIDR and not cleaned.get("cidr") and not self.has_error("cidr"):
            self.add_error("cidr", "Give the network.")
        return cleaned

    def request(self) -> DecisionRequest:
        data = self.cleaned_data
        return DecisionRequest(
            decision=data["decision"],
            scope=data["scope"],
            justification=data["justification"],
            owner=data["owner"],
            ticket=data["ticket"],
            expires_at=data["expires_at"],
            tag=data.get("tag"),
            cidr=data.get("cidr", ""),
        )
