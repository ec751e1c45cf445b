from django.urls import path

from certs import views

urlpatterns = [
    path("certificates/", views.CertificateListView.as_view(), name="certificate-list"),
]
