"""What the map's grouped cells are computed from: the state of every tile and building of a project, with the
coordinators' reviews applied, as numpy arrays in each web process's memory, published through the Django cache.

Grouping a city-wide view by SQL reads every tile of the project (~1 s for 200,000 tiles, bench.map), and
the grouping changes with the zoom. Instead one query per table loads the project's tiles (column, row,
status, votes, consensus) onto grid-shaped arrays and its buildings into columns, and a grouped view sums
those arrays: tile cells of k x k tiles come from a pyramid of per-cell sums (level 2k is level k summed
2 x 2), built once per state and filter, so a request costs the cells in view (at most a few hundred),
never the tiles under them.

Reviews. A state holds what the coordinators' reviews leave, as the exports and the street-zoom features do
(tagging/reviews.py: ``tile_state``, ``building_state``, ``added_state``, over one ``review_index``): a
relabelled tile has the reviewed label at confidence 1, a rejected one no label; a rejected building is left
out, a moved one is at its new place, a confirmed one at confidence 1, and an added one is a building of
confidence 1 without votes or dates. ``reviewed`` and ``b_reviewed`` mark what a review decides, for the
``reviewed`` filter and the cells' counts of reviewed tiles and buildings.

Freshness. A state is built in the Celery worker, never in a web process that has one to serve: (i) at the
end of every consensus run (``ensure_map_state_after_run``, in the worker), so a finished run shows at once;
(ii) after a review is recorded or undone (``request_refresh(changed=True)``, on commit), so a decision
reaches the grouped cells in about a build's time; (iii) when a request finds the published state unchecked
for STATE_SECONDS: that request still answers from it, and enqueues one check (the task
workers.maps.rebuild_map_state; one for all processes: a cache lock, held until the task ends, freed at once
when the message cannot be sent so that a later request retries). The check compares the project's
watermark (latest run, vote, tile, review and undo: four indexed queries) with the published state's and
builds the next state only when it moved, or when the state is STATE_MAX_SECONDS old (a vote whose live
consensus update landed after the watermark was read). Building reads every tile (~1.3 s for 200,000 tiles,
holding its process's GIL the whole time: in a web process that would stall every request it serves), so an
idle project costs nothing and an active one a build per STATE_SECONDS in the worker. Votes between runs (a
tile's vote count and its live consensus) therefore reach the grouped cells within about STATE_SECONDS plus
the worker's queue; tiles and buildings at street zoom are read fresh by SQL.

The one build in a web process is the cold start: a request that finds no published state at all (a project
never run, an emptied cache) builds it inline and publishes it.

The published state carries a version (the latest finished run's id and a random part); a request reads
the version record (one cache read, remembered by the process for PUBLISHED_SECONDS) and adopts a newer
state when its own copy is older.
"""

from __future__ import annotations

import logging
import time
import uuid
from collections import OrderedDict
from collections.abc import Callable, Hashable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, NamedTuple

import numpy as np
from django.core.cache import cache, caches
from django.db import connection
from django.db.models import Max

from imagery.grid import GridSpec
from imagery.models import Grid, Tile
from tagging.models import Building, Classification, ConsensusRun, Project, Review
from tagging.reviews import ReviewIndex, added_state, building_state, review_index, tile_state

if TYPE_CHECKING:
    from tagging.map_layers import BuildingFilter, TileFilter

PUBLISHED_SECONDS = 1.0  # how long a web process trusts its last read of the published version record
STATE_SECONDS = 30.0  # a state unchecked for this long is checked (and rebuilt if changed) by the worker
STATE_MAX_SECONDS = 300.0  # and rebuilt whatever the check says when this old
STATE_TIMEOUT = 24 * 3600  # how long the cache keeps a published state nobody refreshes
LOCK_SECONDS = 120  # a check whose task never ends (a lost message) stops blocking the next one after this
PYRAMIDS_KEPT = 6  # (filter, redundancy) pyramids kept per state, least recently used dropped
MEMOS_KEPT = 24  # (filter, colour, cell size) memos of cell features kept per state
MEMO_ENTRIES = 100_000  # features in one memo (~40 MB at most) before it starts again
CONTESTED_AGREEMENT = 0.6
CONTESTED_CONFIDENCE = 0.7
NO_DAY = np.iinfo(np.int32).min  # a date column that is empty
KEYS = "map:v3"  # a new prefix whenever what is cached changes shape: the previous release's processes keep theirs
log = logging.getLogger(__name__)

# Rows of a tile level: tiles, with a consensus, votes, votes towards retirement, confidence sum and count,
# agreement sum and count, contested, reviewed; then one row per answer key.
N, JUDGED, VOTES, DONE, CONF_SUM, CONF_N, AGREE_SUM, AGREE_N, CONTESTED, REVIEWED = range(10)
LABELS = 10
# Rows of a building level: buildings, lon sum, lat sum, confidence sum, support sum, reviewed (the highest
# confidence is a level of its own: maxima, not sums).
B_N, B_LON, B_LAT, B_CONF, B_SUPPORT, B_REVIEWED = range(6)

# Latest finished run, vote, tile and review (ids, 0 for none), latest undo of a review (POSIX seconds, 0 for none).
Watermark = tuple[int, int, int, int, float]


@dataclass
class MapState:
    """A project's tiles on its grid (arrays of rows x cols) and its buildings (columns), at one moment, with the
    reviews of that moment applied."""

    project_id: int
    grid_id: int
    spec: GridSpec
    version: str
    watermark: Watermark  # when the rows were read
    built_at: float
    labels: tuple[str, ...]  # the labels found (the crowd's and the reviews'); ``label`` indexes them, -1 for none
    present: np.ndarray  # bool: a tile exists in that grid cell
    tile_id: np.ndarray  # int64: the id of the tile in that grid cell, 0 where there is none
    retired: np.ndarray  # bool
    votes: np.ndarray  # int32
    label: np.ndarray  # int16, the reviewed label
    confidence: np.ndarray  # float32, NaN without a label
    agreement: np.ndarray  # float32, NaN without a consensus
    reviewed: np.ndarray  # bool: a review decides the tile
    b_x: np.ndarray  # buildings (the crowd's not rejected, then the added ones): ground metres in the grid's CRS
    b_y: np.ndarray
    b_lon: np.ndarray
    b_lat: np.ndarray
    b_confidence: np.ndarray
    b_support: np.ndarray
    b_first_destroyed: np.ndarray  # int32 proleptic ordinals, NO_DAY when empty
    b_last_intact: np.ndarray
    b_reviewed: np.ndarray  # bool: a review decides the building (or added it)
    _pyramids: OrderedDict = field(default_factory=OrderedDict, repr=False, compare=False)
    _memos: OrderedDict = field(default_factory=OrderedDict, repr=False, compare=False)

    def __getstate__(self) -> dict[str, Any]:  # the cache gets the arrays, never what this process derived
        return {**self.__dict__, "_pyramids": OrderedDict(), "_memos": OrderedDict()}

    @property
    def run_id(self) -> int:
        return self.watermark[0]

    def pyramid(self, key: Hashable, base: Callable[[], list[Any]]) -> list[Any]:
        """The levels of a pyramid, built on demand and kept (a few per state, least recently used dropped)."""
        levels = self._pyramids.get(key)
        if levels is None:
            levels = base()
            self._pyramids[key] = levels
            while len(self._pyramids) > PYRAMIDS_KEPT:
                self._pyramids.popitem(last=False)
        else:
            self._pyramids.move_to_end(key)
        return levels

    def memo(self, key: Hashable) -> dict[Any, Any]:
        """A dict for what is derived from this state under ``key`` (a cell's feature text, for one): a few
        kept, least recently used dropped, each emptied past MEMO_ENTRIES."""
        found = self._memos.get(key)
        if found is None or len(found) > MEMO_ENTRIES:
            found = self._memos[key] = {}
            while len(self._memos) > MEMOS_KEPT:
                self._memos.popitem(last=False)
        else:
            self._memos.move_to_end(key)
        return found


# --- Building a state ----------------------------------------------------------------------------------------------

def fetch_rows(query: Any) -> list[tuple]:
    """The rows of a values_list() query straight from the cursor, without Django's per-value converters."""
    sql, params = query.query.sql_with_params()
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        return cursor.fetchall()


def read_watermark(project_id: int, grid_id: int) -> Watermark:
    """What a state's rows depend on: the latest finished run, vote, tile and review, and the latest undo."""
    run = (ConsensusRun.objects.filter(project_id=project_id, status=ConsensusRun.Status.DONE)
           .order_by("-id").values_list("id", flat=True).first())
    vote = Classification.objects.filter(project_id=project_id).aggregate(last=Max("id"))["last"]
    tile = Tile.objects.filter(grid_id=grid_id).aggregate(last=Max("id"))["last"]
    # An undo changes no id, only undone_at: a review is never deleted (the audit trail).
    reviews = Review.objects.filter(project_id=project_id).aggregate(last=Max("id"), undone=Max("undone_at"))
    undone = reviews["undone"]
    return run or 0, vote or 0, tile or 0, reviews["last"] or 0, undone.timestamp() if undone else 0.0


def build_map_state(*, project: Project, grid: Grid) -> MapState:
    """Load the project's tiles, buildings and reviews into a new state (three queries after the watermark's
    four)."""
    watermark = read_watermark(project.pk, grid.pk)  # read first: a change while reading shows next time
    reviews = review_index(project=project)
    spec = grid.spec()
    tiles = tile_arrays(spec, fetch_rows(Tile.objects.filter(grid=grid).order_by().values_list(
        "pk", "col", "row", "status", "vote_count", "consensus__label", "consensus__confidence",
        "consensus__agreement")), reviews)
    buildings = building_columns(fetch_rows(Building.objects.filter(project=project).order_by().values_list(
        "pk", "ground_x", "ground_y", "lon", "lat", "confidence", "n_support", "first_destroyed", "last_intact")),
        reviews)
    return MapState(project_id=project.pk, grid_id=grid.pk, spec=spec,
                    version=f"{watermark[0]}-{uuid.uuid4().hex[:12]}",
                    watermark=watermark, built_at=time.time(), **tiles, **buildings)


def tile_arrays(spec: GridSpec, rows: list[tuple], reviews: ReviewIndex) -> dict[str, Any]:
    """The tile fields of a state from the tiles' rows (id, col, row, status, votes, consensus label, confidence,
    agreement), each reviewed tile's label and confidence as its reviews leave them."""
    shape = (spec.rows, spec.cols)
    present, retired, reviewed = np.zeros(shape, bool), np.zeros(shape, bool), np.zeros(shape, bool)
    tile_id = np.zeros(shape, np.int64)
    votes, label = np.zeros(shape, np.int32), np.full(shape, -1, np.int16)
    confidence, agreement = np.full(shape, np.nan, np.float32), np.full(shape, np.nan, np.float32)
    labels: tuple[str, ...] = ()
    if rows:
        pks, col, row, status, count, crowd, crowd_conf, agree = zip(*rows)
        names, conf = list(crowd), list(crowd_conf)
        decided = [i for i, pk in enumerate(pks) if pk in reviews.tiles] if reviews.tiles else []
        for i in decided:
            state = tile_state({"label": names[i], "confidence": conf[i]} if names[i] else None,
                               reviews.tiles[pks[i]])
            names[i], conf[i] = state["label"], state["confidence"]
        where = (np.array(row, np.int64), np.array(col, np.int64))
        labels = tuple(sorted({name for name in names if name is not None}))
        code = {name: i for i, name in enumerate(labels)}
        present[where] = True
        tile_id[where] = pks
        retired[where] = np.array(status, dtype=object) == Tile.Status.RETIRED
        votes[where] = count
        label[where] = [code.get(name, -1) for name in names]
        confidence[where] = np.array(conf, dtype=float)  # None becomes NaN
        agreement[where] = np.array(agree, dtype=float)
        reviewed[where[0][decided], where[1][decided]] = True
    return {"labels": labels, "present": present, "tile_id": tile_id, "retired": retired, "votes": votes,
            "label": label, "confidence": confidence, "agreement": agreement, "reviewed": reviewed}


def building_columns(rows: list[tuple], reviews: ReviewIndex) -> dict[str, Any]:
    """The building fields of a state from the crowd's buildings' rows (id, ground x, y, lon, lat, confidence,
    support, first destroyed, last intact) and the reviews: a rejected building left out, a moved or confirmed
    one as its reviews leave it, then the added buildings (confidence 1, no support, no dates)."""
    found: list[tuple | None] = list(rows)
    reviewed = [False] * len(found)
    for i, r in enumerate(rows if reviews.buildings else ()):
        review = reviews.buildings.get(r[0])
        if review is not None:
            state = building_state(Building(pk=r[0], ground_x=r[1], ground_y=r[2], lon=r[3], lat=r[4],
                                            confidence=r[5]), review)
            found[i] = None if state is None else (
                r[0], state["ground_x"], state["ground_y"], state["lon"], state["lat"], state["confidence"], *r[6:])
            reviewed[i] = state is not None
    kept = [(r, seen) for r, seen in zip(found, reviewed) if r is not None]
    for added in reviews.added:
        state = added_state(added)
        assert state is not None  # the index's ``added`` leaves out the rejected ones
        kept.append(((None, state["ground_x"], state["ground_y"], state["lon"], state["lat"], 1.0, 0, None, None),
                     True))
    _, bx, by, blon, blat, bconf, bsupport, first, last = zip(*(r for r, _ in kept)) if kept else ((),) * 9
    return {"b_x": np.array(bx, float), "b_y": np.array(by, float), "b_lon": np.array(blon, float),
            "b_lat": np.array(blat, float), "b_confidence": np.array(bconf, float),
            "b_support": np.array(bsupport, np.int64), "b_first_destroyed": days(first), "b_last_intact": days(last),
            "b_reviewed": np.array([seen for _, seen in kept], bool)}


def days(values: tuple) -> np.ndarray:
    return np.array([NO_DAY if v is None else v.toordinal() for v in values], np.int32)


# --- Publishing and finding it ---------------------------------------------------------------------------------------

_memory: dict[int, MapState] = {}  # this process's copies, by project


class Published(NamedTuple):
    """The published version record: what every request reads (one cache read) to know whether its copy is
    current, and what the worker's check compares the watermark with."""

    version: str
    run_id: int
    checked_at: float  # when the state's watermark was last found current
    watermark: Watermark
    built_at: float
    grid_id: int


def version_key(project_id: int) -> str:
    return f"{KEYS}:version:{project_id}"


def state_key(project_id: int) -> str:
    return f"{KEYS}:state:{project_id}"


def lock_key(project_id: int) -> str:
    return f"{KEYS}:lock:{project_id}"


def again_key(project_id: int) -> str:
    return f"{KEYS}:again:{project_id}"


def publish(state: MapState) -> MapState:
    """Share the state with every process, unless a later consensus run's state is already there."""
    known = cache.get(version_key(state.project_id))
    if known is not None and known.run_id > state.run_id:
        return state  # built from rows older than the published run's: keep that one
    cache.set(state_key(state.project_id), state, timeout=STATE_TIMEOUT)
    record = Published(state.version, state.run_id, time.time(), state.watermark, state.built_at, state.grid_id)
    cache.set(version_key(state.project_id), record, timeout=STATE_TIMEOUT)
    caches["local"].set(version_key(state.project_id), (record,), PUBLISHED_SECONDS)
    _memory[state.project_id] = state
    return state


def mark_checked(project_id: int, found: Published) -> None:
    """Record that the published state's watermark was found current now, unless another state was published
    since ``found`` was read (a consensus run's: its record must not go back to the older version)."""
    if cache.get(version_key(project_id)) == found:
        cache.set(version_key(project_id), found._replace(checked_at=time.time()), timeout=STATE_TIMEOUT)


def current_map_state(*, project: Project, grid: Grid) -> MapState:
    """The project's latest published state (built here only when there is none at all); an old one is served,
    and the one request that takes the lock asks the worker to check it (request_refresh)."""
    published = published_record(project.pk)
    state = _memory.get(project.pk)
    if published is None or state is None or state.version != published.version or state.grid_id != grid.pk:
        shared = cache.get(state_key(project.pk)) if published is not None else None
        if shared is None or shared.grid_id != grid.pk:
            shared = publish(build_map_state(project=project, grid=grid))  # the cold start: nothing to serve
        _memory[project.pk] = state = shared
    checked = published.checked_at if published is not None and published.version == state.version \
        else state.built_at
    if time.time() - checked > STATE_SECONDS:
        request_refresh(project_id=project.pk)
    return state


def published_record(project_id: int) -> Published | None:
    """The published version record, as read from the shared cache at most PUBLISHED_SECONDS ago by this
    process: most map requests then need no round trip to know their copy of the state is current."""
    remembered = caches["local"].get(version_key(project_id))
    if remembered is not None:
        return remembered[0]
    published = cache.get(version_key(project_id))
    caches["local"].set(version_key(project_id), (published,), PUBLISHED_SECONDS)
    return published


def request_refresh(*, project_id: int, changed: bool = False) -> bool:
    """Enqueue a check of the project's published state (workers.maps.rebuild_map_state), unless one is queued
    or running; True when this call enqueued it.

    The lock is taken here and freed when the task ends, or at once when the message cannot be sent (the
    broker is down), so that a later request retries. ``changed`` says rows changed that the state shows (a
    review was recorded or undone): a check under way may have read them before, so another follows it.
    Never raises: the map answers from the state it has.
    """
    from workers.maps import rebuild_map_state_task  # the task calls back into this module

    try:
        if not cache.add(lock_key(project_id), 1, timeout=LOCK_SECONDS):
            if changed:
                cache.set(again_key(project_id), 1, timeout=LOCK_SECONDS)
            return False
        try:
            # Not on commit: a map request writes nothing the task reads, and a review calls this on its commit.
            rebuild_map_state_task.delay(project_id)
        except Exception:
            cache.delete(lock_key(project_id))
            raise
    except Exception:  # a review's commit, or the map's answer, must not fail for this
        log.exception("the check of the map state of project %s was not enqueued", project_id)
        return False
    return True


def refresh_map_state(*, project_id: int) -> MapState | None:
    """The worker's side of request_refresh: the project's state rebuilt and published when its watermark
    moved or it is STATE_MAX_SECONDS old, else only marked checked; returns the new state, or None when none
    was built. Frees the lock whatever happens, then enqueues another check when a change came in meanwhile."""
    cache.delete(again_key(project_id))  # a change from now on is either read below or asks for another check
    try:
        return rebuild(project_id, check=True)
    finally:
        cache.delete(lock_key(project_id))
        if cache.get(again_key(project_id)):
            request_refresh(project_id=project_id)


def rebuild(project_id: int, *, check: bool = False) -> MapState | None:
    """Build and publish the project's state; with ``check``, only when the published state's watermark moved
    or it is STATE_MAX_SECONDS old (else it is marked checked). Returns the state built, or None when none was
    (the published one is current, or the project or its grid is gone)."""
    project = Project.objects.filter(pk=project_id).first()
    grid = Grid.objects.filter(project_id=project_id).first()
    if project is None or grid is None:
        log.info("no map state for project %s: the project or its grid is gone", project_id)
        return None
    found = cache.get(version_key(project_id)) if check else None
    if (found is not None and found.grid_id == grid.pk and time.time() - found.built_at < STATE_MAX_SECONDS
            and read_watermark(project_id, grid.pk) == found.watermark):
        mark_checked(project_id, found)
        return None
    return publish(build_map_state(project=project, grid=grid))


def ensure_map_state_after_run(*, project: Project) -> None:
    """Publish the project's map state after a consensus run, so the map shows the run at once.

    Never raises: the run is done whatever happens here, and the map asks for a state itself when it finds
    an old one (and builds one when it finds none).
    """
    try:
        rebuild(project.pk)
    except Exception:
        log.exception("the map state of project %s was not rebuilt after its consensus run", project.pk)


# --- Tiles grouped into cells ----------------------------------------------------------------------------------------

def halve(level: np.ndarray, reduce: Callable = np.add.reduce) -> np.ndarray:
    """The next level: 2 x 2 cells of this one reduced into one (the last axes are rows and columns)."""
    *lead, rows, cols = level.shape
    padded = np.zeros((*lead, rows + rows % 2, cols + cols % 2), level.dtype)
    padded[..., :rows, :cols] = level
    blocks = padded.reshape(*lead, padded.shape[-2] // 2, 2, padded.shape[-1] // 2, 2)
    return reduce(reduce(blocks, axis=-1), axis=-2)


def tile_level(state: MapState, selection: TileFilter, keys: tuple[str, ...], redundancy: int,
               k: int) -> np.ndarray:
    """Per k x k cell (k a power of two, at least 2): the sums of the level rows above; shape (rows, R, C)."""
    def base() -> list[Any]:
        return [tile_sums(state, selection, keys, redundancy)]

    levels = state.pyramid(("tiles", selection, keys, redundancy), base)
    depth = int(k).bit_length() - 1  # level 0 is single tiles
    while len(levels) <= depth:
        levels.append(halve(levels[-1]))
    return levels[depth]


def tile_sums(state: MapState, selection: TileFilter, keys: tuple[str, ...], redundancy: int) -> np.ndarray:
    """The level of single tiles: what each grid cell adds to its group, under the selection (which applies to
    the reviewed state, as at street zoom)."""
    judged_all = state.label >= 0
    conf, agree = state.confidence, state.agreement
    # NaN compares false, as NULL does in SQL: a tile without a label is never contested or in range.
    contested = judged_all & ((agree < CONTESTED_AGREEMENT) | (conf < CONTESTED_CONFIDENCE))
    counted = state.present.copy()
    if selection.answers:
        wanted = [state.labels.index(a) for a in selection.answers if a in state.labels]
        counted &= np.isin(state.label, wanted)
    if selection.min_confidence is not None:
        counted &= conf >= selection.min_confidence
    if selection.max_confidence is not None:
        counted &= conf <= selection.max_confidence
    if selection.contested:
        counted &= contested
    if selection.reviewed is not None:
        counted &= state.reviewed == selection.reviewed
    judged = counted & judged_all
    done = np.where(state.retired, redundancy, np.minimum(state.votes, redundancy))
    codes = [state.labels.index(key) if key in state.labels else -2 for key in keys]
    rows = [counted, judged, np.where(counted, state.votes, 0), np.where(counted, done, 0),
            np.where(judged & ~np.isnan(conf), conf, 0), judged & ~np.isnan(conf),
            np.where(judged & ~np.isnan(agree), agree, 0), judged & ~np.isnan(agree), counted & contested,
            counted & state.reviewed, *(counted & (state.label == code) for code in codes)]
    return np.stack([r.astype(np.float64) for r in rows])


# --- Buildings grouped into cells -------------------------------------------------------------------------------------

def building_mask(state: MapState, selection: BuildingFilter) -> np.ndarray:
    """The buildings the selection keeps, in their reviewed state (an empty date excludes, as NULL does in SQL)."""
    keep = state.b_confidence >= selection.min_confidence
    if selection.reviewed is not None:
        keep &= state.b_reviewed == selection.reviewed
    if selection.max_confidence is not None:
        keep &= state.b_confidence <= selection.max_confidence
    if selection.date_from:
        keep &= (state.b_first_destroyed != NO_DAY) & (state.b_first_destroyed >= selection.date_from.toordinal())
    if selection.date_to:
        keep &= (state.b_first_destroyed != NO_DAY) & ((state.b_last_intact == NO_DAY)
                                                      | (state.b_last_intact < selection.date_to.toordinal()))
    return keep


def buildings_in(state: MapState, selection: BuildingFilter, bbox: tuple[float, float, float, float]) -> int:
    w, s, e, n = bbox
    lon, lat = state.b_lon, state.b_lat
    return int(np.count_nonzero(building_mask(state, selection) & (lon >= w) & (lon <= e) & (lat >= s)
                                & (lat <= n)))


def building_level(state: MapState, selection: BuildingFilter, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Per k x k tile cell: (sums of the rows above, shape (6, R, C); highest confidence, shape (R, C))."""
    def base() -> list[Any]:
        return [building_sums(state, selection)]

    levels = state.pyramid(("buildings", selection), base)
    depth = int(k).bit_length() - 1
    while len(levels) <= depth:
        sums, top = levels[-1]
        levels.append((halve(sums), halve(top, np.maximum.reduce)))
    return levels[depth]


def building_sums(state: MapState, selection: BuildingFilter) -> tuple[np.ndarray, np.ndarray]:
    """Each building in the tile cell its ground point falls in (the last column and row own the grid's rest)."""
    spec = state.spec
    side = spec.stride * spec.pixel_size
    x, y = state.b_x, state.b_y
    inside = ((x >= spec.origin_x) & (x < spec.origin_x + spec.width * spec.pixel_size)
              & (y <= spec.origin_y) & (y > spec.origin_y - spec.height * spec.pixel_size))
    keep = building_mask(state, selection) & inside
    gc = np.minimum(np.floor((x[keep] - spec.origin_x) / side).astype(np.int64), spec.cols - 1)
    gr = np.minimum(np.floor((spec.origin_y - y[keep]) / side).astype(np.int64), spec.rows - 1)
    cell = gr * spec.cols + gc
    size = spec.rows * spec.cols
    sums = np.stack([np.bincount(cell, weights=w, minlength=size) for w in (
        np.ones(len(cell)), state.b_lon[keep], state.b_lat[keep], state.b_confidence[keep],
        state.b_support[keep].astype(float), state.b_reviewed[keep].astype(float))]).reshape(6, spec.rows, spec.cols)
    top = np.full(size, -np.inf)
    np.maximum.at(top, cell, state.b_confidence[keep])
    return sums, top.reshape(spec.rows, spec.cols)
