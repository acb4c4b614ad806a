"""Migration operations that change the indexes of the busiest tables without blocking volunteers' writes.

On PostgreSQL, CREATE INDEX blocks writes to its table while it builds, and Django's AlterField drops a foreign
key's constraint and adds it again, which checks every row under a lock that blocks writes: minutes on the
votes of a large campaign. These operations build and drop indexes CONCURRENTLY there (a migration that uses
them sets atomic = False); on other databases (SQLite) they are Django's plain operations.
"""

from typing import Any

from django.contrib.postgres.operations import AddIndexConcurrently, RemoveIndexConcurrently
from django.db import migrations


def _on_postgresql(schema_editor: Any) -> bool:
    return schema_editor.connection.vendor == "postgresql"


class _ConcurrentlyOnPostgreSQL:
    """The operation `concurrent` on PostgreSQL, `plain` elsewhere."""

    concurrent: Any
    plain: Any

    def database_forwards(self, app_label: str, schema_editor: Any, from_state: Any, to_state: Any) -> None:
        chosen = self.concurrent if _on_postgresql(schema_editor) else self.plain
        chosen.database_forwards(self, app_label, schema_editor, from_state, to_state)

    def database_backwards(self, app_label: str, schema_editor: Any, from_state: Any, to_state: Any) -> None:
        chosen = self.concurrent if _on_postgresql(schema_editor) else self.plain
        chosen.database_backwards(self, app_label, schema_editor, from_state, to_state)


class AddIndex(_ConcurrentlyOnPostgreSQL, AddIndexConcurrently):
    concurrent, plain = AddIndexConcurrently, migrations.AddIndex


class RemoveIndex(_ConcurrentlyOnPostgreSQL, RemoveIndexConcurrently):
    concurrent, plain = RemoveIndexConcurrently, migrations.RemoveIndex


class DropForeignKeyIndex(migrations.AlterField):
    """AlterField to a foreign key with db_index=False. On PostgreSQL only the key's own index is dropped,
    CONCURRENTLY, and its constraint is left alone; going back uses Django's AlterField (which blocks writes)."""

    def database_forwards(self, app_label: str, schema_editor: Any, from_state: Any, to_state: Any) -> None:
        if not _on_postgresql(schema_editor):
            super().database_forwards(app_label, schema_editor, from_state, to_state)
            return
        model = from_state.apps.get_model(app_label, self.model_name)
        column = model._meta.get_field(self.name).column
        connection = schema_editor.connection
        with connection.cursor() as cursor:
            found = connection.introspection.get_constraints(cursor, model._meta.db_table)
        for name, index in found.items():
            if index["index"] and index["columns"] == [column] and not index["unique"] and not index["primary_key"]:
                schema_editor.execute(f"DROP INDEX CONCURRENTLY IF EXISTS {schema_editor.quote_name(name)}")

    def database_backwards(self, app_label: str, schema_editor: Any, from_state: Any, to_state: Any) -> None:
        # AlterField goes back by going forwards between the swapped states, which would come back here.
        migrations.AlterField.database_forwards(self, app_label, schema_editor, from_state, to_state)
