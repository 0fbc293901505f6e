from django.contrib import admin
from django.urls import include, path, re_path

from relay.api import billing_views, views

v1 = [
    re_path(r"^v1/embeddings/?$", views.EmbeddingsView.as_view()),
    re_path(r"^v1/models/?$", views.ModelsView.as_view()),
    re_path(r"^v1/models/(?P<model>.+?)/?$", views.ModelsView.as_view()),
    re_path(
        r"^(?:v1/)?dashboard/billing/subscription/?$", billing_views.SubscriptionView.as_view()
    ),
    re_path(r"^(?:v1/)?dashboard/billing/usage/?$", billing_views.UsageView.as_view()),
    re_path(r"^v1/", views.V1NotFoundView.as_view()),
]

urlpatterns = [
    *v1,
    path("healthz", views.healthz),
    path("metrics", views.metrics_view),
    path("readyz", views.readyz),
    path("admin/", admin.site.urls),
    path("", include("console.urls")),
]
