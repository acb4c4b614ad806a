"""Foreign keys that lead another index of their table lose their own index (db_index=False).

Every vote inserts a classification and a lease, updates the lease's expiry and the tile's vote count; those
updates change an indexed column, so every index of the table takes the new row. An index that repeats the
first column of another one costs that write and serves no query the other cannot:
- tagging_assignment: tile_id ((tile, expires_at)), volunteer_id (one_lease_per_volunteer_tile);
- tagging_classification: project_id ((project, created_at)), volunteer_id (one_vote_per_volunteer_tile).
On PostgreSQL the indexes are dropped CONCURRENTLY and the constraints kept (config.postgresql.operations).
"""

import django.db.models.deletion
from django.conf import settings
from django.db import migrations, models

from config.postgresql.operations import DropForeignKeyIndex


class Migration(migrations.Migration):
    atomic = False  # DROP INDEX CONCURRENTLY cannot run in a transaction

    dependencies = [
        ('imagery', '0003_unindexed_leading_foreign_keys'),
        ('tagging', '0013_live_lease_of_volunteer'),
        migrations.swappable_dependency(settings.AUTH_USER_MODEL),
    ]

    operations = [
        DropForeignKeyIndex(
            model_name='assignment',
            name='tile',
            field=models.ForeignKey(db_index=False, on_delete=django.db.models.deletion.CASCADE, related_name='assignments', to='imagery.tile'),
        ),
        DropForeignKeyIndex(
            model_name='assignment',
            name='volunteer',
            field=models.ForeignKey(db_index=False, on_delete=django.db.models.deletion.CASCADE, related_name='assignments', to=settings.AUTH_USER_MODEL),
        ),
        DropForeignKeyIndex(
            model_name='classification',
            name='project',
            field=models.ForeignKey(db_index=False, on_delete=django.db.models.deletion.CASCADE, related_name='classifications', to='tagging.project'),
        ),
        DropForeignKeyIndex(
            model_name='classification',
            name='volunteer',
            field=models.ForeignKey(db_index=False, null=True, on_delete=django.db.models.deletion.SET_NULL, related_name='classifications', to=settings.AUTH_USER_MODEL),
        ),
    ]
