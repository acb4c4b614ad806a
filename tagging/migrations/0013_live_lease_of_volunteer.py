"""The index of a volunteer's leases on a project takes their expiry too: (volunteer, project, expires_at).

Every next-tile request looks for the live lease the volunteer holds (tagging_next_tile, migration 0012). On
(volunteer, project) alone PostgreSQL read every lease the volunteer ever had on the project and dropped the
lapsed ones: for a volunteer with 300 tiles done, 113 buffers and 0.55 ms, growing with each tile; with the
expiry in the index, 2 buffers and 0.02 ms (EXPLAIN ANALYZE on bench.volunteers' database).

On PostgreSQL the index is built and the old one dropped CONCURRENTLY, so that volunteers go on tagging while
a large table is indexed; hence a migration outside a transaction. Elsewhere (SQLite) the plain operations.
"""

from django.contrib.postgres.operations import AddIndexConcurrently, RemoveIndexConcurrently
from django.db import migrations, models


def _concurrently_on_postgresql(concurrent: type, plain: type) -> type:
    """The concurrent operation on PostgreSQL, the plain one elsewhere."""

    class Operation(concurrent):
        def database_forwards(self, app_label, schema_editor, from_state, to_state) -> None:
            chosen = concurrent if schema_editor.connection.vendor == "postgresql" else plain
            chosen.database_forwards(self, app_label, schema_editor, from_state, to_state)

        def database_backwards(self, app_label, schema_editor, from_state, to_state) -> None:
            chosen = concurrent if schema_editor.connection.vendor == "postgresql" else plain
            chosen.database_backwards(self, app_label, schema_editor, from_state, to_state)

    return Operation


AddIndex = _concurrently_on_postgresql(AddIndexConcurrently, migrations.AddIndex)
RemoveIndex = _concurrently_on_postgresql(RemoveIndexConcurrently, migrations.RemoveIndex)


class Migration(migrations.Migration):
    atomic = False  # CREATE and DROP INDEX CONCURRENTLY cannot run in a transaction

    dependencies = [
        ("tagging", "0012_next_tile_window_constant"),
    ]

    operations = [
        AddIndex(model_name="assignment", index=models.Index(fields=["volunteer", "project", "expires_at"],
                                                              name="live_lease_of_volunteer")),
        RemoveIndex(model_name="assignment", name="lease_of_volunteer_project"),
    ]
