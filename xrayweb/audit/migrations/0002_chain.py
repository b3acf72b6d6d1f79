# Existing readings and audit events are linked into their hash chains (in id order), then
# PostgreSQL is told to refuse UPDATE and DELETE on both tables.

from django.db import migrations

from xrayweb.audit.chain import GENESIS, row_content, row_hash

TABLES = ["audit_auditevent", "review_review"]


def link_existing(apps, schema_editor):
    from django.conf import settings

    key = settings.AUDIT_CHAIN_KEY
    ChainHead = apps.get_model("audit", "ChainHead")
    for app, model_name, chain in [("audit", "AuditEvent", "audit"), ("review", "Review", "review")]:
        model = apps.get_model(app, model_name)
        seq, previous = 0, GENESIS
        for row in model.objects.order_by("id").iterator(chunk_size=2000):
            seq += 1
            row.seq = seq
            row.chain_hash = row_hash(
                key=key, previous=previous, seq=seq, content=row_content(row)
            )
            previous = row.chain_hash
            model.objects.filter(pk=row.pk).update(seq=seq, chain_hash=row.chain_hash)
        ChainHead.objects.create(name=chain, seq=seq, hash=previous)


def append_only_triggers(apps, schema_editor):
    if schema_editor.connection.vendor != "postgresql":
        return
    schema_editor.execute(
        """
        CREATE OR REPLACE FUNCTION xrayweb_append_only() RETURNS trigger AS $$
        BEGIN
            RAISE EXCEPTION '% is append-only: % refused', TG_TABLE_NAME, TG_OP
                USING ERRCODE = 'insufficient_privilege';
        END
        $$ LANGUAGE plpgsql
        """,
        params=None,  # the % are PL/pgSQL's, not placeholders
    )
    for table in TABLES:
        schema_editor.execute(
            f"CREATE TRIGGER {table}_append_only BEFORE UPDATE OR DELETE ON {table} "
            "FOR EACH ROW EXECUTE FUNCTION xrayweb_append_only()"
        )


def drop_triggers(apps, schema_editor):
    if schema_editor.connection.vendor != "postgresql":
        return
    for table in TABLES:
        schema_editor.execute(f"DROP TRIGGER IF EXISTS {table}_append_only ON {table}")
    schema_editor.execute("DROP FUNCTION IF EXISTS xrayweb_append_only()")


def unlink(apps, schema_editor):
    apps.get_model("audit", "ChainHead").objects.all().delete()


class Migration(migrations.Migration):
    dependencies = [
        ("audit", "0001_initial"),
        ("review", "0006_chain_and_audit_moved"),
    ]

    operations = [
        migrations.RunPython(link_existing, unlink),
        migrations.RunPython(append_only_triggers, drop_triggers),
    ]
