from django.urls import path

from alerts import views

urlpatterns = [
    path("alerts/", views.NotificationListView.as_view(), name="notification-list"),
    path("alerts/notifications/<uuid:public_id>/", views.NotificationDetailView.as_view(), name="notification-detail"),
    path(
        "alerts/notifications/<uuid:public_id>/retry/",
        views.NotificationActionView.as_view(action="retry"),
        name="notification-retry",
    ),
    path(
        "alerts/notifications/<uuid:public_id>/dismiss/",
        views.NotificationActionView.as_view(action="dismiss"),
        name="notification-dismiss",
    ),
    path("alerts/channels/", views.ChannelListView.as_view(), name="channel-list"),
    path("alerts/channels/new/", views.ChannelCreateView.as_view(), name="channel-create"),
    path("alerts/channels/<uuid:public_id>/", views.ChannelDetailView.as_view(), name="channel-detail"),
    path("alerts/channels/<uuid:public_id>/edit/", views.ChannelUpdateView.as_view(), name="channel-edit"),
    path("alerts/channels/<uuid:public_id>/delete/", views.ChannelDeleteView.as_view(), name="channel-delete"),
    path("alerts/channels/<uuid:public_id>/test/", views.ChannelTestView.as_view(), name="channel-test"),
    path("alerts/rules/", views.AlertRuleListView.as_view(), name="alert-rule-list"),
    path("alerts/rules/new/", views.AlertRuleCreateView.as_view(), name="alert-rule-create"),
    path("alerts/rules/<int:pk>/edit/", views.AlertRuleUpdateView.as_view(), name="alert-rule-edit"),
    path("alerts/rules/<int:pk>/delete/", views.AlertRuleDeleteView.as_view(), name="alert-rule-delete"),
    path("alerts/mutes/", views.MuteListView.as_view(), name="mute-list"),
    path("alerts/mutes/new/", views.MuteCreateView.as_view(), name="mute-create"),
    path("alerts/mutes/<int:pk>/end/", views.MuteEndView.as_view(), name="mute-end"),
]
