"""Storing a consensus run's results: tile labels, buildings and volunteer reliability, as bulk upserts.

Rows go to the database as plain tuples through INSERT ... ON CONFLICT DO UPDATE (PostgreSQL and
SQLite alike), in batches: making 200,000 model instances would cost more than the estimate itself.
What takes computing (evidence lists, WGS84 positions, JSON) is prepared before the writing
transaction opens, so the transaction holds its locks only while writing.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from datetime import date
from json import dumps
from typing import TYPE_CHECKING, Any

import numpy as np
from django.db import connection, transaction
from django.db.models import Model
from django.utils import timezone
from pyproj import CRS, Transformer

from imagery.grid import GridSpec
from imagery.models import Tile
from tagging.consensus.buildings import BuildingConsensus
from tagging.consensus.dates import DateWindows
from tagging.consensus.labels import LabelConsensus
from tagging.consensus_evidence import building_evidence, match_to_previous
from tagging.models import Building, ConsensusRun, Project, TileConsensus, VolunteerReliability

if TYPE_CHECKING:
    from tagging.consensus_store import ProjectMarks, ProjectVotes

BATCH = 1000
TILE_COLUMNS = ["tile_id", "project_id", "label", "confidence", "agreement", "counts", "n_votes", "n_decisive",
                "method", "run_id", "updated_at"]
BUILDING_COLUMNS = ["project_id", "run_id", "ground_x", "ground_y", "lon", "lat", "confidence", "uncertainty_m",
                    "n_support", "n_oppose", "is_gold", "last_intact", "first_destroyed", "window_confidence",
                    "classification_ids", "opposing_classification_ids", "mark_ids", "updated_at"]
RELIABILITY_COLUMNS = ["project_id", "volunteer_id", "reliability", "accuracy", "confusion", "n_votes", "n_gold",
                       "n_gold_correct", "hit_rate", "false_rate", "run_id", "updated_at"]


def upsert_rows(model: type[Model], columns: list[str], rows: Iterable[Sequence[Any]], *,
                conflict: list[str] | None) -> int:
    """Insert tuples of column values; on a clash of the `conflict` columns, update the other columns.

    Values must be ready for the driver (see db_json, db_date, db_now). Returns the rows sent.
    PostgreSQL gets them through COPY into a temporary table and one INSERT ... SELECT (a
    statement per row, or thousands of placeholders, cost more than the rows); SQLite, in
    process, takes executemany.
    """
    q = connection.ops.quote_name
    names = ", ".join(q(c) for c in columns)
    table = q(model._meta.db_table)
    tail = ""
    if conflict:
        updates = ", ".join(f"{q(c)} = EXCLUDED.{q(c)}" for c in columns if c not in conflict)
        tail = f" ON CONFLICT ({', '.join(q(c) for c in conflict)}) DO UPDATE SET {updates}"
    if connection.vendor == "postgresql":
        return _copy_upsert(table, names, rows, tail)
    sent = 0
    with connection.cursor() as cursor:
        for batch in _batches(rows, BATCH):
            cursor.executemany(f"INSERT INTO {table} ({names}) VALUES ({', '.join(['%s'] * len(columns))}){tail}",
                               batch)
            sent += len(batch)
    return sent


def _copy_upsert(table: str, names: str, rows: Iterable[Sequence[Any]], tail: str) -> int:
    staging = connection.ops.quote_name("staging_consensus_rows")
    sent = 0
    with transaction.atomic(), connection.cursor() as cursor:
        # Same column types as the target, no constraints; dropped at once (and at commit at the latest).
        cursor.execute(f"CREATE TEMPORARY TABLE {staging} ON COMMIT DROP AS SELECT {names} FROM {table} WITH NO DATA")
        with cursor.cursor.copy(f"COPY {staging} ({names}) FROM STDIN") as copy:
            for row in rows:
                copy.write_row(row)
                sent += 1
        cursor.execute(f"INSERT INTO {table} ({names}) SELECT {names} FROM {staging}{tail}")
        cursor.execute(f"DROP TABLE {staging}")
    return sent


def _batches(rows: Iterable[Sequence[Any]], size: int) -> Iterator[list[Sequence[Any]]]:
    batch: list[Sequence[Any]] = []
    for row in rows:
        batch.append(row)
        if len(batch) == size:
            yield batch
            batch = []
    if batch:
        yield batch


def db_json(value: Any) -> str:
    """A JSON value as upsert_rows sends it: text, which both SQLite and PostgreSQL's COPY parse into JSON."""
    return dumps(value)


def db_ids(ids: list[int]) -> str:
    """A JSON list of ids: db_json without the encoder's cost, for hundreds of thousands of lists."""
    return f"[{', '.join(map(str, ids))}]"


def db_date(value: date | None) -> Any:
    return connection.ops.adapt_datefield_value(value)


def db_now() -> Any:
    return connection.ops.adapt_datetimefield_value(timezone.now())


def delete_ids(model: type[Model], field: str, ids: np.ndarray) -> None:
    for start in range(0, len(ids), BATCH):
        model.objects.filter(**{f"{field}__in": ids[start:start + BATCH].tolist()}).delete()


# --- tiles ---------------------------------------------------------------------------------------


def tile_rows(*, run: ConsensusRun, project: Project, votes: ProjectVotes, labels: LabelConsensus | None,
              method: str) -> list[tuple[Any, ...]]:
    """One row per tile with counted votes or gold: label, calibrated confidence, agreement, votes per answer."""
    if labels is None:
        return []
    t, keys, now, project_id, run_id = labels.tiles, votes.keys, db_now(), project.pk, run.pk
    wanted = np.union1d(votes.tile, votes.gold_tile).astype(np.int64)
    label, confidence = t.label[wanted].tolist(), np.round(t.confidence[wanted], 6).tolist()
    agreement = np.round(t.agreement[wanted], 6)
    agreement = [None if np.isnan(a) else float(a) for a in agreement]
    counts, decisive = t.counts[wanted].tolist(), t.n_decisive[wanted].tolist()
    tile_ids = votes.tile_ids[wanted].tolist()
    quoted = [f"{dumps(key)}: " for key in keys]  # {answer key: votes} as JSON, written directly: 200,000 of them
    return [(tile_ids[i], project_id, keys[label[i]], confidence[i], agreement[i],
             "{" + ", ".join(q + str(n) for q, n in zip(quoted, counts[i])) + "}", sum(counts[i]), decisive[i],
             method, run_id, now) for i in range(len(wanted))]


def write_tiles(*, project: Project, rows: list[tuple[Any, ...]]) -> dict[str, int]:
    """Upsert the tiles' consensus; drop rows of tiles that have neither counted votes nor gold any more."""
    upsert_rows(TileConsensus, TILE_COLUMNS, rows, conflict=["tile_id"])
    kept = np.array([row[0] for row in rows], dtype=np.int64)
    stored = np.fromiter(TileConsensus.objects.filter(project=project).values_list("tile_id", flat=True),
                         dtype=np.int64)
    delete_ids(TileConsensus, "tile_id", np.setdiff1d(stored, kept))
    return {"tiles": len(rows)}


# --- buildings -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class BuildingRows:
    xy: np.ndarray  # ground metres, to find each building's id of the previous run
    rows: list[tuple[Any, ...]]  # BUILDING_COLUMNS
    candidates: int
    found: int  # at least 0.5 sure


def building_rows(*, run: ConsensusRun, project: Project, grid: GridSpec | None, votes: ProjectVotes,
                  marks: ProjectMarks, buildings: BuildingConsensus | None, dates: list[date],
                  windows: DateWindows | None, min_confidence: float, edge_margin_m: float) -> BuildingRows:
    """The candidates worth keeping (at least min_confidence sure, or gold), with the evidence behind each."""
    if buildings is None or grid is None:
        return BuildingRows(np.zeros((0, 2)), [], 0, 0)
    b = buildings.buildings
    keep = np.flatnonzero((b.confidence >= min_confidence) | b.is_gold)
    evidence = building_evidence(buildings=buildings, keep=keep, votes=votes, marks_cls=marks.cls,
                                 mark_ids=marks.ids, grid=grid, edge_margin_m=edge_margin_m)
    lon, lat = _to_wgs84(grid.crs, b.xy[keep])
    window = _windows(windows, keep, dates)
    now, project_id, run_id = db_now(), project.pk, run.pk
    xy = np.round(b.xy[keep], 3).tolist()
    confidence, uncertainty = np.round(b.confidence[keep], 6).tolist(), np.round(b.uncertainty_m[keep], 3).tolist()
    support, oppose, gold = b.n_support[keep].tolist(), b.n_oppose[keep].tolist(), b.is_gold[keep].tolist()
    rows = [(project_id, run_id, xy[j][0], xy[j][1], round(lon[j], 8), round(lat[j], 8), confidence[j],
             uncertainty[j], support[j], oppose[j], gold[j], *window[j], db_ids(evidence.supporting[j]),
             db_ids(evidence.opposing[j]), db_ids(evidence.marks[j]), now) for j in range(len(keep))]
    return BuildingRows(b.xy[keep], rows, len(b.xy), int((b.confidence >= 0.5).sum()))


def _windows(windows: DateWindows | None, keep: np.ndarray, dates: list[date]) -> list[tuple[Any, Any, Any]]:
    """(last intact, first destroyed, probability) per kept building; empty without dated marks."""
    if windows is None:
        return [(None, None, None)] * len(keep)
    first, confidence = windows.first_destroyed[keep].tolist(), np.round(windows.confidence[keep], 6).tolist()
    n_marks = windows.n_marks[keep].tolist()
    as_db = [db_date(day) for day in dates]
    return [(as_db[f - 1] if f >= 1 else None, as_db[f] if f < len(dates) else None, c)
            if n else (None, None, None) for f, c, n in zip(first, confidence, n_marks)]


def _to_wgs84(crs: str, xy: np.ndarray) -> tuple[list[float], list[float]]:
    if not len(xy):
        return [], []
    to_wgs84 = Transformer.from_crs(CRS.from_user_input(crs), "EPSG:4326", always_xy=True)
    lon, lat = to_wgs84.transform(xy[:, 0], xy[:, 1])
    return np.asarray(lon, dtype=float).tolist(), np.asarray(lat, dtype=float).tolist()


def write_buildings(*, project: Project, prepared: BuildingRows, radius_m: float) -> dict[str, int]:
    """Store the buildings; one found again near a building of the last run keeps that id (reviews point at it)."""
    old = np.fromiter(Building.objects.filter(project=project).values_list("id", "ground_x", "ground_y"),
                      dtype=[("id", "i8"), ("x", "f8"), ("y", "f8")])
    ids = match_to_previous(new_xy=prepared.xy, old_xy=np.stack([old["x"], old["y"]], axis=1), old_ids=old["id"],
                            radius_m=radius_m)
    again = ids.tolist()
    upsert_rows(Building, ["id", *BUILDING_COLUMNS],
                ((again[j], *row) for j, row in enumerate(prepared.rows) if again[j]), conflict=["id"])
    upsert_rows(Building, BUILDING_COLUMNS, (row for j, row in enumerate(prepared.rows) if not again[j]),
                conflict=None)
    delete_ids(Building, "id", np.setdiff1d(old["id"], ids[ids > 0]))
    return {"candidates": prepared.candidates, "buildings": prepared.found, "buildings_kept_id": int((ids > 0).sum())}


# --- volunteers and tiles' status ------------------------------------------------------------------


def reliability_rows(*, run: ConsensusRun, project: Project, votes: ProjectVotes, labels: LabelConsensus | None,
                     buildings: BuildingConsensus | None) -> list[tuple[Any, ...]]:
    """Per volunteer with an account: reliability, confusion matrix, votes, gold votes and how many were right."""
    users = np.flatnonzero(votes.volunteer_ids > 0)
    if labels is None or not len(users):
        return []
    v, decisive = labels.volunteers, [votes.keys[c] for c in labels.model.classes.tolist()]
    gold_label = np.full(len(votes.tile_ids), -1)
    gold_label[votes.gold_tile] = votes.gold_label
    right = np.isin(votes.tile, votes.gold_tile) & (votes.answer == gold_label[votes.tile])
    n_correct = np.bincount(votes.volunteer[right], minlength=votes.n_volunteers)
    clicks = buildings.volunteers if buildings is not None else None
    seen = clicks.n_seen if clicks is not None else np.zeros(votes.n_volunteers, dtype=np.int64)
    now = db_now()
    rows = []
    for w in users.tolist():
        confusion = {truth: dict(zip(decisive, np.round(row, 4).tolist()))
                     for truth, row in zip(decisive, v.confusion[w])}
        hit = round(float(clicks.hit_rate[w]), 6) if clicks is not None and seen[w] else None
        false = round(float(clicks.false_rate[w]), 6) if clicks is not None and seen[w] else None
        rows.append((project.pk, int(votes.volunteer_ids[w]), round(float(v.reliability[w]), 6),
                     round(float(v.accuracy[w]), 6), db_json(confusion), int(v.n_votes[w]), int(v.n_gold[w]),
                     int(n_correct[w]), hit, false, run.pk, now))
    return rows


def write_reliability(*, project: Project, rows: list[tuple[Any, ...]]) -> dict[str, int]:
    upsert_rows(VolunteerReliability, RELIABILITY_COLUMNS, rows, conflict=["project_id", "volunteer_id"])
    kept = np.array([row[1] for row in rows], dtype=np.int64)
    stored = np.fromiter(VolunteerReliability.objects.filter(project=project).values_list("volunteer_id", flat=True),
                         dtype=np.int64)
    stale = np.setdiff1d(stored, kept)
    for start in range(0, len(stale), BATCH):
        VolunteerReliability.objects.filter(project=project, volunteer_id__in=stale[start:start + BATCH].tolist()
                                            ).delete()
    return {"volunteers_rated": len(rows)}


def retire_confident(*, project: Project, rows: list[tuple[Any, ...]], min_votes: float) -> int:
    """Retire the open tiles among `rows` (tile_rows) that the project's early rule allows; none is reopened.

    Runs before the tiles' consensus is written, so that this transaction, like the per-vote
    update, locks a tile's row before its consensus row (one lock order, no deadlock).
    """
    if project.retire_confidence is None:
        return 0
    sure = np.array([row[0] for row in rows if row[3] >= project.retire_confidence and row[7] >= min_votes],
                    dtype=np.int64)
    retired = 0
    for start in range(0, len(sure), BATCH):
        retired += Tile.objects.filter(pk__in=sure[start:start + BATCH].tolist(), status=Tile.Status.OPEN).update(
            status=Tile.Status.RETIRED)
    return retired
