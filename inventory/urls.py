from django.urls import path

from inventory import views

urlpatterns = [
    path("hosts/", views.HostListView.as_view(), name="host-list"),
    path("hosts/<uuid:public_id>/", views.HostDetailView.as_view(), name="host-detail"),
    path("zones/", views.ZoneListView.as_view(), name="zone-list"),
    path("audit/", views.AuditListView.as_view(), name="audit-list"),
    path("risks/", views.RiskListView.as_view(), name="risk-list"),
    path("risks/new/", views.RiskCreateView.as_view(), name="risk-create"),
    path("risks/<int:pk>/edit/", views.RiskUpdateView.as_view(), name="risk-edit"),
    path("risks/<int:pk>/delete/", views.RiskDeleteView.as_view(), name="risk-delete"),
    path("zones/new/", views.ZoneCreateView.as_view(), name="zone-create"),
    path("zones/<slug:name>/edit/", views.ZoneUpdateView.as_view(), name="zone-edit"),
]
