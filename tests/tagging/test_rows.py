"""tagging.rows.instance: the hot paths' model instances are what the ORM loads, made without Model.__init__."""

import pytest
from django.contrib.auth import get_user_model
from django.db import connection
from django.db.models import Model, signals

from imagery.models import Grid, Tile
from tagging import rows
from tagging.models import Project
from tests.tagging.helpers import project_with_tiles

pytestmark = pytest.mark.django_db


def loaded(model: type[Model], pk: int) -> Model:
    row = rows.fetch_one(f"SELECT {rows.columns(model, 'x')} FROM {model._meta.db_table} x WHERE x.id = %s", [pk])
    return rows.instance(model, iter(row))


def fields(instance: Model) -> dict:
    return {name: value for name, value in vars(instance).items() if name != "_state"}


@pytest.mark.parametrize("model", [Project, Grid, Tile, get_user_model()])
def test_an_instance_holds_what_the_orm_loads(model: type[Model], volunteer) -> None:
    project_with_tiles()  # JSON fields (answers, bounds), dates, floats, foreign keys
    pk = model.objects.order_by("id").values_list("id", flat=True).last()
    made, orm = loaded(model, pk), model.objects.get(pk=pk)
    assert type(made) is model and made == orm
    assert fields(made) == fields(orm) and set(fields(made)) == {f.attname for f in model._meta.concrete_fields}
    assert (made._state.adding, made._state.db) == (False, connection.alias)


def test_an_instance_saves_as_an_update_and_follows_its_relations() -> None:
    project = project_with_tiles()
    tile = loaded(Tile, Tile.objects.filter(grid__project=project).first().pk)
    assert tile.grid.project == project  # foreign keys load on access, as on an ORM instance
    tile.priority = 7
    tile.save(update_fields=["priority"])
    assert Tile.objects.count() == 6 and Tile.objects.get(pk=tile.pk).priority == 7


def test_a_model_that_something_listens_to_is_made_through_init() -> None:
    project = project_with_tiles()
    heard = []

    def listener(sender, instance, **kwargs) -> None:
        heard.append(instance)

    signals.post_init.connect(listener, sender=Project)
    try:
        made = loaded(Project, project.pk)
    finally:
        signals.post_init.disconnect(listener, sender=Project)
    assert heard == [made] and fields(made) == fields(Project.objects.get(pk=project.pk))


def test_a_model_with_its_own_from_db_is_made_by_it(monkeypatch) -> None:
    project = project_with_tiles()
    made_by = []
    django_from_db = Project.from_db.__func__

    def from_db(cls, db, field_names, values):
        made_by.append(django_from_db(cls, db, field_names, values))
        return made_by[-1]

    monkeypatch.setattr(Project, "from_db", classmethod(from_db))
    made = loaded(Project, project.pk)
    assert made_by == [made] and made is made_by[0]
