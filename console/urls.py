"""The web console (tenants), the operator console (staff) and the operator API.

Each part registers its routes here; see console/tenant/views.py,
console/operator/views.py and console/api/.
"""

from django.contrib.auth import views as auth_views
from django.shortcuts import redirect
from django.urls import include, path

from console import language


def home(request):
    """Operators land on the operator console, tenant members on theirs."""
    if request.user.is_authenticated and request.user.is_staff:
        return redirect("/operator/")
    return redirect("/console/")


urlpatterns = [
    path("accounts/login/", auth_views.LoginView.as_view(), name="login"),
    path("accounts/logout/", auth_views.LogoutView.as_view(), name="logout"),
    # The language switcher of every page (templates/base.html).
    path("i18n/setlang/", language.set_language, name="set_language"),
    path("", home, name="home"),
    path("operator/", include("console.operator.urls")),
    path("api/", include("console.api.urls")),
    path("console/", include("console.tenant.urls")),
]
