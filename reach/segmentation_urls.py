"""URLs of the segmentation pages (included from portwatch.urls)."""

from django.urls import path

from reach import segmentation_views as views

urlpatterns = [
    path("segmentation/", views.SegmentationRuleListView.as_view(), name="segmentation-rule-list"),
    path("segmentation/new/", views.SegmentationRuleCreateView.as_view(), name="segmentation-rule-create"),
    path(
        "segmentation/violations/",
        views.SegmentationViolationListView.as_view(),
        name="segmentation-violation-list",
    ),
    path(
        "segmentation/<uuid:public_id>/",
        views.SegmentationRuleDetailView.as_view(),
        name="segmentation-rule-detail",
    ),
    path(
        "segmentation/<uuid:public_id>/edit/",
        views.SegmentationRuleUpdateView.as_view(),
        name="segmentation-rule-edit",
    ),
    path(
        "segmentation/<uuid:public_id>/delete/",
        views.SegmentationRuleDeleteView.as_view(),
        name="segmentation-rule-delete",
    ),
]
