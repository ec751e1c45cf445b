from django.urls import path

from listeners.views import HostReportUploadView

urlpatterns = [
    path("listeners/upload/", HostReportUploadView.as_view(), name="listener-upload"),
]
