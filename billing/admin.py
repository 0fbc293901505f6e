from django import forms
from django.contrib import admin

from billing import ledger
from billing.models import Balance, BasePrice, LedgerEntry, UsageRecord


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


@admin.register(Balance)
class BalanceAdmin(admin.ModelAdmin):
    """Read-only: a balance moves only by ledger entries."""

    list_display = ["tenant", "balance_nanos", "updated"]

    def has_add_permission(self, request) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False


class LedgerEntryForm(forms.ModelForm):
    class Meta:
        model = LedgerEntry
        fields = ["tenant", "kind", "amount_nanos", "reason"]

    def clean(self):
        data = super().clean()
        kind, amount, tenant = data.get("kind"), data.get("amount_nanos"), data.get("tenant")
        if kind == LedgerEntry.Kind.USAGE:
            raise forms.ValidationError("Usage debits are written by the workers, not by hand.")
        if kind in (LedgerEntry.Kind.TOPUP, LedgerEntry.Kind.REFUND) and amount is not None:
            if amount <= 0:
                raise forms.ValidationError("A top-up or refund must be positive.")
        if kind == LedgerEntry.Kind.ADJUSTMENT and not (data.get("reason") or "").strip():
            raise forms.ValidationError("An adjustment needs a reason.")
        if tenant is not None and amount is not None:
            if ledger.balance_nanos(tenant) + amount < 0:
                raise forms.ValidationError("That would take the balance below zero.")
        return data


@admin.register(LedgerEntry)
class LedgerEntryAdmin(admin.ModelAdmin):
    """Operators add top-ups, adjustments and refunds here; entries are never edited."""

    form = LedgerEntryForm
    list_display = ["tenant", "kind", "amount_nanos", "reason", "created_by", "created"]
    list_filter = ["kind"]
    search_fields = ["tenant__slug", "reason"]
    fields = ["tenant", "kind", "amount_nanos", "reason"]

    def has_change_permission(self, request, obj=None) -> bool:
        return False

    def has_delete_permission(self, request, obj=None) -> bool:
        return False

    def save_model(self, request, obj, form, change) -> None:
        # Through the ledger, so the balance row and the live balance move too.
        entry = ledger.post(
            tenant=obj.tenant,
            kind=obj.kind,
            amount_nanos=obj.amount_nanos,
            reason=obj.reason,
            created_by=request.user,
        )
        obj.pk = entry.pk
