"""imagery_tile.grid_id loses its own index: one_tile_per_cell (grid, col, row) leads with it, and every vote
updates the tile's row (tagging migration 0014 says why that matters). Dropped CONCURRENTLY on PostgreSQL
(config.postgresql.operations).
"""

import django.db.models.deletion
from django.db import migrations, models

from config.postgresql.operations import DropForeignKeyIndex


class Migration(migrations.Migration):
    atomic = False  # DROP INDEX CONCURRENTLY cannot run in a transaction

    dependencies = [
        ('imagery', '0002_tile_claim_order'),
    ]

    operations = [
        DropForeignKeyIndex(
            model_name='tile',
            name='grid',
            field=models.ForeignKey(db_index=False, on_delete=django.db.models.deletion.CASCADE, related_name='tiles', to='imagery.grid'),
        ),
    ]
