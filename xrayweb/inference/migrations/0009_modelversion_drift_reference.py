"""Each version's drift reference (the drift monitor's baseline), read from its bundle's
metadata where its own bundle (same sha256) is still on disk (read without torch)."""

from django.db import migrations, models


def references_fill(apps, schema_editor):
    try:
        from classifier import BundleError, bundle_sha256, read_metadata
    except ImportError:  # a later classifier without these: the references stay empty
        return

    ModelVersion = apps.get_model("inference", "ModelVersion")
    for version in ModelVersion.objects.all():
        try:
            # The file at the path may since have been replaced by another bundle (the shipped
            # one is, at upgrades): only the version's own bundle speaks for it.
            if bundle_sha256(version.bundle_path) != version.sha256:
                continue
            meta = read_metadata(version.bundle_path)
        except (BundleError, OSError, ValueError):
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
