"""Forms of vantage points: a name (a slug, its queue's name) and a description."""

from django import forms

from reach.models import VANTAGE_QUEUE_PREFIX, VantagePoint

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
