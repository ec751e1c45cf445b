"""The upload page: a host's report taken in by hand (the API takes the hosts' own)."""

from django.contrib import messages
from django.shortcuts import redirect, render
from django.views import View

from listeners import reports
from listeners.choices import ReportSource
from listeners.forms import HostReportForm
from portwatch.roles import Role, RoleRequiredMixin


class HostReportUploadView(RoleRequiredMixin, View):
    required_role = Role.REVIEWER
    template_name = "listeners/upload.html"

    def get(self, request):
        return render(request, self.template_name, {"form": HostReportForm(initial={"host": request.GET.get("host")})})

    def post(self, request):
        form = HostReportForm(request.POST, request.FILES)
        if not form.is_valid():
            return render(request, self.template_name, {"form": form}, status=400)
        host, parsed = form.cleaned_data["host_row"], form.cleaned_data["parsed"]
        imported = reports.take(host, parsed, source=ReportSource.UPLOAD, user=request.user)
        messages.success(
            request,
            f"{len(parsed.sockets)} listening socket(s) of {host.address} ({parsed.format}): {imported.summary}.",
        )
        return redirect(f"{host.get_absolute_url()}#listeners")
