"""Model instances from hand-written SQL, for the few queries that run on every request of a volunteer.

The ORM compiles a query in several times the database's time for it (bench.volunteers), so the
hot paths select whole rows with plain SQL and load them here exactly as the ORM would (the
field converters: JSON, dates on SQLite). Imports nothing of the platform's own.
"""

from collections.abc import Collection, Iterator
from functools import cache
from typing import Any

from django.db import connection
from django.db.models import Model, signals
from django.db.models.base import ModelState


@cache
def columns(model: type[Model], alias: str) -> str:
    """SQL: every column of the model's table as `alias`, in the order instance() reads them."""
    return ", ".join(f'{alias}."{field.column}"' for field in model._meta.concrete_fields)


def instance(model: type[Model], values: Iterator[Any]) -> Any:
    """The model instance made of the next values (those of columns()), converted as the ORM does.

    The instance is what Model.from_db makes of them, without running Model.__init__ when the model keeps
    Django's from_db and nothing listens to its pre_init and post_init signals: its attributes are set at once,
    as unpickling a model does. A vote loads four or five instances so; their __init__ (two signals sent, every
    field set through its descriptor) cost about 2% of a vote's Python CPU (in process on bench.volunteers'
    database: 3.44 to 3.38 ms, medians of 3 runs of 800 votes).
    """
    loaded = []
    for (column, converters), value in zip(_converters(model, connection.vendor), values):
        for convert in converters:
            value = convert(value, column, connection)
        loaded.append(value)
    if (model.from_db.__func__ is not Model.from_db.__func__  # type: ignore[attr-defined]
            or signals.pre_init.has_listeners(model) or signals.post_init.has_listeners(model)):
        return model.from_db(connection.alias, _attnames(model), loaded)
    made = model.__new__(model)
    made.__dict__.update(zip(_attnames(model), loaded))
    made._state = ModelState()
    made._state.adding, made._state.db = False, connection.alias
    return made


@cache
def _attnames(model: type[Model]) -> list[str]:
    return [field.attname for field in model._meta.concrete_fields]


@cache
def _converters(model: type[Model], vendor: str) -> list[tuple[Any, list[Any]]]:
    """Each field's column expression and converters on this database (vendor: the cache key)."""
    fields = model._meta.concrete_fields
    out = []
    for field in fields:
        column = field.get_col(model._meta.db_table)
        out.append((column, connection.ops.get_db_converters(column) + field.get_db_converters(connection)))
    return out


def fetch_one(sql: str, params: dict[str, Any] | list[Any], *, prepare: bool = False) -> tuple[Any, ...] | None:
    """The first row of the statement's result, or None. prepare: see cursor()."""
    with cursor(prepare=prepare) as rows:
        rows.execute(sql, params)
        return rows.fetchone()


def fetch_all(sql: str, params: dict[str, Any] | list[Any], *, prepare: bool = False) -> list[tuple[Any, ...]]:
    with cursor(prepare=prepare) as rows:
        rows.execute(sql, params)
        return rows.fetchall()


def cursor(*, prepare: bool = False) -> Any:
    """A cursor of the default database. prepare=True, for statements that every vote runs with other values:
    where the database supports it (config.postgresql), the parameters are bound on the server and the
    statement is prepared once the connection has run it a few times, so PostgreSQL stops parsing and
    planning it anew on every request (planning was about half of the claim statements' time in EXPLAIN
    ANALYZE; bench.volunteers saw PostgreSQL's CPU per vote fall from 7.3 to 5.1 ms).
    A statement whose best plan depends on its values (the map's bounding boxes) should not be prepared."""
    if prepare and hasattr(connection, "prepared_cursor"):
        return connection.prepared_cursor()
    return connection.cursor()


def placeholders(values: Collection[Any]) -> str:
    """Positional placeholders for an IN list, one per value (SQLite has no arrays): "%s, %s, %s"."""
    return ", ".join(["%s"] * len(values))
