"""The coordinators' map state: built by the worker (never by a thread of a web process), freed of its lock
whatever happens, and carrying the coordinators' reviews into the grouped cells and building clusters."""

from __future__ import annotations

import math
import threading
import time
from collections import Counter

import pytest
from django.core.cache import cache
from kombu.exceptions import OperationalError

from imagery.models import Grid, Tile
from tagging import map_layers, map_state
from tagging.models import Building, TileConsensus
from tagging.reviews import create_review, undo_review
from tests.tagging import test_map_api
from tests.tagging.test_map_api import BUILDINGS, TILES, get
from workers import maps

pytestmark = pytest.mark.django_db


# test_map_api's city after a consensus run (which published its map state), and its coordinator.
made, coordinator = test_map_api.made, test_map_api.coordinator


class Broker:
    """Stands for the broker and the worker: the checks the map enqueues, run when the test says so."""

    def __init__(self) -> None:
        self.queued: list[int] = []
        self.down = False
        self.task = maps.rebuild_map_state_task

    def delay(self, project_id: int) -> None:
        if self.down:
            raise OperationalError("Error 111 connecting to 127.0.0.1:6379. Connection refused.")
        self.queued.append(project_id)

    def run(self) -> list[int]:
        """Run every queued task, and those they enqueue, in order; their results."""
        done = []
        while self.queued:
            done.append(self.task(self.queued.pop(0)))
        return done


@pytest.fixture
def broker(monkeypatch) -> Broker:
    found = Broker()
    monkeypatch.setattr(maps, "rebuild_map_state_task", found)  # map_state finds the task there when it enqueues
    return found


@pytest.fixture
def grouped(monkeypatch) -> None:
    """The whole 8 x 8 grid in view comes as 2 x 2 cells, and every building in clusters."""
    monkeypatch.setattr(map_layers, "MAX_TILES", 10)
    monkeypatch.setattr(map_layers, "MAX_CELLS", 20)
    monkeypatch.setattr(map_layers, "MAX_BUILDINGS", 0)
    monkeypatch.setattr(map_layers, "MAX_BUILDING_CELLS", 4)


def reviewed(django_capture_on_commit_callbacks, broker: Broker, act, **kwargs):
    """Record (or undo) a review as the API does, then let the worker run what it enqueued."""
    with django_capture_on_commit_callbacks(execute=True):
        done = act(**kwargs)
    assert broker.queued, "a review asks the worker for a new map state"
    assert broker.run()[0] == 1, "and the worker builds one"
    return done


def cells(body: dict) -> dict[tuple[int, int], dict]:
    return {tuple(f["properties"]["cell"]): f["properties"] for f in body["features"]}


# --- Who builds the state ----------------------------------------------------------------------------------------

def test_a_due_check_is_a_task_for_the_worker_and_starts_no_thread(made, coordinator, broker, grouped,
                                                                  monkeypatch) -> None:
    started: list[str] = []
    monkeypatch.setattr(threading.Thread, "start", lambda thread: started.append(thread.name))
    monkeypatch.setattr(map_state, "STATE_SECONDS", -1.0)  # every state is due for a check at once
    body = get(coordinator, TILES)
    assert body["properties"]["aggregated"] is True
    assert broker.queued == [made.project.pk] and started == []
    get(coordinator, TILES)
    assert broker.queued == [made.project.pk], "one check at a time: the lock is held until the task ends"
    assert broker.run() == [0], "nothing moved since the consensus run published the state"
    assert cache.get(map_state.lock_key(made.project.pk)) is None
    assert started == []


def test_the_lock_is_freed_when_the_task_ends_even_when_it_fails(made, broker, monkeypatch) -> None:
    project_id = made.project.pk
    lock = map_state.lock_key(project_id)
    assert map_state.request_refresh(project_id=project_id) is True
    assert cache.get(lock) is not None and map_state.request_refresh(project_id=project_id) is False

    def broken(*args: object) -> None:
        raise RuntimeError("the database went away")

    monkeypatch.setattr(map_state, "read_watermark", broken)
    with pytest.raises(RuntimeError):
        broker.run()
    assert cache.get(lock) is None
    monkeypatch.undo()
    monkeypatch.setattr(maps, "rebuild_map_state_task", broker)
    assert map_state.request_refresh(project_id=project_id) is True
    assert broker.run() == [0] and cache.get(lock) is None


def test_a_check_that_cannot_be_sent_frees_the_lock_for_a_later_request(made, coordinator, broker, grouped,
                                                                        monkeypatch,
                                                                        django_capture_on_commit_callbacks) -> None:
    monkeypatch.setattr(map_state, "STATE_SECONDS", -1.0)
    broker.down = True
    body = get(coordinator, TILES)  # still answered, from the state this process has
    assert body["properties"]["tiles"] == made.crowd.n_tiles
    assert cache.get(map_state.lock_key(made.project.pk)) is None
    with django_capture_on_commit_callbacks(execute=True):  # a review is recorded all the same
        create_review(project=made.project, reviewer=coordinator, action="confirm",
                      tile=Tile.objects.filter(grid__project=made.project).first())
    assert cache.get(map_state.lock_key(made.project.pk)) is None
    broker.down = False
    get(coordinator, TILES)
    assert broker.queued == [made.project.pk], "the next request asks again"


def test_a_review_and_its_undo_move_the_watermark(made, coordinator) -> None:
    grid = Grid.objects.get(project=made.project)
    before = map_state.read_watermark(made.project.pk, grid.pk)
    tile = Tile.objects.filter(grid=grid).first()
    review = create_review(project=made.project, reviewer=coordinator, action="confirm", tile=tile)
    added = map_state.read_watermark(made.project.pk, grid.pk)
    assert added != before and added[3] == review.pk
    undo_review(review=review, user=coordinator)
    assert map_state.read_watermark(made.project.pk, grid.pk) != added


def test_a_review_during_a_check_asks_for_another(made, coordinator, broker, grouped, monkeypatch,
                                                  django_capture_on_commit_callbacks) -> None:
    consensus = TileConsensus.objects.filter(project=made.project).select_related("tile").first()
    label = next(key for key in made.project.answer_keys if key != consensus.label)
    rebuild = map_state.rebuild

    def reviewed_meanwhile(project_id: int, **kwargs: object) -> object:
        built = rebuild(project_id, **kwargs)  # the check has read its rows: a review comes in now
        with django_capture_on_commit_callbacks(execute=True):
            create_review(project=made.project, reviewer=coordinator, action="relabel", tile=consensus.tile,
                          label=label)
        return built

    assert map_state.request_refresh(project_id=made.project.pk)
    monkeypatch.setattr(map_state, "rebuild", reviewed_meanwhile)
    broker.task(broker.queued.pop())
    assert broker.queued == [made.project.pk], "the review found the lock taken: another check follows"
    monkeypatch.setattr(map_state, "rebuild", rebuild)
    assert broker.run() == [1]
    tile = consensus.tile
    cell = cells(get(coordinator, TILES))[(tile.col // 2, tile.row // 2)]
    assert cell["reviewed"] == 1


# --- Reviews in the grouped cells and clusters ----------------------------------------------------------------

def test_a_relabel_changes_the_answer_counts_of_its_grouped_cell(made, coordinator, broker, grouped,
                                                                 django_capture_on_commit_callbacks) -> None:
    consensus = TileConsensus.objects.filter(project=made.project).select_related("tile").first()
    tile, crowd = consensus.tile, consensus.label
    label = next(key for key in made.project.answer_keys if key != crowd)
    where = (tile.col // 2, tile.row // 2)
    before = cells(get(coordinator, TILES))[where]
    assert before["reviewed"] == 0
    review = reviewed(django_capture_on_commit_callbacks, broker, create_review, project=made.project,
                      reviewer=coordinator, action="relabel", tile=tile, label=label)
    body = get(coordinator, TILES)
    after = cells(body)[where]
    assert body["properties"]["reviews_applied"] is True and body["properties"]["aggregated"] is True
    assert after["labels"].get(label, 0) == before["labels"].get(label, 0) + 1
    assert after["labels"].get(crowd, 0) == before["labels"][crowd] - 1
    assert after["reviewed"] == 1 and after["judged"] == before["judged"]
    reviewed(django_capture_on_commit_callbacks, broker, undo_review, review=review, user=coordinator)
    assert cells(get(coordinator, TILES))[where] == before


def test_a_rejected_building_leaves_its_cluster_and_an_added_one_joins(made, coordinator, broker, grouped,
                                                                       django_capture_on_commit_callbacks) -> None:
    rejected = Building.objects.filter(project=made.project, confidence__gte=0.5).order_by("id").first()
    grid = Grid.objects.get(project=made.project)
    before = get(coordinator, BUILDINGS)
    k = before["properties"]["cell_tiles"]
    where = cell_of(grid, rejected.ground_x, rejected.ground_y, k)
    in_cell = cells(before)[where]["buildings"]
    reviewed(django_capture_on_commit_callbacks, broker, create_review, project=made.project, reviewer=coordinator,
             action="reject", building=rejected)
    after = get(coordinator, BUILDINGS)
    assert after["properties"]["reviews_applied"] is True and after["properties"]["aggregated"] is True
    assert after["properties"]["buildings"] == before["properties"]["buildings"] - 1
    assert cells(after).get(where, {"buildings": 0})["buildings"] == in_cell - 1

    x, y = grid.origin_x + 30, grid.origin_y - 30  # the corner cell
    reviewed(django_capture_on_commit_callbacks, broker, create_review, project=made.project, reviewer=coordinator,
             action="add", ground_x=x, ground_y=y)
    added = get(coordinator, BUILDINGS)
    corner = cells(added)[(0, 0)]
    assert added["properties"]["buildings"] == before["properties"]["buildings"]
    assert corner["buildings"] == cells(after).get((0, 0), {"buildings": 0})["buildings"] + 1
    assert corner["reviewed"] == 1 and corner["max_confidence"] == 1.0


def test_a_moved_building_is_counted_at_its_new_place(made, coordinator, broker, grouped,
                                                      django_capture_on_commit_callbacks) -> None:
    grid = Grid.objects.get(project=made.project)
    k = get(coordinator, BUILDINGS)["properties"]["cell_tiles"]
    far = (grid.origin_x + grid.width * grid.pixel_size - 20, grid.origin_y - grid.height * grid.pixel_size + 20)
    moved = next(b for b in Building.objects.filter(project=made.project, confidence__gte=0.5).order_by("id")
                 if cell_of(grid, b.ground_x, b.ground_y, k) != cell_of(grid, *far, k))
    before = cells(get(coordinator, BUILDINGS))
    old, new = cell_of(grid, moved.ground_x, moved.ground_y, k), cell_of(grid, *far, k)
    reviewed(django_capture_on_commit_callbacks, broker, create_review, project=made.project, reviewer=coordinator,
             action="move", building=moved, ground_x=far[0], ground_y=far[1])
    after = cells(get(coordinator, BUILDINGS))
    assert after.get(old, {"buildings": 0})["buildings"] == before[old]["buildings"] - 1
    assert after[new]["buildings"] == before.get(new, {"buildings": 0})["buildings"] + 1
    assert after[new]["reviewed"] == 1


def cell_of(grid: Grid, x: float, y: float, k: int) -> tuple[int, int]:
    """The (column, row) of the k x k cell holding a ground point."""
    spec = grid.spec()
    side = spec.stride * spec.pixel_size
    col = min(math.floor((x - spec.origin_x) / side), spec.cols - 1)
    row = min(math.floor((spec.origin_y - y) / side), spec.rows - 1)
    return col // k, row // k


def test_the_reviewed_filter_works_on_grouped_levels(made, coordinator, broker, grouped,
                                                     django_capture_on_commit_callbacks) -> None:
    for consensus in TileConsensus.objects.filter(project=made.project).order_by("tile_id")[:3]:
        reviewed(django_capture_on_commit_callbacks, broker, create_review, project=made.project,
                 reviewer=coordinator, action="confirm", tile=consensus.tile)
    yes = get(coordinator, TILES, reviewed="yes")
    assert yes["properties"]["aggregated"] is True and yes["properties"]["tiles"] == 3
    assert sum(c["reviewed"] for c in cells(yes).values()) == 3
    no = get(coordinator, TILES, reviewed="no")
    assert no["properties"]["tiles"] == made.crowd.n_tiles - 3
    assert not any(c["reviewed"] for c in cells(no).values())

    rejected, moved = Building.objects.filter(project=made.project, confidence__gte=0.5).order_by("id")[:2]
    grid = Grid.objects.get(project=made.project)
    for review in ({"action": "reject", "building": rejected},
                   {"action": "move", "building": moved, "ground_x": moved.ground_x + 5, "ground_y": moved.ground_y},
                   {"action": "add", "ground_x": grid.origin_x + 30, "ground_y": grid.origin_y - 30}):
        reviewed(django_capture_on_commit_callbacks, broker, create_review, project=made.project,
                 reviewer=coordinator, **review)
    total = Building.objects.filter(project=made.project, confidence__gte=0.5).count()
    assert get(coordinator, BUILDINGS, reviewed="yes")["properties"]["buildings"] == 2  # the moved and the added
    assert get(coordinator, BUILDINGS, reviewed="no")["properties"]["buildings"] == total - 2
    assert get(coordinator, BUILDINGS)["properties"]["buildings"] == total


@pytest.mark.parametrize("params", [{}, {"answer": "destroyed"}, {"min_confidence": "0.9"}, {"contested": "1"},
                                    {"reviewed": "yes"}, {"reviewed": "no"}])
def test_grouped_cells_count_what_the_street_zoom_tiles_show(made, coordinator, broker, monkeypatch, params,
                                                             django_capture_on_commit_callbacks) -> None:
    judged = list(TileConsensus.objects.filter(project=made.project).select_related("tile").order_by("tile_id"))
    for consensus, action in zip(judged[::7], ["relabel", "reject", "confirm"] * 4):
        label = next(key for key in made.project.answer_keys if key != consensus.label)
        reviewed(django_capture_on_commit_callbacks, broker, create_review, project=made.project,
                 reviewer=coordinator, action=action, tile=consensus.tile, label=label if action == "relabel" else "")
    tiles = get(coordinator, TILES, **params)  # 64 tiles: one feature each, read fresh
    assert tiles["properties"]["aggregated"] is False
    monkeypatch.setattr(map_layers, "MAX_TILES", 10)
    monkeypatch.setattr(map_layers, "MAX_CELLS", 20)
    grouped = get(coordinator, TILES, **params)
    assert grouped["properties"]["aggregated"] is True
    assert grouped["properties"]["tiles"] == len(tiles["features"])
    shown = Counter(f["properties"]["label"] for f in tiles["features"] if f["properties"]["label"])
    assert sum((Counter(c["labels"]) for c in cells(grouped).values()), Counter()) == shown
    assert sum(c["reviewed"] for c in cells(grouped).values()) == sum(
        f["properties"]["reviewed"] for f in tiles["features"])


# --- The task in a real worker ------------------------------------------------------------------------------------

@pytest.mark.worker
@pytest.mark.django_db(transaction=True)
def test_a_worker_builds_the_states_a_review_and_a_request_asked_for(django_user_model, monkeypatch) -> None:
    """A review and a due request enqueue; a Celery worker (in a thread of this process: it shares the test's
    cache and database) checks, builds with the review applied, publishes and frees the lock each time."""
    from celery.contrib.testing.worker import start_worker

    from config.celery import app
    from tests.tagging.helpers import project_with_tiles

    monkeypatch.setattr(app.conf, "task_always_eager", False)
    project = project_with_tiles("worked", cols=4, rows=3)
    grid = Grid.objects.get(project=project)
    first = map_state.current_map_state(project=project, grid=grid)  # the cold start, built here
    tile = Tile.objects.get(grid=grid, col=2, row=1)
    boss = django_user_model.objects.create_user("boss")
    create_review(project=project, reviewer=boss, action="relabel", tile=tile, label="destroyed")  # enqueues
    assert map_state.current_map_state(project=project, grid=grid) is first, "nothing is built in this process"
    with start_worker(app, perform_ping_check=False, shutdown_timeout=30):
        published = wait_for_a_state_after(project.pk, first.version, 60)
        monkeypatch.setattr(map_state, "STATE_SECONDS", -1.0)  # due for a check,
        monkeypatch.setattr(map_state, "STATE_MAX_SECONDS", -1.0)  # and rebuilt whatever it finds
        assert map_state.current_map_state(project=project, grid=grid).version == published.version
        wait_for_a_state_after(project.pk, published.version, 60)
    state = map_state.current_map_state(project=project, grid=grid)
    assert state.reviewed[1, 2] and state.labels[state.label[1, 2]] == "destroyed"


def wait_for_a_state_after(project_id: int, version: str, seconds: float) -> map_state.Published:
    """The version record of the next state published, once the task that published it has freed the lock."""
    deadline = time.monotonic() + seconds
    while (found := cache.get(map_state.version_key(project_id))).version == version \
            or cache.get(map_state.lock_key(project_id)) is not None:
        assert time.monotonic() < deadline, "the worker published no new state, or kept the lock"
        time.sleep(0.05)
    return found
