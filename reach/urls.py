from django.urls import path

from reach import matrix_views, views

urlpatterns = [
    path("vantage-points/", views.VantageListView.as_view(), name="vantage-list"),
    path("vantage-points/new/", views.VantageCreateView.as_view(), name="vantage-create"),
    path("vantage-points/<slug:name>/", views.VantageDetailView.as_view(), name="vantage-detail"),
    path("vantage-points/<slug:name>/edit/", views.VantageUpdateView.as_view(), name="vantage-edit"),
    path("vantage-points/<slug:name>/delete/", views.VantageDeleteView.as_view(), name="vantage-delete"),
    path("exposure/", matrix_views.ExposureMatrixView.as_view(), name="exposure-matrix"),
    path("exposure/from/<slug:name>/", matrix_views.ExposureCellView.as_view(), name="exposure-cell"),
]
