"""Expert review: coordinators' decisions on tiles and buildings, the state they leave, and the queue.

A review is never edited or deleted. Undoing one sets undone_at; the latest live review of a tile
or a building wins (the one with the latest created_at, then the highest id). An "add" review is a
building of its own (the crowd missed it): it lives until it is undone.

The effective state of a tile or building is the crowd's consensus with the winning review
applied: relabel -> that label, confidence 1; confirm -> confidence 1; reject -> a tile without
label, a building left out; move -> the new location, confidence 1 (a coordinator who places a
building vouches for it); add -> a building of confidence 1 with no votes.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
from django.contrib.auth.models import AbstractBaseUser
from django.db import transaction
from django.db.models import Q
from django.utils import timezone
from pyproj import Transformer

from config.errors import Conflict, InvalidInput, NotFound
from imagery.models import Grid, Tile
from tagging.models import Building, Project, Review, TileConsensus

A = Review.Action
TILE_ACTIONS = {A.CONFIRM, A.REJECT, A.RELABEL}
BUILDING_ACTIONS = {A.CONFIRM, A.REJECT, A.MOVE}
# A tile is worth a look unless the crowd was unanimous and the estimate sure; a building unless nearly certain.
SURE = 0.95


@dataclass
class ReviewIndex:
    """The live reviews that decide a project's outputs, and every review per target (for the audit trail)."""

    tiles: dict[int, Review] = field(default_factory=dict)  # tile id -> winning live review
    buildings: dict[int, Review] = field(default_factory=dict)  # building id -> winning live review
    added: list[Review] = field(default_factory=list)  # live "add" reviews, in order
    history_tiles: dict[int, list[int]] = field(default_factory=dict)  # tile id -> every review id, undone too
    history_buildings: dict[int, list[int]] = field(default_factory=dict)

    @property
    def live_count(self) -> int:
        return len(self.tiles) + len(self.buildings) + len(self.added)


EMPTY = ReviewIndex()


def review_index(*, project: Project) -> ReviewIndex:
    """Every review of the project, read once (reviews are a coordinator's work: thousands, not millions)."""
    index = ReviewIndex()
    for review in Review.objects.filter(project=project).order_by("created_at", "id"):
        if review.building_id is not None:
            index.history_buildings.setdefault(review.building_id, []).append(review.pk)
        elif review.tile_id is not None and review.action != A.ADD:
            index.history_tiles.setdefault(review.tile_id, []).append(review.pk)
        if review.undone_at is not None:
            continue
        if review.action == A.ADD:
            index.added.append(review)
        elif review.building_id is not None:
            index.buildings[review.building_id] = review
        elif review.tile_id is not None:
            index.tiles[review.tile_id] = review
    return index


# --- the effective state -----------------------------------------------------------------------------------------


def tile_state(consensus: dict[str, Any] | None, review: Review | None) -> dict[str, Any]:
    """A tile's label and confidence after its review; consensus holds the crowd's label and confidence, if any."""
    label = consensus["label"] if consensus else None
    confidence = consensus["confidence"] if consensus else None
    state = {"label": label, "confidence": confidence, "reviewed": review is not None,
             "review_action": review.action if review else None, "review_id": review.pk if review else None}
    if review is None:
        return state
    if review.action == A.RELABEL:
        state |= {"label": review.label, "confidence": 1.0}
    elif review.action == A.CONFIRM:
        state["confidence"] = 1.0
    elif review.action == A.REJECT:
        state |= {"label": None, "confidence": None}
    return state


def building_state(building: Building | None, review: Review | None) -> dict[str, Any] | None:
    """A building's location and confidence after its review; None when a review rejected it."""
    if review is not None and review.action == A.REJECT:
        return None
    if building is None:  # an added building: the review is all there is
        assert review is not None
        return {"ground_x": review.ground_x, "ground_y": review.ground_y, "lon": review.lon, "lat": review.lat,
                "confidence": 1.0, "reviewed": True, "review_action": A.ADD, "review_id": review.pk}
    state = {"ground_x": building.ground_x, "ground_y": building.ground_y, "lon": building.lon, "lat": building.lat,
             "confidence": building.confidence, "reviewed": review is not None,
             "review_action": review.action if review else None, "review_id": review.pk if review else None}
    if review is not None and review.action == A.MOVE:
        state |= {"ground_x": review.ground_x, "ground_y": review.ground_y, "lon": review.lon, "lat": review.lat,
                  "confidence": 1.0}
    elif review is not None and review.action == A.CONFIRM:
        state["confidence"] = 1.0
    return state


def _live_review(*, tile: Tile | None = None, building: Building | None = None) -> Review | None:
    reviews = Review.objects.filter(undone_at__isnull=True).exclude(action=A.ADD)
    if building is not None:
        reviews = reviews.filter(building=building)
    else:
        reviews = reviews.filter(tile=tile, building__isnull=True)
    return reviews.order_by("-created_at", "-id").first()


def current_tile_state(tile: Tile) -> dict[str, Any]:
    consensus = TileConsensus.objects.filter(tile=tile).values("label", "confidence").first()
    return tile_state(consensus, _live_review(tile=tile))


def current_building_state(building: Building) -> dict[str, Any]:
    state = building_state(building, _live_review(building=building))
    return state if state is not None else {"rejected": True, "confidence": building.confidence}


# --- create and undo -----------------------------------------------------------------------------------------------


def _grid(project: Project) -> Grid:
    grid = Grid.objects.filter(project=project).first()
    if grid is None:
        raise InvalidInput("This project has no grid yet, so nothing can be placed on it.",
                           fields={"location": ["no grid"]})
    return grid


def check_location(*, project: Project, lon: float | None = None, lat: float | None = None,
                   ground_x: float | None = None, ground_y: float | None = None) -> tuple[float, float, float, float]:
    """(ground_x, ground_y, lon, lat) of a point given either way; InvalidInput when missing or off the grid."""
    grid = _grid(project)
    if ground_x is not None and ground_y is not None:
        lon, lat = Transformer.from_crs(grid.crs, "EPSG:4326", always_xy=True).transform(ground_x, ground_y)
    elif lon is not None and lat is not None:
        ground_x, ground_y = Transformer.from_crs("EPSG:4326", grid.crs, always_xy=True).transform(lon, lat)
    else:
        raise InvalidInput("A location is needed: lon and lat, or ground_x and ground_y.",
                           fields={"location": ["required"]})
    assert ground_x is not None and ground_y is not None and lon is not None and lat is not None
    right, bottom = grid.origin_x + grid.width * grid.pixel_size, grid.origin_y - grid.height * grid.pixel_size
    if not (grid.origin_x <= ground_x <= right and bottom <= ground_y <= grid.origin_y):
        raise InvalidInput("The location is outside the project's grid.", fields={"location": ["outside the grid"]})
    return float(ground_x), float(ground_y), float(lon), float(lat)


def _after(action: str, before: dict[str, Any], *, label: str, place: tuple[float, float, float, float] | None
           ) -> dict[str, Any]:
    if action == A.RELABEL:
        return {**before, "label": label, "confidence": 1.0, "reviewed": True}
    if action == A.CONFIRM:
        return {**before, "confidence": 1.0, "reviewed": True}
    if action == A.REJECT:
        return {**before, "rejected": True, "reviewed": True} if "ground_x" in before or "rejected" in before \
            else {**before, "label": None, "confidence": None, "reviewed": True}
    assert place is not None  # move and add
    x, y, lon, lat = place
    return {**before, "ground_x": x, "ground_y": y, "lon": lon, "lat": lat, "confidence": 1.0, "reviewed": True}


def create_review(*, project: Project, reviewer: AbstractBaseUser, action: str, tile: Tile | None = None,
                  building: Building | None = None, label: str = "", lon: float | None = None,
                  lat: float | None = None, ground_x: float | None = None, ground_y: float | None = None,
                  note: str = "") -> Review:
    """Record a coordinator's decision, with the state before it and the state it sets.

    Raises InvalidInput (with the offending field) when the action does not fit its target, a
    relabel names no answer of the project, or a location is missing or off the grid. The
    caller has checked that the reviewer may coordinate the project.
    """
    if action not in A.values:
        raise InvalidInput(f"action must be one of {', '.join(A.values)}.", fields={"action": ["invalid choice"]})
    if tile is not None and tile.grid.project_id != project.pk:
        raise NotFound(f"There is no tile {tile.pk} in this project.")
    if building is not None and building.project_id != project.pk:
        raise NotFound(f"There is no building {building.pk} in this project.")
    if action == A.ADD:
        if building is not None:
            raise InvalidInput("An added building is new: name no building.", fields={"building": ["not allowed"]})
    elif building is not None and tile is not None:
        raise InvalidInput("Review a tile or a building, not both.", fields={"building": ["give tile or building"]})
    elif building is None and tile is None:
        raise InvalidInput("Name the tile or the building you review.", fields={"tile": ["required"],
                                                                                  "building": ["required"]})
    elif building is not None and action not in BUILDING_ACTIONS:
        raise InvalidInput(f"A building can be confirmed, rejected or moved, not {action}ed.",
                           fields={"action": ["not for a building"]})
    elif tile is not None and action not in TILE_ACTIONS:
        raise InvalidInput(f"A tile can be confirmed, rejected or relabelled, not {action}d.",
                           fields={"action": ["not for a tile"]})
    if action == A.RELABEL and label not in project.answer_keys:
        raise InvalidInput(f"label must be one of the project's answers: {', '.join(project.answer_keys)}.",
                           fields={"label": ["required" if not label else "not an answer of the project"]})
    place = None
    if action in (A.MOVE, A.ADD):
        place = check_location(project=project, lon=lon, lat=lat, ground_x=ground_x, ground_y=ground_y)
    with transaction.atomic():
        if building is not None:
            before = current_building_state(building)
        elif action == A.ADD:
            before = {}
        else:
            assert tile is not None
            before = current_tile_state(tile)
        after = {"confidence": 1.0, "reviewed": True} if action == A.ADD else {}
        after |= _after(action, before, label=label, place=place)
        x, y, lon_, lat_ = place if place else (None, None, None, None)
        return Review.objects.create(
            project=project, tile=tile, building=building, action=action,
            label=label if action == A.RELABEL else "", ground_x=x, ground_y=y, lon=lon_, lat=lat_, note=note,
            before=before, after=after, reviewer=reviewer)


def undo_review(*, review: Review, user: AbstractBaseUser) -> Review:
    """Mark a live review undone (by whom, when); Conflict if it already was. The row stays: it is the trail."""
    changed = Review.objects.filter(pk=review.pk, undone_at__isnull=True).update(
        undone_at=timezone.now(), undone_by=user)
    if not changed:
        raise Conflict(f"Review {review.pk} was already undone.")
    review.refresh_from_db()
    return review


# --- the queue -----------------------------------------------------------------------------------------------------


def _candidates_per_tile(project: Project) -> dict[tuple[int, int], int]:
    """Buildings (any confidence) per tile cell; a building on an overlap counts on every tile holding it."""
    grid = Grid.objects.filter(project=project).first()
    xy = np.array(list(Building.objects.filter(project=project).values_list("ground_x", "ground_y")), dtype=float)
    if grid is None or not len(xy):
        return {}
    stride = grid.tile_size - grid.overlap
    px = (xy[:, 0] - grid.origin_x) / grid.pixel_size
    py = (grid.origin_y - xy[:, 1]) / grid.pixel_size
    counts: dict[tuple[int, int], int] = {}
    col, row = np.floor(px / stride).astype(int), np.floor(py / stride).astype(int)
    for dc in (0, -1):
        for dr in (0, -1):
            c, r = col + dc, row + dr
            inside = (c >= 0) & (r >= 0) & (px - c * stride < grid.tile_size) & (py - r * stride < grid.tile_size)
            for key in zip(c[inside].tolist(), r[inside].tolist()):
                counts[key] = counts.get(key, 0) + 1
    return counts


def tile_queue(*, project: Project, index: ReviewIndex) -> list[dict[str, Any]]:
    """Contested tiles (not unanimous, or less than SURE) not reviewed yet: (1 - confidence) x (1 + candidate
    buildings on the tile), most valuable first."""
    candidates = _candidates_per_tile(project)
    rows = TileConsensus.objects.filter(project=project).filter(
        Q(confidence__lt=SURE) | Q(agreement__lt=1.0)).values(
        "tile_id", "tile__col", "tile__row", "label", "confidence", "agreement", "n_votes")
    queue = []
    for row in rows:
        if row["tile_id"] in index.tiles:
            continue
        n = candidates.get((row["tile__col"], row["tile__row"]), 0)
        queue.append({"kind": "tile", "id": row["tile_id"], "tile_id": row["tile_id"], "col": row["tile__col"],
                      "row": row["tile__row"], "label": row["label"], "confidence": row["confidence"],
                      "agreement": row["agreement"], "n_votes": row["n_votes"], "buildings": n,
                      "score": round((1.0 - row["confidence"]) * (1 + n), 6)})
    return queue


def building_queue(*, project: Project, index: ReviewIndex) -> list[dict[str, Any]]:
    """Uncertain buildings not reviewed yet: (1 - 2|confidence - 0.5|) x (1 + volunteers who marked it)."""
    queue = []
    rows = Building.objects.filter(project=project, confidence__gt=1 - SURE, confidence__lt=SURE).values(
        "id", "lon", "lat", "confidence", "n_support", "n_oppose")
    for row in rows:
        if row["id"] in index.buildings:
            continue
        closeness = 1.0 - 2.0 * abs(row["confidence"] - 0.5)
        queue.append({"kind": "building", **row, "building_id": row["id"],
                      "score": round(closeness * (1 + row["n_support"]), 6)})
    return queue


def review_queue(*, project: Project, kind: str | None = None) -> list[dict[str, Any]]:
    """The review queue of kind "tile", "building" or both (None), best first, then by id for a stable order."""
    index = review_index(project=project)
    queue: list[dict[str, Any]] = []
    if kind in (None, "tile"):
        queue += tile_queue(project=project, index=index)
    if kind in (None, "building"):
        queue += building_queue(project=project, index=index)
    queue.sort(key=lambda item: (-item["score"], item["kind"], item["id"]))
    _attach_tiles(project, queue)
    return queue


def _attach_tiles(project: Project, queue: list[dict[str, Any]]) -> None:
    """A building in the queue names the tile to open it on: the one whose centre is nearest."""
    buildings = [item for item in queue if item["kind"] == "building"]
    grid = Grid.objects.filter(project=project).first()
    if not buildings or grid is None:
        return
    stride = grid.tile_size - grid.overlap
    ground = dict(Building.objects.filter(pk__in=[b["id"] for b in buildings]).values_list(
        "id", "ground_x")), dict(Building.objects.filter(pk__in=[b["id"] for b in buildings]).values_list(
        "id", "ground_y"))
    tiles = {(c, r): pk for c, r, pk in Tile.objects.filter(grid=grid).values_list("col", "row", "id")}
    for item in buildings:
        px = (ground[0][item["id"]] - grid.origin_x) / grid.pixel_size - grid.tile_size / 2
        py = (grid.origin_y - ground[1][item["id"]]) / grid.pixel_size - grid.tile_size / 2
        item["tile_id"] = tiles.get((max(0, round(px / stride)), max(0, round(py / stride))))
