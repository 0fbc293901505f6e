from django import forms
from django.contrib import admin

from relay.models import Channel, ChannelModel


class ChannelForm(forms.ModelForm):
    # Write-only: the stored credential is never rendered back; leaving the
    # field empty keeps it.
    credential = forms.CharField(
        required=False,
        widget=forms.PasswordInput(render_value=False),
        help_text="Leave empty to keep the current credential.",
    )

    class Meta:
        model = Channel
        fields = [
            "name",
            "kind",
            "base_url",
            "credential",
            "groups",
            "priority",
            "weight",
            "enabled",
        ]

    def clean_credential(self) -> str:
        value = self.cleaned_data.get("credential")
        if not value and self.instance.pk:
            return self.instance.credential
        return value or ""


class ChannelModelInline(admin.TabularInline):
    model = ChannelModel
    extra = 1


@admin.register(Channel)
class ChannelAdmin(admin.ModelAdmin):
    form = ChannelForm
    list_display = ["name", "kind", "base_url", "priority", "weight", "enabled"]
    list_filter = ["kind", "enabled"]
    filter_horizontal = ["groups"]
    inlines = [ChannelModelInline]


@admin.register(ChannelModel)
class ChannelModelAdmin(admin.ModelAdmin):
    list_display = ["channel", "model", "upstream_model"]
    list_filter = ["channel"]
