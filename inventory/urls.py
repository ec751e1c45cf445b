from django.urls import path

from inventory import rule_views, views

urlpatterns = [
    path("hosts/", views.HostListView.as_view(), name="host-list"),
    path("hosts/<uuid:public_id>/", views.HostDetailView.as_view(), name="host-detail"),
    path("hosts/<uuid:public_id>/edit/", views.HostUpdateView.as_view(), name="host-edit"),
    path("hosts/<uuid:public_id>/ports/<str:protocol>/<int:port>/", views.PortDetailView.as_view(), name="port-detail"),
    path("ports/", views.ServiceListView.as_view(), name="port-list"),
    path("review/", views.ReviewQueueView.as_view(), name="review-queue"),
    path("review/decide/", views.DecideView.as_view(), name="review-decide"),
    path("rules/", rule_views.RuleListView.as_view(), name="rule-list"),
    path("rules/new/", rule_views.RuleCreateView.as_view(), name="rule-create"),
    path("rules/<uuid:public_id>/", rule_views.RuleDetailView.as_view(), name="rule-detail"),
    path("rules/<uuid:public_id>/edit/", rule_views.RuleUpdateView.as_view(), name="rule-edit"),
    path("rules/<uuid:public_id>/delete/", rule_views.RuleDeleteView.as_view(), name="rule-delete"),
    path("assignments/", rule_views.AssignmentListView.as_view(), name="assignment-list"),
    path("assignments/new/", rule_views.AssignmentCreateView.as_view(), name="assignment-create"),
    path("assignments/<int:pk>/edit/", rule_views.AssignmentUpdateView.as_view(), name="assignment-edit"),
    path("assignments/<int:pk>/delete/", rule_views.AssignmentDeleteView.as_view(), name="assignment-delete"),
    path("zones/", views.ZoneListView.as_view(), name="zone-list"),
    path("audit/", views.AuditListView.as_view(), name="audit-list"),
    path("risks/", views.RiskListView.as_view(), name="risk-list"),
    path("risks/new/", views.RiskCreateView.as_view(), name="risk-create"),
    path("risks/<int:pk>/edit/", views.RiskUpdateView.as_view(), name="risk-edit"),
    path("risks/<int:pk>/delete/", views.RiskDeleteView.as_view(), name="risk-delete"),
    path("zones/new/", views.ZoneCreateView.as_view(), name="zone-create"),
    path("zones/<slug:name>/edit/", views.ZoneUpdateView.as_view(), name="zone-edit"),
]
