"""A second URLconf for tests/test_row_fastpaths.py: the host page under another path, as a
request's own ``urlconf`` would route it."""

from django.urls import path

from inventory import views

urlpatterns = [path("elsewhere/<uuid:public_id>/", views.HostDetailView.as_view(), name="host-detail")]
