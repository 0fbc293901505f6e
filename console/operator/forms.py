"""Forms of the operator console. Amounts are typed in currency units and
converted to nanos with ``billing.pricing.to_nanos``; nothing here writes."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

from django import forms
from django.core.validators import URLValidator
from django.utils.translation import gettext as _t
from django.utils.translation import gettext_lazy as _

from accounts.models import Group, Membership, Tenant
from billing import reports
from billing.models import LedgerEntry
from billing.pricing import to_nanos
from console.labels import label
from relay.models import Channel
from relay.operations.actions import GROUP_FIELDS, MAX_BULK_KEYS, MAX_INT, MAX_NANOS


def _limit_field(label: str, *, help_text: str = _("Blank is unlimited.")) -> forms.IntegerField:
    return forms.IntegerField(
        label=label, required=False, min_value=1, max_value=MAX_INT, help_text=help_text
    )


def _call_limit_field(label: str) -> forms.IntegerField:
    """A channel's own limit per upstream call."""
    return _limit_field(
        label,
        help_text=_(
            "Blank: the provider's own limit (docs/providers.md); set it lower for an "
            "account or a server that takes less."
        ),
    )


def _nanos(amount: Decimal) -> int:
    """Currency units to nanos, refusing sub-nano precision and overflow."""
    try:
        nanos = to_nanos(amount)
    except ValueError:
        raise forms.ValidationError(_("At most 9 decimal places.")) from None
    if abs(nanos) > MAX_NANOS:
        raise forms.ValidationError(_("Too large."))
    return nanos


def _money_field(label: str, *, required: bool = True, help_text: str = "") -> forms.DecimalField:
    return forms.DecimalField(
        label=label, required=required, max_digits=19, decimal_places=9, help_text=help_text
    )


# --- Tenants -------------------------------------------------------------------


class TenantForm(forms.ModelForm):
    groups = forms.ModelMultipleChoiceField(
        queryset=Group.objects.order_by("name"),
        required=False,
        widget=forms.CheckboxSelectMultiple,
        label=_("Groups"),
        help_text=_("The groups whose keys the tenant may issue itself."),
    )
    limit_rpm = _limit_field(_("Limit: requests per minute"))
    limit_tpm = _limit_field(_("Limit: tokens per minute"))
    limit_concurrency = _limit_field(_("Limit: concurrent requests"))

    class Meta:
        model = Tenant
        fields = ["name", "slug", "groups", "limit_rpm", "limit_tpm", "limit_concurrency"]
        labels = {"name": _("Name"), "slug": _("Slug")}

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        if self.instance.pk:
            # The slug is the tenant's name in URLs and config files: fixed once made.
            del self.fields["slug"]

    def save(self, commit: bool = True):  # pragma: no cover - views save through actions
        raise NotImplementedError("save through relay.operations.actions")


class BalanceForm(forms.Form):
    KINDS = [
        (LedgerEntry.Kind.TOPUP, _("Top up (money received)")),
        (LedgerEntry.Kind.ADJUSTMENT, _("Adjust (a correction, either way)")),
    ]
    kind = forms.ChoiceField(choices=KINDS, initial=LedgerEntry.Kind.TOPUP, label=_("Kind"))
    amount = _money_field(
        _("Amount"), help_text=_("In currency units; an adjustment may be negative.")
    )
    reason = forms.CharField(
        max_length=500,
        required=False,
        label=_("Reason"),
        help_text=_("Required for adjustments; kept in the ledger."),
    )

    def clean(self):
        data = super().clean()
        kind, amount = data.get("kind"), data.get("amount")
        if amount is None or kind is None:
            return data
        try:
            data["amount_nanos"] = _nanos(amount)
        except forms.ValidationError as error:
            self.add_error("amount", error)
            return data
        if kind == LedgerEntry.Kind.TOPUP and data["amount_nanos"] <= 0:
            self.add_error("amount", _("A top-up must be more than zero."))
        if kind == LedgerEntry.Kind.ADJUSTMENT:
            if data["amount_nanos"] == 0:
                self.add_error("amount", _("An adjustment of zero changes nothing."))
            if not (data.get("reason") or "").strip():
                self.add_error("reason", _("An adjustment needs a reason."))
        return data


class IssueKeysForm(forms.Form):
    group = forms.ModelChoiceField(queryset=Group.objects.order_by("name"), label=_("Group"))
    count = forms.IntegerField(
        min_value=1, max_value=MAX_BULK_KEYS, initial=10, label=_("How many keys")
    )
    name_prefix = forms.SlugField(
        max_length=150,
        initial="key",
        label=_("Name prefix"),
        help_text=_("Keys are named <prefix>-0001, <prefix>-0002, ..."),
    )


# --- Groups and prices ---------------------------------------------------------


class GroupForm(forms.ModelForm):
    price_ratio = forms.DecimalField(
        max_digits=12,
        decimal_places=6,
        min_value=0,
        initial=Decimal("1"),
        label=_("Price ratio"),
        help_text=_("Models without a price of their own cost the base price times this."),
    )
    limit_rpm = _limit_field(_("Default limit: requests per minute"))
    limit_tpm = _limit_field(_("Default limit: tokens per minute"))
    limit_concurrency = _limit_field(_("Default limit: concurrent requests"))
    cache_enabled = forms.BooleanField(
        required=False,
        label=_("Embedding cache"),
        help_text=_(
            "Answer an item sent before (same upstream model, dimensions and options) "
            "from the cache instead of the upstream."
        ),
    )
    cache_scope = forms.ChoiceField(
        choices=Group.CacheScope.choices,
        initial=Group.CacheScope.TENANT,
        required=False,
        label=_("Cache scope"),
        help_text=_("Shared by every tenant tells one tenant, by timing, what another embedded."),
    )
    cache_price_ratio = forms.DecimalField(
        max_digits=7,
        decimal_places=6,
        min_value=0,
        max_value=1,
        initial=Decimal("0.1"),
        required=False,
        label=_("Cache price ratio"),
        help_text=_("A cached item costs the model's price times this."),
    )
    channels = forms.ModelMultipleChoiceField(
        queryset=Channel.objects.order_by("name"),
        required=False,
        widget=forms.CheckboxSelectMultiple,
        label=_("Channels"),
        help_text=_("The channels that serve this group."),
    )

    class Meta:
        model = Group
        fields = [*GROUP_FIELDS, "channels"]
        labels = {"name": _("Name"), "description": _("Description")}

    def clean_cache_scope(self) -> str:
        return self.cleaned_data["cache_scope"] or Group.CacheScope.TENANT

    def clean_cache_price_ratio(self) -> Decimal:
        ratio = self.cleaned_data["cache_price_ratio"]
        return Decimal("0.1") if ratio is None else ratio

    def save(self, commit: bool = True):  # pragma: no cover - views save through actions
        raise NotImplementedError("save through relay.operations.actions")


class GroupModelForm(forms.Form):
    model = forms.CharField(max_length=200, required=False, label=_("Model"))
    price = _money_field(
        _("Price per million tokens"),
        required=False,
        help_text=_("Blank: the base price times the group's ratio."),
    )

    def clean_model(self) -> str:
        model = self.cleaned_data["model"].strip()
        if any(char.isspace() for char in model):
            raise forms.ValidationError(_("A model name has no spaces."))
        return model

    def clean_price(self) -> int | None:
        price = self.cleaned_data["price"]
        if price is None:
            return None
        if price < 0:
            raise forms.ValidationError(_("A price is never negative."))
        return _nanos(price)


class _ModelRowsFormSet(forms.BaseFormSet):
    """Rows with a model name; a name given twice is refused."""

    def rows(self) -> list[dict]:
        return [
            form.cleaned_data
            for form in self.forms
            if form.cleaned_data.get("model") and not form.cleaned_data.get("DELETE")
        ]

    def clean(self) -> None:
        if any(self.errors):
            return
        seen: set[str] = set()
        for row in self.rows():
            if row["model"] in seen:
                raise forms.ValidationError(
                    _t("%(model)s is listed twice.") % {"model": row["model"]}
                )
            seen.add(row["model"])


GroupModelFormSet = forms.formset_factory(
    GroupModelForm, formset=_ModelRowsFormSet, extra=3, can_delete=True
)


class BasePriceForm(forms.Form):
    model = forms.CharField(max_length=200, label=_("Model"))
    price = _money_field(_("Price per million tokens"))

    def clean_model(self) -> str:
        model = self.cleaned_data["model"].strip()
        if not model or any(char.isspace() for char in model):
            raise forms.ValidationError(_("A model name has no spaces."))
        return model

    def clean_price(self) -> int:
        price = self.cleaned_data["price"]
        if price < 0:
            raise forms.ValidationError(_("A price is never negative."))
        return _nanos(price)


# --- Channels --------------------------------------------------------------------


class ChannelForm(forms.ModelForm):
    base_url = forms.URLField(
        max_length=500,
        assume_scheme="https",
        validators=[URLValidator(schemes=["http", "https"])],
        label=_("Base URL"),
        help_text=_(
            "Each kind's form is in docs/providers.md; e.g. OpenAI-compatible: the "
            "API root with its version, https://api.openai.com/v1."
        ),
    )
    # Write-only: never rendered back (render_value=False); blank keeps the stored one.
    credential = forms.CharField(
        required=False,
        strip=True,
        widget=forms.PasswordInput(render_value=False, attrs={"autocomplete": "new-password"}),
        label=_("Credential"),
        help_text=_("The upstream API key. Leave blank to keep the one stored."),
    )
    priority = forms.IntegerField(
        initial=0,
        min_value=-MAX_INT,
        max_value=MAX_INT,
        label=_("Priority"),
        help_text=_("Lower tiers are tried first."),
    )
    weight = forms.IntegerField(
        initial=1,
        min_value=1,
        max_value=MAX_INT,
        label=_("Weight"),
        help_text=_("Share of traffic within a tier."),
    )
    groups = forms.ModelMultipleChoiceField(
        queryset=Group.objects.order_by("name"),
        required=False,
        widget=forms.CheckboxSelectMultiple,
        label=_("Groups"),
    )
    items_per_call = _call_limit_field(_("Items per call"))
    tokens_per_call = _call_limit_field(_("Tokens per call"))
    tokens_per_item = _call_limit_field(_("Tokens per item"))
    default_input_type = forms.CharField(
        max_length=64,
        required=False,
        label=_("Default input_type"),
        help_text=_("For providers that take one (Cohere, Voyage...), when a client sends none."),
    )
    default_task = forms.CharField(
        max_length=64,
        required=False,
        label=_("Default task"),
        help_text=_("For providers that take one (Jina, Gemini), when a client sends none."),
    )

    class Meta:
        model = Channel
        # The credential is not a model field here: binding it would write ""
        # over the stored one on every edit.
        fields = [
            "name",
            "kind",
            "base_url",
            "priority",
            "weight",
            "enabled",
            "groups",
            "items_per_call",
            "tokens_per_call",
            "tokens_per_item",
            "default_input_type",
            "default_task",
        ]
        labels = {"name": _("Name"), "kind": _("Kind"), "enabled": _("Enabled")}

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        # Kinds in the reader's language where they need a word (console/labels.py).
        self.fields["kind"].choices = [
            (value, label(value, name)) for value, name in self.fields["kind"].choices
        ]

    def save(self, commit: bool = True):  # pragma: no cover - views save through actions
        raise NotImplementedError("save through relay.operations.actions")


class ChannelModelForm(forms.Form):
    model = forms.CharField(max_length=200, required=False, label=_("Public model name"))
    upstream_model = forms.CharField(
        max_length=200,
        required=False,
        label=_("Upstream name"),
        help_text=_("The provider's name (Azure: the deployment); blank means the same."),
    )
    truncatable = forms.BooleanField(
        required=False,
        label=_("Matryoshka"),
        help_text=_("The relay may cut its vectors to `dimensions` where the provider cannot."),
    )

    def clean(self):
        data = super().clean()
        for name in ("model", "upstream_model"):
            value = (data.get(name) or "").strip()
            if any(char.isspace() for char in value):
                self.add_error(name, _("A model name has no spaces."))
            data[name] = value
        if data.get("upstream_model") == data.get("model"):
            data["upstream_model"] = ""
        return data


ChannelModelFormSet = forms.formset_factory(
    ChannelModelForm, formset=_ModelRowsFormSet, extra=3, can_delete=True
)


class ChannelTestForm(forms.Form):
    model = forms.ChoiceField(choices=(), label=_("Model"))

    def __init__(self, *args, channel: Channel, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        models = channel.models.order_by("model").values_list("model", flat=True)
        self.fields["model"].choices = [(model, model) for model in models]


# --- Reports and the audit log ---------------------------------------------------


class ReportForm(forms.Form):
    start = forms.DateField(label=_("From (UTC)"), widget=forms.DateInput(attrs={"type": "date"}))
    end = forms.DateField(label=_("To (inclusive)"), widget=forms.DateInput(attrs={"type": "date"}))
    tenant = forms.ModelChoiceField(
        queryset=Tenant.objects.order_by("slug"),
        required=False,
        to_field_name="slug",
        empty_label=_("All tenants"),
        label=_("Tenant"),
    )

    @staticmethod
    def default_range() -> tuple[dt.date, dt.date]:
        end = dt.datetime.now(dt.UTC).date()
        return end - dt.timedelta(days=29), end

    def clean(self):
        data = super().clean()
        start, end = data.get("start"), data.get("end")
        if start and end:
            if end < start:
                raise forms.ValidationError(_("The range ends before it starts."))
            if (end - start).days + 1 > reports.MAX_RANGE_DAYS:
                raise forms.ValidationError(
                    _t("A report covers at most %(days)d days.") % {"days": reports.MAX_RANGE_DAYS}
                )
        return data


class AuditFilterForm(forms.Form):
    tenant = forms.ModelChoiceField(
        queryset=Tenant.objects.order_by("slug"),
        required=False,
        to_field_name="slug",
        empty_label=_("All tenants"),
        label=_("Tenant"),
    )
    action = forms.CharField(
        max_length=64,
        required=False,
        label=_("Action"),
        widget=forms.TextInput(attrs={"list": "actions"}),
    )


class MemberForm(forms.Form):
    """Add a person to a tenant (creating the user when new) or change a role."""

    username = forms.CharField(max_length=150, label=_("Username"))
    role = forms.ChoiceField(
        choices=Membership.Role.choices, initial=Membership.Role.OWNER, label=_("Role")
    )
    email = forms.EmailField(required=False, label=_("Email"))
    # strip=False, as Django's own password fields: sign-in takes it as typed.
    password = forms.CharField(
        required=False,
        strip=False,
        widget=forms.PasswordInput(render_value=False),
        label=_("Password"),
        help_text=_("Only for a new user (at least 10 characters); share it with them safely."),
    )
