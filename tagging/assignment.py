"""How a volunteer gets the next tile: leases, scheduling, gold tiles.

A tile can be handed out while its votes plus live leases are below the project's
redundancy and the volunteer has never been given it nor voted on it. Candidates are
taken with SELECT ... FOR UPDATE SKIP LOCKED on PostgreSQL, so concurrent volunteers
get different tiles; SQLite serializes writers (BEGIN IMMEDIATE), so the same statements
without the lock clause are correct there too, only slower.

Every tile a volunteer tags goes through here, so the claim is a few hand-written
statements instead of ORM queries, whose compilation cost several times their database time
(bench.volunteers). On PostgreSQL they run in one function, tagging_next_tile() (migration
0009), one round trip instead of six; on SQLite they are sent one by one. A change to the
rules is a change to both: the tests run on both databases.

A lease row that was written already lapsed (expires_at not after created_at) was never
live: it records that the volunteer has seen a tile without being given it to tag (the
tutorial showed its answer, see ensure_seen). Such a tile is never handed to them, and
their answer on it is refused (tagging.classifications).
"""

import math
import random
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.contrib.auth.models import AbstractBaseUser
from django.db import connection, transaction
from django.db.models import F
from django.utils import timezone
from django.utils.translation import gettext as _

from config.errors import Conflict
from imagery.models import Tile
from tagging import rows
from tagging.models import Assignment, Project

CANDIDATE_WINDOW = 32  # more than the transactions that can hold tile locks at once (web threads + workers)
CLAIM_ATTEMPTS = 5  # tiles found full once locked before giving up on this request (the client asks again)
SHUFFLE_MODULUS = 2_147_483_647  # a prime: (id * salt) mod it orders tiles of equal rank differently per request
NO_WINDOW = 2**62  # the candidate query's LIMIT when every tile of the window is locked by others
PROJECT_GRID = "(SELECT g.id FROM imagery_grid g WHERE g.project_id = %(project)s ORDER BY g.id LIMIT 1)"  # SQL


def not_open_for_tagging(project: Project) -> Conflict:
    """The error of a next tile or a vote on a project that is not active, in the volunteer's language."""
    messages = {Project.Status.DRAFT: _("The project '%(project)s' is still a draft, not open for tagging."),
                Project.Status.PAUSED: _("The project '%(project)s' is paused, not open for tagging."),
                Project.Status.FINISHED: _("The project '%(project)s' is finished, not open for tagging.")}
    return Conflict(messages.get(project.status, messages[Project.Status.PAUSED]) % {"project": project.name},
                    code="project_not_open")  # the tagging page stops offering tiles on this code


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
    until commit. The lease's tile is loaded (lease.tile), with its images (lease.images: (layer id,
    date), oldest first), and lease.project is `project`. On PostgreSQL the whole claim is one
    statement, the same steps in PL/pgSQL (tagging_next_tile, migration 0009).
    """
    if project.status != Project.Status.ACTIVE:
        raise not_open_for_tagging(project)
    rng = rng or random
    now = timezone.now()
    expires = now + timedelta(seconds=settings.LEASE_SECONDS)
    claim = _Claim(project=project, volunteer_id=volunteer.pk, now=now, expires=expires,
                   salt=rng.randrange(1, SHUFFLE_MODULUS))
    if connection.vendor == "postgresql":
        return _next_in_one_statement(claim, exclude, gold_draw=rng.random())
    with transaction.atomic():
        done, held = _volunteer_state(claim, exclude)
        if held is not None:
            Assignment.objects.filter(pk=held.pk).update(expires_at=expires)
        else:
            want_gold = rng.random() < gold_probability(project_rate=project.gold_rate, tiles_done=done)
            held = _claim(claim, gold=want_gold) or _claim(claim, gold=not want_gold)
    if held is not None:
        held.images = dated_images(held.tile_id)
    return held


def dated_images(tile_id: int) -> list[tuple[int, Any]]:
    """(layer id, date) of each image of the tile, oldest first."""
    return [tuple(row) for row in rows.fetch_all("""
        SELECT i.layer_id, l.date FROM imagery_tileimage i JOIN imagery_imagerylayer l ON l.id = i.layer_id
        WHERE i.tile_id = %s ORDER BY l.date, i.layer_id""", [tile_id])]


# SQL, PostgreSQL: the claim as one statement. A CTE p holds the project's row (chosen by {which}) and whether the
# claim may run ({open}, a condition on p); the CTE claim runs tagging_next_tile with the project's own settings, only
# when it may; the statement answers the project's row, `open`, and the lease's id, whether it is gold, its tile's
# dated images (a JSON array of [layer id, date], oldest first) and its tile's row, all NULL when no lease was made.
# Shared with bench/volunteers/floor.py, which measures this SQL.
#
# %(lazy_commit)s: the claim is its own transaction, which then commits without waiting for the write-ahead log to
# reach the disk (synchronous_commit off for that transaction alone). Under load, PostgreSQL's backends spent most
# of their waits on that flush (LWLock WALWrite and IO WALSync in pg_stat_activity, sampled during
# bench.volunteers), and a vote waited for two: its lease's and its own. A lease is worth no such wait: a crash of
# the database can lose only the last fraction of a second's leases, never a vote, and never the lease of a stored
# vote (a vote's own commit flushes the log up to it, so every earlier lease with it). A lost lease is a lapsed
# lease: its tile returns to the pool, and the volunteer's answer on it counts while the tile needs votes (tagging.
# classifications). Inside a caller's transaction (lazy_commit false) the claim leaves its commit alone.
CLAIM_SQL = """
    WITH p AS MATERIALIZED (SELECT {project}, {open} AS open FROM tagging_project p WHERE {which}),
    claim AS MATERIALIZED (
        SELECT lease.* FROM p, LATERAL (
            SELECT p.id AS project, set_config('synchronous_commit', CASE WHEN %(lazy_commit)s::boolean
                THEN 'off' ELSE current_setting('synchronous_commit') END, TRUE) AS commit_mode
            WHERE p.open) lazy,
        tagging_next_tile(
            lazy.project, %(volunteer)s::integer, %(now)s::timestamptz, %(expires)s::timestamptz, %(salt)s::bigint,
            %(gold_draw)s::double precision, %(exclude)s::bigint[], p.redundancy::integer,
            p.scheduling = 'depth_first', p.gold_rate, %(newcomer)s::double precision, %(decay)s::double precision,
            %(cap)s::integer, %(attempts)s::integer) lease)
    SELECT p.*, claim.out_lease, claim.out_gold,
           (SELECT json_agg(json_build_array(i.layer_id, l.date) ORDER BY l.date, i.layer_id)
            FROM imagery_tileimage i JOIN imagery_imagerylayer l ON l.id = i.layer_id WHERE i.tile_id = t.id),
           {tile}
    FROM p LEFT JOIN (claim JOIN imagery_tile t ON t.id = claim.out_tile) ON TRUE"""
# The volunteer may tag the project without further ado: it is active, and public or theirs (tagging.access).
OPEN_TO_VOLUNTEER = """p.status = 'active' AND (p.is_public OR EXISTS (
    SELECT 1 FROM tagging_membership m WHERE m.project_id = p.id AND m.user_id = %(volunteer)s))"""


def claim_sql(*, which: str, open: str) -> str:
    """CLAIM_SQL for the project `which` chooses (SQL on p), claiming when `open` (SQL on p) holds."""
    return CLAIM_SQL.format(project=rows.columns(Project, "p"), tile=rows.columns(Tile, "t"), which=which, open=open)


CLAIM_BY_ID = claim_sql(which="p.id = %(project)s", open="TRUE")
CLAIM_BY_SLUG = claim_sql(which="p.slug = %(slug)s", open=OPEN_TO_VOLUNTEER)


def next_tile_in_project(*, volunteer: AbstractBaseUser, slug: str, exclude: Sequence[int] = (),
                         rng: random.Random | None = None) -> tuple[Project, Assignment | None] | None:
    """PostgreSQL: the project with this slug and next_tile_for's lease on it (None when nothing is left), in one
    round trip instead of two (tagging.access.access_project, then next_tile_for), when the project is active and
    the volunteer may see it as anyone may (public) or as a member.

    None when that does not hold: no such project, not active, private to others. The caller then goes the long
    way, access_project and next_tile_for, which word the error in the volunteer's language, or let a platform
    admin in. Nothing is claimed then. On SQLite, always None: there the long way is the only one.
    """
    if connection.vendor != "postgresql":
        return None
    rng = rng or random
    now = timezone.now()
    expires, salt = now + timedelta(seconds=settings.LEASE_SECONDS), rng.randrange(1, SHUFFLE_MODULUS)
    row = rows.fetch_one(CLAIM_BY_SLUG, {
        "slug": slug, "volunteer": volunteer.pk, "now": now, "expires": expires, "salt": salt,
        "gold_draw": rng.random(), **_claim_constants(exclude)}, prepare=True)
    if row is None:
        return None
    values = iter(row)
    project = rows.instance(Project, values)
    if not next(values):
        return None
    claim = _Claim(project=project, volunteer_id=volunteer.pk, now=now, expires=expires, salt=salt)
    return project, _lease_of_row(claim, values)


def _next_in_one_statement(claim: "_Claim", exclude: Sequence[int], *, gold_draw: float) -> Assignment | None:
    """next_tile_for on PostgreSQL: the same rules in one round trip, tagging_next_tile() (migration 0009),
    with the lease's tile and its dated images. The function takes the project's settings from its row."""
    row = rows.fetch_one(CLAIM_BY_ID, {
        "project": claim.project.pk, "volunteer": claim.volunteer_id, "now": claim.now, "expires": claim.expires,
        "salt": claim.salt, "gold_draw": gold_draw, **_claim_constants(exclude)}, prepare=True)
    if row is None:
        return None  # the project was deleted meanwhile
    after_open = len(Project._meta.concrete_fields) + 1  # the caller's project stands; `open` is always true
    return _lease_of_row(claim, iter(row[after_open:]))


def _claim_constants(exclude: Sequence[int]) -> dict[str, Any]:
    """CLAIM_SQL's parameters that are the platform's, not the request's."""
    return {"exclude": [int(tile_id) for tile_id in exclude], "newcomer": settings.GOLD_RATE_NEWCOMER,
            "decay": settings.GOLD_RATE_DECAY_TILES, "cap": _gold_cap(), "attempts": CLAIM_ATTEMPTS,
            "lazy_commit": not connection.in_atomic_block}


def _lease_of_row(claim: "_Claim", values: Iterator[Any]) -> Assignment | None:
    """The lease of CLAIM_SQL's row, from its columns after `open`; None when no lease was made."""
    lease_id, is_gold, images = next(values), next(values), next(values)
    if lease_id is None:
        return None
    lease = _lease(claim, lease_id=lease_id, is_gold=is_gold, tile=rows.instance(Tile, values))
    lease.images = [(layer_id, date) for layer_id, date in images or []]
    return lease


def _gold_cap() -> int:
    """Votes counted for the gold rate: exp(-10) puts the rate within 0.005% of the project's."""
    return math.ceil(10 * settings.GOLD_RATE_DECAY_TILES)


@dataclass(frozen=True)
class _Claim:
    project: Project
    volunteer_id: int
    now: datetime
    expires: datetime
    salt: int  # this request's order among tiles of equal rank, so that concurrent claimers spread out

    def params(self, **more: Any) -> dict[str, Any]:
        adapt = connection.ops.adapt_datetimefield_value  # SQLite stores text; PostgreSQL takes the datetime
        return {"project": self.project.pk, "volunteer": self.volunteer_id, "now": adapt(self.now),
                "expires": adapt(self.expires), "salt": self.salt, "redundancy": self.project.redundancy,
                "open": Tile.Status.OPEN, "gold": Tile.Status.GOLD, **more}


def _volunteer_state(claim: _Claim, exclude: Sequence[int]) -> tuple[int, Assignment | None]:
    """One statement: the volunteer's votes on the project (counted up to where the gold rate no longer
    changes), and the oldest live lease they hold on a tile they have not answered and is not in `exclude`."""
    skip, skipped = _not_in("a.tile_id", "exclude", exclude)
    cap = _gold_cap()
    row = rows.fetch_one(f"""
        SELECT (SELECT COUNT(*) FROM (SELECT 1 FROM tagging_classification
                                      WHERE project_id = %(project)s AND volunteer_id = %(volunteer)s
                                      LIMIT %(cap)s) done),
               held.*
        FROM (SELECT 1) one LEFT JOIN (
            SELECT a.id AS lease_id, a.is_gold AS lease_is_gold, {rows.columns(Tile, "t")}
            FROM tagging_assignment a JOIN imagery_tile t ON t.id = a.tile_id
            WHERE a.volunteer_id = %(volunteer)s AND a.project_id = %(project)s AND a.expires_at > %(now)s{skip}
              AND NOT EXISTS (SELECT 1 FROM tagging_classification c
                              WHERE c.tile_id = a.tile_id AND c.volunteer_id = %(volunteer)s)
            ORDER BY a.created_at LIMIT 1) held ON TRUE""", claim.params(cap=cap, **skipped))
    assert row is not None  # one row, always
    done, lease_id, is_gold, *tile = row
    if lease_id is None:
        return int(done), None
    return int(done), _lease(claim, lease_id=lease_id, is_gold=bool(is_gold), tile=rows.instance(Tile, iter(tile)))


def _claim(claim: _Claim, *, gold: bool) -> Assignment | None:
    """Lock a free candidate and lease it when, counted again under the lock, it still has room."""
    passed: list[int] = []
    for _attempt in range(CLAIM_ATTEMPTS):
        tile = _lock_candidate(claim, gold=gold, passed=passed, window=CANDIDATE_WINDOW)
        if tile is None and connection.features.has_select_for_update_skip_locked:
            # Only skipped locks can empty a window that has candidates; without them (SQLite) none are left.
            tile = _lock_candidate(claim, gold=gold, passed=passed, window=NO_WINDOW)
        if tile is None:
            return None
        lease_id = _insert_lease(claim, tile)
        if lease_id is not None:
            return _lease(claim, lease_id=lease_id, is_gold=tile.status == Tile.Status.GOLD, tile=tile)
        passed.append(tile.pk)
    return None


def _lock_candidate(claim: _Claim, *, gold: bool, passed: list[int], window: int) -> Tile | None:
    """The first candidate in the project's order that no other transaction has locked, locked.

    A sort under FOR UPDATE cannot stop at the first rows: it would sort every open tile. So the
    first `window` candidates come from a bounded (top-N, index) scan without locks, and are
    locked in order, the first one free wins. Among tiles of equal rank (at the start, every
    tile: no votes, same priority) the order is shuffled per request, so concurrent volunteers
    go for different tiles instead of queueing on the first ones. The row's own conditions are
    repeated outside, so that a tile voted on meanwhile is checked again on its new row.
    """
    depth_first = not gold and claim.project.scheduling == Project.Scheduling.DEPTH_FIRST
    votes = "vote_count DESC" if depth_first else "vote_count"

    def kind(alias: str) -> str:
        if gold:
            return f"{alias}.status = %(gold)s"
        return f"{alias}.status = %(open)s AND {alias}.vote_count < %(redundancy)s"

    # Votes plus live leases below the redundancy: a count over the (tile, expires_at) index for each tile the scan
    # passes, which stops at the window; the full tiles it passes are those whose leases are out (bench.volunteers).
    room = "" if gold else """
              AND (SELECT COUNT(*) FROM tagging_assignment a
                   WHERE a.tile_id = c.id AND a.expires_at > %(now)s) < %(redundancy)s - c.vote_count"""
    skip, skipped = _not_in("c.id", "passed", passed)
    lock = " FOR UPDATE OF t SKIP LOCKED" if connection.features.has_select_for_update_skip_locked else ""
    row = rows.fetch_one(f"""
        SELECT {rows.columns(Tile, "t")} FROM imagery_tile t
        WHERE t.id IN (
            SELECT c.id FROM imagery_tile c
            WHERE c.grid_id = {PROJECT_GRID}
              AND {kind("c")}{room}{skip}
              AND NOT EXISTS (SELECT 1 FROM tagging_assignment s
                              WHERE s.tile_id = c.id AND s.volunteer_id = %(volunteer)s)
            ORDER BY c.{votes}, c.priority DESC, c.id
            LIMIT %(window)s)
          AND {kind("t")}
        ORDER BY t.{votes}, t.priority DESC, (t.id * %(salt)s) %% {SHUFFLE_MODULUS}
        LIMIT 1{lock}""", claim.params(window=window, **skipped))
    return rows.instance(Tile, iter(row)) if row is not None else None


def _insert_lease(claim: _Claim, tile: Tile) -> int | None:
    """The new lease's id; None when the tile is full after all (or the volunteer got it meanwhile, another tab).

    The candidate query's snapshot predates the lock: on PostgreSQL a transaction that leased
    this tile and committed just before we locked it is invisible to that query (a lease insert
    does not change the tile row, so PostgreSQL does not re-check it). This statement is a new
    snapshot that sees every such commit, and nobody can add a lease while we hold the lock.
    Without this count bench.volunteers found 105 tiles over the redundancy at 500 volunteers.
    The tile's vote count is the locked row's, which no vote can change before we commit.
    """
    gold = tile.status == Tile.Status.GOLD
    room = "TRUE" if gold else """(SELECT COUNT(*) FROM tagging_assignment a
                                   WHERE a.tile_id = %(tile)s AND a.expires_at > %(now)s) < %(room)s"""
    row = rows.fetch_one(f"""
        INSERT INTO tagging_assignment (tile_id, volunteer_id, project_id, is_gold, created_at, expires_at)
        SELECT %(tile)s, %(volunteer)s, %(project)s, %(is_gold)s, %(now)s, %(expires)s
        WHERE {room}
        ON CONFLICT DO NOTHING
        RETURNING id""", claim.params(tile=tile.pk, is_gold=gold, room=claim.project.redundancy - tile.vote_count))
    return int(row[0]) if row is not None else None


def _lease(claim: _Claim, *, lease_id: int, is_gold: bool, tile: Tile) -> Assignment:
    """The lease as loaded from the database (created_at is deferred), with its tile and project attached."""
    fields = ["id", "tile_id", "volunteer_id", "project_id", "is_gold", "expires_at"]
    lease = Assignment.from_db(connection.alias, fields,
                               (lease_id, tile.pk, claim.volunteer_id, claim.project.pk, is_gold, claim.expires))
    lease.tile, lease.project = tile, claim.project
    return lease


def _not_in(column: str, name: str, ids: Sequence[int]) -> tuple[str, dict[str, int]]:
    """SQL " AND column NOT IN (...)" with one named parameter per id (SQLite has no arrays), and the parameters."""
    params = {f"{name}{index}": int(value) for index, value in enumerate(ids)}
    if not params:
        return "", {}
    return f" AND {column} NOT IN ({', '.join(f'%({key})s' for key in params)})", params


def ensure_seen(*, volunteer: AbstractBaseUser, project: Project, tile_ids: Sequence[int]) -> None:
    """Record that the volunteer has seen these tiles and their answers (the tutorial's tiles).

    They are never handed to this volunteer, and an answer of theirs on one is refused. A lease
    they hold on one of them lapses. Safe to repeat.
    """
    Assignment.objects.bulk_create([
        Assignment(volunteer=volunteer, tile_id=tile_id, project=project, is_gold=True, expires_at=timezone.now())
        for tile_id in tile_ids], ignore_conflicts=True)
    # Written already lapsed (see the module's docstring): a lease that was never live.
    Assignment.objects.filter(volunteer=volunteer, tile_id__in=list(tile_ids)).update(expires_at=F("created_at"))


def release_lease(*, volunteer: AbstractBaseUser, tile_id: int) -> bool:
    """Give a leased tile back to the pool at once (skip, bad-image report); the volunteer never gets it again."""
    return bool(Assignment.objects.filter(volunteer=volunteer, tile_id=tile_id, expires_at__gt=timezone.now())
                .update(expires_at=timezone.now()))


def renew_lease(*, assignment: Assignment) -> Assignment:
    """Extend a live lease while the volunteer is active on its tile. Raises Conflict once it has lapsed."""
    now = timezone.now()
    expires = now + timedelta(seconds=settings.LEASE_SECONDS)
    if not Assignment.objects.filter(pk=assignment.pk, expires_at__gt=now).update(expires_at=expires):
        raise Conflict(_("This lease has expired; ask for the next tile."))
    assignment.expires_at = expires
    return assignment
