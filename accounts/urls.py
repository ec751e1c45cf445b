from django.urls import path

from accounts.views import PersonalSettingsView

urlpatterns = [path("account/settings/", PersonalSettingsView.as_view(), name="personal-settings")]
