"""The gate's feature distance as a column (the drift monitor reads it), filled in for the
predictions stored before it from their assessment's scores."""

from django.db import migrations, models


def distances_fill(apps, schema_editor):
    Prediction = apps.get_model("inference", "Prediction")
    changed = []
    for prediction in Prediction.objects.only("id", "assessment").iterator(chunk_size=2000):
        value = (prediction.assessment or {}).get("scores", {}).get("feature_distance")
        if isinstance(value, int | float):
            prediction.feature_distance = float(value)
            changed.append(prediction)
        if len(changed) >= 2000:
            Prediction.objects.bulk_update(changed, ["feature_distance"])
            changed = []
    Prediction.objects.bulk_update(changed, ["feature_distance"])


class Migration(migrations.Migration):
    dependencies = [
        ("inference", "0007_prediction_sets"),
    ]

    operations = [
        migrations.AddField(
            model_name="prediction",
            name="feature_distance",
            field=models.FloatField(blank=True, null=True),
        ),
        migrations.RunPython(distances_fill, migrations.RunPython.noop),
    ]
