from django.contrib import admin

from billing.models import BasePrice, UsageRecord


@admin.register(BasePrice)
class BasePriceAdmin(admin.ModelAdmin):
    list_display = ["model", "price_per_mtok_nanos"]


@admin.register(UsageRecord)
class UsageRecordAdmin(admin.ModelAdmin):
    list_display = ["request_id", "tenant", "model", "tokens", "cost_nanos", "status", "created"]
    list_filter = ["status", "model"]
    search_fields = ["request_id"]
    date_hierarchy = "created"

    def has_change_permission(self, request, obj=None) -> bool:
        return False  # records are history; corrections are ledger entries
