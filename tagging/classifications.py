"""Recording a volunteer's answer on a tile, exactly once."""

import logging
from dataclasses import dataclass
from typing import Any

from django.conf import settings
from django.contrib.auth.models import AbstractBaseUser
from django.db import IntegrityError, transaction
from django.db.models import F
from django.utils import timezone

from config.errors import Conflict, InvalidInput
from imagery.models import ImageryLayer, Tile
from tagging.models import Assignment, Classification, GoldAnswer, Mark, Project

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class MarkInput:
    x: float
    y: float
    date: str | None = None


def check_classification(*, project: Project, tile: Tile, answer: str, marks: list[MarkInput],
                         seconds: float | None) -> dict[str, ImageryLayer]:
    """Validate against the project's answers and the tile's bounds. Returns the project's layers by date."""
    answers = {a["key"]: a for a in project.answers}
    if answer not in answers:
        raise InvalidInput(f"'{answer}' is not an answer of this project; use one of {', '.join(answers)}.",
                           fields={"answer": ["invalid choice"]})
    if marks and not answers[answer]["damage"]:
        raise InvalidInput(f"Marks go with an answer that says there is damage, not with '{answer}'.",
                           fields={"marks": ["not allowed with this answer"]})
    if len(marks) > settings.MAX_MARKS_PER_TILE:
        raise InvalidInput(f"At most {settings.MAX_MARKS_PER_TILE} marks per tile.", fields={"marks": ["too many"]})
    # The project's dates are only looked up when a mark names one: most votes need no query for them.
    layers = {str(layer.date): layer for layer in ImageryLayer.objects.filter(project=project, status="ready")
              } if any(mark.date for mark in marks) else {}
    for index, mark in enumerate(marks):
        if not (0 <= mark.x <= tile.size and 0 <= mark.y <= tile.size):
            raise InvalidInput(f"Mark {index + 1} at ({mark.x:g}, {mark.y:g}) is outside the tile "
                               f"(0 to {tile.size} pixels).", fields={"marks": [f"{index}: outside the tile"]})
        if mark.date is not None and mark.date not in layers:
            raise InvalidInput(f"Mark {index + 1} names the date {mark.date}, which is not one of this project's "
                               f"dates ({', '.join(layers)}).", fields={"marks": [f"{index}: unknown date"]})
    if seconds is not None and not 0 <= seconds <= 24 * 3600:
        raise InvalidInput("seconds must be between 0 and 86400.", fields={"seconds": ["out of range"]})
    return layers


def record_classification(*, volunteer: AbstractBaseUser, tile: Tile, answer: str, marks: list[MarkInput],
                          seconds: float | None = None, source: str = "api",
                          imported: bool = False) -> tuple[Classification, bool]:
    """Store one volunteer's answer on a tile; returns (classification, created).

    A replay (double click, network retry) returns the stored row with created=False and
    changes nothing. The tile's vote count and status change in the same transaction; the
    tile's consensus update is enqueued after commit. Raises InvalidInput for bad input and
    Conflict when the volunteer may not answer this tile (any more).

    imported=True records a vote cast elsewhere (a campaign migrating in, a replayed crowd): it
    needs no lease nor an open project or tile, and enqueues nothing; the importer recomputes
    the project's consensus once at the end.
    """
    existing = Classification.objects.filter(volunteer=volunteer, tile=tile).first()
    if existing is not None:
        return existing, False
    project = tile.grid.project
    layers = check_classification(project=project, tile=tile, answer=answer, marks=marks, seconds=seconds)
    too_fast = seconds is not None and seconds < settings.MIN_SECONDS_PER_TILE
    try:
        with transaction.atomic():
            locked = Tile.objects.select_for_update().get(pk=tile.pk)
            if not imported:
                _check_allowed(volunteer, locked, project)
            classification = Classification.objects.create(
                project=project, tile=locked, volunteer=volunteer, answer=answer, seconds=seconds,
                too_fast=too_fast, is_gold=locked.status == Tile.Status.GOLD, source=source)
            Mark.objects.bulk_create([_mark(classification, locked, m, layers) for m in marks])
            _count_vote(locked, project, counted=not too_fast)
            Assignment.objects.filter(volunteer=volunteer, tile=locked).update(expires_at=timezone.now())
            if not imported:
                transaction.on_commit(lambda: _enqueue_tile_update(locked.pk))
    except IntegrityError:
        # Two identical submits raced: the other one won; return what it stored.
        return Classification.objects.get(volunteer=volunteer, tile=tile), False
    return classification, True


def _check_allowed(volunteer: AbstractBaseUser, tile: Tile, project: Project) -> None:
    if project.status != Project.Status.ACTIVE:
        raise Conflict(f"The project '{project.slug}' is {project.status}, not open for tagging.")
    if Assignment.objects.filter(volunteer=volunteer, tile=tile).exists():
        return  # leased to them: their answer counts even if the lease has just lapsed
    if tile.status == Tile.Status.OPEN and tile.vote_count < project.redundancy:
        return
    raise Conflict("This tile was not given to you and needs no more votes; ask for the next tile.")


def _mark(classification: Classification, tile: Tile, mark: MarkInput, layers: dict[str, ImageryLayer]) -> Mark:
    pixel = (tile.maxx - tile.minx) / tile.size  # ground metres per tile pixel
    # Tile pixel (0, 0) is the top-left corner of the tile, so x grows east and y grows south.
    return Mark(classification=classification, x=mark.x, y=mark.y, ground_x=tile.minx + mark.x * pixel,
                ground_y=tile.maxy - mark.y * pixel, layer=layers.get(mark.date) if mark.date else None)


def _count_vote(tile: Tile, project: Project, *, counted: bool) -> None:
    if not counted:
        return  # too fast to have looked: recorded, but another volunteer should see the tile
    retire = tile.status == Tile.Status.OPEN and tile.vote_count + 1 >= project.redundancy
    Tile.objects.filter(pk=tile.pk).update(
        vote_count=F("vote_count") + 1, **({"status": Tile.Status.RETIRED} if retire else {}))


def _enqueue_tile_update(tile_id: int) -> None:
    from workers.tagging import refresh_tile_task

    refresh_tile_task.delay(tile_id)


def refresh_tile(*, tile_id: int) -> int:
    """Recompute a tile's vote count from its stored votes (idempotent); returns the count."""
    with transaction.atomic():
        # The row lock serializes this with votes being recorded on the tile.
        if not Tile.objects.select_for_update().filter(pk=tile_id).exists():
            log.info("tile %s vanished before its refresh", tile_id)
            return 0
        votes = Classification.objects.filter(tile_id=tile_id, too_fast=False).count()
        Tile.objects.filter(pk=tile_id).update(vote_count=votes)
    return votes


def gold_feedback(*, classification: Classification, radius_px: float = 25.0) -> dict[str, Any] | None:
    """For a gold tile: was the answer right, which known buildings were found, missed, or wrongly marked."""
    gold = GoldAnswer.objects.filter(tile_id=classification.tile_id).first()
    if gold is None:
        return None
    return compare_with_gold(gold=gold, answer=classification.answer,
                             marks=[(m.x, m.y) for m in classification.marks.all()], radius_px=radius_px)


def compare_with_gold(*, gold: GoldAnswer, answer: str, marks: list[tuple[float, float]],
                      radius_px: float = 25.0) -> dict[str, Any]:
    """Feedback on an answer against a gold tile's known answer; a mark within radius_px finds a building."""
    def near(point: tuple[float, float], others: list[tuple[float, float]]) -> bool:
        return any((point[0] - ox) ** 2 + (point[1] - oy) ** 2 <= radius_px ** 2 for ox, oy in others)

    known = [(float(x), float(y)) for x, y in gold.marks]
    found = [list(point) for point in known if near(point, marks)]
    missed = [list(point) for point in known if not near(point, marks)]
    wrong = [list(point) for point in marks if not near(point, known)]
    return {"correct": answer == gold.answer, "answer": gold.answer, "found": found, "missed": missed,
            "wrong_marks": wrong}
