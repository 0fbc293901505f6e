"""Routes of the tenant console, under /console/ (namespace ``console``)."""

from django.urls import path

from console.tenant import keys as keys_views
from console.tenant import members as members_views
from console.tenant import notifications as notifications_views
from console.tenant import redeem as redeem_views
from console.tenant import views as tenant_views

app_name = "console"

urlpatterns = [
    path("", tenant_views.DashboardView.as_view(), name="dashboard"),
    path("keys/", keys_views.KeyListView.as_view(), name="keys"),
    path("keys/new/", keys_views.KeyIssueView.as_view(), name="key_issue"),
    path("keys/<int:key_id>/", keys_views.KeyDetailView.as_view(), name="key_detail"),
    path("keys/<int:key_id>/rename/", keys_views.KeyRenameView.as_view(), name="key_rename"),
    path("keys/<int:key_id>/revoke/", keys_views.KeyRevokeView.as_view(), name="key_revoke"),
    path("usage/", tenant_views.UsageView.as_view(), name="usage"),
    path("usage.csv", tenant_views.UsageCsvView.as_view(), name="usage_csv"),
    path("members/", members_views.MemberListView.as_view(), name="members"),
    path(
        "members/<int:member_id>/role/", members_views.MemberRoleView.as_view(), name="member_role"
    ),
    path(
        "members/<int:member_id>/remove/",
        members_views.MemberRemoveView.as_view(),
        name="member_remove",
    ),
    path("audit/", tenant_views.AuditView.as_view(), name="audit"),
    path("redeem/", redeem_views.RedeemView.as_view(), name="redeem"),
    path("notifications/", notifications_views.NotificationsView.as_view(), name="notifications"),
]
