from django.conf import settings
from django.contrib import messages
from django.shortcuts import redirect, render
from django.utils import timezone
from django.views import View

from accounts import time_zones
from accounts.forms import PersonalSettingsForm
from accounts.models import PersonalSettings
from portwatch.roles import Role, RoleRequiredMixin


class PersonalSettingsView(RoleRequiredMixin, View):
    """Your own settings: any role may change them, for themselves only."""

    required_role = Role.VIEWER
    template_name = "accounts/settings.html"

    def _form(self, request, data=None):
        instance, _ = PersonalSettings.objects.get_or_create(user=request.user)
        return PersonalSettingsForm(data, instance=instance)

    def _render(self, request, form):
        context = {"form": form, "installation_zone": settings.TIME_ZONE, "now": timezone.now()}
        return render(request, self.template_name, context)

    def get(self, request):
        return self._render(request, self._form(request))

    def post(self, request):
        form = self._form(request, request.POST)
        if not form.is_valid():
            return self._render(request, form)
        form.save()
        name = form.cleaned_data["time_zone"] or settings.TIME_ZONE
        time_zones.remember(request, name)
        messages.success(request, f"Times are now shown in {name}.")
        return redirect("personal-settings")
