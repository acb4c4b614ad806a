"""Expert review: coordinators' decisions on tiles and buildings, the state they leave, and the queue.

A review is never edited or deleted. Undoing one sets undone_at; the latest live review of a tile
or a building wins (the one with the latest created_at, then the highest id). An "add" review is a
building of its own (the crowd missed it): it lives until it is undone, and later reviews name it
(Review.added) to confirm, reject or move it like any building; the latest live one of those wins
in the same way, and undoing it brings back the one before (or the place the building was added).

The effective state of a tile or building is the crowd's consensus with the winning review
applied: relabel -> that label, confidence 1; confirm -> confidence 1; reject -> a tile without
label, a building left out; move -> the new location, confidence 1 (a coordinator who places a
building vouches for it); add -> a building of confidence 1 with no votes.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
from django.contrib.auth import get_user_model
from django.contrib.auth.models import AbstractBaseUser
from django.db import transaction
from django.db.models import Q
from django.utils import timezone
from django.utils.translation import gettext as _
from pyproj import Transformer

from config.errors import Conflict, InvalidInput, NotFound
from imagery.models import Grid, Tile
from tagging import rows
from tagging.models import Building, Project, Review, TileConsensus

A = Review.Action
TILE_ACTIONS = {A.CONFIRM, A.REJECT, A.RELABEL}
BUILDING_ACTIONS = {A.CONFIRM, A.REJECT, A.MOVE}
# A tile is worth a look unless the crowd was unanimous and the estimate sure; a building unless nearly certain.
SURE = 0.95


@dataclass
class AddedBuilding:
    """A building a coordinator added: the add review is its identity, the later reviews of it its state."""

    review: Review  # the "add" review
    latest: Review  # what decides it: the add review itself, or the decision of the later live reviews

    @property
    def pk(self) -> int:
        """The add review's id, which names the building in every output ("review-<id>")."""
        return self.review.pk

    @property
    def rejected(self) -> bool:
        return self.latest.action == A.REJECT


@dataclass
class ReviewIndex:
    """What the live reviews decide for each tile and building, and every review per target (the audit trail)."""

    tiles: dict[int, Review] = field(default_factory=dict)  # tile id -> decision of its live reviews
    buildings: dict[int, Review] = field(default_factory=dict)  # building id -> decision of its live reviews
    added_buildings: list[AddedBuilding] = field(default_factory=list)  # live "add" reviews, in order
    history_tiles: dict[int, list[int]] = field(default_factory=dict)  # tile id -> every review id, undone too
    history_buildings: dict[int, list[int]] = field(default_factory=dict)
    history_added: dict[int, list[int]] = field(default_factory=dict)  # add review id -> it and every later one

    @property
    def added(self) -> list[AddedBuilding]:
        """The added buildings that are on the map: live, and not rejected by a later review."""
        return [added for added in self.added_buildings if not added.rejected]

    @property
    def live_count(self) -> int:
        return len(self.tiles) + len(self.buildings) + len(self.added_buildings)


EMPTY = ReviewIndex()


def decision(reviews: list[Review]) -> Review | None:
    """What the live reviews of one tile or building add up to (oldest first), as one unsaved Review.

    Each review changes the state the ones before left: a relabel sets the label, a move the place;
    a reject takes the tile's label or the building away until a later confirm, relabel or move
    brings it back; a confirm vouches for what is shown. The result carries the latest review's
    id, and as its action: reject, else relabel or move when one set a label or a place, else
    confirm. None without reviews: the crowd decides.
    """
    if not reviews:
        return None
    rejected, label, place = False, "", None
    for review in reviews:
        rejected = review.action == A.REJECT
        if review.action == A.RELABEL:
            label = review.label
        elif review.action == A.MOVE:
            place = review
    action = A.REJECT if rejected else A.RELABEL if label else A.MOVE if place else A.CONFIRM
    latest = reviews[-1]
    return Review(pk=latest.pk, project_id=latest.project_id, tile_id=latest.tile_id,
                  building_id=latest.building_id, added_id=latest.added_id, action=action, label=label,
                  ground_x=place.ground_x if place else None, ground_y=place.ground_y if place else None,
                  lon=place.lon if place else None, lat=place.lat if place else None, note=latest.note,
                  reviewer_id=latest.reviewer_id, created_at=latest.created_at)


def target_of(review: Review) -> tuple[str, int] | None:
    """What a review decides: ("tile", id), ("building", id) or ("added", id of the add review); None for a
    review of a building a later consensus no longer finds (it stays in the trail only)."""
    if review.action == A.ADD:
        return ("added", review.pk)
    if review.added_id is not None:
        return ("added", review.added_id)
    if review.building_id is not None:
        return ("building", review.building_id)
    if review.tile_id is not None:
        return ("tile", review.tile_id)
    return None


def review_index(*, project: Project) -> ReviewIndex:
    """Every review of the project, read once (reviews are a coordinator's work: thousands, not millions); by plain
    SQL, as every street-zoom map request reads it and the ORM took longer to compile the query than to run it."""
    index = ReviewIndex()
    history = {"added": index.history_added, "building": index.history_buildings, "tile": index.history_tiles}
    adds: dict[int, Review] = {}
    live: dict[tuple[str, int], list[Review]] = {}
    found = rows.fetch_all(f"SELECT {rows.columns(Review, 'r')} FROM tagging_review r WHERE r.project_id = %s "
                           "ORDER BY r.created_at, r.id", [project.pk])
    for review in (rows.instance(Review, iter(values)) for values in found):
        target = target_of(review)
        if target is None:
            continue
        history[target[0]].setdefault(target[1], []).append(review.pk)
        if review.undone_at is None and review.action == A.ADD:
            adds[review.pk] = review
        elif review.undone_at is None:
            live.setdefault(target, []).append(review)
    decided: dict[str, dict[int, Review]] = {"tile": index.tiles, "building": index.buildings, "added": {}}
    for (kind, pk), reviews in live.items():
        made = decision(reviews)
        assert made is not None  # reviews is not empty
        decided[kind][pk] = made
    # The reviews of an added building count while it lives: undoing the add review takes it away, with them.
    index.added_buildings = [AddedBuilding(add, decided["added"].get(pk, add)) for pk, add in adds.items()]
    return index


# --- the effective state -----------------------------------------------------------------------------------------


def tile_state(consensus: dict[str, Any] | None, review: Review | None) -> dict[str, Any]:
    """A tile's label and confidence after its reviews' decision; consensus holds the crowd's label and confidence."""
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


def building_state(building: Building, review: Review | None) -> dict[str, Any] | None:
    """A crowd building's location and confidence after its reviews' decision; None when they rejected it.
    An added building's is added_state's."""
    if review is not None and review.action == A.REJECT:
        return None
    state = {"ground_x": building.ground_x, "ground_y": building.ground_y, "lon": building.lon, "lat": building.lat,
             "confidence": building.confidence, "reviewed": review is not None,
             "review_action": review.action if review else None, "review_id": review.pk if review else None}
    if review is not None and review.action == A.MOVE:
        state |= {"ground_x": review.ground_x, "ground_y": review.ground_y, "lon": review.lon, "lat": review.lat,
                  "confidence": 1.0}
    elif review is not None and review.action == A.CONFIRM:
        state["confidence"] = 1.0
    return state


def added_state(added: AddedBuilding) -> dict[str, Any] | None:
    """Where an added building is (where it was added, or moved to last), confidence 1; None once rejected."""
    if added.rejected:
        return None
    place = added.latest if added.latest.action == A.MOVE else added.review
    return {"ground_x": place.ground_x, "ground_y": place.ground_y, "lon": place.lon, "lat": place.lat,
            "confidence": 1.0, "reviewed": True, "review_action": A.ADD, "review_id": added.review.pk,
            "added": added.review.pk, "latest_action": added.latest.action, "latest_review_id": added.latest.pk}


def reviewer_names(index: ReviewIndex) -> dict[int, str]:
    """The user names of the reviewers behind what the index decides, by user id (one query; none without)."""
    decided = [*index.tiles.values(), *index.buildings.values(), *(a.latest for a in index.added_buildings)]
    ids = {review.reviewer_id for review in decided if review.reviewer_id is not None}
    if not ids:
        return {}
    user = get_user_model()
    return dict(user.objects.filter(pk__in=ids).values_list("pk", user.USERNAME_FIELD))


def review_summary(review: Review, names: dict[int, str]) -> tuple[int, str, str, str | None, str, str]:
    """What a pop-up says of a decision: (latest review id, action, label, reviewer, when (ISO), note); a tuple,
    so that it can be part of a cache key."""
    reviewer = names.get(review.reviewer_id) if review.reviewer_id is not None else None
    return (review.pk, review.action, review.label, reviewer, review.created_at.isoformat(), review.note)


def _live(**target: Any) -> list[Review]:
    return list(Review.objects.filter(undone_at__isnull=True, **target).exclude(action=A.ADD)
                .order_by("created_at", "id"))


def tile_review_state(tile: Tile) -> dict[str, Any]:
    """The tile's state: the crowd's label with its live reviews applied."""
    consensus = TileConsensus.objects.filter(tile=tile).values("label", "confidence").first()
    return tile_state(consensus, decision(_live(tile=tile, building__isnull=True, added__isnull=True)))


def building_review_state(building: Building) -> dict[str, Any]:
    """The crowd building's state with its live reviews applied; a rejected one says so."""
    state = building_state(building, decision(_live(building=building)))
    return ({"building": building.pk, **state} if state is not None
            else {"building": building.pk, "rejected": True, "confidence": building.confidence})


def added_review_state(add: Review) -> dict[str, Any]:
    """The state of the building an add review made, with the live reviews of it applied."""
    state = added_state(AddedBuilding(add, decision(_live(added=add)) or add))
    return state if state is not None else {"added": add.pk, "rejected": True, "confidence": 1.0}


# --- create and undo -----------------------------------------------------------------------------------------------


def _grid(project: Project) -> Grid:
    grid = Grid.objects.filter(project=project).first()
    if grid is None:
        raise InvalidInput(_("This project has no grid yet, so nothing can be placed on it."),
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
        raise InvalidInput(_("A location is needed: lon and lat, or ground_x and ground_y."),
                           fields={"location": ["required"]})
    assert ground_x is not None and ground_y is not None and lon is not None and lat is not None
    right, bottom = grid.origin_x + grid.width * grid.pixel_size, grid.origin_y - grid.height * grid.pixel_size
    if not (grid.origin_x <= ground_x <= right and bottom <= ground_y <= grid.origin_y):
        raise InvalidInput(_("The location is outside the project's grid."), fields={"location": ["outside the grid"]})
    return float(ground_x), float(ground_y), float(lon), float(lat)


def _check_target(*, project: Project, action: str, tile: Tile | None, building: Building | None,
                  added: Review | None) -> None:
    if tile is not None and tile.grid.project_id != project.pk:
        raise NotFound(_("There is no tile %(tile)s in this project.") % {"tile": tile.pk})
    if building is not None and building.project_id != project.pk:
        raise NotFound(_("There is no building %(building)s in this project.") % {"building": building.pk})
    if added is not None:
        if added.project_id != project.pk or added.action != A.ADD:
            raise NotFound(_("There is no added building %(review)s in this project.") % {"review": added.pk})
        if building is not None or tile is not None or action == A.ADD:
            raise InvalidInput(_("Review an added building alone: name no tile or building, and add no other."),
                               fields={"added": ["give added alone"]})
        if added.undone_at is not None:
            raise Conflict(_("The building added by review %(review)s was taken back (undone): there is nothing "
                             "to change.") % {"review": added.pk}, fields={"added": ["undone"]})
    if action == A.ADD:
        if building is not None:
            raise InvalidInput(_("An added building is new: name no building."), fields={"building": ["not allowed"]})
    elif building is not None and tile is not None:
        raise InvalidInput(_("Review a tile or a building, not both."), fields={"building": ["give tile or building"]})
    elif building is None and tile is None and added is None:
        raise InvalidInput(_("Name the tile or the building you review."), fields={"tile": ["required"],
                                                                                     "building": ["required"]})
    elif (building is not None or added is not None) and action not in BUILDING_ACTIONS:
        # RELABEL (ADD was turned away above): a whole sentence per action, for the translations.
        refused = (_("A building can be confirmed, rejected or moved, not relabeled.") if action == A.RELABEL
                   else _("A building can be confirmed, rejected or moved, not added."))
        raise InvalidInput(refused, fields={"action": ["not for a building"]})
    elif tile is not None and action not in TILE_ACTIONS:
        refused = (_("A tile can be confirmed, rejected or relabelled, not moved.") if action == A.MOVE
                   else _("A tile can be confirmed, rejected or relabelled, not added."))
        raise InvalidInput(refused, fields={"action": ["not for a tile"]})


def create_review(*, project: Project, reviewer: AbstractBaseUser, action: str, tile: Tile | None = None,
                  building: Building | None = None, added: Review | None = None, label: str = "",
                  lon: float | None = None, lat: float | None = None, ground_x: float | None = None,
                  ground_y: float | None = None, note: str = "") -> Review:
    """Record a coordinator's decision on a tile, a crowd building, or a building added by the review `added`,
    with the state before it and the state it leaves (every live review of the target applied).

    Raises InvalidInput (with the offending field) when the action does not fit its target, a
    relabel names no answer of the project, or a location is missing or off the grid; Conflict
    when the added building was undone. The caller has checked that the reviewer may coordinate
    the project.
    """
    if action not in A.values:
        raise InvalidInput(_("action must be one of %(choices)s.") % {"choices": ", ".join(A.values)},
                           fields={"action": ["invalid choice"]})
    _check_target(project=project, action=action, tile=tile, building=building, added=added)
    if action == A.RELABEL and label not in project.answer_keys:
        raise InvalidInput(_("label must be one of the project's answers: %(answers)s.")
                           % {"answers": ", ".join(project.answer_keys)},
                           fields={"label": ["required" if not label else "not an answer of the project"]})
    place = None
    if action in (A.MOVE, A.ADD):
        place = check_location(project=project, lon=lon, lat=lat, ground_x=ground_x, ground_y=ground_y)
    x, y, lon_, lat_ = place if place else (None, None, None, None)

    def state() -> dict[str, Any]:
        if added is not None:
            return added_review_state(added)
        if building is not None:
            return building_review_state(building)
        assert tile is not None
        return tile_review_state(tile)

    with transaction.atomic():
        before = {} if action == A.ADD else state()
        review = Review.objects.create(
            project=project, tile=tile, building=building, added=added, action=action,
            label=label if action == A.RELABEL else "", ground_x=x, ground_y=y, lon=lon_, lat=lat_, note=note,
            before=before, reviewer=reviewer)
        review.after = added_review_state(review) if action == A.ADD else state()
        review.save(update_fields=["after"])
        transaction.on_commit(lambda: _refresh_map(project.pk))
    return review


def undo_review(*, review: Review, user: AbstractBaseUser) -> Review:
    """Mark a live review undone (by whom, when); Conflict if it already was. The row stays: it is the trail."""
    changed = Review.objects.filter(pk=review.pk, undone_at__isnull=True).update(
        undone_at=timezone.now(), undone_by=user)
    if not changed:
        raise Conflict(_("Review %(review)s was already undone.") % {"review": review.pk})
    transaction.on_commit(lambda: _refresh_map(review.project_id))
    review.refresh_from_db()
    return review


def _refresh_map(project_id: int) -> None:
    """Ask the worker for a map state with the project's latest reviews (the grouped cells show them)."""
    from tagging.map_state import request_refresh  # map_state reads the reviews: imported here, not at the top

    request_refresh(project_id=project_id, changed=True)


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
