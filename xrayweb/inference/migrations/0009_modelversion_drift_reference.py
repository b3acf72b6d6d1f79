"""Each version's drift reference (the drift monitor's baseline), read from its bundle's
metadata where the bundle is still on disk (the metadata is read without torch)."""

from django.db import migrations, models


def references_fill(apps, schema_editor):
    from classifier import BundleError, read_metadata

    ModelVersion = apps.get_model("inference", "ModelVersion")
    for version in ModelVersion.objects.all():
        try:
            meta = read_metadata(version.bundle_path)
        except (BundleError, OSError):
            continue
        reference = (meta.gate or {}).get("reference") or {}
        if reference:
            version.drift_reference = reference
            version.save(update_fields=["drift_reference"])


class Migration(migrations.Migration):
    dependencies = [
        ("inference", "0008_prediction_feature_distance"),
    ]

    operations = [
        migrations.AddField(
            model_name="modelversion",
            name="drift_reference",
            field=models.JSONField(blank=True, default=dict),
        ),
        migrations.RunPython(references_fill, migrations.RunPython.noop),
    ]
