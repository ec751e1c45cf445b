"""Accounts: logging in (audited, with lockouts), admins' unlocking, and API tokens.

A token is shown once, when it is created; only its existence and age are
shown after that. Creating, replacing and revoking one is audited (never
the key itself).
"""

from django import forms
from django.conf import settings
from django.contrib import messages
from django.contrib.auth import views as auth_views
from django.db import transaction
from django.shortcuts import redirect, render
from django.views import View
from django.views.generic import ListView
from rest_framework import mixins, serializers, viewsets
from rest_framework.authtoken.models import Token

from inventory import audit
from portwatch import lockouts
from portwatch.api.base import Conflict, RoleMixin
from portwatch.roles import Role, RoleRequiredMixin

# --- logging in -------------------------------------------------------------------


class LoginView(auth_views.LoginView):
    """Django's login form, with every attempt in the audit log.

    django-axes (settings ``AXES_*``) counts the failures and, at the limit,
    answers with the lockout page instead of this one (``lockouts.lockout_response``).
    """

    redirect_authenticated_user = True

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


class LockoutListView(RoleRequiredMixin, ListView):
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


# --- API tokens ----------------------------------------------------------------------

AUDIT_OBJECT_TYPE = "api token"


def _record(actor, action: str, owner, summary: str) -> None:
    audit.record(
        actor,
        action,
        object_type=AUDIT_OBJECT_TYPE,
        object_id=str(owner.pk),
        object_repr=owner.get_username(),
        summary=summary,
    )


class ApiTokenView(View):
    """The logged-in person's API token: create or replace it (shown once), or revoke it."""

    template_name = "registration/api_token.html"
    http_method_names = ["get", "post"]

    def get(self, request, new_key: str = ""):
        token = Token.objects.filter(user=request.user).first()
        return render(request, self.template_name, {"token": token, "new_key": new_key})

    def post(self, request):
        action = request.POST.get("action")
        if action == "create":
            with transaction.atomic():
                replaced = Token.objects.filter(user=request.user).delete()[0] > 0
                token = Token.objects.create(user=request.user)
                _record(
                    request.user,
                    "api_token.create",
                    request.user,
                    "Replaced the API token." if replaced else "Created an API token.",
                )
            # Shown in this response only: it is not kept anywhere it could be shown again.
            response = self.get(request, new_key=token.key)
            response.headers["Cache-Control"] = "no-store"
            return response
        if action == "revoke":
            with transaction.atomic():
                if Token.objects.filter(user=request.user).delete()[0]:
                    _record(request.user, "api_token.revoke", request.user, "Revoked the API token.")
                    messages.success(request, "Your API token is revoked: requests with it are refused from now on.")
            return redirect("api-token")
        messages.error(request, "Choose to create or to revoke the token.")
        return redirect("api-token")


class TokenSerializer(serializers.ModelSerializer):
    username = serializers.CharField(source="user.username", read_only=True)

    class Meta:
        model = Token
        fields = ["username", "created"]
        read_only_fields = fields


class TokenAdminViewSet(RoleMixin, mixins.ListModelMixin, mixins.DestroyModelMixin, viewsets.GenericViewSet):
    """Who has an API token, and since when (never the key); admins revoke anyone's."""

    serializer_class = TokenSerializer
    lookup_field = "user__username"
    lookup_url_kwarg = "username"
    lookup_value_regex = r"[\w.@+-]+"
    read_role = Role.ADMIN

    def get_queryset(self):
        return Token.objects.select_related("user").order_by("user__username")

    def perform_destroy(self, token):
        if token.user_id == self.request.user.pk:
            # The call would cut off the caller (a script's own key): a person does it on the account page.
            raise Conflict("This is your own token: revoke it on your account's API token page.")
        with transaction.atomic():
            _record(self.request.user, "api_token.revoke", token.user, "Revoked by an admin.")
            token.delete()
