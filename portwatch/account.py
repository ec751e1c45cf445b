"""API tokens: each person's own (the account page), admins' view of them (the API), and the CLI.

A token is shown once, when it is created; only its existence and age are
shown after that. Creating, replacing and revoking one is audited (never
the key itself), through ``issue_token`` and ``revoke_token`` whichever way
it is done: the account page, ``/api/tokens/`` or ``manage.py api_token``.
"""

from django.contrib import messages
from django.contrib.auth import get_user_model
from django.db import transaction
from django.shortcuts import redirect, render
from django.views import View
from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework import exceptions, mixins, serializers, status, viewsets
from rest_framework.authtoken.models import Token
from rest_framework.response import Response

from inventory import audit
from portwatch.api.base import Conflict, RoleMixin
from portwatch.roles import Role, role_of

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


def issue_token(owner, actor, *, by: str = "") -> tuple[Token, bool]:
    """A new key for ``owner``, replacing the old one (which is refused from now on).

    Returns the token and whether one was replaced. ``by`` says who did it for
    someone else, in the audit entry ("an admin", "manage.py api_token").
    """
    with transaction.atomic():
        replaced = Token.objects.filter(user=owner).delete()[0] > 0
        token = Token.objects.create(user=owner)
        if by:
            summary = f"{'Replaced' if replaced else 'Created'} by {by}."
        else:
            summary = "Replaced the API token." if replaced else "Created an API token."
        _record(actor, "api_token.create", owner, summary)
    return token, replaced


def revoke_token(owner, actor, *, by: str = "") -> bool:
    """Revoke ``owner``'s token, if they have one; returns whether they had."""
    with transaction.atomic():
        if not Token.objects.filter(user=owner).delete()[0]:
            return False
        _record(actor, "api_token.revoke", owner, f"Revoked by {by}." if by else "Revoked the API token.")
    return True


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
            token, _ = issue_token(request.user, request.user)
            # Shown in this response only: it is not kept anywhere it could be shown again.
            response = self.get(request, new_key=token.key)
            response.headers["Cache-Control"] = "no-store"
            return response
        if action == "revoke":
            if revoke_token(request.user, request.user):
                messages.success(request, "Your API token is revoked: requests with it are refused from now on.")
            return redirect("api-token")
        messages.error(request, "Choose to create or to revoke the token.")
        return redirect("api-token")


# --- the API: admins list, create (for a service account) and revoke tokens ------------------------------


class TokenSerializer(serializers.ModelSerializer):
    username = serializers.CharField(source="user.username", read_only=True)
    role = serializers.SerializerMethodField(help_text="The role the token acts with: its user's.")

    class Meta:
        model = Token
        fields = ["username", "role", "created"]
        read_only_fields = fields

    def get_role(self, token) -> str:
        return role_of(token.user).label


class TokenCreateSerializer(serializers.Serializer):
    username = serializers.CharField(max_length=150, help_text="The account the token acts as, with its role.")
    replace = serializers.BooleanField(
        default=False, help_text="Replace the account's token if it has one (the old key is refused at once)."
    )


class NewTokenSerializer(TokenSerializer):
    key = serializers.CharField(read_only=True, help_text="Shown in this response only.")
    replaced = serializers.SerializerMethodField()

    class Meta(TokenSerializer.Meta):
        fields = [*TokenSerializer.Meta.fields, "key", "replaced"]
        read_only_fields = fields

    def get_replaced(self, token) -> bool:
        return self.context.get("replaced", False)


class TokenAdminViewSet(RoleMixin, mixins.ListModelMixin, mixins.DestroyModelMixin, viewsets.GenericViewSet):
    """Who has an API token, and since when (never the key); admins create one for an account
    (a service account's, for a script or a Prometheus scrape) and revoke anyone's."""

    serializer_class = TokenSerializer
    lookup_field = "user__username"
    lookup_url_kwarg = "username"
    lookup_value_regex = r"[\w.@+-]+"
    read_role = Role.ADMIN

    def get_queryset(self):
        return Token.objects.select_related("user").order_by("user__username")

    @extend_schema(
        request=TokenCreateSerializer,
        responses={
            201: NewTokenSerializer,
            400: OpenApiResponse(description="No such active account."),
            409: OpenApiResponse(description="The account has a token (send replace), or it is your own."),
        },
    )
    def create(self, request):
        """A token for an account, its key returned once (this response is the only place it is shown).
        An account that has a token keeps it unless ``replace`` is true; your own token is the account page's."""
        incoming = TokenCreateSerializer(data=request.data)
        incoming.is_valid(raise_exception=True)
        username = incoming.validated_data["username"]
        owner = get_user_model().objects.filter(username=username, is_active=True).first()
        if owner is None:
            raise exceptions.ValidationError({"username": [f"There is no active account {username!r}."]})
        if owner.pk == request.user.pk:
            raise Conflict("This is your own token: create or replace it on your account's API token page.")
        if not incoming.validated_data["replace"] and Token.objects.filter(user=owner).exists():
            raise Conflict(
                f"{username} already has a token. Send replace: true to replace it (the old key is refused at once)."
            )
        token, replaced = issue_token(owner, request.user, by="an admin")
        data = NewTokenSerializer(token, context={"replaced": replaced}).data
        return Response(data, status=status.HTTP_201_CREATED, headers={"Cache-Control": "no-store"})

    def perform_destroy(self, token):
        if token.user_id == self.request.user.pk:
            # The call would cut off the caller (a script's own key): a person does it on the account page.
            raise Conflict("This is your own token: revoke it on your account's API token page.")
        revoke_token(token.user, self.request.user, by="an admin")
