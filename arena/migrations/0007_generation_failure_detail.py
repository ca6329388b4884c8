"""A failed side keeps the backend's words for staff (error_detail) and shows voters a neutral text by kind;
a model counts the inputs its server refused in a row apart from its failures (consecutive_rejections).

Rows failed before this migration held the backend's own message in `error`, which the battle page showed: it is
moved to `error_detail`, and `error` becomes the neutral 'unavailable' text (frozen here as it read at the time).
"""

from django.db import migrations, models
from django.db.models import F

UNAVAILABLE_TEXT = "One of the models could not answer right now. Please start a new battle."


def failures_split(apps, schema_editor):
    Generation = apps.get_model("arena", "Generation")
    Generation.objects.filter(status="failed").update(
        error_detail=F("error"), error=UNAVAILABLE_TEXT, failure_kind="unavailable"
    )


def failures_join(apps, schema_editor):
    Generation = apps.get_model("arena", "Generation")
    Generation.objects.filter(status="failed").exclude(error_detail="").update(error=F("error_detail"))


class Migration(migrations.Migration):
    dependencies = [
        ("arena", "0006_gallery_output_media_fields"),
    ]

    operations = [
        migrations.AddField(
            model_name="generation",
            name="error_detail",
            field=models.TextField(blank=True),
        ),
        migrations.AddField(
            model_name="generation",
            name="failure_kind",
            field=models.CharField(
                blank=True,
                choices=[
                    ("input", "input"),
                    ("timeout", "timeout"),
                    ("unavailable", "unavailable"),
                    ("empty", "empty"),
                ],
                max_length=12,
            ),
        ),
        migrations.AddField(
            model_name="modelentry",
            name="consecutive_rejections",
            field=models.PositiveIntegerField(default=0),
        ),
        migrations.RunPython(failures_split, failures_join),
    ]
