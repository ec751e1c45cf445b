"""Logging in (every attempt audited, lockouts by django-axes) and admins' unlocking.

The counting and the lockout page live in ``portwatch.lockouts``; these are
the pages.
"""

from django import forms
from django.conf import settings
from django.contrib import messages
from django.contrib.auth import views as auth_views
from django.shortcuts import redirect
from django.views import View
from django.views.generic import ListView

from inventory import paging
from portwatch import lockouts
from portwatch.roles import Role, RoleRequiredMixin


class LoginView(auth_views.LoginView):
    """Django's login form, with every attempt in the audit log.

    django-axes (settings ``AXES_*``) counts the failures and, at the limit,
    answers with the lockout page instead of this one (``lockouts.lockout_response``).
    """

    redirect_authenticated_user = True

    def get_context_data(self, **kwargs):
        context = super().get_context_data(**kwargs)
        if settings.OIDC_ENABLED:
            context["sso_name"] = settings.OIDC_PROVIDER_NAME
        context["sso_failed"] = self.request.GET.get("sso") == "failed"
        return context

    def form_valid(self, form):
        response = super().form_valid(form)
        lockouts.record_success(self.request, form.get_user())
        return response

    def form_invalid(self, form):
        # A form missing a field never reached authenticate(): nothing was tried.
        username = form.cleaned_data.get("username")
        if username and form.cleaned_data.get("password"):
            lockouts.record_failure(self.request, username)
        return super().form_invalid(form)


class LockoutListView(paging.KeysetPaginationMixin, RoleRequiredMixin, ListView):
    """Who is locked out of logging in now, from where and until when; admins unlock them here."""

    required_role = Role.ADMIN
    template_name = "registration/lockout_list.html"
    paginate_by = 100

    def get_queryset(self):
        return lockouts.current_lockouts()

    def get_context_data(self, **kwargs):
        context = super().get_context_data(**kwargs)
        context["lockouts"] = [lockouts.as_lockout(row) for row in context["object_list"]]
        context["limit"] = settings.AXES_FAILURE_LIMIT
        duration = lockouts.lockout_duration()
        context["duration"] = lockouts.minutes_text(duration) if duration else None
        return context


class UnlockForm(forms.Form):
    username = forms.CharField(max_length=255)
    address = forms.GenericIPAddressField(required=False)


class UnlockView(RoleRequiredMixin, View):
    """Let one (username, address) pair log in again at once."""

    required_role = Role.ADMIN
    http_method_names = ["post"]

    def post(self, request):
        form = UnlockForm(request.POST)
        if not form.is_valid():
            messages.error(request, "Choose a lockout from the list to unlock.")
            return redirect("lockout-list")
        username, address = form.cleaned_data["username"], form.cleaned_data["address"] or None
        if lockouts.unlock(request.user, username, address):
            messages.success(request, f"{username} may log in from {address or 'that address'} again.")
        else:
            messages.info(request, f"{username} from {address or 'that address'} was not locked out (any more).")
        return redirect("lockout-list")
