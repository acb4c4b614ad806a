"""The coordinators' map overlays: the tiles and buildings in view as GeoJSON, grouped into cells when too many.

    GET /api/v1/projects/<slug>/map/tiles.geojson?bbox=w,s,e,n&zoom=z&color=answer|confidence|agreement|progress
        &answer=destroyed,damaged&min_confidence=0.5&max_confidence=1&contested=1&reviewed=any|yes|no
    GET /api/v1/projects/<slug>/map/buildings.geojson?bbox=w,s,e,n&zoom=z&min_confidence=0.5
        &date_from=2017-05-01&date_to=2017-10-20&reviewed=any|yes|no

For a project's coordinators, managers and admins; a volunteer gets 403, someone who cannot see the
project 404. The bbox is in WGS84 degrees (the whole grid when left out); only what is in it comes back.
What comes back, and when it is grouped, is tagging/map_layers.py; this module parses the request,
checks the role and sends the answer. The coordinator's access and the grid are remembered by each server
process (the "local" cache: no round trip) per user for ACCESS_SECONDS. Answers over GZIP_OVER bytes are
gzipped when the client accepts it.

Filters: ``answer`` (consensus labels, comma-separated), ``min_confidence``/``max_confidence`` (0-1, of
the tile's label or of the building), ``contested=1`` (agreement below CONTESTED_AGREEMENT or
confidence below CONTESTED_CONFIDENCE), ``reviewed=any|yes|no`` (only what a coordinator's review decides, or
only the rest; reviews are applied at every zoom), and for buildings ``date_from``/``date_to`` (see
map_layers).
"""

from __future__ import annotations

import gzip
import math
from datetime import date
from typing import Any

from django.core.cache import caches
from django.http import HttpResponse
from django.utils.cache import patch_vary_headers
from django.utils.translation import gettext as _
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework.request import Request
from rest_framework.views import APIView

from config.errors import InvalidInput
from imagery.models import Grid
from tagging.access import access_project
from tagging.map_layers import (
    CONTESTED_AGREEMENT,
    CONTESTED_CONFIDENCE,
    Bbox,
    BuildingFilter,
    TileFilter,
    View,
    buildings_in_view,
    collection,
    contested_q,
    tiles_in_view,
    view_of,
)
from tagging.models import Project

__all__ = ["MapBuildings", "MapTiles", "contested_q"]  # contested_q: for callers from before map_layers

GZIP_OVER = 2048  # bytes: bigger answers are gzipped for clients that accept it (they compress ~8 times)
ACCESS_SECONDS = 60
COLOURS = ("answer", "confidence", "agreement", "progress")
GEOJSON = "application/geo+json"


# --- Input --------------------------------------------------------------------------------------------------------

def parse_bbox(text: str | None) -> Bbox | None:
    """west,south,east,north in degrees, clamped to the world; None when not given."""
    if not text:
        return None
    try:
        west, south, east, north = (float(part) for part in text.split(","))
    except ValueError as exc:
        raise InvalidInput(_("bbox must be west,south,east,north in degrees."), fields={"bbox": ["invalid"]}) from exc
    west, east = max(west, -180.0), min(east, 180.0)
    south, north = max(south, -90.0), min(north, 90.0)
    if not (west <= east and south <= north) or not all(map(math.isfinite, (west, south, east, north))):
        raise InvalidInput(_("bbox must have west <= east and south <= north."), fields={"bbox": ["invalid"]})
    return west, south, east, north


def parse_unit(params: Any, name: str) -> float | None:
    text = params.get(name)
    if text in (None, ""):
        return None
    try:
        value = float(text)
    except ValueError:
        value = -1.0
    if not 0.0 <= value <= 1.0:
        raise InvalidInput(_("%(name)s must be a number from 0 to 1, not '%(value)s'.") % {"name": name, "value": text},
                           fields={name: ["out of range"]})
    return value


def parse_zoom(params: Any) -> int | None:
    text = params.get("zoom")
    if text in (None, ""):
        return None
    try:
        return min(max(int(float(text)), 0), 30)
    except ValueError as exc:
        raise InvalidInput(_("zoom must be a number, not '%(value)s'.") % {"value": text},
                           fields={"zoom": ["invalid"]}) from exc


def parse_date(params: Any, name: str) -> date | None:
    text = params.get(name)
    if not text:
        return None
    try:
        return date.fromisoformat(text)
    except ValueError as exc:
        raise InvalidInput(_("%(name)s must be a date such as 2017-10-20.") % {"name": name},
                           fields={name: ["invalid"]}) from exc


def parse_flag(params: Any, name: str) -> bool:
    return params.get(name, "").lower() in ("1", "true", "yes", "on")


REVIEWED = {"": None, "any": None, "yes": True, "no": False}


def parse_reviewed(params: Any) -> bool | None:
    """reviewed=yes: only what a review decides; no: only the rest; any (or left out): both."""
    text = params.get("reviewed", "").lower()
    if text not in REVIEWED:
        raise InvalidInput(_("reviewed must be any, yes or no, not '%(value)s'.") % {"value": text},
                           fields={"reviewed": ["invalid choice"]})
    return REVIEWED[text]


def tile_filter(params: Any, project: Project) -> TileFilter:
    answers = tuple(sorted({a for a in params.get("answer", "").split(",") if a}))
    unknown = [a for a in answers if a not in project.answer_keys]
    if unknown:
        raise InvalidInput(_("answer must be among %(answers)s; not %(unknown)s.")
                           % {"answers": ", ".join(project.answer_keys), "unknown": ", ".join(unknown)},
                           fields={"answer": ["invalid choice"]})
    return TileFilter(answers, parse_unit(params, "min_confidence"), parse_unit(params, "max_confidence"),
                      parse_flag(params, "contested"), parse_reviewed(params))


def building_filter(params: Any) -> BuildingFilter:
    low = parse_unit(params, "min_confidence")
    date_from, date_to = parse_date(params, "date_from"), parse_date(params, "date_to")
    if date_from and date_to and date_from > date_to:
        raise InvalidInput(_("date_from must not be after date_to."), fields={"date_from": ["after date_to"]})
    return BuildingFilter(0.5 if low is None else low, parse_unit(params, "max_confidence"), date_from, date_to,
                          parse_reviewed(params))


# --- Endpoints ----------------------------------------------------------------------------------------------------

def access_map(user: Any, slug: str) -> tuple[Project, Grid | None]:
    """The project (and its grid) if the user coordinates it; access_project's errors otherwise.

    A granted access is remembered by this process for ACCESS_SECONDS per user and project: the overlays are
    asked for after every move of the map, and the check costs five queries. Taking someone's role away
    therefore takes up to ACCESS_SECONDS to reach the overlays.
    """
    key = f"map:access:{user.pk}:{slug}"
    found = caches["local"].get(key)
    if found is not None:
        return found
    project = access_project(user, slug, coordinate=True)
    entry = (project, Grid.objects.filter(project=project).first())
    caches["local"].set(key, entry, ACCESS_SECONDS)
    return entry


def map_view(request: Request, slug: str) -> View | None:
    """The coordinator's project and what is in view; None when the project has no grid or the bbox misses it."""
    project, grid = access_map(request.user, slug)
    params = request.query_params
    color = params.get("color") or "answer"
    if color not in COLOURS:
        raise InvalidInput(_("color must be one of %(choices)s.") % {"choices": ", ".join(COLOURS)},
                           fields={"color": ["invalid choice"]})
    bbox = parse_bbox(params.get("bbox"))
    zoom = parse_zoom(params)
    if grid is None:
        return None
    return view_of(project=project, grid=grid, bbox=bbox, zoom=zoom, color=color)


COMMON = [OpenApiParameter("bbox", str, description="west,south,east,north in WGS84 degrees (default: the grid)"),
          OpenApiParameter("zoom", int, description="The map's zoom: cells stay at least a few pixels wide.")]

REVIEWED_PARAMETER = OpenApiParameter("reviewed", str, enum=list(REVIEWED)[1:], description=(
    "yes: only what a coordinator's review decides (added buildings too); no: only the rest."))


def geojson_response(request: Request, text: str) -> HttpResponse:
    """The collection, gzipped (fast level) when big and accepted: a city-wide answer goes from ~300 to ~40 KB.

    The answers hold no secret, so compressing them is safe from BREACH-style attacks.
    """
    data = text.encode()
    response = HttpResponse(content_type=GEOJSON)
    if len(data) > GZIP_OVER and "gzip" in request.headers.get("Accept-Encoding", ""):
        data = gzip.compress(data, compresslevel=1, mtime=0)
        response["Content-Encoding"] = "gzip"
    response.content = data
    response["Cache-Control"] = "private, no-cache"
    patch_vary_headers(response, ["Accept-Encoding"])
    return response


class MapTiles(APIView):
    @extend_schema(operation_id="map_tiles", parameters=[
        *COMMON,
        OpenApiParameter("color", str, enum=list(COLOURS), description="What each feature's 'value' is."),
        OpenApiParameter("answer", str, description="Consensus labels, comma-separated."),
        OpenApiParameter("min_confidence", float), OpenApiParameter("max_confidence", float),
        OpenApiParameter("contested", bool, description=f"Agreement under {CONTESTED_AGREEMENT} or confidence under "
                                                        f"{CONTESTED_CONFIDENCE}."),
        REVIEWED_PARAMETER,
    ], responses={(200, GEOJSON): OpenApiTypes.OBJECT})
    def get(self, request: Request, slug: str) -> HttpResponse:
        """The tiles in view with their consensus, or k x k cells of them when the view holds too many."""
        view = map_view(request, slug)
        if view is None:
            return geojson_response(request, collection({"kind": "tiles", "aggregated": False, "count": 0,
                                                         "tiles": 0}, []))
        filt = tile_filter(request.query_params, view.project)
        return geojson_response(request, tiles_in_view(view, filt))


class MapBuildings(APIView):
    @extend_schema(operation_id="map_buildings", parameters=[
        *COMMON,
        OpenApiParameter("min_confidence", float, description="Default 0.5."),
        OpenApiParameter("max_confidence", float),
        OpenApiParameter("date_from", OpenApiTypes.DATE, description="Destroyed on or after this date (first "
                                                                     "date destroyed)."),
        OpenApiParameter("date_to", OpenApiTypes.DATE, description="Still intact before this date (last date "
                                                                   "intact)."),
        REVIEWED_PARAMETER,
    ], responses={(200, GEOJSON): OpenApiTypes.OBJECT})
    def get(self, request: Request, slug: str) -> HttpResponse:
        """Destroyed buildings in view as points, or clusters over k x k tile cells when too many."""
        view = map_view(request, slug)
        filt = building_filter(request.query_params)
        if view is None:
            return geojson_response(request, collection({"kind": "buildings", "aggregated": False, "count": 0,
                                                "buildings": 0}, []))
        return geojson_response(request, buildings_in_view(view, filt))
