"""The web console (tenants), the operator console (staff) and the operator API.

Each part registers its routes here; see console/tenant_views.py,
console/operator_views.py and console/api/.
"""

from django.contrib.auth import views as auth_views
from django.urls import include, path
from django.views.generic import RedirectView

urlpatterns = [
    path("accounts/login/", auth_views.LoginView.as_view(), name="login"),
    path("accounts/logout/", auth_views.LogoutView.as_view(), name="logout"),
    path("", RedirectView.as_view(url="/console/", permanent=False)),
    path("console/", include("console.tenant_urls")),
]
