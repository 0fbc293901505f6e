"""Forms of the tenant console. Each form is built for one tenant: its choices
come only from what that tenant may use, so another tenant's ids never validate."""

from __future__ import annotations

import datetime as dt
import ipaddress
from decimal import Decimal

from django import forms
from django.contrib.auth import get_user_model
from django.utils import timezone
from django.utils.translation import gettext as _t
from django.utils.translation import gettext_lazy as _

from accounts.models import ApiKey, Group, GroupModel, Membership, Tenant
from billing.models import UsageRecord
from billing.pricing import to_nanos
from console.formatting import thousands
from console.labels import LABELS

LIMITS = ("limit_rpm", "limit_tpm", "limit_concurrency")
MAX_ALLOWED_IPS = 100
# No amount anyone means (a spend cap, an alert threshold) could overflow the
# nanos column (9.2e18 nanos).
MAX_AMOUNT_UNITS = Decimal(10**9)


def amount_field(label, *, help_text) -> forms.DecimalField:
    """An optional amount in currency units, to the nano; empty means none."""
    return forms.DecimalField(
        required=False,
        min_value=Decimal(0),
        max_value=MAX_AMOUNT_UNITS,
        decimal_places=9,
        label=label,
        help_text=help_text,
    )


def parse_cidrs(text: str) -> list[str]:
    """One address or CIDR range per line (or comma-separated), normalised.

    A range with host bits set (``10.0.0.5/24``) is refused rather than
    widened: the relay would allow the whole /24, which may not be what was meant.
    """
    ranges, errors = [], []
    for entry in text.replace(",", "\n").split():
        try:
            network = ipaddress.ip_network(entry, strict=True)
        except ValueError:
            errors.append(
                _t("%(entry)s is not an IP address or CIDR range (e.g. 203.0.113.0/24).")
                % {"entry": entry}
            )
            continue
        if str(network) not in ranges:
            ranges.append(str(network))
    if errors:
        raise forms.ValidationError(errors)
    if len(ranges) > MAX_ALLOWED_IPS:
        raise forms.ValidationError(_t("At most %(count)d ranges.") % {"count": MAX_ALLOWED_IPS})
    return ranges


class KeyIssueForm(forms.Form):
    # Identifies one filled-in form, so sending it twice issues one key.
    nonce = forms.CharField(required=False, max_length=64, widget=forms.HiddenInput)
    name = forms.CharField(max_length=200, label=_("Name"))
    group = forms.ModelChoiceField(
        queryset=Group.objects.none(), empty_label=None, label=_("Group")
    )
    expires = forms.DateTimeField(
        required=False,
        label=_("Expires (UTC)"),
        help_text=_("Leave empty for a key that does not expire."),
        widget=forms.DateTimeInput(attrs={"type": "datetime-local"}, format="%Y-%m-%dT%H:%M"),
    )
    spend_cap = amount_field(
        _("Spend cap"),
        help_text=_("The most this key may ever spend; empty means only your balance limits it."),
    )
    limit_rpm = forms.IntegerField(required=False, min_value=1, label=_("Requests per minute"))
    limit_tpm = forms.IntegerField(required=False, min_value=1, label=_("Tokens per minute"))
    limit_concurrency = forms.IntegerField(
        required=False, min_value=1, label=_("Concurrent requests")
    )
    allowed_models = forms.MultipleChoiceField(
        required=False,
        widget=forms.CheckboxSelectMultiple,
        label=_("Models"),
        help_text=_("None ticked: every model of the group."),
    )
    allowed_ips = forms.CharField(
        required=False,
        widget=forms.Textarea(attrs={"rows": 3, "placeholder": "203.0.113.0/24\n2001:db8::/32"}),
        label=_("IP allow-list"),
        help_text=_("One address or CIDR range per line; empty means from anywhere."),
    )

    def __init__(self, *args, tenant: Tenant, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.tenant = tenant
        self.fields["group"].queryset = tenant.groups.order_by("name")
        models = (
            GroupModel.objects.filter(group__tenants=tenant)
            .order_by("model")
            .values_list("model", flat=True)
            .distinct()
        )
        self.fields["allowed_models"].choices = [(m, m) for m in models]

    def clean_name(self) -> str:
        return self.cleaned_data["name"].strip()

    def clean_expires(self) -> dt.datetime | None:
        expires = self.cleaned_data["expires"]
        if expires is not None and expires <= timezone.now():
            raise forms.ValidationError(_("The expiry must be in the future."))
        return expires

    def clean_allowed_ips(self) -> list[str]:
        return parse_cidrs(self.cleaned_data["allowed_ips"])

    def clean(self) -> dict:
        cleaned = super().clean()
        group: Group | None = cleaned.get("group")
        if group is None:
            return cleaned
        # A key may only narrow its group: lower limits, fewer models.
        for name in LIMITS:
            value, ceiling = cleaned.get(name), getattr(group, name)
            if value is not None and ceiling is not None and value > ceiling:
                self.add_error(
                    name,
                    _t("At most %(ceiling)s, the limit of group %(group)s.")
                    % {"ceiling": thousands(ceiling), "group": group},
                )
        open_models = set(group.models.values_list("model", flat=True))
        outside = sorted(set(cleaned.get("allowed_models") or ()) - open_models)
        if outside:
            self.add_error(
                "allowed_models",
                _t("Not in group %(group)s: %(models)s.")
                % {"group": group, "models": ", ".join(outside)},
            )
        return cleaned

    def key_fields(self) -> dict:
        """The validated values as ``ApiKey`` fields (money in nanos)."""
        data = self.cleaned_data
        cap = data["spend_cap"]
        return {
            "expires": data["expires"],
            "spend_cap_nanos": to_nanos(cap) if cap is not None else None,
            "allowed_models": list(data["allowed_models"]),
            "allowed_ips": data["allowed_ips"],
            **{name: data[name] for name in LIMITS},
        }


class KeyRenameForm(forms.Form):
    name = forms.CharField(max_length=200, label=_("Name"))

    def clean_name(self) -> str:
        return self.cleaned_data["name"].strip()


class MemberAddForm(forms.Form):
    username = forms.CharField(max_length=150, label=_("Username"))
    role = forms.ChoiceField(
        choices=Membership.Role.choices, initial=Membership.Role.MEMBER, label=_("Role")
    )

    def __init__(self, *args, tenant: Tenant, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.tenant = tenant

    def clean_username(self):
        username = self.cleaned_data["username"].strip()
        user = get_user_model().objects.filter(username=username, is_active=True).first()
        if user is None:
            raise forms.ValidationError(_("No user with that username."))
        if Membership.objects.filter(tenant=self.tenant, user=user).exists():
            raise forms.ValidationError(
                _t("%(username)s is already a member.") % {"username": username}
            )
        return user


class MemberRoleForm(forms.Form):
    role = forms.ChoiceField(choices=Membership.Role.choices, label=_("Role"))


class UsageFilterForm(forms.Form):
    """The usage page's filters (GET). Dates are UTC days, both inclusive."""

    key = forms.ModelChoiceField(
        queryset=ApiKey.objects.none(), required=False, empty_label=_("all keys"), label=_("Key")
    )
    model = forms.CharField(
        required=False,
        max_length=200,
        label=_("Model"),
        widget=forms.TextInput(attrs={"list": "known-models"}),
    )
    status = forms.ChoiceField(
        choices=[
            ("", _("any status")),
            *((status, LABELS.get(status, status)) for status in UsageRecord.Status.values),
        ],
        required=False,
        label=_("Status"),
    )
    since = forms.DateField(
        required=False, label=_("From (UTC)"), widget=forms.DateInput(attrs={"type": "date"})
    )
    until = forms.DateField(
        required=False, label=_("To (UTC)"), widget=forms.DateInput(attrs={"type": "date"})
    )

    def __init__(self, *args, tenant: Tenant, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.fields["key"].queryset = ApiKey.objects.for_tenant(tenant).order_by("name", "pk")

    def clean_model(self) -> str:
        return self.cleaned_data["model"].strip()

    def clean(self) -> dict:
        cleaned = super().clean()
        since, until = cleaned.get("since"), cleaned.get("until")
        if since and until and since > until:
            raise forms.ValidationError(_("The start date is after the end date."))
        return cleaned


class RedeemForm(forms.Form):
    code = forms.CharField(
        max_length=64,
        label=_("Redemption code"),
        widget=forms.TextInput(attrs={"autocomplete": "off", "spellcheck": "false"}),
    )
