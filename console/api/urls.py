"""The operator API under /api/ (staff), and /api/tenant/ for tenants' own members.

One view per action: reads are GET, changes are POST to a named action
(``.../create/``, ``.../<id>/update/``, ``.../<id>/suspend/``).
``/api/schema/`` is the OpenAPI description (staff only).
"""

from django.urls import include, path, re_path
from drf_spectacular.views import SpectacularAPIView
from rest_framework.authentication import SessionAuthentication, TokenAuthentication
from rest_framework.permissions import IsAdminUser
from rest_framework.renderers import JSONRenderer

from console.api.base import NotFoundApi
from console.api.views import channels, codes, groups, keys, reports, tenant_self, tenants

api_patterns = [
    # Tenants and their money
    path("tenants/", tenants.TenantListApi.as_view(), name="api-tenants"),
    path("tenants/create/", tenants.TenantCreateApi.as_view(), name="api-tenant-create"),
    path("tenants/<int:tenant_id>/", tenants.TenantDetailApi.as_view(), name="api-tenant"),
    path("tenants/<int:tenant_id>/update/", tenants.TenantUpdateApi.as_view()),
    path("tenants/<int:tenant_id>/suspend/", tenants.TenantSuspendApi.as_view()),
    path("tenants/<int:tenant_id>/reactivate/", tenants.TenantReactivateApi.as_view()),
    path("tenants/<int:tenant_id>/members/add/", tenants.TenantMemberAddApi.as_view()),
    path("tenants/<int:tenant_id>/top-up/", tenants.TenantTopUpApi.as_view()),
    path("tenants/<int:tenant_id>/adjust/", tenants.TenantAdjustApi.as_view()),
    path("tenants/<int:tenant_id>/ledger/", tenants.TenantLedgerApi.as_view()),
    # Keys
    path("tenants/<int:tenant_id>/keys/", keys.KeyListApi.as_view()),
    path("tenants/<int:tenant_id>/keys/issue/", keys.KeyIssueApi.as_view()),
    path("tenants/<int:tenant_id>/keys/<int:key_id>/revoke/", keys.KeyRevokeApi.as_view()),
    # Groups and prices
    path("groups/", groups.GroupListApi.as_view()),
    path("groups/create/", groups.GroupCreateApi.as_view()),
    path("groups/<int:group_id>/", groups.GroupDetailApi.as_view()),
    path("groups/<int:group_id>/update/", groups.GroupUpdateApi.as_view()),
    path("base-prices/", groups.BasePriceListApi.as_view()),
    path("base-prices/set/", groups.BasePriceSetApi.as_view()),
    path("base-prices/<int:price_id>/delete/", groups.BasePriceDeleteApi.as_view()),
    # Channels
    path("channels/", channels.ChannelListApi.as_view()),
    path("channels/create/", channels.ChannelCreateApi.as_view()),
    path("channels/test-all/", channels.ChannelTestAllApi.as_view()),
    path("channels/<int:channel_id>/", channels.ChannelDetailApi.as_view()),
    path("channels/<int:channel_id>/update/", channels.ChannelUpdateApi.as_view()),
    path("channels/<int:channel_id>/test/", channels.ChannelTestApi.as_view()),
    # Redemption codes
    path("codes/", codes.BatchListApi.as_view()),
    path("codes/create/", codes.BatchCreateApi.as_view()),
    path("codes/<int:batch_id>/codes/", codes.BatchCodesApi.as_view()),
    path("codes/<int:batch_id>/void/", codes.BatchVoidApi.as_view()),
    path("codes/<int:batch_id>/codes/<int:code_id>/void/", codes.CodeVoidApi.as_view()),
    path("channels/<int:channel_id>/pin/", channels.ChannelPinApi.as_view()),
    # Reports and the audit log
    path("reports/", reports.ReportApi.as_view()),
    path("audit/", reports.AuditLogApi.as_view()),
    # A tenant's own members
    path("tenant/keys/", tenant_self.TenantKeysApi.as_view()),
    path("tenant/usage/", tenant_self.TenantUsageApi.as_view()),
    path("tenant/redeem/", codes.TenantRedeemApi.as_view()),
]


class SchemaApi(SpectacularAPIView):
    """The OpenAPI document; its refusals are JSON like the rest of /api/."""

    def handle_exception(self, exc):
        response = super().handle_exception(exc)
        self.request.accepted_renderer = JSONRenderer()
        self.request.accepted_media_type = JSONRenderer.media_type
        return response


schema_view = SchemaApi.as_view(
    authentication_classes=[TokenAuthentication, SessionAuthentication],
    permission_classes=[IsAdminUser],
    # This API only, not the OpenAI-compatible /v1/ paths (their contract is OpenAI's).
    urlconf=[path("api/", include(api_patterns))],
    custom_settings={
        "ENUM_NAME_OVERRIDES": {
            "ChannelKindEnum": "relay.models.KINDS",
            "LedgerEntryKindEnum": "billing.models.LedgerEntry.Kind",
        },
    },
)

urlpatterns = [
    *api_patterns,
    # The OpenAPI schema; no UI, since drf-spectacular's UIs load from a CDN.
    path("schema/", schema_view, name="api-schema"),
    # Anything else under /api/ is a JSON 404, not the site's HTML page.
    re_path(r"^[\s\S]*$", NotFoundApi.as_view()),
]
