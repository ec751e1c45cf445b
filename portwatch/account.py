"""API tokens: each person's own (the account page), and their revocation by admins (the API).

A token is shown once, when it is created; only its existence and age are
shown after that. Creating, replacing and revoking one is audited (never
the key itself).
"""

from django.contrib import messages
from django.db import transaction
from django.shortcuts import redirect, render
from django.views import View
from rest_framework import mixins, serializers, viewsets
from rest_framework.authtoken.models import Token

from inventory import audit
from portwatch.api.base import Conflict, RoleMixin
from portwatch.roles import Role

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
