from django import forms

from inventory.models import Zone


class ZoneForm(forms.ModelForm):
    class Meta:
        model = Zone
        fields = ["name", "description", "central"]
        help_texts = {"name": "Lower-case letters, digits and dashes, e.g. dc1. Its scan queue is scan.<name>."}
