"""PostgreSQL: Django's own backend, with a health check that costs no round trip on a quiet connection.

settings.py names this package as the ENGINE of a PostgreSQL database. Django checks a persistent
connection at the start of each request (CONN_HEALTH_CHECKS) with a SELECT 1: a round trip per request,
two per vote (next tile and submit), about a tenth of a vote's round trips (bench.volunteers).

A healthy, idle connection has nothing to read: the server only speaks when asked. When the server ends a
connection (restart, crash, pg_terminate_backend, idle timeout), it sends its error and closes the socket,
and the socket becomes readable. So the check first polls the socket without waiting, and runs Django's
SELECT 1 only when there is something to read or the connection is not idle. A connection whose network
path vanished without a word is not caught, by this nor by anything short of a round trip; its first
query then fails, and Django closes it at the end of that request.
"""

import select
from typing import Any

from django.db.backends.postgresql import base, operations
from django.db.backends.utils import CursorWrapper
from psycopg import errors, pq


class DatabaseOperations(operations.DatabaseOperations):
    def last_executed_query(self, cursor: Any, sql: str, params: Any) -> str | None:
        """The statement with its values, for the query log, from a prepared_cursor() too (Django reads it
        from the client-side cursor's buffer, which a server-binding cursor leaves empty)."""
        if isinstance(cursor, base.ServerBindingCursor) and not self.connection.features.uses_server_side_binding:
            try:
                return self.compose_sql(sql, params)
            except errors.DataError:
                return None
        return super().last_executed_query(cursor, sql, params)


class DatabaseWrapper(base.DatabaseWrapper):
    ops_class = DatabaseOperations

    def prepared_cursor(self) -> CursorWrapper:
        """A cursor that binds parameters on the server (Django's default binds them in the client, which
        cannot prepare), so psycopg prepares each statement once it has run prepare_threshold times on the
        connection (OPTIONS; settings.py). Wrapped as Django wraps its own cursors: errors, transactions and
        the query log (the tests' query counts) work as for any other query."""
        self.ensure_connection()
        with self.wrap_database_errors:
            return self._prepare_cursor(base.ServerBindingCursor(self.connection))

    def is_usable(self) -> bool:
        connection = self.connection
        if connection is None or connection.closed:
            return False
        if connection.info.transaction_status != pq.TransactionStatus.IDLE or _readable(connection.fileno()):
            return super().is_usable()
        return True


def _readable(fd: int) -> bool:
    """Whether the socket has anything to read (or has been closed), without waiting."""
    poller = select.poll()
    poller.register(fd, select.POLLIN | select.POLLPRI)
    return bool(poller.poll(0))
