from django.db import migrations


def create_singleton(apps, schema_editor):
    CommunicationSettings = apps.get_model("django_communication", "CommunicationSettings")
    CommunicationSettings.objects.using(schema_editor.connection.alias).get_or_create(pk=1)


class Migration(migrations.Migration):
    dependencies = [("django_communication", "0001_initial")]

    operations = [migrations.RunPython(create_singleton, migrations.RunPython.noop)]
