from django.contrib import admin

from accounts.models import ApiKey, Group, GroupModel, Membership, Tenant


class MembershipInline(admin.TabularInline):
    model = Membership
    extra = 0
    autocomplete_fields = ["user"]


@admin.register(Tenant)
class TenantAdmin(admin.ModelAdmin):
    list_display = ["slug", "name", "status", "created"]
    list_filter = ["status"]
    search_fields = ["slug", "name"]
    filter_horizontal = ["groups"]
    inlines = [MembershipInline]


class GroupModelInline(admin.TabularInline):
    model = GroupModel
    extra = 1


@admin.register(Group)
class GroupAdmin(admin.ModelAdmin):
    list_display = ["name", "price_ratio", "limit_rpm", "limit_tpm", "limit_concurrency"]
    search_fields = ["name"]
    inlines = [GroupModelInline]


@admin.register(GroupModel)
class GroupModelAdmin(admin.ModelAdmin):
    list_display = ["group", "model", "price_per_mtok_nanos"]
    list_filter = ["group"]


@admin.register(Membership)
class MembershipAdmin(admin.ModelAdmin):
    list_display = ["user", "tenant", "role"]
    list_filter = ["role"]


@admin.register(ApiKey)
class ApiKeyAdmin(admin.ModelAdmin):
    """Keys are issued with ``apply_config`` or the console, where the secret is
    shown once; the admin shows only the masked form."""

    list_display = ["name", "masked", "tenant", "group", "status", "expires", "created"]
    list_filter = ["status", "group"]
    search_fields = ["name", "prefix", "tenant__slug"]
    readonly_fields = ["masked", "imported", "created", "revoked"]
    exclude = ["digest", "prefix", "last4"]

    def has_add_permission(self, request) -> bool:
        return False
