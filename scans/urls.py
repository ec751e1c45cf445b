from django.urls import path

from scans import views

urlpatterns = [
    path("targets/", views.TargetListView.as_view(), name="target-list"),
    path("targets/new/", views.TargetCreateView.as_view(), name="target-create"),
    path("targets/<uuid:public_id>/", views.TargetDetailView.as_view(), name="target-detail"),
    path("targets/<uuid:public_id>/edit/", views.TargetUpdateView.as_view(), name="target-edit"),
    path("targets/<uuid:public_id>/scan/", views.TargetScanView.as_view(), name="target-scan"),
    path("changes/", views.ChangeListView.as_view(), name="change-list"),
    path("runs/", views.RunListView.as_view(), name="run-list"),
    path("runs/<uuid:public_id>/", views.RunDetailView.as_view(), name="run-detail"),
    path("runs/<uuid:public_id>/cancel/", views.RunCancelView.as_view(), name="run-cancel"),
    path("profiles/", views.ProfileListView.as_view(), name="profile-list"),
    path("profiles/new/", views.ProfileCreateView.as_view(), name="profile-create"),
    path("profiles/<slug:slug>/edit/", views.ProfileUpdateView.as_view(), name="profile-edit"),
    path("scope/", views.ScopeView.as_view(), name="scope"),
    path("scope/<int:pk>/delete/", views.ScopeRuleDeleteView.as_view(), name="scope-delete"),
    path("import/", views.ImportView.as_view(), name="import"),
]
