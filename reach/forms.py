"""Forms of vantage points (a name, its queue's name, and a description) and of the exposure matrix's filters."""

from django import forms

from inventory.choices import Protocol
from inventory.filters import RISK_CHOICES
from inventory.ports import PortSet, PortSpecError
from reach.matrix import ROWS_TAG, ROWS_ZONE, Query
from reach.models import VANTAGE_QUEUE_PREFIX, SegmentationRule, VantagePoint

# Names a vantage point may not take: the create page's own URL (/vantage-points/new/).
RESERVED_NAMES = frozenset({"new"})


class VantagePointForm(forms.ModelForm):
    class Meta:
        model = VantagePoint
        fields = ["name", "description"]
        help_texts = {
            "name": (
                f"Letters, digits, dashes and underscores, e.g. office-lan. Its workers consume the queue "
                f"{VANTAGE_QUEUE_PREFIX}<name>: start them where its scans must come from with "
                "python3 manage.py run_worker --vantage <name>."
            ),
            "description": "Where it is, e.g. “a laptop on the office Wi-Fi” or “a pod in the prod cluster”.",
        }

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        if self.instance.is_home:
            # Its zone owns it: the zone's queue, the zone's workers, the inventory's view.
            self.fields["name"].disabled = True
            self.fields[
                "name"
            ].help_text = f"The home of zone {self.instance.home_of.name} keeps its name: it goes with its zone."

    def clean_name(self):
        name = self.cleaned_data["name"]
        if self.instance.is_home:
            sent = self.data.get(self.add_prefix("name"))
            if sent not in (None, "", self.instance.name):
                raise forms.ValidationError(
                    f"“{self.instance.name}” is the home of zone {self.instance.home_of.name}: "
                    "it keeps its name (it goes with its zone).",
                    code="home",
                )
            return name
        if name in RESERVED_NAMES:
            raise forms.ValidationError(f"“{name}” is reserved; choose another name.", code="reserved")
        taken = VantagePoint.objects.filter(name=name).exclude(pk=self.instance.pk).select_related("home_of").first()
        if taken is not None:
            whose = f"the home of zone {taken.home_of.name}" if taken.is_home else "another vantage point"
            raise forms.ValidationError(f"The name “{name}” is taken by {whose}; choose another name.", code="unique")
        return name


# A matrix filter's ports: a short list (each item is a condition of the count).
MATRIX_MAX_PORT_ITEMS = 32


class MatrixFilterForm(forms.Form):
    """The exposure matrix's rows and filters (``?rows=&port=&protocol=&risk=&rule=``), for its page, its
    cells' lists and the API. Every field is optional; a bad value is named and nothing is counted."""

    rows = forms.ChoiceField(
        choices=[(ROWS_ZONE, "zones"), (ROWS_TAG, "tags")], required=False, label="Rows", initial=ROWS_ZONE
    )
    port = forms.CharField(
        required=False,
        max_length=200,
        label="Ports",
        help_text="e.g. 22,3306,6379 or 8000-8100",
        widget=forms.TextInput(attrs={"placeholder": "22,5432,6379"}),
    )
    protocol = forms.ChoiceField(choices=[("", "any"), *Protocol.choices], required=False, label="Protocol")
    risk = forms.ChoiceField(choices=[("", "any"), *RISK_CHOICES], required=False, label="Risk")
    rule = forms.ModelChoiceField(
        queryset=SegmentationRule.objects.filter(removing=False)
        .select_related("zone", "tag", "host__zone")
        .prefetch_related("vantage_points"),
        to_field_name="public_id",
        required=False,
        label="Segmentation rule",
        empty_label="any",
        error_messages={"invalid_choice": "No segmentation rule has this id (it may have been deleted)."},
    )

    def clean_port(self):
        text = self.cleaned_data["port"].strip()
        if not text:
            return None
        try:
            return PortSet.parse(text, max_items=MATRIX_MAX_PORT_ITEMS)
        except PortSpecError as error:
            raise forms.ValidationError(str(error), code="ports") from None

    def query(self) -> Query:
        """The valid form's query (call ``is_valid()`` first)."""
        data = self.cleaned_data
        return Query(
            rows=data.get("rows") or ROWS_ZONE,
            ports=data.get("port"),
            protocol=data.get("protocol") or "",
            risk=int(data["risk"]) if data.get("risk") else None,
            rule=data.get("rule"),
        )
