"""How a volunteer gets the next tile: leases, scheduling, gold tiles.

A tile can be handed out while its votes plus live leases are below the project's
redundancy and the volunteer has never been given it nor voted on it. Candidates are
taken with SELECT ... FOR UPDATE SKIP LOCKED on PostgreSQL, so concurrent volunteers
get different tiles; SQLite serializes writers (BEGIN IMMEDIATE), so the same code is
correct there too, only slower.
"""

import math
import random
from collections.abc import Sequence
from datetime import timedelta

from django.conf import settings
from django.contrib.auth.models import AbstractBaseUser
from django.db import transaction
from django.db.models import Count, Exists, F, IntegerField, OuterRef, QuerySet, Subquery, Value
from django.db.models.functions import Coalesce
from django.utils import timezone

from config.errors import Conflict
from imagery.models import Grid, Tile
from tagging.models import Assignment, Classification, Project


def gold_probability(*, project_rate: float, tiles_done: int) -> float:
    """Newcomers see gold tiles often (40%), falling towards the project's rate (as Zooniverse does)."""
    start = max(settings.GOLD_RATE_NEWCOMER, project_rate)
    return project_rate + (start - project_rate) * math.exp(-tiles_done / settings.GOLD_RATE_DECAY_TILES)


def next_tile_for(*, volunteer: AbstractBaseUser, project: Project, rng: random.Random | None = None,
                  exclude: Sequence[int] = ()) -> Assignment | None:
    """A lease on the tile this volunteer should tag next, or None when nothing is left for them.

    A live lease the volunteer already holds (a reload, a second tab) is renewed and returned,
    unless its tile is in `exclude`: the tagging page asks for the next tile while the current
    one (excluded) is still on screen, so a volunteer holds at most one lease ahead.
    Raises Conflict when the project is not open for tagging. Holds the chosen tile's row lock
    until commit.
    """
    if project.status != Project.Status.ACTIVE:
        raise Conflict(f"The project '{project.slug}' is {project.status}, not open for tagging.")
    grid = Grid.objects.filter(project=project).only("pk").first()
    if grid is None:
        return None
    now = timezone.now()
    expires = now + timedelta(seconds=settings.LEASE_SECONDS)
    with transaction.atomic():
        held = _held_lease(volunteer, project, now, exclude)
        if held is not None:
            Assignment.objects.filter(pk=held.pk).update(expires_at=expires)
            held.expires_at = expires
            return held
        done = Classification.objects.filter(project=project, volunteer=volunteer).count()
        want_gold = (rng or random).random() < gold_probability(project_rate=project.gold_rate, tiles_done=done)
        tile = (_claim(grid, project, volunteer, now, gold=want_gold)
                or _claim(grid, project, volunteer, now, gold=not want_gold))
        if tile is None:
            return None
        return Assignment.objects.create(tile=tile, volunteer=volunteer, project=project, expires_at=expires,
                                         is_gold=tile.status == Tile.Status.GOLD)


def _held_lease(volunteer: AbstractBaseUser, project: Project, now: timezone.datetime,
                exclude: Sequence[int]) -> Assignment | None:
    voted = Classification.objects.filter(tile=OuterRef("tile"), volunteer=volunteer)
    held = Assignment.objects.filter(volunteer=volunteer, project=project, expires_at__gt=now)
    if exclude:
        held = held.exclude(tile_id__in=list(exclude))
    return held.exclude(Exists(voted)).select_related("tile").order_by("created_at").first()


def _candidates(grid: Grid, project: Project, volunteer: AbstractBaseUser, now: timezone.datetime,
                *, gold: bool) -> QuerySet[Tile]:
    seen = Assignment.objects.filter(tile=OuterRef("pk"), volunteer=volunteer)
    tiles = Tile.objects.filter(grid=grid).exclude(Exists(seen))
    if gold:
        return tiles.filter(status=Tile.Status.GOLD).order_by("vote_count", "pk")
    live = (Assignment.objects.filter(tile=OuterRef("pk"), expires_at__gt=now).order_by()
            .values("tile").annotate(n=Count("pk")).values("n"))
    tiles = (tiles.filter(status=Tile.Status.OPEN, vote_count__lt=project.redundancy)
             .annotate(leases=Coalesce(Subquery(live, output_field=IntegerField()), Value(0)))
             .filter(vote_count__lt=project.redundancy - F("leases")))
    if project.scheduling == Project.Scheduling.DEPTH_FIRST:
        return tiles.order_by("-vote_count", "-priority", "pk")
    return tiles.order_by("vote_count", "-priority", "pk")


def _claim(grid: Grid, project: Project, volunteer: AbstractBaseUser, now: timezone.datetime,
           *, gold: bool) -> Tile | None:
    candidates = _candidates(grid, project, volunteer, now, gold=gold)
    return candidates.select_for_update(skip_locked=True, of=("self",)).first()


def release_lease(*, volunteer: AbstractBaseUser, tile_id: int) -> bool:
    """Give a leased tile back to the pool at once (skip, bad-image report); the volunteer never gets it again."""
    return bool(Assignment.objects.filter(volunteer=volunteer, tile_id=tile_id, expires_at__gt=timezone.now())
                .update(expires_at=timezone.now()))


def renew_lease(*, assignment: Assignment) -> Assignment:
    """Extend a live lease while the volunteer is active on its tile. Raises Conflict once it has lapsed."""
    now = timezone.now()
    expires = now + timedelta(seconds=settings.LEASE_SECONDS)
    if not Assignment.objects.filter(pk=assignment.pk, expires_at__gt=now).update(expires_at=expires):
        raise Conflict("This lease has expired; ask for the next tile.")
    assignment.expires_at = expires
    return assignment
