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
from django.db.models import Count, Exists, F, OuterRef, QuerySet
from django.utils import timezone

from config.errors import Conflict
from imagery.models import Grid, Tile
from tagging.models import Assignment, Classification, Project

CANDIDATE_WINDOW = 32  # more than the transactions that can hold tile locks at once (web threads + workers)
CLAIM_ATTEMPTS = 5  # tiles found full once locked before giving up on this request (the client asks again)


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
    # Tiles whose votes plus live leases already make the redundancy. Computed once per query over the
    # live leases only (the expires_at index) and hashed, not counted again for every open tile (bench.volunteers).
    full = (Assignment.objects.filter(expires_at__gt=now, tile__grid=grid).order_by()
            .values("tile", "tile__vote_count").annotate(n=Count("pk"))
            .filter(n__gte=project.redundancy - F("tile__vote_count")).values("tile"))
    tiles = tiles.filter(status=Tile.Status.OPEN, vote_count__lt=project.redundancy).exclude(pk__in=full)
    if project.scheduling == Project.Scheduling.DEPTH_FIRST:
        return tiles.order_by("-vote_count", "-priority", "pk")
    return tiles.order_by("vote_count", "-priority", "pk")


def _claim(grid: Grid, project: Project, volunteer: AbstractBaseUser, now: timezone.datetime,
           *, gold: bool) -> Tile | None:
    """Lock the first free candidate. An open tile is counted again once locked, see _has_room."""
    passed: list[int] = []
    for _ in range(CLAIM_ATTEMPTS):
        tile = _lock_first(grid, project, volunteer, now, gold=gold, passed=passed)
        if tile is None or gold or _has_room(tile, project, now):
            return tile
        passed.append(tile.pk)
    return None


def _has_room(tile: Tile, project: Project, now: timezone.datetime) -> bool:
    """Votes plus live leases still below the redundancy, counted after the tile's lock is held.

    The candidate query's snapshot predates the lock: on PostgreSQL a transaction that leased
    this tile and committed just before we locked it is invisible to that query (a lease insert
    does not change the tile row, so PostgreSQL does not re-check it). A new statement sees
    every such commit, and nobody can add a lease while we hold the lock. Without this check
    bench.volunteers found 105 tiles over the redundancy at 500 volunteers.
    """
    leases = Assignment.objects.filter(tile=tile, expires_at__gt=now).count()
    return tile.vote_count + leases < project.redundancy


def _lock_first(grid: Grid, project: Project, volunteer: AbstractBaseUser, now: timezone.datetime,
                *, gold: bool, passed: list[int]) -> Tile | None:
    candidates = _candidates(grid, project, volunteer, now, gold=gold)
    if passed:
        candidates = candidates.exclude(pk__in=passed)
    if not gold:
        # Under FOR UPDATE the sort cannot stop at the first rows: it would sort every open tile. So the
        # first CANDIDATE_WINDOW candidates in order come from a bounded (top-N) sort without locks, and
        # the first of them not locked by another transaction is taken; all of them locked, the full query.
        # The row's own conditions are repeated so that a tile voted on meanwhile is checked again.
        head = candidates.values("pk")[:CANDIDATE_WINDOW]
        first = Tile.objects.filter(pk__in=head, status=Tile.Status.OPEN, vote_count__lt=project.redundancy)
        tile = (first.order_by(*candidates.query.order_by)
                .select_for_update(skip_locked=True, of=("self",)).first())
        if tile is not None:
            return tile
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
