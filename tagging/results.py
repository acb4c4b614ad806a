"""The published results, as the volunteers see them: the consensus map (reviews applied) and their own part in it.

Once a manager publishes a project (Project.published_at), every volunteer who tagged at least one
of its tiles sees the consensus tiles and buildings, which of the tiles were theirs, and which
confirmed buildings they marked. They never see another volunteer's answers or marks: tiles and
buildings carry the crowd's result only. Coordinators (and managers, admins) see the same page at
any time, as a preview.

Tiles and buildings are read for the part of the map in view (a WGS84 bbox), at most MAX_FEATURES
of each per answer; a city-wide view says "truncated" and the page asks to zoom in.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from django.contrib.auth.models import AbstractBaseUser, AnonymousUser
from django.db.models import Q

from imagery.models import Grid, Tile
from tagging.access import can_coordinate_project, is_platform_admin
from tagging.map_layers import transformer
from tagging.models import Building, Classification, Membership, Project, TileConsensus
from tagging.reviews import ReviewIndex, added_state, building_state, review_index, tile_state

MAX_FEATURES = 3000
CONFIRMED = 0.5  # a building is in the results from this confidence (reviews applied), as in the exports

Bbox = tuple[float, float, float, float]


def results_visible(user: AbstractBaseUser | AnonymousUser, project: Project) -> bool:
    """Coordinators always; volunteers who worked on the project once it is published."""
    if can_coordinate_project(user, project):
        return True
    return project.published_at is not None and project.classifications.filter(volunteer_id=user.pk).exists()


def results_visible_among(user: AbstractBaseUser | AnonymousUser, projects: list[Project]) -> set[int]:
    """The ids of the projects whose results the user may see (results_visible for each), in two queries for the
    whole list: those they coordinate or manage, and the published ones they tagged tiles of."""
    if not projects or is_platform_admin(user):
        return {p.pk for p in projects}
    if not user.is_authenticated:
        return set()
    ids = [p.pk for p in projects]
    coordinated = Membership.objects.filter(user=user, project_id__in=ids, role__in=[
        Membership.Role.COORDINATOR, Membership.Role.MANAGER]).values_list("project_id", flat=True)
    published = [p.pk for p in projects if p.published_at is not None]
    tagged = (Classification.objects.filter(volunteer=user, project_id__in=published)
              .values_list("project_id", flat=True).distinct())
    return set(coordinated) | set(tagged)


def _my_classifications(project: Project, volunteer: AbstractBaseUser) -> dict[int, int]:
    """The volunteer's classifications on the project: id -> tile id."""
    return dict(Classification.objects.filter(project=project, volunteer=volunteer).values_list("id", "tile_id"))


def contribution(*, project: Project, volunteer: AbstractBaseUser, index: ReviewIndex | None = None
                 ) -> dict[str, Any]:
    """What the volunteer gave and what came of it: tiles tagged, buildings they marked that the results keep
    (confidence at least CONFIRMED with the reviews applied), and the project's totals beside them."""
    index = index or review_index(project=project)
    mine = set(_my_classifications(project, volunteer))
    found = marked = 0
    for building in _buildings(project, index, Q()):
        state = building_state(building, index.buildings.get(building.pk))
        if state is None or state["confidence"] < CONFIRMED:
            continue
        found += 1
        marked += bool(mine.intersection(building.classification_ids))
    found += len(index.added)
    return {"tiles": len(mine), "buildings_confirmed": marked, "buildings_found": found,
            "tiles_judged": TileConsensus.objects.filter(project=project).count()}


def _buildings(project: Project, index: ReviewIndex, where: Q) -> Any:
    """Crowd buildings that may be in the results: sure enough and in the crowd's place `where`, or confirmed or
    moved by a review (wherever the crowd put it: the caller checks where the review put it)."""
    reviewed = [pk for pk, review in index.buildings.items() if review.action != "reject"]
    return (Building.objects.filter(project=project)
            .filter((Q(confidence__gte=CONFIRMED) & where) | Q(pk__in=reviewed))
            .only("id", "lon", "lat", "ground_x", "ground_y", "confidence", "first_destroyed", "last_intact",
                  "classification_ids").order_by("-confidence", "id"))


def _inside(bbox: Bbox | None, lon: float, lat: float) -> bool:
    return bbox is None or (bbox[0] <= lon <= bbox[2] and bbox[1] <= lat <= bbox[3])


def building_features(*, project: Project, volunteer: AbstractBaseUser, bbox: Bbox | None,
                      only_mine: bool = False) -> dict[str, Any]:
    """The result's buildings in view as GeoJSON points, surest first; "mine" when the volunteer marked it."""
    index = review_index(project=project)
    mine = set(_my_classifications(project, volunteer))
    where = Q(lon__gte=bbox[0], lon__lte=bbox[2], lat__gte=bbox[1], lat__lte=bbox[3]) if bbox else Q()
    features: list[dict[str, Any]] = []
    truncated = False
    for building in _buildings(project, index, where).iterator(chunk_size=2000):
        marked = bool(mine.intersection(building.classification_ids))
        state = building_state(building, index.buildings.get(building.pk))
        if (state is None or state["confidence"] < CONFIRMED or not _inside(bbox, state["lon"], state["lat"])
                or (only_mine and not marked)):
            continue
        if len(features) == MAX_FEATURES:
            truncated = True
            break
        features.append(_point(building.pk, state, mine=marked, first=building.first_destroyed,
                               last=building.last_intact))
    for added in [] if only_mine else index.added:  # a coordinator's own find: nobody's contribution
        state = added_state(added)
        if state is not None and _inside(bbox, state["lon"], state["lat"]) and len(features) < MAX_FEATURES:
            features.append(_point(f"review-{added.pk}", state, mine=False, first=None, last=None))
    return {"type": "FeatureCollection", "properties": {"kind": "buildings", "count": len(features),
                                                        "mine": sum(f["properties"]["mine"] for f in features),
                                                        "truncated": truncated},
            "features": features}


def _point(feature_id: int | str, state: dict[str, Any], *, mine: bool, first: Any, last: Any) -> dict[str, Any]:
    return {"type": "Feature", "id": feature_id,
            "geometry": {"type": "Point", "coordinates": [round(state["lon"], 7), round(state["lat"], 7)]},
            "properties": {"confidence": round(state["confidence"], 3), "reviewed": state["reviewed"], "mine": mine,
                           "first_destroyed": first.isoformat() if first else None,
                           "last_intact": last.isoformat() if last else None}}


def tile_features(*, project: Project, volunteer: AbstractBaseUser, bbox: Bbox | None) -> dict[str, Any]:
    """Tiles in view with their consensus label (reviews applied), and the volunteer's tiles marked "mine".

    A tile's polygon is the part of its cell no later tile starts in (stride x stride grid pixels from its
    top-left corner; the rest of the grid for the last column and row), as on the coordinators' map: the
    polygons cover the grid once, without the overlaps drawn twice.
    """
    index = review_index(project=project)
    my_tiles = set(_my_classifications(project, volunteer).values())
    tiles = Tile.objects.filter(grid__project=project)
    if bbox:
        tiles = tiles.filter(west__lte=bbox[2], east__gte=bbox[0], south__lte=bbox[3], north__gte=bbox[1])
    judged = Q(consensus__isnull=False) | Q(pk__in=list(index.tiles)) | Q(pk__in=list(my_tiles))
    rows = list(tiles.filter(judged).order_by("row", "col").values(
        "id", "col", "row", "minx", "miny", "maxx", "maxy", "consensus__label", "consensus__confidence"
    )[:MAX_FEATURES + 1])
    rings = _own_rings(project, rows[:MAX_FEATURES])
    features = []
    for row, ring in zip(rows[:MAX_FEATURES], rings):
        crowd = {"label": row["consensus__label"], "confidence": row["consensus__confidence"]} \
            if row["consensus__label"] else None
        state = tile_state(crowd, index.tiles.get(row["id"]))
        features.append({"type": "Feature", "id": row["id"], "geometry": {"type": "Polygon", "coordinates": [ring]},
                         "properties": {"label": state["label"],
                                        "confidence": None if state["confidence"] is None
                                        else round(state["confidence"], 3),
                                        "reviewed": state["reviewed"], "mine": row["id"] in my_tiles}})
    return {"type": "FeatureCollection", "properties": {"kind": "tiles", "count": len(features),
                                                        "mine": sum(f["properties"]["mine"] for f in features),
                                                        "truncated": len(rows) > MAX_FEATURES},
            "features": features}


def _own_rings(project: Project, rows: list[dict[str, Any]]) -> list[list[list[float]]]:
    """Per tile row, the WGS84 ring of the part of the grid it owns (see tile_features)."""
    grid = Grid.objects.filter(project=project).first()
    if grid is None or not rows:
        return []
    spec = grid.spec()
    stride = (grid.tile_size - grid.overlap) * grid.pixel_size  # ground metres
    x0 = np.array([r["minx"] for r in rows])
    y1 = np.array([r["maxy"] for r in rows])
    last_col = np.array([r["col"] == spec.cols - 1 for r in rows])
    last_row = np.array([r["row"] == spec.rows - 1 for r in rows])
    x1 = np.where(last_col, [r["maxx"] for r in rows], x0 + stride)
    y0 = np.where(last_row, [r["miny"] for r in rows], y1 - stride)
    xs = np.stack([x0, x1, x1, x0, x0], axis=1)
    ys = np.stack([y0, y0, y1, y1, y0], axis=1)
    lon, lat = transformer(grid.crs).transform(xs, ys)  # one per thread and CRS, as on the coordinators' map
    return [[[round(float(a), 7), round(float(b), 7)] for a, b in zip(lons, lats)] for lons, lats in zip(lon, lat)]


def confirmed_buildings_of(*, project: Project, volunteer: AbstractBaseUser, limit: int = 200) -> list[dict[str, Any]]:
    """The confirmed buildings the volunteer marked, surest first (for the page's list beside the map)."""
    collection = building_features(project=project, volunteer=volunteer, bbox=None, only_mine=True)
    return [{"lon": f["geometry"]["coordinates"][0], "lat": f["geometry"]["coordinates"][1], **f["properties"]}
            for f in collection["features"][:limit]]
