"""The upload page's form: a host, a report (a file or pasted text), its format and time."""

from django import forms
from django.conf import settings

from inventory.models import Zone
from listeners import intake
from listeners.parsing import FORMATS, ReportError

# Pasted text travels in the form's body (Django caps it at DATA_UPLOAD_MAX_MEMORY_SIZE): larger, upload the file.
MAX_PASTED = 1024 * 1024


class HostReportForm(forms.Form):
    host = forms.GenericIPAddressField(unpack_ipv4=True, help_text="The host's address, as the inventory has it.")
    zone = forms.ModelChoiceField(
        queryset=Zone.objects.order_by("name"),
        required=False,
        to_field_name="name",
        help_text="Only when the address is a host in several zones.",
    )
    format = forms.ChoiceField(choices=[("", "Read from the report"), *FORMATS.items()], required=False, label="Format")
    file = forms.FileField(required=False, label="Report file")
    text = forms.CharField(
        widget=forms.Textarea(attrs={"rows": 8, "spellcheck": "false"}),
        required=False,
        max_length=MAX_PASTED,
        label="Or paste it",
        help_text="e.g. the output of ss -Htulnp run on the host (as root, to see the processes).",
    )
    taken_at = forms.DateTimeField(
        required=False,
        label="Taken at",
        widget=forms.DateTimeInput(attrs={"type": "datetime-local"}, format="%Y-%m-%dT%H:%M"),
        help_text="When the host printed it, in the server's time zone. Empty: now (osquery's logs carry their own).",
    )

    def clean(self):
        cleaned = super().clean()
        upload, text = cleaned.get("file"), cleaned.get("text")
        if bool(upload) == bool(text):
            raise forms.ValidationError("Give the report as a file or as pasted text (one of them).")
        if upload is not None and upload.size > settings.LISTENER_REPORT_MAX_BYTES:
            raise forms.ValidationError(
                f"The file is {upload.size / 1048576:.1f} MB; host reports are limited to "
                f"{settings.LISTENER_REPORT_MAX_BYTES / 1048576:.0f} MB (LISTENER_REPORT_MAX_BYTES)."
            )
        if "host" not in cleaned:
            return cleaned
        try:
            zone = cleaned.get("zone")
            cleaned["host_row"] = intake.find_host(cleaned["host"], zone.name if zone else None)
            data = upload.read() if upload is not None else text.encode()
            cleaned["parsed"] = intake.read(data, cleaned.get("format") or None, taken_at=cleaned.get("taken_at"))
        except (intake.HostNotFound, ReportError) as error:
            raise forms.ValidationError(f"{error}. Nothing was imported.") from None
        return cleaned
