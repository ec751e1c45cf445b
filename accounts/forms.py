from django import forms

from accounts import time_zones
from accounts.models import PersonalSettings


class PersonalSettingsForm(forms.ModelForm):
    time_zone = forms.ChoiceField(
        choices=[("", "The installation's time zone"), *time_zones.choices()],
        required=False,
        help_text="Every time on the pages, the chart and the forms you fill in is in this zone.",
    )

    class Meta:
        model = PersonalSettings
        fields = ["time_zone"]
