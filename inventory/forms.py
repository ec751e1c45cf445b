from django import forms
from django.core.validators import MaxValueValidator, MinValueValidator

from inventory.constants import PORT_MAX, PORT_MIN
from inventory.models import RiskRule, Zone


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
