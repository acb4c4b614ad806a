"""Classifications and gold answers from CSV files: a campaign migrating from another platform, a replayed crowd.

Every row goes through the API's validation (check_classification); a file is stored whole or not
at all: the first pass checks every row and reports each bad one with its line number, the second
stores them in one transaction. Re-importing a file adds nothing: a volunteer's vote on a tile is
stored once (record_classification), a gold answer is an upsert.
"""

from __future__ import annotations

import csv
import json
import math
import re
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, time
from pathlib import Path
from typing import Any

from django.contrib.auth import get_user_model
from django.db import transaction
from django.utils import timezone
from django.utils.dateparse import parse_date, parse_datetime
from django.utils.translation import gettext as _

from config.errors import InvalidInput
from imagery.models import Grid, Tile
from tagging.classifications import MarkInput, check_classification, record_classification
from tagging.models import Classification, GoldAnswer, Project

CLASSIFICATION_COLUMNS = ("tile_col", "tile_row", "volunteer", "answer", "marks", "seconds", "created_at")
CLASSIFICATION_REQUIRED = ("tile_col", "tile_row", "volunteer", "answer")
GOLD_COLUMNS = ("tile_col", "tile_row", "answer", "marks")
GOLD_REQUIRED = ("tile_col", "tile_row", "answer")
MAX_REPORTED = 50
PSEUDONYM = re.compile(r"^[\w.@+-]{1,150}\Z")


class ImportRejected(InvalidInput):
    """A file with bad rows: nothing of it was stored. `errors` holds (line, reason) pairs."""

    code = "import_rejected"

    def __init__(self, path: Path, errors: list[tuple[int, str]]):
        lines = [_("Nothing was imported: %(count)s bad row(s).") % {"count": len(errors)}]
        lines += [_("%(file)s, line %(line)s: %(reason)s") % {"file": path.name, "line": line, "reason": reason}
                  for line, reason in errors]
        if len(errors) >= MAX_REPORTED:
            lines.append(_("(only the first %(count)s bad rows are listed)") % {"count": MAX_REPORTED})
        super().__init__("\n".join(lines),
                         fields={"rows": [f"line {line}: {reason}" for line, reason in errors]})
        self.errors = errors


@dataclass(frozen=True)
class ImportResult:
    rows: int
    created: int  # new classifications or gold answers
    unchanged: int  # already stored (a re-import)
    volunteers_created: int = 0


@dataclass(frozen=True)
class _Vote:
    line: int
    tile: Tile
    volunteer: str
    answer: str
    marks: list[MarkInput]
    seconds: float | None
    created_at: datetime | None


def import_classifications(*, project: Project, path: Path) -> ImportResult:
    """Store the votes of a CSV file (tile_col, tile_row, volunteer, answer[, marks, seconds, created_at]).

    volunteer is a pseudonym: an unknown one gets an account with no usable password. marks is a
    JSON list of [x, y] tile pixels or [x, y, "YYYY-MM-DD"]. Raises ImportRejected (nothing stored)
    when any row is bad. The project's consensus is recomputed once, after commit.
    """
    tiles = _TileLookup(project)
    votes, errors, seen = [], [], {}
    for line, row in _rows(path, CLASSIFICATION_COLUMNS, CLASSIFICATION_REQUIRED):
        try:
            vote = _parse_vote(project, tiles, line, row)
            key = (vote.volunteer, vote.tile.col, vote.tile.row)
            if key in seen:
                raise InvalidInput(_("%(volunteer)s answered tile (%(col)s, %(row)s) already on line %(line)s.")
                                   % {"volunteer": vote.volunteer, "col": vote.tile.col, "row": vote.tile.row,
                                      "line": seen[key]})
            seen[key] = line
            votes.append(vote)
        except InvalidInput as exc:
            errors.append((line, exc.message))
            if len(errors) >= MAX_REPORTED:
                break
    if errors:
        raise ImportRejected(path, errors)
    with transaction.atomic():
        users, made = _ensure_volunteers(sorted({vote.volunteer for vote in votes}))
        created = 0
        for vote in votes:
            classification, new = record_classification(
                volunteer=users[vote.volunteer], tile=vote.tile, answer=vote.answer, marks=vote.marks,
                seconds=vote.seconds, source="import", imported=True)
            if new and vote.created_at is not None:
                Classification.objects.filter(pk=classification.pk).update(created_at=vote.created_at)
            created += new
        if created:
            _recompute_after_commit(project)
    return ImportResult(len(votes), created, len(votes) - created, made)


def import_gold(*, project: Project, path: Path) -> ImportResult:
    """Make the tiles of a CSV file (tile_col, tile_row, answer[, marks]) gold tiles with these known answers.

    marks is a JSON list of [x, y] tile pixels, the destroyed buildings on the tile. The tile's
    status becomes gold and its earlier votes are flagged as gold votes. Raises ImportRejected
    (nothing stored) when any row is bad; re-importing the same file changes nothing.
    """
    tiles = _TileLookup(project)
    abstentions = {a["key"] for a in project.answers if a.get("abstain")}
    answers, errors, seen = [], [], {}
    for line, row in _rows(path, GOLD_COLUMNS, GOLD_REQUIRED):
        try:
            tile = tiles.get(row["tile_col"], row["tile_row"])
            answer = row["answer"].strip()
            marks = _parse_marks(row.get("marks") or "", dated=False)
            check_classification(project=project, tile=tile, answer=answer, marks=marks, seconds=None)
            if answer in abstentions:
                raise InvalidInput(_("A gold answer must be decisive, not the abstention '%(answer)s'.")
                                   % {"answer": answer})
            if (tile.col, tile.row) in seen:
                raise InvalidInput(_("Tile (%(col)s, %(row)s) has a gold answer already on line %(line)s.")
                                   % {"col": tile.col, "row": tile.row, "line": seen[(tile.col, tile.row)]})
            seen[(tile.col, tile.row)] = line
            answers.append((tile, answer, [[m.x, m.y] for m in marks]))
        except InvalidInput as exc:
            errors.append((line, exc.message))
            if len(errors) >= MAX_REPORTED:
                break
    if errors:
        raise ImportRejected(path, errors)
    with transaction.atomic():
        created = sum(_store_gold(tile, answer, marks) for tile, answer, marks in answers)
        if answers:
            _recompute_after_commit(project)
    return ImportResult(len(answers), created, len(answers) - created)


def _store_gold(tile: Tile, answer: str, marks: list[list[float]]) -> bool:
    """Upsert one gold answer; True when something changed."""
    gold, created = GoldAnswer.objects.get_or_create(tile_id=tile.pk, defaults={"answer": answer, "marks": marks})
    changed = created or gold.answer != answer or gold.marks != marks
    if changed and not created:
        GoldAnswer.objects.filter(pk=gold.pk).update(answer=answer, marks=marks)
    if Tile.objects.filter(pk=tile.pk).exclude(status=Tile.Status.GOLD).update(status=Tile.Status.GOLD):
        changed = True
    Classification.objects.filter(tile_id=tile.pk, is_gold=False).update(is_gold=True)
    return changed


def _recompute_after_commit(project: Project) -> None:
    from workers.tagging import recompute_project_task

    project_id = project.pk
    transaction.on_commit(lambda: recompute_project_task.delay(project_id))


class _TileLookup:
    """The project's tiles by (col, row), as light Tile objects made on demand (a grid may have 200,000)."""

    def __init__(self, project: Project):
        self.grid = Grid.objects.filter(project=project).first()
        if self.grid is None:
            raise InvalidInput(_("The project '%(project)s' has no grid yet: add imagery first.")
                               % {"project": project.slug})
        self.grid.project = project
        self.rows = {(col, row): rest for col, row, *rest in Tile.objects.filter(grid=self.grid).values_list(
            "col", "row", "id", "size", "minx", "miny", "maxx", "maxy", "status").iterator(chunk_size=20000)}

    def get(self, col_text: str, row_text: str) -> Tile:
        try:
            col, row = int(col_text), int(row_text)
        except (TypeError, ValueError):
            raise InvalidInput(_("tile_col and tile_row must be whole numbers, not '%(col)s', '%(row)s'.")
                               % {"col": col_text, "row": row_text})
        found = self.rows.get((col, row))
        if found is None:
            raise InvalidInput(_("The project has no tile (%(col)s, %(row)s).") % {"col": col, "row": row})
        pk, size, minx, miny, maxx, maxy, status = found
        return Tile(pk=pk, grid=self.grid, col=col, row=row, size=size, minx=minx, miny=miny, maxx=maxx, maxy=maxy,
                    status=status)


def _rows(path: Path, columns: tuple[str, ...], required: tuple[str, ...]) -> Iterator[tuple[int, dict[str, str]]]:
    """(line number, row) per data row; the header is line 1. Raises ImportRejected for a bad header."""
    try:
        with path.open(encoding="utf-8-sig", newline="") as handle:
            reader = csv.DictReader(handle)
            header = [name.strip() for name in reader.fieldnames or []]
            missing = [name for name in required if name not in header]
            unknown = [name for name in header if name not in columns]
            if missing or unknown:
                names = {"missing": ", ".join(missing), "unknown": ", ".join(unknown), "columns": ", ".join(columns)}
                if missing and unknown:
                    reason = _("missing column(s) %(missing)s; unknown column(s) %(unknown)s (columns: %(columns)s)")
                elif missing:
                    reason = _("missing column(s) %(missing)s (columns: %(columns)s)")
                else:
                    reason = _("unknown column(s) %(unknown)s (columns: %(columns)s)")
                raise ImportRejected(path, [(1, reason % names)])
            reader.fieldnames = header
            for row in reader:
                # The line the row ends on: its own line unless a quoted field spans several.
                yield reader.line_num, ({"__extra__": "1"} if None in row else row)
    except UnicodeDecodeError as exc:
        raise ImportRejected(path, [(0, _("the file is not UTF-8 text (%(reason)s)") % {"reason": exc.reason})])
    except csv.Error as exc:
        raise ImportRejected(path, [(0, _("the file is not valid CSV (%(error)s)") % {"error": exc})])


def _parse_vote(project: Project, tiles: _TileLookup, line: int, row: dict[str, Any]) -> _Vote:
    if "__extra__" in row:
        raise InvalidInput(_("the row has more fields than the header."))
    tile = tiles.get(row["tile_col"], row["tile_row"])
    volunteer = (row.get("volunteer") or "").strip()
    if not PSEUDONYM.match(volunteer):
        raise InvalidInput(_("volunteer '%(volunteer)s' is not a pseudonym (1-150 letters, digits and @.+-_).")
                           % {"volunteer": volunteer})
    answer = (row.get("answer") or "").strip()
    marks = _parse_marks(row.get("marks") or "", dated=True)
    seconds = _parse_seconds(row.get("seconds") or "")
    check_classification(project=project, tile=tile, answer=answer, marks=marks, seconds=seconds)
    return _Vote(line, tile, volunteer, answer, marks, seconds, _parse_when(row.get("created_at") or ""))


def _parse_marks(text: str, *, dated: bool) -> list[MarkInput]:
    if not text.strip():
        return []
    try:
        points = json.loads(text)
    except json.JSONDecodeError:
        raise InvalidInput(_("marks must be a JSON list such as [[120, 88]], not %(value)s.")
                           % {"value": repr(text[:60])})
    shape = _('[x, y] or [x, y, "YYYY-MM-DD"]') if dated else "[x, y]"
    if not isinstance(points, list):
        raise InvalidInput(_("marks must be a JSON list of %(shape)s.") % {"shape": shape})
    marks = []
    for index, point in enumerate(points, start=1):
        ok = isinstance(point, list) and len(point) in ((2, 3) if dated else (2,))
        ok = ok and all(isinstance(v, int | float) and not isinstance(v, bool) and math.isfinite(v) for v in point[:2])
        date = point[2] if ok and len(point) == 3 else None
        if not ok or (date is not None and (not isinstance(date, str) or parse_date(date) is None)):
            raise InvalidInput(_("mark %(index)s must be %(shape)s, not %(value)s.")
                               % {"index": index, "shape": shape, "value": json.dumps(point)[:60]})
        marks.append(MarkInput(float(point[0]), float(point[1]), date))
    return marks


def _parse_seconds(text: str) -> float | None:
    if not text.strip():
        return None
    try:
        seconds = float(text)
    except ValueError:
        raise InvalidInput(_("seconds must be a number, not '%(value)s'.") % {"value": text})
    if not math.isfinite(seconds):
        raise InvalidInput(_("seconds must be a number, not '%(value)s'.") % {"value": text})
    return seconds


def _parse_when(text: str) -> datetime | None:
    """An ISO date-time (UTC when it names no zone) or a date (midnight UTC); empty for none."""
    if not text.strip():
        return None
    try:
        when = parse_datetime(text.strip())
        if when is None and (day := parse_date(text.strip())) is not None:
            when = datetime.combine(day, time())
    except ValueError:
        when = None
    if when is None:
        raise InvalidInput(_("created_at must be an ISO date or date-time such as 2017-10-01T12:30:00Z, not "
                             "'%(value)s'.") % {"value": text})
    if timezone.is_naive(when):
        when = timezone.make_aware(when, UTC)
    if when > timezone.now():
        raise InvalidInput(_("created_at %(value)s is in the future.") % {"value": text})
    return when


def _ensure_volunteers(names: list[str]) -> tuple[dict[str, Any], int]:
    """The accounts of these pseudonyms; unknown ones are made with no usable password. Returns (users, made)."""
    users_model = get_user_model()
    users = {}
    for start in range(0, len(names), 500):
        users |= {user.username: user for user in users_model.objects.filter(username__in=names[start:start + 500])}
    made = 0
    for name in names:
        if name not in users:
            users[name] = users_model.objects.create_user(username=name)  # no password: unusable
            made += 1
    return users, made
