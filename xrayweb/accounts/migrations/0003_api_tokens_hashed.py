"""API tokens move from DRF's authtoken (keys in plain text, no expiry) to django-rest-knox
(SHA-512 digests, an expiry). Each existing key is stored as knox stores its own, as a
digest with the usual time to live, so integrations keep working until it expires; then the
plain-text keys are deleted. DRF's authtoken app is no longer installed, so its table is
read with SQL, when it exists."""

from django.conf import settings
from django.db import migrations
from django.utils import timezone

LEGACY_TABLE = "authtoken_token"


def tokens_hash(apps, schema_editor) -> None:
    from knox.crypto import hash_token
    from knox.settings import CONSTANTS

    connection = schema_editor.connection
    if LEGACY_TABLE not in connection.introspection.table_names():
        return
    auth_token = apps.get_model("knox", "AuthToken")
    table = connection.ops.quote_name(LEGACY_TABLE)
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT {connection.ops.quote_name('key')}, user_id FROM {table}")
        rows = cursor.fetchall()
        expiry = timezone.now() + settings.REST_KNOX["TOKEN_TTL"]
        auth_token.objects.bulk_create(
            auth_token(
                digest=hash_token(key),
                token_key=key[: CONSTANTS.TOKEN_KEY_LENGTH],
                user_id=user_id,
                expiry=expiry,
            )
            for key, user_id in rows
        )
        cursor.execute(f"DELETE FROM {table}")


class Migration(migrations.Migration):
    dependencies = [
        ("accounts", "0002_membership"),
        ("knox", "0009_extend_authtoken_field"),
    ]

    operations = [migrations.RunPython(tokens_hash, migrations.RunPython.noop)]
