"""The operator console, under /operator/ (staff only)."""

from django.urls import path

from console.operator import channels as operator_channels
from console.operator import codes as operator_codes
from console.operator import pricing as operator_pricing
from console.operator import reports as operator_reports
from console.operator import tenants as operator_tenants
from console.operator import views

app_name = "operator"

urlpatterns = [
    path("", views.HomeView.as_view(), name="home"),
    # Tenants, balances, keys
    path("tenants/", operator_tenants.TenantListView.as_view(), name="tenants"),
    path("tenants/new/", operator_tenants.TenantCreateView.as_view(), name="tenant_create"),
    path("tenants/<int:pk>/", operator_tenants.TenantDetailView.as_view(), name="tenant"),
    path("tenants/<int:pk>/edit/", operator_tenants.TenantEditView.as_view(), name="tenant_edit"),
    path(
        "tenants/<int:pk>/members/",
        operator_tenants.TenantMemberView.as_view(),
        name="tenant_members",
    ),
    path(
        "tenants/<int:pk>/status/",
        operator_tenants.TenantStatusView.as_view(),
        name="tenant_status",
    ),
    path(
        "tenants/<int:pk>/balance/",
        operator_tenants.TenantBalanceView.as_view(),
        name="tenant_balance",
    ),
    path(
        "tenants/<int:pk>/ledger/",
        operator_tenants.TenantLedgerView.as_view(),
        name="tenant_ledger",
    ),
    path("tenants/<int:pk>/keys/", operator_tenants.TenantKeysView.as_view(), name="tenant_keys"),
    path(
        "tenants/<int:pk>/keys/issue/",
        operator_tenants.IssueKeysView.as_view(),
        name="tenant_keys_issue",
    ),
    path(
        "tenants/<int:pk>/keys/<int:key_pk>/revoke/",
        operator_tenants.RevokeKeyView.as_view(),
        name="tenant_key_revoke",
    ),
    # Groups and prices
    path("groups/", operator_pricing.GroupListView.as_view(), name="groups"),
    path("groups/new/", operator_pricing.GroupEditView.as_view(), name="group_create"),
    path("groups/<int:pk>/", operator_pricing.GroupEditView.as_view(), name="group"),
    path("prices/", operator_pricing.BasePriceView.as_view(), name="prices"),
    path(
        "prices/<int:pk>/delete/",
        operator_pricing.BasePriceDeleteView.as_view(),
        name="price_delete",
    ),
    # Channels
    path("channels/", operator_channels.ChannelListView.as_view(), name="channels"),
    path("channels/new/", operator_channels.ChannelEditView.as_view(), name="channel_create"),
    path(
        "channels/test-all/",
        operator_channels.ChannelTestAllView.as_view(),
        name="channels_test_all",
    ),
    path("channels/<int:pk>/", operator_channels.ChannelEditView.as_view(), name="channel"),
    path(
        "channels/<int:pk>/toggle/",
        operator_channels.ChannelToggleView.as_view(),
        name="channel_toggle",
    ),
    path(
        "channels/<int:pk>/test/",
        operator_channels.ChannelTestView.as_view(),
        name="channel_test",
    ),
    # Redemption codes
    path("codes/", operator_codes.CodeBatchListView.as_view(), name="codes"),
    path("codes/<int:pk>/", operator_codes.CodeBatchView.as_view(), name="code_batch"),
    path(
        "codes/<int:pk>/void/", operator_codes.CodeBatchVoidView.as_view(), name="code_batch_void"
    ),
    path(
        "codes/<int:pk>/<int:code_pk>/void/",
        operator_codes.CodeVoidView.as_view(),
        name="code_void",
    ),
    path("channels/<int:pk>/pin/", operator_channels.ChannelPinView.as_view(), name="channel_pin"),
    # Reports and the audit log
    path("reports/", operator_reports.ReportView.as_view(), name="reports"),
    path("audit/", views.AuditLogView.as_view(), name="audit"),
]
