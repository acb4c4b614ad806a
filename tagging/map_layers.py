"""The coordinators' map overlays as GeoJSON text: the tiles and buildings in view, grouped into cells when
too many. The endpoints (tagging/map_api.py) parse the request and call ``tiles_in_view`` or
``buildings_in_view``.

Tiles. A tile's polygon is the part of its cell that no later tile starts in (stride x stride grid
pixels from its top-left corner, the whole rest of the grid for the last column and row), projected
to WGS84: the polygons tile the plane without the 64 px overlaps, and follow the grid's rotation
against north. When the bbox holds more than MAX_TILES grid cells, tiles are grouped into cells of
k x k tiles (k a power of two, so that at most MAX_CELLS cells are in view, and no cell is smaller
than MIN_CELL_PX screen pixels at ``zoom``), and the answer says ``"aggregated": true, "cell_tiles": k``.
A cell tells its tile count, how many have a label, votes, progress, tiles per label (and the most
frequent one), mean confidence and agreement, and how many are contested and how many reviewed.

Buildings come as points while at most MAX_BUILDINGS are in view, else as clusters (count, mean
position, mean and highest confidence, support, how many reviewed) over the same k x k tile cells.

Grouped cells come from the project's map state (tagging/map_state.py: every tile and building as
arrays in memory, reviews applied, pyramids of per-cell sums), so a city-wide view costs the cells in view,
not the 200,000 tiles under them, and each cell's feature text is made once per state, filter, colour and
cell size (a pan shows mostly the cells of the last view); they are up to about STATE_SECONDS old (a
finished consensus run shows at once, a review once the worker has rebuilt the state, in about a build's
time). Tiles and buildings at street zoom (not grouped) are read by SQL, always fresh. The link to who said
what is a template in the collection's properties (``votes_url``, with ``{id}``), not repeated in every
feature.

Filters: ``answers`` (consensus labels), ``min_confidence``/``max_confidence`` (0-1, of the tile's label
or of the building), ``contested`` (agreement below CONTESTED_AGREEMENT or confidence below
CONTESTED_CONFIDENCE), and for buildings ``date_from``/``date_to``: buildings that may have been
destroyed in that window (first date destroyed on or after date_from, last date intact before date_to).
A tile filter leaves out the tiles without a consensus yet.

Reviews override the crowd everywhere (``"reviews_applied": true``), as in the exports (tagging/reviews.py):
at street zoom by one read of the project's reviews per request, in grouped cells and clusters through the
map state, which holds the reviewed state. A tile's label and confidence are its reviewed state, a rejected
building is left out, a moved one is at its new place, an added one is a point "review-<id>" of confidence
1 (in a cluster: one more building). Each feature says ``reviewed`` and, when it is, ``review`` (action,
label, reviewer, when, note); a grouped cell or cluster says how many of its tiles or buildings are
``reviewed``. The collection's ``review_url`` opens the review page on a tile ({id}: the tile's id, a
building's ``tile``). Filters apply to the reviewed state; ``reviewed`` (True/False) keeps only what a review
decides, or only the rest.
"""

from __future__ import annotations

import json
import math
import threading
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date
from functools import lru_cache
from typing import Any

import numpy as np
from django.db.models import Q
from pyproj import Transformer

from imagery.grid import GridSpec
from imagery.models import Grid, Tile
from tagging.map_state import (
    AGREE_N,
    AGREE_SUM,
    B_CONF,
    B_LAT,
    B_LON,
    B_N,
    B_REVIEWED,
    B_SUPPORT,
    CONF_N,
    CONF_SUM,
    CONTESTED,
    CONTESTED_AGREEMENT,
    CONTESTED_CONFIDENCE,
    DONE,
    JUDGED,
    LABELS,
    REVIEWED,
    STATE_SECONDS,
    VOTES,
    MapState,
    N,
    building_level,
    buildings_in,
    current_map_state,
    tile_level,
)
from tagging.models import Building, Project
from tagging.reviews import (
    ReviewIndex,
    added_state,
    building_state,
    review_index,
    review_summary,
    reviewer_names,
    tile_state,
)
from tagging.rows import fetch_all, placeholders

# Sizes that keep an overlay answer small: at most ~1,500 features, ~60 KB gzipped.
MAX_TILES = 1500  # grid cells in the bbox above which tiles are grouped
MAX_CELLS = 800  # grouped cells in the bbox, at most (a 1366 x 768 screen: cells of ~40 px)
MIN_CELL_PX = 16  # a drawn cell is at least this many screen pixels wide at the request's zoom
MAX_BUILDINGS = 1500  # building points in the bbox above which they are clustered
MAX_BUILDING_CELLS = 500
TILE_VOTES = "/api/v1/tiles/{id}/classifications/"
REVIEW_PAGE = "/projects/{slug}/review/?tile={{id}}"  # the review page, opened on a tile
BUILDING_VOTES = "/api/v1/buildings/{id}/classifications/"

Bbox = tuple[float, float, float, float]


# --- Filters -------------------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class TileFilter:
    answers: tuple[str, ...] = ()
    min_confidence: float | None = None
    max_confidence: float | None = None
    contested: bool = False
    reviewed: bool | None = None  # only the tiles a review decides (True), only the others (False), or either

    @property
    def active(self) -> bool:
        """Whether the filter asks anything of the label, confidence or agreement (``reviewed`` aside)."""
        return bool(self.answers or self.contested or self.min_confidence is not None
                    or self.max_confidence is not None)

    def keeps(self, label: str | None, confidence: float | None, agreement: float | None) -> bool:
        """Whether a tile's state after its reviews (a label without a consensus, or none) passes the filter."""
        if self.answers and label not in self.answers:
            return False
        if self.min_confidence is not None and (confidence is None or confidence < self.min_confidence):
            return False
        if self.max_confidence is not None and (confidence is None or confidence > self.max_confidence):
            return False
        return not self.contested or is_contested(confidence, agreement)

    def where(self) -> tuple[str, list[Any]]:
        """What keeps() says, as SQL on the tile's consensus (alias ``c``), and its parameters: the street-zoom
        query is plain SQL, as the ORM takes longer to compile it than the database to run it."""
        parts: list[str] = []
        params: list[Any] = []
        if self.answers:
            parts.append(f"c.label IN ({placeholders(self.answers)})")
            params += self.answers
        if self.min_confidence is not None:
            parts.append("c.confidence >= %s")
            params.append(self.min_confidence)
        if self.max_confidence is not None:
            parts.append("c.confidence <= %s")
            params.append(self.max_confidence)
        if self.contested:
            parts.append("(c.agreement < %s OR c.confidence < %s)")
            params += [CONTESTED_AGREEMENT, CONTESTED_CONFIDENCE]
        return " AND ".join(parts), params


def contested_q(prefix: str = "") -> Q:
    return Q(**{f"{prefix}agreement__lt": CONTESTED_AGREEMENT}) | Q(**{f"{prefix}confidence__lt": CONTESTED_CONFIDENCE})


def is_contested(confidence: float | None, agreement: float | None) -> bool:
    return confidence is not None and (confidence < CONTESTED_CONFIDENCE
                                       or (agreement is not None and agreement < CONTESTED_AGREEMENT))


@dataclass(frozen=True)
class BuildingFilter:
    min_confidence: float = 0.5
    max_confidence: float | None = None
    date_from: date | None = None
    date_to: date | None = None
    reviewed: bool | None = None  # only the buildings a review decides or added (True), only the others, or either

    def keeps(self, confidence: float, last_intact: date | None, first_destroyed: date | None) -> bool:
        """Whether a building's state after its reviews passes the filter."""
        if confidence < self.min_confidence or (self.max_confidence is not None and confidence > self.max_confidence):
            return False
        if self.date_from and (first_destroyed is None or first_destroyed < self.date_from):
            return False
        return not self.date_to or (first_destroyed is not None
                                    and (last_intact is None or last_intact < self.date_to))

    def where(self) -> tuple[str, list[Any]]:
        """What keeps() says, as SQL on the building (alias ``b``), and its parameters (see TileFilter.where)."""
        parts, params = ["b.confidence >= %s"], [self.min_confidence]
        if self.max_confidence is not None:
            parts.append("b.confidence <= %s")
            params.append(self.max_confidence)
        if self.date_from:
            parts.append("b.first_destroyed >= %s")
            params.append(self.date_from)
        if self.date_to:
            parts.append("b.first_destroyed IS NOT NULL AND (b.last_intact IS NULL OR b.last_intact < %s)")
            params.append(self.date_to)
        return " AND ".join(parts), params



# --- Grid geometry ------------------------------------------------------------------------------------------------

_local = threading.local()


def transformer(crs: str) -> Transformer:
    """grid CRS -> WGS84 (lon, lat), one per thread and CRS."""
    known = _local.__dict__.setdefault("transformers", {})
    if crs not in known:
        known[crs] = Transformer.from_crs(crs, "EPSG:4326", always_xy=True)
    return known[crs]


@lru_cache(maxsize=64)
def grid_extent(spec: GridSpec) -> Bbox:
    """The grid's bounds in WGS84, from its outline (32 points an edge)."""
    t = np.linspace(0.0, 1.0, 33)
    x0, x1 = spec.origin_x, spec.origin_x + spec.width * spec.pixel_size
    y1, y0 = spec.origin_y, spec.origin_y - spec.height * spec.pixel_size
    xs = np.concatenate([x0 + t * (x1 - x0), np.full_like(t, x1), x1 - t * (x1 - x0), np.full_like(t, x0)])
    ys = np.concatenate([np.full_like(t, y0), y0 + t * (y1 - y0), np.full_like(t, y1), y1 - t * (y1 - y0)])
    lon, lat = transformer(spec.crs).transform(xs, ys)
    return float(lon.min()), float(lat.min()), float(lon.max()), float(lat.max())


def clip(a: Bbox, b: Bbox) -> Bbox | None:
    west, south, east, north = max(a[0], b[0]), max(a[1], b[1]), min(a[2], b[2]), min(a[3], b[3])
    return (west, south, east, north) if west <= east and south <= north else None


def cells_in(spec: GridSpec, bbox: Bbox) -> tuple[range, range]:
    """The grid columns and rows whose cells intersect the bbox (already clipped to the grid's extent)."""
    t = np.linspace(0.0, 1.0, 9)
    w, s, e, n = bbox
    lon = np.concatenate([w + t * (e - w), np.full_like(t, e), e - t * (e - w), np.full_like(t, w)])
    lat = np.concatenate([np.full_like(t, s), s + t * (n - s), np.full_like(t, n), n - t * (n - s)])
    xs, ys = transformer(spec.crs).transform(lon, lat, direction="INVERSE")
    return spec.cells_touching((float(xs.min()), float(ys.min()), float(xs.max()), float(ys.max())))


POINT = {digits: f"[%.{digits}f,%.{digits}f]" for digits in (5, 6)}


def own_rings(spec: GridSpec, col0: np.ndarray, col1: np.ndarray, row0: np.ndarray, row1: np.ndarray, *,
              digits: int = 6) -> tuple[list[str], np.ndarray]:
    """GeoJSON rings (text) and WGS84 boxes of the areas that columns [col0, col1) x rows [row0, row1) own.

    A tile owns stride x stride pixels from its corner; the last column and row own the rest of the grid.
    6 decimals of a degree are 0.1 m, 5 are 1 m (enough for grouped cells).
    """
    stride = spec.stride
    px0 = col0 * stride
    px1 = np.where(col1 < spec.cols, col1 * stride, spec.width)
    py0 = row0 * stride
    py1 = np.where(row1 < spec.rows, row1 * stride, spec.height)
    # Counter-clockwise (RFC 7946): south-west, south-east, north-east, north-west. Neighbours share corners, so
    # each corner (in grid pixels) is projected and formatted once, not up to four times (most of the time here).
    height = spec.height + 1
    corners, which = np.unique(np.stack([px0 * height + py1, px1 * height + py1, px1 * height + py0,
                                         px0 * height + py0], axis=1).ravel(), return_inverse=True)
    cx, cy = np.divmod(corners, height)
    lon, lat = transformer(spec.crs).transform(spec.origin_x + cx * spec.pixel_size,
                                               spec.origin_y - cy * spec.pixel_size)
    which = which.reshape(-1, 4)
    lon4, lat4 = lon[which], lat[which]
    boxes = np.stack([lon4.min(axis=1), lat4.min(axis=1), lon4.max(axis=1), lat4.max(axis=1)], axis=1)
    point = POINT[digits]
    points = [point % corner for corner in zip(lon.tolist(), lat.tolist())]
    return [f"[[{points[sw]},{points[se]},{points[ne]},{points[nw]},{points[sw]}]]"
            for sw, se, ne, nw in which.tolist()], boxes


def cell_size(spec: GridSpec, cols: range, rows: range, zoom: int | None, bbox: Bbox, *,
              most: int, threshold: int) -> int:
    """Tiles per cell side: 1 when at most ``threshold`` cells are in view, else the power of two that brings
    them to at most ``most``, and no cell under MIN_CELL_PX screen pixels at ``zoom``."""
    cells = len(cols) * len(rows)
    k = 1
    if cells > threshold:
        k = 2 ** max(0, math.ceil(math.log2(math.sqrt(cells / most))))
    if zoom is not None:
        latitude = (bbox[1] + bbox[3]) / 2
        metres_per_px = 40_075_016.686 * math.cos(math.radians(latitude)) / (256 * 2**zoom)
        tile_px = spec.stride * spec.pixel_size / max(metres_per_px, 1e-9)
        if tile_px * k < MIN_CELL_PX:
            k = max(k, 2 ** math.ceil(math.log2(MIN_CELL_PX / tile_px)))
    return k


def dumps(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"), default=str)


def collection(properties: dict[str, Any], features: Iterable[str]) -> str:
    return ('{"type":"FeatureCollection","properties":' + dumps(properties) + ',"features":['
            + ",".join(features) + "]}")


def rounded(value: float | None, digits: int = 3) -> float | None:
    return None if value is None else round(value, digits)


@dataclass(frozen=True)
class View:
    """What was asked: the project and its grid, the bbox (clipped to the grid), zoom and colour."""

    project: Project
    grid: Grid
    spec: GridSpec
    bbox: Bbox
    cols: range
    rows: range
    zoom: int | None
    color: str


def view_of(*, project: Project, grid: Grid, bbox: Bbox | None, zoom: int | None, color: str) -> View | None:
    """What is in view of the grid; None when the bbox misses it."""
    spec = grid.spec()
    extent = grid_extent(spec)
    clipped = clip(bbox or extent, extent)
    if clipped is None:
        return None
    cols, rows = cells_in(spec, clipped)
    return View(project, grid, spec, clipped, cols, rows, zoom, color)


# --- Tiles ----------------------------------------------------------------------------------------------------------

def tiles_in_view(view: View, filt: TileFilter) -> str:
    """The tiles (or grouped cells) in view as a GeoJSON FeatureCollection text."""
    redundancy = view.project.redundancy
    properties: dict[str, Any] = {"kind": "tiles", "color": view.color, "redundancy": redundancy,
                                  "votes_url": TILE_VOTES, "review_url": REVIEW_PAGE.format(slug=view.project.slug),
                                  "contested_below": {"agreement": CONTESTED_AGREEMENT,
                                                      "confidence": CONTESTED_CONFIDENCE}}
    if not view.cols or not view.rows:
        return collection({**properties, "aggregated": False, "cell_tiles": 1, "count": 0, "tiles": 0}, [])
    k = cell_size(view.spec, view.cols, view.rows, view.zoom, view.bbox, most=MAX_CELLS, threshold=MAX_TILES)
    if k == 1:
        features = tile_features(view, filt, review_index(project=view.project))
        return collection({**properties, "aggregated": False, "cell_tiles": 1, "count": len(features),
                           "tiles": len(features), "reviews_applied": True}, features)
    cells, tiles = tile_cells(view, filt, k, current_map_state(project=view.project, grid=view.grid))
    return collection({**properties, "aggregated": True, "cell_tiles": k, "count": len(cells),
                       "tiles": tiles, "max_age_s": STATE_SECONDS, "reviews_applied": True}, cells)


TILE_FEATURE = ('{"type":"Feature","id":%d,"geometry":{"type":"Polygon","coordinates":%s},"properties":{"id":%d,'
                '"col":%d,"row":%d,"status":"%s","votes":%d,"label":%s,"confidence":%s,"agreement":%s,"counts":%s,'
                '"contested":%s,"progress":%s,"value":%s,"reviewed":%s,"review":%s}}')


def number(value: float | None) -> str:
    return "null" if value is None else f"{value:.3f}"


@lru_cache(maxsize=256)
def text(value: str | None) -> str:
    return json.dumps(value)


# One join, planned by index on PostgreSQL thanks to the connection's random_page_cost (config/settings.py); the
# counts' JSON text goes out as stored, unparsed (on SQLite it is stored as text).
TILE_ROWS = """
    SELECT t.id, t.col, t."row", t.status, t.vote_count, c.label, c.confidence, c.agreement, CAST(c.counts AS text)
    FROM imagery_tile t LEFT OUTER JOIN tagging_tileconsensus c ON t.id = c.tile_id
    WHERE t.col >= %s AND t.col < %s AND t.east >= %s AND t.grid_id = %s AND t.north >= %s
      AND t."row" >= %s AND t."row" < %s AND t.south <= %s AND t.west <= %s"""


def tile_features(view: View, filt: TileFilter, reviews: ReviewIndex) -> list[str]:
    """Each tile in view as GeoJSON text, read fresh, with its reviews applied (as in the exports: a relabel
    sets the label, a reject takes it away, confidence 1 once a coordinator vouches for it); formatted by
    hand, as this is the street-zoom hot path (~1,000 tiles), and only once per row as read and reviewed
    (kept with the map state: a pan shows mostly the same tiles, and a tile whose row or latest review
    changed is a new row)."""
    w, s, e, n = view.bbox
    reviewed = list(reviews.tiles)
    if filt.reviewed is True and not reviewed:
        return []
    sql = [TILE_ROWS]
    params: list[Any] = [view.cols.start, view.cols.stop, w, view.grid.pk, s, view.rows.start, view.rows.stop, n, e]
    if filt.reviewed is True:
        sql.append(f" AND t.id IN ({placeholders(reviewed)})")
        params += reviewed
    elif filt.reviewed is False and reviewed:
        sql.append(f" AND NOT (t.id IN ({placeholders(reviewed)}))")
        params += reviewed
    if filt.active:  # a reviewed tile is judged on its reviewed state, below
        where, more = filt.where()
        sql.append(f" AND (({where}) OR t.id IN ({placeholders(reviewed)}))" if reviewed else f" AND {where}")
        params += more + reviewed
    rows = fetch_all("".join(sql), params)
    if reviewed:
        rows = reviewed_tiles(rows, reviews, filt)
    if not rows:
        return []
    made = current_map_state(project=view.project, grid=view.grid).memo(
        ("tile features", view.color, view.project.redundancy))
    todo = [r for r in rows if r not in made]
    if todo:
        made.update(zip(todo, format_tiles(view, todo)))
    return [made[r] for r in rows]


def reviewed_tiles(rows: list[tuple], reviews: ReviewIndex, filt: TileFilter) -> list[tuple]:
    """Each row with its reviews applied (label and confidence) and their summary last; the rows of reviewed
    tiles the filter does not keep in their reviewed state left out."""
    names = reviewer_names(reviews)
    out = []
    for row in rows:
        review = reviews.tiles.get(row[0])
        if review is None:
            out.append(row)
            continue
        label, confidence, agreement = row[5], row[6], row[7]
        state = tile_state({"label": label, "confidence": confidence} if label else None, review)
        if filt.active and not filt.keeps(state["label"], state["confidence"], agreement):
            continue
        out.append((*row[:5], state["label"], state["confidence"], agreement, row[8],
                    (*review_summary(review, names), label)))
    return out


def review_text(summary: tuple | None) -> str:
    """A reviewed feature's "review" property: the decision of its reviews, by whom, when, why."""
    if summary is None:
        return "null"
    pk, action, label, reviewer, at, note, *crowd = summary
    return dumps({"id": pk, "action": action, "label": label or None, "reviewer": reviewer, "at": at,
                  "note": note, **({"crowd_label": crowd[0]} if crowd else {})})


def format_tiles(view: View, rows: list[tuple]) -> list[str]:
    col = np.array([r[1] for r in rows])
    row = np.array([r[2] for r in rows])
    rings, _ = own_rings(view.spec, col, col + 1, row, row + 1)
    redundancy, retired = view.project.redundancy, Tile.Status.RETIRED
    features = []
    value_of = {"answer": 0, "confidence": 1, "agreement": 2, "progress": 4}[view.color]
    for (pk, c, r, status, votes, label, confidence, agreement, counts, *review), ring in zip(rows, rings):
        # number() written out: called four times a tile, the calls were a good part of the time here
        values = (text(label), "null" if confidence is None else f"{confidence:.3f}",
                  "null" if agreement is None else f"{agreement:.3f}", counts or "{}",
                  "1.000" if status == retired else f"{min(votes, redundancy) / redundancy:.3f}")
        features.append(TILE_FEATURE % (
            pk, ring, pk, c, r, status, votes, values[0], values[1], values[2], values[3],
            "true" if is_contested(confidence, agreement) else "false", values[4], values[value_of],
            "true" if review else "false", review_text(review[0]) if review else "null"))
    return features


def cells_over(view: View, k: int) -> tuple[slice, slice]:
    """The rows and columns of k x k cells that cover the view's grid rows and columns."""
    return (slice(view.rows.start // k, (view.rows.stop - 1) // k + 1),
            slice(view.cols.start // k, (view.cols.stop - 1) // k + 1))


def tile_cells(view: View, filt: TileFilter, k: int, state: MapState) -> tuple[list[str], int]:
    """The k x k cells in view with at least one tile the filter keeps, as features; and their tiles.

    A cell's feature is made once per state, filter, colour and k (a pan shows mostly the same cells).
    """
    keys, redundancy = tuple(view.project.answer_keys), view.project.redundancy
    rows, cols = cells_over(view, k)
    level = tile_level(state, filt, keys, redundancy, k)[:, rows, cols]
    gr, gc = np.nonzero(level[N] > 0)
    memo = state.memo(("tile cells", filt, keys, redundancy, view.color, k))
    cells = list(zip((gr + rows.start).tolist(), (gc + cols.start).tolist()))
    todo = [i for i, cell in enumerate(cells) if cell not in memo]
    if todo:
        memo.update(tile_cell_features(view, k, [cells[i] for i in todo], level[:, gr[todo], gc[todo]].T))
    w, s, e, n = view.bbox
    shown = [memo[cell] for cell in cells]
    shown = [c for c in shown if c[1] <= e and c[3] >= w and c[2] <= n and c[4] >= s]
    return [c[0] for c in shown], sum(c[5] for c in shown)


def tile_cell_features(view: View, k: int, cells: list[tuple[int, int]], sums: np.ndarray
                       ) -> dict[tuple[int, int], tuple[str, float, float, float, float, int]]:
    """Each cell's (feature, west, south, east, north, tiles), from its row of level sums."""
    keys, redundancy, spec = tuple(view.project.answer_keys), view.project.redundancy, view.spec
    gr = np.array([c[0] for c in cells])
    gc = np.array([c[1] for c in cells])
    rings, boxes = own_rings(spec, gc * k, np.minimum((gc + 1) * k, spec.cols), gr * k,
                             np.minimum((gr + 1) * k, spec.rows), digits=5)
    value_of = {"answer": 0, "confidence": 1, "agreement": 2, "progress": 3}[view.color]
    made = {}
    for (r, c), ring, box, row in zip(cells, rings, boxes.tolist(), sums.tolist()):
        count, judged = int(row[N]), int(row[JUDGED])
        labels = {key: int(v) for key, v in zip(keys, row[LABELS:]) if v}
        top = max(labels, key=labels.__getitem__) if labels else None
        values = (text(top), mean(row[CONF_SUM], row[CONF_N]), mean(row[AGREE_SUM], row[AGREE_N]),
                  number(row[DONE] / (count * redundancy)))
        feature = CELL_FEATURE % (
            k, c, r, ring, c, r, count, judged, row[VOTES], values[3], values[0],
            number(labels[top] / judged) if top else "null",
            ",".join(f"{text(key)}:{v}" for key, v in labels.items()), values[1], values[2], row[CONTESTED],
            row[REVIEWED], values[value_of])
        made[(r, c)] = (feature, *box, count)
    return made


def mean(total: float, count: float) -> str:
    return number(total / count) if count else "null"


CELL_FEATURE = ('{"type":"Feature","id":"c%d-%d-%d","geometry":{"type":"Polygon","coordinates":%s},"properties":'
                '{"cell":[%d,%d],"tiles":%d,"judged":%d,"votes":%d,"progress":%s,"label":%s,"label_share":%s,'
                '"labels":{%s},"confidence":%s,"agreement":%s,"contested":%d,"reviewed":%d,"value":%s}}')


# --- Buildings -------------------------------------------------------------------------------------------------------

def buildings_in_view(view: View, filt: BuildingFilter) -> str:
    """The destroyed buildings in view as points, or clusters over k x k tile cells when too many."""
    properties: dict[str, Any] = {"kind": "buildings", "min_confidence": filt.min_confidence,
                                  "votes_url": BUILDING_VOTES, "review_url": REVIEW_PAGE.format(slug=view.project.slug)}
    state = current_map_state(project=view.project, grid=view.grid)
    if buildings_in(state, filt, view.bbox) <= MAX_BUILDINGS or not (view.cols and view.rows):
        rows = building_points(view, filt, review_index(project=view.project), state)
        made = state.memo(("building points",))  # by the whole row and review: a changed one is made again
        features = [made.get(r) or made.setdefault(r, building_feature(r)) for r in rows]
        return collection({**properties, "aggregated": False, "count": len(features), "buildings": len(features),
                           "reviews_applied": True}, features)
    k = cell_size(view.spec, view.cols, view.rows, view.zoom, view.bbox, most=MAX_BUILDING_CELLS, threshold=0)
    features, buildings = building_cells(view, filt, k, state)
    return collection({**properties, "aggregated": True, "cell_tiles": k, "count": len(features),
                       "buildings": buildings, "max_age_s": STATE_SECONDS, "reviews_applied": True}, features)


def building_points(view: View, filt: BuildingFilter, reviews: ReviewIndex, snapshot: MapState) -> list[tuple]:
    """The buildings in view as rows for building_feature, reviews applied as in the exports: a rejected one
    left out, a moved one at its new place, a confirmed one at confidence 1, an added one ("review-<id>") at
    confidence 1 without votes or dates; surest last (drawn on top)."""
    w, s, e, n = view.bbox
    names = reviewer_names(reviews)
    rows: list[tuple] = []
    if filt.reviewed is not True:
        rows += [(*r, None) for r in building_rows(view.project, filt, view.bbox, list(reviews.buildings))]
    if filt.reviewed is not False:
        decided = [pk for pk, review in reviews.buildings.items() if review.action != "reject"]
        # A few: what coordinators decided (none, most of the time: then not even the ORM's compiling, 0.5 ms)
        for b in Building.objects.filter(pk__in=decided).order_by() if decided else ():
            review = reviews.buildings[b.pk]
            state = building_state(b, review)
            if state is not None and filt.keeps(state["confidence"], b.last_intact, b.first_destroyed):
                rows.append((b.pk, state["lon"], state["lat"], state["confidence"], b.uncertainty_m, b.n_support,
                             b.n_oppose, b.is_gold, b.last_intact, b.first_destroyed, b.window_confidence,
                             state["ground_x"], state["ground_y"], review_summary(review, names)))
        for added in reviews.added:
            state = added_state(added)
            if state is not None and filt.keeps(1.0, None, None):
                rows.append((f"review-{added.pk}", state["lon"], state["lat"], 1.0, 0.0, 0, 0, False, None, None,
                             None, state["ground_x"], state["ground_y"], review_summary(added.latest, names)))
    rows = [r for r in rows if w <= r[1] <= e and s <= r[2] <= n]
    rows.sort(key=lambda r: r[3])
    return with_tiles(view, rows[-MAX_BUILDINGS:] if len(rows) > MAX_BUILDINGS else rows, snapshot)


def with_tiles(view: View, rows: list[tuple], snapshot: MapState) -> list[tuple]:
    """Each row with, in place of its ground point, the id of the tile that owns it (the review page opens
    on it; None off the grid), from the map state's grid of tile ids (a grid's tiles never change)."""
    if not rows:
        return []
    spec = view.spec
    side = spec.stride * spec.pixel_size
    col = np.minimum(np.floor((np.array([r[11] for r in rows]) - spec.origin_x) / side), spec.cols - 1).astype(int)
    row = np.minimum(np.floor((spec.origin_y - np.array([r[12] for r in rows])) / side), spec.rows - 1).astype(int)
    on = (col >= 0) & (row >= 0)
    tiles = np.where(on, snapshot.tile_id[np.where(on, row, 0), np.where(on, col, 0)], 0).tolist()
    return [(*r[:11], pk or None, r[13]) for r, pk in zip(rows, tiles)]


def building_rows(project: Project, filt: BuildingFilter, bbox: Bbox, skip: list[int]) -> list[tuple]:
    """Up to MAX_BUILDINGS rows (as BUILDING_ROWS selects them) of the buildings the filter keeps in the bbox,
    but those in ``skip`` (the reviewed ones): plain SQL, as the ORM takes longer to compile it than the database
    to run it."""
    w, s, e, n = bbox
    where, params = filt.where()
    skipped = f" AND NOT (b.id IN ({placeholders(skip)}))" if skip else ""
    return fetch_all(BUILDING_ROWS.format(where=where, skip=skipped), [project.pk, *params, s, n, w, e, *skip])


BUILDING_ROWS = """
    SELECT b.id, b.lon, b.lat, b.confidence, b.uncertainty_m, b.n_support, b.n_oppose, b.is_gold, b.last_intact,
           b.first_destroyed, b.window_confidence, b.ground_x, b.ground_y
    FROM tagging_building b
    WHERE b.project_id = %s AND {where} AND b.lat >= %s AND b.lat <= %s AND b.lon >= %s AND b.lon <= %s{skip}
    LIMIT """ + str(MAX_BUILDINGS)


BUILDING_FEATURE = ('{"type":"Feature","id":%s,"geometry":{"type":"Point","coordinates":[%.6f,%.6f]},"properties":'
                    '{"id":%s,"confidence":%s,"uncertainty_m":%.1f,"support":%d,"oppose":%d,"is_gold":%s,'
                    '"last_intact":%s,"first_destroyed":%s,"window_confidence":%s,"tile":%s,"reviewed":%s,'
                    '"review":%s}}')


def building_feature(r: tuple) -> str:
    """A building point from its row (building_points); an added building's id is "review-<id>"."""
    pk, lon, lat, confidence, uncertainty, support, oppose, gold, last_intact, first_destroyed, window, tile, \
        review = r
    ident = str(pk) if type(pk) is int else dumps(pk)  # json.dumps only for "review-<id>": it costs 2 us a call
    return BUILDING_FEATURE % (ident, lon, lat, ident, number(confidence), uncertainty, support, oppose,
                               "true" if gold else "false", day(last_intact), day(first_destroyed), number(window),
                               "null" if tile is None else str(tile), "true" if review else "false",
                               review_text(review))


def day(value: date | None) -> str:
    return "null" if value is None else f'"{value.isoformat()}"'


def building_cells(view: View, filt: BuildingFilter, k: int, state: MapState) -> tuple[list[str], int]:
    """Clusters of the buildings in the k x k tile cells in view (placed at their mean position); each
    cluster's feature made once per state, filter and k."""
    rows, cols = cells_over(view, k)
    sums, highest = building_level(state, filt, k)
    sums, highest = sums[:, rows, cols], highest[rows, cols]
    gr, gc = np.nonzero(sums[B_N] > 0)
    memo = state.memo(("building cells", filt, k))
    cells = list(zip((gr + rows.start).tolist(), (gc + cols.start).tolist()))
    for (r, c), row, top in zip(cells, sums[:, gr, gc].T.tolist(), highest[gr, gc].tolist()):
        if (r, c) not in memo:
            memo[(r, c)] = cluster_feature(k, r, c, row, top)
    w, s, e, n = view.bbox
    shown = [memo[cell] for cell in cells]
    shown = [b for b in shown if w <= b[1] <= e and s <= b[2] <= n]
    return [b[0] for b in shown], sum(b[3] for b in shown)


def cluster_feature(k: int, r: int, c: int, row: list[float], top: float) -> tuple[str, float, float, int]:
    """(feature, lon, lat, buildings) of the cluster of cell (c, r) from its sums."""
    count = int(row[B_N])
    lon, lat = row[B_LON] / count, row[B_LAT] / count
    props = {"cell": [c, r], "buildings": count, "confidence": rounded(row[B_CONF] / count),
             "max_confidence": rounded(top), "support": int(row[B_SUPPORT]), "reviewed": int(row[B_REVIEWED])}
    feature = ('{"type":"Feature","id":"b' + f"{k}-{c}-{r}" + '","geometry":{"type":"Point","coordinates":['
               + f"{lon:.6f},{lat:.6f}" + ']},"properties":' + dumps(props) + "}")
    return feature, lon, lat, count
