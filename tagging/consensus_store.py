"""The consensus in the database: a whole-project estimate, and the cheap update of tiles after votes.

recompute_project loads a project's counted votes, point marks and gold answers into numpy arrays,
runs the pure estimates of tagging.consensus (tile labels, buildings, destruction dates) and writes
tile labels, buildings and volunteer reliability in bulk, with a ConsensusRun recording method,
parameters, timings and counts. update_tiles re-scores tiles from their stored votes with the label
model of the latest run. Both recompute from the stored votes, so a duplicate or lost message, or a
second run, cannot skew the result.
"""

from __future__ import annotations

import io
import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import numpy as np
from django.db import transaction
from django.db.models import Case, IntegerField, OuterRef, Subquery, Value, When
from django.db.models.functions import Coalesce
from django.utils import timezone
from django.utils.translation import gettext as _

from config.errors import InvalidInput
from imagery.models import Grid, ImageryLayer, Tile
from tagging.consensus.buildings import BuildingConsensus, compute_buildings
from tagging.consensus.dates import DateWindows, compute_date_windows
from tagging.consensus.labels import (
    LabelConsensus,
    LabelModel,
    compute_label_consensus,
    compute_majority_vote,
    estimate_tile_posterior,
)
from tagging.consensus_rows import (
    building_rows,
    reliability_rows,
    retire_confident,
    tile_rows,
    write_buildings,
    write_reliability,
    write_tiles,
)
from tagging.map_state import ensure_map_state_after_run
from tagging.models import (
    Classification,
    ConsensusRun,
    GoldAnswer,
    Mark,
    Project,
    TileConsensus,
)

log = logging.getLogger(__name__)

VERSION = 1
RUN_METHOD = (f"consensus v{VERSION}: tile labels by Dawid-Skene EM with Dirichlet priors, gold tiles clamped, "
              "evidence scale fitted on gold; buildings by click linking in ground metres and hit/false-click EM "
              "with supporters and opponents, Platt-calibrated on gold; destruction windows by change-point EM")
TILE_METHOD = f"dawid-skene/{VERSION}"  # written by a whole-project run
VOTE_METHOD = f"dawid-skene/{VERSION}+vote"  # a later vote, scored with that run's model
MAJORITY_METHOD = f"majority/{VERSION}"  # no run yet: a plain count, confidence not calibrated
DEFAULTS: dict[str, float] = {
    "prior_strength": 4.0,  # pseudo votes pulling a volunteer's confusion matrix to the crowd's
    "link_radius_m": 6.0,  # clicks closer than this (ground metres) may mark one building
    "edge_margin_m": 2.0,  # a building this near a tile's edge does not count as seen there
    "click_prior_strength": 4.0,
    "date_off_by_decay": 0.5,
    "retire_min_votes": 2,  # decisive votes before a confident tile may retire early
    "building_min_confidence": 0.02,  # candidates below this are not stored (their clicks stay in the votes)
}
RUN_STALE_SECONDS = 3600  # a run "running" longer than this died with its worker
CATCH_UP_BATCH = 500  # tiles voted on during a run, re-scored after it in batches of this many
TILE_UPDATE_FIELDS = ["label", "confidence", "agreement", "counts", "n_votes", "n_decisive", "method", "run_id",
                      "updated_at"]


def consensus_parameters(project: Project) -> dict[str, float]:
    """The project's consensus settings over the defaults; InvalidInput names an unknown or non-numeric one."""
    given = project.consensus_settings or {}
    unknown = sorted(set(given) - set(DEFAULTS))
    if unknown:
        raise InvalidInput(_("Unknown consensus settings: %(unknown)s; known: %(known)s.")
                           % {"unknown": ", ".join(unknown), "known": ", ".join(DEFAULTS)},
                           fields={"consensus_settings": unknown})
    merged = dict(DEFAULTS)
    for key, value in given.items():
        if isinstance(value, bool) or not isinstance(value, int | float) or value < 0:
            raise InvalidInput(_("The consensus setting %(setting)s must be a number of at least 0, not %(value)s.")
                               % {"setting": key, "value": repr(value)},
                               fields={"consensus_settings": [key]})
        merged[key] = float(value)
    return merged


# --- the per-vote update -------------------------------------------------------------------------


@dataclass(frozen=True)
class _Fitted:
    run_id: int
    last_classification_id: int
    keys: tuple[str, ...]
    model: LabelModel
    volunteer_index: dict[int, int]  # user id -> the model's volunteer index


_FITTED: dict[int, _Fitted] = {}  # per project, the latest run's model: loaded once per run and process


def update_tile(*, tile_id: int) -> TileConsensus | None:
    """Re-score one tile from its stored, counted votes; returns its consensus row (None without votes)."""
    return update_tiles(tile_ids=[tile_id]).get(tile_id)


def update_tiles(*, tile_ids: Sequence[int], skip_locked: bool = False) -> dict[int, TileConsensus | None]:
    """Re-score tiles from their stored, counted votes; returns each tile's consensus row (None without votes).

    Uses the label model of each project's latest finished run (majority vote before the first run):
    three queries for the whole batch in the usual case (the locked tiles with their projects and latest
    runs, their votes, one upsert) and microseconds of arithmetic per tile, under the tiles' row locks.
    When a project retires tiles early (retire_confidence) and the model's confidence reaches it with
    at least retire_min_votes decisive votes, an open tile retires. Idempotent. A vanished tile is skipped
    (it is not in the result), and so, with skip_locked (PostgreSQL), is a tile another transaction holds.
    """
    if not tile_ids:
        return {}
    with transaction.atomic():
        # The tiles' row locks order concurrent updates of a tile: the later one reads every vote the earlier
        # one read, so an older count never overwrites a newer one. Taken in id order, so two batches cannot
        # deadlock (a vote locks one tile).
        latest_run = ConsensusRun.objects.filter(project=OuterRef("grid__project_id"),
                                                 status=ConsensusRun.Status.DONE).order_by("-id").values("id")[:1]
        found = list(Tile.objects.select_for_update(of=("self",), skip_locked=skip_locked)
                     .filter(pk__in=list(tile_ids)).order_by("pk")
                     .values_list("pk", "status", "grid__project_id", "grid__project__answers",
                                  "grid__project__retire_confidence", "grid__project__consensus_settings",
                                  Subquery(latest_run)))
        if not skip_locked and len(found) < len(set(tile_ids)):
            log.info("%d tiles vanished before their consensus update", len(set(tile_ids)) - len(found))
        return _update_locked_tiles(found)


def _update_locked_tiles(found: list[tuple]) -> dict[int, TileConsensus | None]:
    """Score the locked tiles (rows of update_tiles' query) and write their consensus: one upsert for all."""
    votes: dict[int, list[tuple[int, int | None, str]]] = {row[0]: [] for row in found}
    for tile_id, vote_id, volunteer_id, answer in Classification.objects.filter(
            tile_id__in=list(votes), too_fast=False).order_by("id").values_list("tile_id", "id", "volunteer_id",
                                                                                   "answer"):
        votes[tile_id].append((vote_id, volunteer_id, answer))
    # import_gold makes a tile gold and gives it its answer together: only gold tiles have one to look up.
    gold_tiles = [row[0] for row in found if row[1] == Tile.Status.GOLD]
    gold = (dict(GoldAnswer.objects.filter(tile_id__in=gold_tiles).values_list("tile_id", "answer"))
            if gold_tiles else {})
    projects: dict[int, Project] = {}
    result: dict[int, TileConsensus | None] = {}
    scored, empty, retire = [], [], []
    for tile_id, status, project_id, answers, retire_confidence, consensus_settings, latest_run in found:
        if project_id not in projects:
            projects[project_id] = Project(pk=project_id, answers=answers, retire_confidence=retire_confidence,
                                           consensus_settings=consensus_settings)
        project = projects[project_id]
        keys = tuple(project.answer_keys)
        counted = [vote for vote in votes[tile_id] if vote[2] in keys]
        gold_idx = _gold_index(project, gold.get(tile_id))
        if not counted and gold_idx is None:
            empty.append(tile_id)
            result[tile_id] = None
            continue
        fitted = _fitted_model(project, keys, latest_run)
        row = result[tile_id] = _score_tile(tile_id, project, counted, gold_idx, fitted)
        scored.append(row)
        if (fitted is not None and retire_confidence is not None and status == Tile.Status.OPEN
                and row.n_decisive >= _retire_min_votes(project) and row.confidence >= retire_confidence):
            retire.append(tile_id)
    if empty:
        TileConsensus.objects.filter(tile_id__in=empty).delete()
    if scored:
        TileConsensus.objects.bulk_create(scored, update_conflicts=True, unique_fields=["tile"],
                                          update_fields=TILE_UPDATE_FIELDS)
    if retire:
        Tile.objects.filter(pk__in=retire, status=Tile.Status.OPEN).update(status=Tile.Status.RETIRED)
    return result


def _retire_min_votes(project: Project) -> float:
    try:
        return consensus_parameters(project)["retire_min_votes"]
    except InvalidInput:
        return DEFAULTS["retire_min_votes"]  # bad settings fail the next run loudly, not every vote


def _gold_index(project: Project, answer: str | None) -> int | None:
    """The gold answer's index, when it is one of the project's decisive answers."""
    decisive = [i for i, a in enumerate(project.answers) if not a.get("abstain")]
    index = project.answer_keys.index(answer) if answer in project.answer_keys else None
    return index if index in decisive else None


def _abstain_index(project: Project) -> int | None:
    return next((i for i, a in enumerate(project.answers) if a.get("abstain")), None)


def _score_tile(tile_id: int, project: Project, votes: list[tuple[int, int | None, str]], gold_idx: int | None,
                fitted: _Fitted | None) -> TileConsensus:
    keys = project.answer_keys
    answer = np.array([keys.index(v[2]) for v in votes], dtype=np.int64)
    abstain = _abstain_index(project)
    counts = np.bincount(answer, minlength=len(keys))
    decisive = counts.copy()
    if abstain is not None:
        decisive[abstain] = 0
    if fitted is not None:
        volunteer = np.array([fitted.volunteer_index.get(v[1] or 0, -1) for v in votes], dtype=np.int64)
        counted = np.array([v[0] <= fitted.last_classification_id for v in votes], dtype=bool)
        posterior = estimate_tile_posterior(model=fitted.model, volunteer_idx=volunteer, answer_idx=answer,
                                            counted=counted, gold_label_idx=gold_idx)
        label, confidence, method = int(posterior.argmax()), float(posterior.max()), VOTE_METHOD
    elif gold_idx is not None:
        label, confidence, method = gold_idx, 1.0, MAJORITY_METHOD
    else:
        majority = compute_majority_vote(tile_idx=np.zeros(len(answer), dtype=np.int64), answer_idx=answer,
                                         n_tiles=1, n_classes=len(keys), abstain=abstain)
        label, confidence, method = int(majority.label[0]), float(majority.confidence[0]), MAJORITY_METHOD
    n_decisive = int(decisive.sum())
    return TileConsensus(
        tile_id=tile_id, project_id=project.pk, label=keys[label], confidence=round(confidence, 6),
        agreement=round(float(counts[label] / n_decisive), 6) if n_decisive else None,
        counts={key: int(n) for key, n in zip(keys, counts)}, n_votes=len(votes), n_decisive=n_decisive,
        method=method, run_id=fitted.run_id if fitted else None, updated_at=timezone.now())


def _fitted_model(project: Project, keys: tuple[str, ...], latest: int | None) -> _Fitted | None:
    """The label model of the latest finished run (`latest`), cached per process until a newer run finishes."""
    if latest is None:
        return None
    cached = _FITTED.get(project.pk)
    if cached is None or cached.run_id != latest:
        run = ConsensusRun.objects.filter(pk=latest).values_list(
            "last_classification_id", "parameters", "label_model").first()
        if run is None or run[2] is None:
            return None
        model, volunteer_ids = load_label_model(bytes(run[2]))
        cached = _Fitted(latest, run[0], tuple(run[1].get("answers", ())), model,
                         {int(user): index for index, user in enumerate(volunteer_ids.tolist()) if user > 0})
        _FITTED[project.pk] = cached
    # Answers edited since the run: its model no longer fits the votes.
    return cached if cached.keys == keys else None


def dump_label_model(model: LabelModel, volunteer_ids: np.ndarray) -> bytes:
    """The label model and the user id of each of its volunteers as .npz bytes (no pickle)."""
    buffer = io.BytesIO()
    np.savez_compressed(
        buffer, classes=model.classes, n_classes=np.array(model.n_classes),
        abstain=np.array(-1 if model.abstain is None else model.abstain), log_confusion=model.log_confusion,
        population_log_confusion=model.population_log_confusion, log_prior=model.log_prior,
        evidence_scale=np.array(model.evidence_scale), counts=model.counts, pseudo=model.pseudo,
        volunteer_ids=volunteer_ids)
    return buffer.getvalue()


def load_label_model(data: bytes) -> tuple[LabelModel, np.ndarray]:
    with np.load(io.BytesIO(data), allow_pickle=False) as saved:
        abstain = int(saved["abstain"])
        model = LabelModel(saved["classes"], int(saved["n_classes"]), None if abstain < 0 else abstain,
                           saved["log_confusion"], saved["population_log_confusion"], saved["log_prior"],
                           float(saved["evidence_scale"]), saved["counts"], saved["pseudo"])
        return model, saved["volunteer_ids"]


# --- the whole-project estimate --------------------------------------------------------------------


@dataclass(frozen=True)
class ProjectVotes:
    """A project's counted votes as arrays; tiles and volunteers as indices."""

    keys: list[str]
    abstain: int | None
    tile_ids: np.ndarray  # every tile of the grid, sorted by id
    tile_col: np.ndarray
    tile_row: np.ndarray
    tile_bbox: np.ndarray  # (n_tiles, 4) minx, miny, maxx, maxy: ground metres, grid CRS
    tile_size: np.ndarray  # pixels
    cls_id: np.ndarray  # sorted classification ids
    tile: np.ndarray  # per vote, index into tile_ids
    volunteer: np.ndarray  # per vote, index into volunteer_ids
    answer: np.ndarray
    volunteer_ids: np.ndarray  # user id per volunteer index; 0 for a deleted account (each its own)
    gold_tile: np.ndarray  # tile indices of gold tiles with a decisive gold answer
    gold_label: np.ndarray
    gold_marks: list[list[Any]]  # their marks, tile pixels
    unknown_answers: int  # votes whose answer the project no longer has: left out

    @property
    def n_volunteers(self) -> int:
        return len(self.volunteer_ids)


def recompute_project(*, project_id: int) -> ConsensusRun | None:
    """Re-estimate a project's whole consensus from its stored votes and store it; returns the run.

    Writes every tile with counted votes or gold, every building candidate above
    building_min_confidence (keeping the id of a building found again at the same spot), and every
    volunteer's reliability, in one transaction; retires open tiles that the project's early
    retirement rule now allows. Raises InvalidInput on bad consensus settings (the run is kept as
    failed with the reason). Two runs of one project serialize on the project row while writing;
    votes that arrive meanwhile are re-scored after commit. A vanished project is skipped.
    """
    project = Project.objects.filter(pk=project_id).first()
    grid = Grid.objects.filter(project_id=project_id).first()
    if project is None:
        log.info("project %s vanished before its consensus run", project_id)
        return None
    run = ConsensusRun.objects.create(project=project, method=RUN_METHOD)
    try:
        _run(run, project, grid)
    except Exception as exc:
        ConsensusRun.objects.filter(pk=run.pk).update(
            status=ConsensusRun.Status.FAILED, finished_at=timezone.now(), error=f"{type(exc).__name__}: {exc}"[:2000],
            last_classification_id=run.last_classification_id)
        raise
    voted = _tiles_voted_after(project, run.last_classification_id)
    for start in range(0, len(voted), CATCH_UP_BATCH):
        update_tiles(tile_ids=voted[start:start + CATCH_UP_BATCH])
    return run


def _run(run: ConsensusRun, project: Project, grid: Grid | None) -> None:
    params = consensus_parameters(project)
    clock = _Clock()
    votes = load_votes(project=project, grid=grid)
    run.last_classification_id = int(votes.cls_id.max()) if len(votes.cls_id) else 0
    marks = _load_marks(project, votes)
    clock.lap("load_s")
    labels = _labels(votes, params)
    clock.lap("labels_s")
    buildings = _buildings(votes, marks, params)
    clock.lap("buildings_s")
    dates, windows = _date_windows(project, votes, marks, buildings, params)
    clock.lap("dates_s")
    tiles = tile_rows(run=run, project=project, votes=votes, labels=labels, method=TILE_METHOD)
    prepared = building_rows(run=run, project=project, grid=grid.spec() if grid else None, votes=votes, marks=marks,
                             buildings=buildings, dates=dates, windows=windows,
                             min_confidence=params["building_min_confidence"], edge_margin_m=params["edge_margin_m"])
    volunteers = reliability_rows(run=run, project=project, votes=votes, labels=labels, buildings=buildings)
    clock.lap("prepare_s")
    with transaction.atomic():
        # No key lock: votes (rows referencing the project) go on while this writes; a second run waits.
        Project.objects.select_for_update(no_key=True).filter(pk=project.pk).first()
        retired = retire_confident(project=project, rows=tiles, min_votes=params["retire_min_votes"])
        counts = write_tiles(project=project, rows=tiles)
        counts |= write_buildings(project=project, prepared=prepared, radius_m=params["link_radius_m"])
        counts |= write_reliability(project=project, rows=volunteers)
        counts["retired"] = retired
        clock.lap("write_s")
        run.status = ConsensusRun.Status.DONE
        run.finished_at = timezone.now()
        run.parameters = _run_parameters(votes, params, labels, buildings, windows)
        run.counts = {"votes": len(votes.cls_id), "volunteers": votes.n_volunteers, "clicks": len(marks.ids),
                      "gold_tiles": len(votes.gold_tile), "unknown_answers": votes.unknown_answers,
                      "dates": len(dates), **counts}
        run.timings = clock.laps
        run.label_model = dump_label_model(labels.model, votes.volunteer_ids) if labels else None
        run.save()
        # Only the latest model is ever used: older runs keep their record, not their model.
        (ConsensusRun.objects.filter(project=project, id__lt=run.pk).exclude(label_model=None)
         .update(label_model=None))
    ensure_map_state_after_run(project=project)  # the coordinators' map shows the run at once


class _Clock:
    def __init__(self) -> None:
        self.started = self.last = time.perf_counter()
        self.laps: dict[str, float] = {}

    def lap(self, name: str) -> None:
        now = time.perf_counter()
        self.laps[name] = round(now - self.last, 3)
        self.laps["total_s"] = round(now - self.started, 3)
        self.last = now


def load_votes(*, project: Project, grid: Grid | None) -> ProjectVotes:
    """The project's counted (not too fast) votes, its tiles and its gold, as arrays, in a few queries."""
    keys, abstain = project.answer_keys, _abstain_index(project)
    tiles = np.fromiter(
        Tile.objects.filter(grid=grid).order_by("id").values_list(
            "id", "col", "row", "minx", "miny", "maxx", "maxy", "size").iterator(chunk_size=20000),
        dtype=[("id", "i8"), ("col", "i8"), ("row", "i8"), ("minx", "f8"), ("miny", "f8"), ("maxx", "f8"),
               ("maxy", "f8"), ("size", "f8")])
    answer_idx = Case(*[When(answer=key, then=Value(i)) for i, key in enumerate(keys)], default=Value(-1),
                      output_field=IntegerField())
    rows = np.fromiter(
        Classification.objects.filter(project=project, too_fast=False).order_by("id")
        .annotate(answer_idx=answer_idx, voter=Coalesce("volunteer_id", Value(0)))
        .values_list("id", "tile_id", "voter", "answer_idx").iterator(chunk_size=20000),
        dtype=[("id", "i8"), ("tile", "i8"), ("voter", "i8"), ("answer", "i8")])
    known = rows["answer"] >= 0
    unknown, rows = int((~known).sum()), rows[known]
    volunteer, volunteer_ids = _volunteer_indices(rows["voter"])
    gold_tile, gold_label, gold_marks = _load_gold(project, grid, tiles["id"])
    return ProjectVotes(
        keys, abstain, tiles["id"], tiles["col"], tiles["row"],
        np.stack([tiles["minx"], tiles["miny"], tiles["maxx"], tiles["maxy"]], axis=1), tiles["size"],
        rows["id"], np.searchsorted(tiles["id"], rows["tile"]), volunteer, rows["answer"], volunteer_ids,
        gold_tile, gold_label, gold_marks, unknown)


def _volunteer_indices(voter: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Index per vote and user id per index; each vote of a deleted account (0) is its own unknown volunteer."""
    users = np.unique(voter[voter > 0])
    index = np.searchsorted(users, voter)
    deleted = voter <= 0
    index[deleted] = len(users) + np.arange(deleted.sum())
    return index.astype(np.int64), np.concatenate([users, np.zeros(deleted.sum(), dtype=np.int64)])


def _load_gold(project: Project, grid: Grid | None,
               tile_ids: np.ndarray) -> tuple[np.ndarray, np.ndarray, list[list[Any]]]:
    tiles, labels, marks = [], [], []
    for tile_id, answer, points in GoldAnswer.objects.filter(tile__grid=grid).order_by("tile_id").values_list(
            "tile_id", "answer", "marks"):
        index = _gold_index(project, answer)
        if index is None:
            continue  # not a decisive answer of the project (any more): no anchor
        tiles.append(int(np.searchsorted(tile_ids, tile_id)))
        labels.append(index)
        marks.append(points or [])
    return np.array(tiles, dtype=np.int64), np.array(labels, dtype=np.int64), marks


@dataclass(frozen=True)
class ProjectMarks:
    """The point marks of a project's counted votes, as arrays."""

    ids: np.ndarray
    cls: np.ndarray  # index into the votes
    xy: np.ndarray  # ground metres, grid CRS
    layer: np.ndarray  # layer id of the date it first shows destruction, 0 when not given


def _load_marks(project: Project, votes: ProjectVotes) -> ProjectMarks:
    rows = np.fromiter(
        Mark.objects.filter(classification__project=project, classification__too_fast=False).order_by("id")
        .annotate(date_layer=Coalesce("layer_id", Value(0)))
        .values_list("id", "classification_id", "ground_x", "ground_y", "date_layer").iterator(chunk_size=20000),
        dtype=[("id", "i8"), ("cls", "i8"), ("x", "f8"), ("y", "f8"), ("layer", "i8")])
    cls = np.searchsorted(votes.cls_id, rows["cls"])
    found = cls < len(votes.cls_id)
    found[found] = votes.cls_id[cls[found]] == rows["cls"][found]  # marks of votes left out go too
    rows, cls = rows[found], cls[found]
    return ProjectMarks(rows["id"], cls, np.stack([rows["x"], rows["y"]], axis=1), rows["layer"])


def _labels(votes: ProjectVotes, params: dict[str, float]) -> LabelConsensus | None:
    if not len(votes.cls_id) and not len(votes.gold_tile):
        return None
    return compute_label_consensus(
        tile_idx=votes.tile, volunteer_idx=votes.volunteer, answer_idx=votes.answer, n_tiles=len(votes.tile_ids),
        n_volunteers=max(votes.n_volunteers, 1), n_classes=len(votes.keys), abstain=votes.abstain,
        gold_tile_idx=votes.gold_tile, gold_label_idx=votes.gold_label, prior_strength=params["prior_strength"])


def _gold_ground(votes: ProjectVotes) -> tuple[np.ndarray, np.ndarray]:
    """Gold buildings in ground metres and the gold tiles' footprints (the areas where the gold list is complete)."""
    points = []
    for tile, marks in zip(votes.gold_tile.tolist(), votes.gold_marks):
        minx, _, maxx, maxy = votes.tile_bbox[tile]
        pixel = (maxx - minx) / votes.tile_size[tile]  # ground metres per tile pixel, y grows south
        points += [(minx + float(m[0]) * pixel, maxy - float(m[1]) * pixel) for m in marks]
    return np.array(points, dtype=float).reshape(-1, 2), votes.tile_bbox[votes.gold_tile]


def _buildings(votes: ProjectVotes, marks: ProjectMarks, params: dict[str, float]) -> BuildingConsensus | None:
    if not len(marks.ids):
        return None
    gold_xy, gold_bbox = _gold_ground(votes)
    abstained = votes.answer == votes.abstain if votes.abstain is not None else None
    return compute_buildings(
        cls_volunteer=votes.volunteer, cls_bbox=votes.tile_bbox[votes.tile], click_cls=marks.cls, click_xy=marks.xy,
        n_volunteers=votes.n_volunteers, cls_abstained=abstained, cls_view=votes.tile, gold_xy=gold_xy,
        gold_bbox=gold_bbox, link_radius_m=params["link_radius_m"], edge_margin_m=params["edge_margin_m"],
        prior_strength=params["click_prior_strength"])


def _date_windows(project: Project, votes: ProjectVotes, marks: ProjectMarks, buildings: BuildingConsensus | None,
                  params: dict[str, float]) -> tuple[list[Any], DateWindows | None]:
    """Per building, the window in which it was destroyed, when the project has several dates."""
    layers = list(ImageryLayer.objects.filter(project=project, status=ImageryLayer.Status.READY)
                  .order_by("id").values_list("id", "date"))
    dates = sorted({date for _, date in layers})  # two layers of one date (a re-upload) are one date
    if len(dates) < 2 or buildings is None:
        return dates, None
    layer_ids = np.array([layer for layer, _ in layers], dtype=np.int64)  # sorted, for searchsorted
    date_of_layer = np.array([dates.index(date) for _, date in layers], dtype=np.int64)
    position = np.minimum(np.searchsorted(layer_ids, marks.layer), len(layer_ids) - 1)
    dated = layer_ids[position] == marks.layer
    return dates, compute_date_windows(
        mark_building=buildings.buildings.click_building[dated], mark_volunteer=votes.volunteer[marks.cls[dated]],
        mark_date=date_of_layer[position[dated]], n_buildings=len(buildings.buildings.xy),
        n_volunteers=votes.n_volunteers, n_dates=len(dates), off_by_decay=params["date_off_by_decay"],
        prior_strength=params["prior_strength"])


def _run_parameters(votes: ProjectVotes, params: dict[str, float], labels: LabelConsensus | None,
                    buildings: BuildingConsensus | None, windows: DateWindows | None) -> dict[str, Any]:
    fitted: dict[str, Any] = {}
    if labels is not None:
        fitted |= {"label_evidence_scale": round(labels.model.evidence_scale, 6), "label_em_rounds": labels.n_iter}
    if buildings is not None:
        fitted |= {"building_calibration": [round(v, 6) for v in buildings.calibration],
                   "building_prior": round(buildings.prior, 6), "building_em_rounds": buildings.n_iter}
    if windows is not None:
        fitted |= {"date_em_rounds": windows.n_iter}
    return {"answers": votes.keys, "abstain": votes.keys[votes.abstain] if votes.abstain is not None else None,
            "settings": params, "fitted": fitted, "tile_method": TILE_METHOD, "version": VERSION}


def _tiles_voted_after(project: Project, last_classification_id: int) -> list[int]:
    return list(Classification.objects.filter(project=project, id__gt=last_classification_id)
                .order_by().values_list("tile_id", flat=True).distinct())


def projects_to_recompute() -> list[int]:
    """Active projects with votes or gold newer than their last run, and no run under way.

    A failed run counts as a run: bad settings fail once, not every period, until a coordinator
    asks for a recompute or new votes arrive. A run that has been "running" for RUN_STALE_SECONDS
    died with its worker and no longer holds the project back.
    """
    due = []
    busy_since = timezone.now() - timedelta(seconds=RUN_STALE_SECONDS)
    for project in Project.objects.filter(status=Project.Status.ACTIVE).only("pk"):
        runs = ConsensusRun.objects.filter(project=project).order_by("-id")
        if runs.filter(status=ConsensusRun.Status.RUNNING, started_at__gt=busy_since).exists():
            continue
        last = (runs.exclude(status=ConsensusRun.Status.RUNNING)
                .values_list("status", "last_classification_id", "started_at").first())
        votes = Classification.objects.filter(project=project)
        gold = GoldAnswer.objects.filter(tile__grid__project=project)
        if last is None:
            changed = votes.exists() or gold.exists()
        else:
            status, watermark, started = last
            # A run that failed before loading the votes has no watermark: go by time.
            newer = votes.filter(id__gt=watermark) if watermark or status == ConsensusRun.Status.DONE else (
                votes.filter(created_at__gt=started))
            changed = newer.exists() or gold.filter(created_at__gt=started).exists()
        if changed:
            due.append(project.pk)
    return due


def access_latest_run(*, project: Project) -> ConsensusRun | None:
    """The project's latest finished run, without its model bytes."""
    return (ConsensusRun.objects.filter(project=project, status=ConsensusRun.Status.DONE).defer("label_model")
            .order_by("-id").first())
