"""After a vote: the tile is marked pending in the vote's statement, and a worker re-scores pending tiles in batches."""

import pytest

from imagery.models import Tile
from tagging import tile_updates
from tagging.classifications import MarkInput, record_classification
from tagging.models import PendingTileUpdate, TileConsensus
from tests.tagging.helpers import project_with_tiles

pytestmark = pytest.mark.django_db


def vote(tile: Tile, user, answer: str = "destroyed", **kwargs: object):
    return record_classification(volunteer=user, tile=tile, answer=answer, marks=[MarkInput(5, 5)]
                                 if answer == "destroyed" else [], seconds=9, **kwargs)[0]


@pytest.fixture
def tiles(django_user_model):
    project = project_with_tiles(cols=3, rows=2)
    return list(Tile.objects.filter(grid__project=project).order_by("pk"))


def test_a_vote_marks_its_tile_pending_and_the_update_rescores_it_and_forgets_it(tiles, django_user_model) -> None:
    ann, ben = (django_user_model.objects.create_user(name) for name in ("ann", "ben"))
    vote(tiles[0], ann)  # no commit callbacks in this test's transaction: nothing has updated the tile yet
    vote(tiles[0], ben, "no_damage")
    vote(tiles[1], ann)
    assert set(PendingTileUpdate.objects.values_list("tile_id", flat=True)) == {tiles[0].pk, tiles[1].pk}
    assert not TileConsensus.objects.exists()
    assert tile_updates.update_pending_tiles() == (2, False)
    assert not PendingTileUpdate.objects.exists()
    assert TileConsensus.objects.get(tile=tiles[0]).counts["destroyed"] == 1
    assert TileConsensus.objects.get(tile=tiles[0]).n_votes == 2
    assert TileConsensus.objects.get(tile=tiles[1]).label == "destroyed"
    assert tile_updates.update_pending_tiles() == (0, False)  # nothing pending: nothing done


def test_an_imported_vote_marks_nothing(tiles, django_user_model) -> None:
    vote(tiles[0], django_user_model.objects.create_user("ann"), imported=True)
    assert not PendingTileUpdate.objects.exists()


def test_the_update_repairs_a_drifted_vote_count(tiles, django_user_model) -> None:
    vote(tiles[0], django_user_model.objects.create_user("ann"))
    Tile.objects.filter(pk=tiles[0].pk).update(vote_count=7)
    tile_updates.update_pending_tiles()
    assert Tile.objects.get(pk=tiles[0].pk).vote_count == 1


def test_batches_take_every_pending_tile_and_say_when_some_are_left(tiles, django_user_model) -> None:
    ann = django_user_model.objects.create_user("ann")
    for tile in tiles:
        vote(tile, ann)
    assert tile_updates.update_pending_tiles(batch=2, max_batches=2) == (4, True)
    assert PendingTileUpdate.objects.count() == 2
    assert tile_updates.update_pending_tiles(batch=2) == (2, False)
    assert TileConsensus.objects.count() == len(tiles)


def test_a_failed_update_leaves_its_tiles_pending(tiles, django_user_model, monkeypatch) -> None:
    vote(tiles[0], django_user_model.objects.create_user("ann"))

    def crash(**_: object) -> None:
        raise RuntimeError("the worker died mid-batch")

    monkeypatch.setattr(tile_updates, "update_tiles", crash)
    with pytest.raises(RuntimeError):
        tile_updates.update_pending_tiles()
    assert list(PendingTileUpdate.objects.values_list("tile_id", flat=True)) == [tiles[0].pk]  # rolled back
    monkeypatch.undo()
    assert tile_updates.update_pending_tiles() == (1, False)
    assert TileConsensus.objects.filter(tile=tiles[0]).exists()


def test_votes_committed_together_send_one_message_per_delay(monkeypatch) -> None:
    from workers.tagging import update_pending_tiles_task

    sent: list[dict] = []
    monkeypatch.setattr(update_pending_tiles_task.app.conf, "task_always_eager", False)
    monkeypatch.setattr(update_pending_tiles_task, "apply_async", lambda **kwargs: sent.append(kwargs))
    monkeypatch.setattr(tile_updates, "_scheduled_until", 0.0)
    clock = [1000.0]
    monkeypatch.setattr(tile_updates.time, "monotonic", lambda: clock[0])
    for _ in range(20):
        tile_updates.schedule_update()
        clock[0] += 0.01  # 20 votes in 0.2 s: the first message starts after all of them
    assert sent == [{"countdown": tile_updates.UPDATE_DELAY_S}]
    clock[0] = 1000.0 + tile_updates.UPDATE_DELAY_S  # the message has started: a later vote needs its own
    tile_updates.schedule_update()
    assert len(sent) == 2


def test_a_refused_message_is_asked_again_by_the_next_vote(monkeypatch) -> None:
    from workers.tagging import update_pending_tiles_task

    attempts: list[dict] = []

    def refuse(**kwargs: object) -> None:
        attempts.append(kwargs)
        raise ConnectionError("broker down")

    monkeypatch.setattr(update_pending_tiles_task.app.conf, "task_always_eager", False)
    monkeypatch.setattr(update_pending_tiles_task, "apply_async", refuse)
    monkeypatch.setattr(tile_updates, "_scheduled_until", 0.0)
    tile_updates.schedule_update()  # logs, never raises: the vote is stored
    tile_updates.schedule_update()
    assert len(attempts) == 2


def test_the_periodic_sweep_updates_tiles_whose_message_was_lost(tiles, django_user_model) -> None:
    from workers.tagging import recompute_active_projects_task

    vote(tiles[0], django_user_model.objects.create_user("ann"))  # its message never sent (no commit here)
    recompute_active_projects_task.delay()
    assert not PendingTileUpdate.objects.exists()
    assert TileConsensus.objects.filter(tile=tiles[0]).exists()


def test_a_gold_answer_change_marks_the_tile_pending(tiles, django_user_model, django_capture_on_commit_callbacks):
    from tagging.gold import set_gold

    vote(tiles[0], django_user_model.objects.create_user("ann"), "no_damage")
    tile_updates.update_pending_tiles()
    with django_capture_on_commit_callbacks(execute=True):  # eager: the update runs at commit
        set_gold(tile=tiles[0], answer="destroyed", marks=[])
    row = TileConsensus.objects.get(tile=tiles[0])
    assert not PendingTileUpdate.objects.exists() and row.label == "destroyed"  # the gold answer wins
