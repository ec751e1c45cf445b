from django.contrib.auth.decorators import login_not_required
from django.urls import path

from accounts import oidc
from accounts.views import PersonalSettingsView

urlpatterns = [
    path("account/settings/", PersonalSettingsView.as_view(), name="personal-settings"),
    # How one logs in through an OpenID provider: open to visitors (404 when it is not configured).
    path("oidc/start/", login_not_required(oidc.start), name="oidc-start"),
    path("oidc/callback/", login_not_required(oidc.callback), name="oidc_authentication_callback"),
]
