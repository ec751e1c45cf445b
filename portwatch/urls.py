from django.contrib.auth import views as auth_views
from django.urls import include, path

from portwatch.account import ApiTokenView
from portwatch.login_views import LockoutListView, LoginView, UnlockView
from portwatch.ops import HealthView, MetricsView
from portwatch.views import OverviewView

urlpatterns = [
    path("", OverviewView.as_view(), name="overview"),
    path("login/", LoginView.as_view(), name="login"),
    path("logout/", auth_views.LogoutView.as_view(), name="logout"),
    path("metrics", MetricsView.as_view(), name="metrics"),
    path("health", HealthView.as_view(), name="health"),
    path("", include("inventory.urls")),
    path("", include("scans.urls")),
    path("", include("alerts.urls")),
    path("", include("reach.urls")),
    path("", include("reach.segmentation_urls")),
    path("", include("listeners.urls")),
    path("", include("certs.urls")),
    path("", include("accounts.urls")),
    path("api/", include("portwatch.api.urls", namespace="api")),
]

urlpatterns += [
    path("account/password/", auth_views.PasswordChangeView.as_view(), name="password_change"),
    path("account/password/done/", auth_views.PasswordChangeDoneView.as_view(), name="password_change_done"),
    path("account/api-token/", ApiTokenView.as_view(), name="api-token"),
    path("lockouts/", LockoutListView.as_view(), name="lockout-list"),
    path("lockouts/unlock/", UnlockView.as_view(), name="lockout-unlock"),
]

handler400 = "portwatch.views.bad_request"
