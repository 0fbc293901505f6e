import io

import pytest
from cryptography.fernet import Fernet
from django.core.management import call_command
from django.db import connection
from django.test import override_settings

from relay.models import Channel

pytestmark = pytest.mark.django_db

CANARY = "sk-canary-provider-credential-7f3a"


def stored_credential(channel: Channel) -> str:
    with connection.cursor() as cursor:
        cursor.execute("SELECT credential FROM relay_channel WHERE id = %s", [channel.pk])
        return cursor.fetchone()[0]


def test_a_database_dump_does_not_reveal_a_channel_credential():
    channel = Channel.objects.create(name="c", base_url="https://x.test/v1", credential=CANARY)
    raw = stored_credential(channel)
    assert CANARY not in raw
    assert Channel.objects.get(pk=channel.pk).credential == CANARY


def test_rotation_re_encrypts_under_the_new_key_and_the_old_key_can_then_go(settings):
    old_key = settings.CREDENTIALS_KEYS[0]
    channel = Channel.objects.create(name="c", base_url="https://x.test/v1", credential=CANARY)
    new_key = Fernet.generate_key().decode()
    with override_settings(CREDENTIALS_KEYS=[new_key, old_key]):
        out = io.StringIO()
        call_command("rotate_credentials", stdout=out)
        assert "re-encrypted 1" in out.getvalue()
    raw = stored_credential(channel)
    assert Fernet(new_key.encode()).decrypt(raw.encode()).decode() == CANARY
    with override_settings(CREDENTIALS_KEYS=[new_key]):
        assert Channel.objects.get(pk=channel.pk).credential == CANARY
