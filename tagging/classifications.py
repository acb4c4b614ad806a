"""Recording a volunteer's answer on a tile, exactly once."""

import contextlib
import datetime
import logging
from dataclasses import dataclass
from typing import Any

from django.conf import settings
from django.contrib.auth.models import AbstractBaseUser
from django.db import IntegrityError, connection, transaction
from django.utils import timezone
from django.utils.translation import gettext as _

from config.errors import Conflict, InvalidInput, NotFound
from imagery.models import Grid, ImageryLayer, Tile
from tagging import rows, tile_updates
from tagging.assignment import not_open_for_tagging
from tagging.models import Classification, GoldAnswer, Mark, Project

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class MarkInput:
    x: float
    y: float
    date: str | None = None


MAX_SECONDS = 24 * 3600  # time spent on one tile, as the voter's app reports it (check_classification's message)


def check_classification(*, project: Project, tile: Tile, answer: str, marks: list[MarkInput],
                         seconds: float | None) -> dict[str, ImageryLayer]:
    """Validate against the project's answers and the tile's bounds. Returns the project's layers by date."""
    answers = {a["key"]: a for a in project.answers}
    if answer not in answers:
        raise InvalidInput(_("'%(answer)s' is not an answer of this project; use one of %(answers)s.")
                           % {"answer": answer, "answers": ", ".join(answers)},
                           fields={"answer": ["invalid choice"]})
    if marks and not answers[answer]["damage"]:
        raise InvalidInput(_("Marks go with an answer that says there is damage, not with '%(answer)s'.")
                           % {"answer": answer},
                           fields={"marks": ["not allowed with this answer"]})
    if len(marks) > settings.MAX_MARKS_PER_TILE:
        raise InvalidInput(_("At most %(count)d marks per tile.") % {"count": settings.MAX_MARKS_PER_TILE},
                           fields={"marks": ["too many"]})
    # The project's dates are only looked up when a mark names one: most votes need no query for them.
    layers = {str(layer.date): layer for layer in ImageryLayer.objects.filter(project=project, status="ready")
              } if any(mark.date for mark in marks) else {}
    for index, mark in enumerate(marks):
        if not (0 <= mark.x <= tile.size and 0 <= mark.y <= tile.size):
            raise InvalidInput(_("Mark %(number)d at (%(x)s, %(y)s) is outside the tile (0 to %(size)d pixels).")
                               % {"number": index + 1, "x": f"{mark.x:g}", "y": f"{mark.y:g}", "size": tile.size},
                               fields={"marks": [f"{index}: outside the tile"]})
        if mark.date is not None and mark.date not in layers:
            raise InvalidInput(_("Mark %(number)d names the date %(date)s, which is not one of this project's "
                                 "dates (%(dates)s).") % {"number": index + 1, "date": mark.date,
                                                          "dates": ", ".join(layers)},
                               fields={"marks": [f"{index}: unknown date"]})
    if seconds is not None and not 0 <= seconds <= MAX_SECONDS:
        raise InvalidInput(_("seconds must be between 0 and 86400."), fields={"seconds": ["out of range"]})
    return layers


def record_classification(*, volunteer: AbstractBaseUser, tile: Tile, answer: str, marks: list[MarkInput],
                          seconds: float | None = None, source: str = "api",
                          imported: bool = False) -> tuple[Classification, bool]:
    """Store one volunteer's answer on a tile; returns (classification, created).

    A replay (double click, network retry) returns the stored row with created=False and
    changes nothing. The tile's vote count and status change in the same transaction, under
    the tile's row lock; the tile is marked for a consensus update, which a worker is asked for after commit
    (tagging.tile_updates). The classification
    comes with its marks and their layers (classification.mark_rows). Raises InvalidInput
    for bad input, NotFound when the tile has vanished, and Conflict when the volunteer may not
    answer this tile (any more), or may never: they saw its answer in the tutorial.

    imported=True records a vote cast elsewhere (a campaign migrating in, a replayed crowd): it
    needs no lease nor an open project or tile, and enqueues nothing; the importer recomputes
    the project's consensus once at the end.
    """
    project = tile.grid.project
    too_fast = seconds is not None and seconds < settings.MIN_SECONDS_PER_TILE
    try:
        if connection.vendor == "postgresql":
            return _record_in_one_statement(volunteer=volunteer, tile=tile, project=project, answer=answer,
                                            marks=marks, seconds=seconds, source=source, imported=imported,
                                            too_fast=too_fast)
        with transaction.atomic():
            locked = _lock_tile(tile.pk, volunteer.pk)
            if locked.vote_id is not None:
                return _stored(Classification.objects.get(pk=locked.vote_id)), False
            layers = check_classification(project=project, tile=tile, answer=answer, marks=marks, seconds=seconds)
            refusal = None if imported else _refusal(locked, project)
            if refusal is not None:
                raise _conflict(refusal, project)
            classification = Classification(
                project=project, tile=tile, volunteer=volunteer, answer=answer, seconds=seconds, too_fast=too_fast,
                is_gold=locked.status == Tile.Status.GOLD, source=source, created_at=timezone.now())
            classification.mark_rows = [_mark(classification, tile, mark, layers) for mark in marks]
            _store_vote(classification, locked, retire=(not too_fast and locked.status == Tile.Status.OPEN
                                                        and locked.vote_count + 1 >= project.redundancy),
                        pending=not imported)
            if not imported:
                transaction.on_commit(tile_updates.schedule_update)
    except IntegrityError:
        # Two identical submits raced: the other one won; return what it stored.
        return _stored(Classification.objects.get(volunteer=volunteer, tile=tile)), False
    return classification, True


def _record_in_one_statement(*, volunteer: AbstractBaseUser, tile: Tile, project: Project, answer: str,
                             marks: list[MarkInput], seconds: float | None, source: str, imported: bool,
                             too_fast: bool) -> tuple[Classification, bool]:
    """record_classification on PostgreSQL: the lock, the checks and the writes in one round trip,
    tagging_cast_vote() (migration 0010). The input is checked before the tile is locked; input that fails
    the check gets the voter's stored vote when there is one, as on SQLite, where a replay's input is never
    checked (a retry after the project's answers changed is still a retry)."""
    try:
        layers = check_classification(project=project, tile=tile, answer=answer, marks=marks, seconds=seconds)
    except InvalidInput:
        stored = Classification.objects.filter(volunteer=volunteer, tile=tile).first()
        if stored is None:
            raise
        return _stored(stored), False
    classification = Classification(project=project, tile=tile, volunteer=volunteer, answer=answer, seconds=seconds,
                                    too_fast=too_fast, source=source, created_at=timezone.now())
    classification.mark_rows = [_mark(classification, tile, mark, layers) for mark in marks]
    params = {"tile": tile.pk, "volunteer": volunteer.pk, "project": project.pk, "check": not imported,
              "active": project.status == Project.Status.ACTIVE, "redundancy": project.redundancy, "answer": answer,
              "seconds": seconds, "too_fast": too_fast, "source": source, "created_at": classification.created_at,
              "pending": not imported}
    params.update({field: [getattr(mark, field) for mark in classification.mark_rows] for field in MARK_FIELDS})
    # Inside a transaction (imports, tests) a savepoint, so that a refused insert (a replay racing) does not
    # break it; otherwise the statement is its own transaction.
    with transaction.atomic() if connection.in_atomic_block else contextlib.nullcontext():
        outcome, vote_id, is_gold = rows.fetch_one("""
            SELECT * FROM tagging_cast_vote(
                %(tile)s::bigint, %(volunteer)s::integer, %(project)s::bigint, %(check)s::boolean,
                %(active)s::boolean, %(redundancy)s::integer, %(answer)s::text, %(seconds)s::double precision,
                %(too_fast)s::boolean, %(source)s::text, %(created_at)s::timestamptz, %(pending)s::boolean,
                %(x)s::double precision[], %(y)s::double precision[], %(ground_x)s::double precision[],
                %(ground_y)s::double precision[], %(layer_id)s::bigint[])""", params, prepare=True)
    if outcome == "no_tile":
        raise NotFound(_("There is no tile %(tile)s.") % {"tile": tile.pk})
    if outcome == "replay":
        return _stored(Classification.objects.get(pk=vote_id)), False
    if outcome != "stored":
        raise _conflict(outcome, project)
    classification.pk, classification.is_gold = vote_id, is_gold
    classification._state.adding, classification._state.db = False, connection.alias
    if not imported:
        transaction.on_commit(tile_updates.schedule_update)
    return classification, True


# SQL, PostgreSQL: a vote in one statement. The CTE tp holds the tile's, its grid's and its project's rows, the gold
# answer's (NULL on other tiles), and what the statement decides before voting: whether the voter may see the project
# as anyone may (public) or as a member (visible), and whether the input passes check_classification (valid: an
# answer of the project, marks only with a damage answer, inside the tile, each date one of the project's). The CTE
# vote runs tagging_cast_vote when both hold, with the marks' ground coordinates and layers. The statement answers
# tp's row and the vote's outcome, id and gold flag (NULL when it did not vote).
VOTE_SQL = f"""
    WITH tp AS MATERIALIZED (
        SELECT {rows.columns(Tile, "t")}, {rows.columns(Grid, "g")}, {rows.columns(Project, "p")},
               {rows.columns(GoldAnswer, "ga")},
               (p.is_public OR EXISTS (SELECT 1 FROM tagging_membership m
                                       WHERE m.project_id = p.id AND m.user_id = %(volunteer)s)) AS visible,
               (EXISTS (SELECT 1 FROM jsonb_array_elements(p.answers) a
                        WHERE a->>'key' = %(answer)s
                          AND (cardinality(%(x)s::double precision[]) = 0 OR (a->>'damage')::boolean))
                AND NOT EXISTS (SELECT 1 FROM unnest(%(x)s::double precision[], %(y)s::double precision[]) m(x, y)
                                WHERE NOT (m.x BETWEEN 0 AND t.size AND m.y BETWEEN 0 AND t.size))
                AND NOT EXISTS (SELECT 1 FROM unnest(%(dates)s::date[]) d(day)
                                WHERE d.day IS NOT NULL AND NOT EXISTS (
                                    SELECT 1 FROM imagery_imagerylayer l
                                    WHERE l.project_id = p.id AND l.status = 'ready' AND l.date = d.day))) AS valid,
               t.id AS vote_tile, p.id AS vote_project, p.status = 'active' AS vote_active,
               p.redundancy AS vote_redundancy, t.minx AS vote_minx, t.maxy AS vote_maxy,
               (t.maxx - t.minx) / t.size AS vote_pixel
        FROM imagery_tile t JOIN imagery_grid g ON g.id = t.grid_id JOIN tagging_project p ON p.id = g.project_id
        LEFT JOIN tagging_goldanswer ga ON ga.tile_id = t.id
        WHERE t.id = %(tile)s),
    vote AS MATERIALIZED (
        SELECT v.*, layers.ids FROM tp,
        LATERAL (SELECT ARRAY(
            SELECT (SELECT l.id FROM imagery_imagerylayer l
                    WHERE l.project_id = tp.vote_project AND l.status = 'ready' AND l.date = d.day
                    ORDER BY l.id DESC LIMIT 1)  -- the last of a date, as check_classification's dict keeps it
            FROM unnest(%(dates)s::date[]) WITH ORDINALITY d(day, n) ORDER BY d.n) AS ids
            WHERE tp.visible AND tp.valid) layers,
        tagging_cast_vote(
            tp.vote_tile, %(volunteer)s::integer, tp.vote_project, TRUE, tp.vote_active, tp.vote_redundancy::integer,
            %(answer)s::text, %(seconds)s::double precision, %(too_fast)s::boolean, 'api', %(created_at)s::timestamptz,
            TRUE, %(x)s::double precision[], %(y)s::double precision[],
            ARRAY(SELECT tp.vote_minx + m.x * tp.vote_pixel
                  FROM unnest(%(x)s::double precision[]) WITH ORDINALITY m(x, n) ORDER BY m.n),
            ARRAY(SELECT tp.vote_maxy - m.y * tp.vote_pixel
                  FROM unnest(%(y)s::double precision[]) WITH ORDINALITY m(y, n) ORDER BY m.n),
            layers.ids) v)
    SELECT tp.*, vote.out_outcome, vote.out_vote, vote.out_gold, vote.ids FROM tp LEFT JOIN vote ON TRUE"""


def vote_in_one_statement(*, volunteer: AbstractBaseUser, tile_id: int, answer: str, marks: list[MarkInput],
                          seconds: float | None) -> tuple[Classification, bool] | None:
    """PostgreSQL: what access_tile_to_answer and record_classification do for a volunteer's vote through the API,
    in one round trip instead of two, when the voter may see the project as anyone may (public) or as a member and
    the input is valid. The classification comes with its marks (mark_rows) and, on a gold tile, its tile's gold
    answer (classification.gold_answer: gold_feedback needs no query then). Raises Conflict when the voter may not
    answer the tile, as record_classification does.

    None when it did not vote: no such tile, a project the voter sees only as a platform admin or not at all, input
    that check_classification refuses, a replay. The caller then goes the long way (access_tile_to_answer,
    record_classification), which words the error in the voter's language or returns the stored vote. Always None
    on SQLite.
    """
    if (connection.vendor != "postgresql" or len(marks) > settings.MAX_MARKS_PER_TILE
            or (seconds is not None and not 0 <= seconds <= MAX_SECONDS)):  # check_classification words these
        return None
    created_at = timezone.now()
    too_fast = seconds is not None and seconds < settings.MIN_SECONDS_PER_TILE
    row = rows.fetch_one(VOTE_SQL, {
        "tile": tile_id, "volunteer": volunteer.pk, "answer": answer, "seconds": seconds, "too_fast": too_fast,
        "created_at": created_at, "x": [mark.x for mark in marks], "y": [mark.y for mark in marks],
        "dates": [mark.date for mark in marks]}, prepare=True)
    if row is None:
        return None
    values = iter(row)
    tile, grid, project = rows.instance(Tile, values), rows.instance(Grid, values), rows.instance(Project, values)
    gold = rows.instance(GoldAnswer, values)
    visible, valid = next(values), next(values)
    *_vote_columns, outcome, vote_id, is_gold, layer_ids = values
    if not (visible and valid) or outcome in ("replay", "no_tile"):
        return None
    if outcome != "stored":
        raise _conflict(outcome, project)
    grid.project, tile.grid = project, grid
    classification = Classification(project=project, tile=tile, volunteer=volunteer, answer=answer, seconds=seconds,
                                    too_fast=too_fast, is_gold=is_gold, source="api", created_at=created_at)
    classification.pk = vote_id
    classification._state.adding, classification._state.db = False, connection.alias
    # The layers the statement found for the marks' dates, as check_classification's dict would give them.
    layers = {mark.date: ImageryLayer(pk=layer_id, date=datetime.date.fromisoformat(mark.date))
              for mark, layer_id in zip(marks, layer_ids) if mark.date}
    classification.mark_rows = [_mark(classification, tile, mark, layers) for mark in marks]
    classification.gold_answer = gold if gold.pk is not None else None
    transaction.on_commit(tile_updates.schedule_update)
    return classification, True


def _stored(classification: Classification) -> Classification:
    classification.mark_rows = list(classification.marks.select_related("layer").order_by("pk"))
    return classification


@dataclass(frozen=True)
class _LockedTile:
    """A tile's row as locked for a vote, with what the voter has done on it."""

    status: str
    vote_count: int
    lease: bool | None  # the voter's lease: None without one, False when it was never live (the tutorial's)
    vote_id: int | None  # the voter's classification when they have answered already


def _lock_tile(tile_id: int, volunteer_id: int) -> _LockedTile:
    """One statement: the tile's row and the voter's state on it. SQLite serializes writers, so the tile is as
    locked as on PostgreSQL, where tagging_cast_vote reads the same under FOR UPDATE."""
    row = rows.fetch_one("""
        SELECT t.status, t.vote_count,
               (SELECT a.expires_at > a.created_at FROM tagging_assignment a
                WHERE a.tile_id = t.id AND a.volunteer_id = %(volunteer)s),
               (SELECT c.id FROM tagging_classification c WHERE c.tile_id = t.id AND c.volunteer_id = %(volunteer)s)
        FROM imagery_tile t WHERE t.id = %(tile)s""", {"tile": tile_id, "volunteer": volunteer_id})
    if row is None:
        raise NotFound(_("There is no tile %(tile)s.") % {"tile": tile_id})
    status, votes, lease, vote_id = row
    return _LockedTile(status, votes, None if lease is None else bool(lease), vote_id)


def _refusal(tile: _LockedTile, project: Project) -> str | None:
    """Why the voter may not answer the locked tile (a key of _conflict), or None when they may."""
    if project.status != Project.Status.ACTIVE:
        return "inactive"
    if tile.lease is False:
        return "practice"
    if tile.lease:
        return None  # leased to them: their answer counts even if the lease has just lapsed
    if tile.status == Tile.Status.OPEN and tile.vote_count < project.redundancy:
        return None
    return "not_given"


def _conflict(refusal: str, project: Project) -> Conflict:
    """The error of a refusal: _refusal's, or tagging_cast_vote's outcome on PostgreSQL."""
    if refusal == "inactive":
        return not_open_for_tagging(project)
    if refusal == "practice":
        # The tutorial showed this tile with its answer (a practice or example tile): a vote on it would
        # score the volunteer on an answer they were told.
        return Conflict(_("You saw this tile's answer in the tutorial, so your answer on it cannot count as a "
                          "vote; ask for the next tile."), code="practice_tile")
    return Conflict(_("This tile was not given to you and needs no more votes; ask for the next tile."))


def _mark(classification: Classification, tile: Tile, mark: MarkInput, layers: dict[str, ImageryLayer]) -> Mark:
    pixel = (tile.maxx - tile.minx) / tile.size  # ground metres per tile pixel
    # Tile pixel (0, 0) is the top-left corner of the tile, so x grows east and y grows south.
    return Mark(classification=classification, x=mark.x, y=mark.y, ground_x=tile.minx + mark.x * pixel,
                ground_y=tile.maxy - mark.y * pixel, layer=layers.get(mark.date) if mark.date else None)


VOTE_FIELDS = ("project_id", "tile_id", "volunteer_id", "answer", "seconds", "too_fast", "is_gold", "source",
               "created_at")
MARK_FIELDS = ("x", "y", "ground_x", "ground_y", "layer_id")


def _store_vote(classification: Classification, locked: _LockedTile, *, retire: bool, pending: bool) -> None:
    """Insert the classification and its marks, count it on the tile (unless too fast; retiring the tile when
    `retire`), let the voter's lease lapse and mark the tile for a consensus update (when `pending`), under
    the tile's row lock. Sets classification.pk. Plain statements (tagging.rows), one per step (SQLite;
    PostgreSQL runs tagging_cast_vote instead).
    """
    adapt = connection.ops.adapt_datetimefield_value
    params: dict[str, Any] = {field: getattr(classification, field) for field in VOTE_FIELDS}
    params.update(created_at=adapt(classification.created_at), retired=Tile.Status.RETIRED)
    row = rows.fetch_one(f"""INSERT INTO tagging_classification ({", ".join(VOTE_FIELDS)})
                             VALUES ({", ".join(f"%({field})s" for field in VOTE_FIELDS)}) RETURNING id""", params)
    assert row is not None
    params["vote"] = row[0]
    steps = []
    if not classification.too_fast:
        steps.append("UPDATE imagery_tile SET vote_count = vote_count + 1"
                     f"{', status = %(retired)s' if retire else ''} WHERE id = %(tile_id)s")
    if locked.lease:
        steps.append("""UPDATE tagging_assignment SET expires_at = %(created_at)s
                        WHERE volunteer_id = %(volunteer_id)s AND tile_id = %(tile_id)s
                          AND expires_at > %(created_at)s""")
    if pending:
        steps.append(tile_updates.PENDING_SQL)
    if classification.mark_rows:
        params.update({f"m{n}_{field}": getattr(mark, field) for n, mark in enumerate(classification.mark_rows)
                       for field in MARK_FIELDS})
        values = ", ".join(f"({', '.join(f'%(m{n}_{field})s' for field in MARK_FIELDS)})"
                           for n in range(len(classification.mark_rows)))
        steps.append(f"""INSERT INTO tagging_mark (classification_id, {", ".join(MARK_FIELDS)})
                         SELECT %(vote)s, m.* FROM (VALUES {values}) m""")
    with connection.cursor() as cursor:
        for sql in steps:
            cursor.execute(sql, params)
    classification.pk = row[0]
    classification._state.adding = False
    classification._state.db = connection.alias


def refresh_tile(*, tile_id: int) -> int:
    """Recompute a tile's vote count from its stored votes (idempotent); returns the count."""
    lock = " FOR UPDATE" if connection.features.has_select_for_update else ""
    with transaction.atomic(), connection.cursor() as cursor:
        # The row lock serializes this with votes being recorded on the tile. It is taken by a statement of
        # its own, so that the count (a new statement, a new snapshot) sees every vote committed before it.
        cursor.execute(f"SELECT id FROM imagery_tile WHERE id = %(tile)s{lock}", {"tile": tile_id})
        if cursor.fetchone() is None:
            log.info("tile %s vanished before its refresh", tile_id)
            return 0
        cursor.execute("""
            UPDATE imagery_tile SET vote_count = (SELECT COUNT(*) FROM tagging_classification c
                                                  WHERE c.tile_id = %(tile)s AND NOT c.too_fast)
            WHERE id = %(tile)s RETURNING vote_count""", {"tile": tile_id})
        return int(cursor.fetchone()[0])


def gold_feedback(*, classification: Classification, marks: list[tuple[float, float]],
                  radius_px: float = 25.0) -> dict[str, Any] | None:
    """For a gold tile: was the answer right, which known buildings were found, missed, or wrongly marked.

    marks: the classification's marks (tile pixels), which the caller has (classification.mark_rows).
    """
    if hasattr(classification, "gold_answer"):  # loaded with the vote (vote_in_one_statement)
        gold = classification.gold_answer
    else:
        # Plain SQL (tagging.rows): up to 4 in 10 of a newcomer's tiles are gold. Under cProfile this function took
        # 2.6 ms of Python per gold vote with the ORM's query, 0.5 ms with this one.
        row = rows.fetch_one(f"SELECT {rows.columns(GoldAnswer, 'g')} FROM tagging_goldanswer g WHERE g.tile_id = %s",
                             [classification.tile_id], prepare=True)
        gold = rows.instance(GoldAnswer, iter(row)) if row is not None else None
    if gold is None:
        return None
    return compare_with_gold(gold=gold, answer=classification.answer, marks=marks, radius_px=radius_px)


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
