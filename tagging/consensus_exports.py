"""The consensus as files: tiles and buildings as GeoJSON (RFC 7946, WGS84) and CSV.

Each export is a generator of text chunks, read from the database in batches, so a project of
200,000 tiles streams in constant memory, through the API (StreamingHttpResponse) or to a file
(the export_consensus command). A GeoJSON collection names in its "properties" the consensus run
it comes from, with method, parameters and counts, so a finding can be re-derived.

Coordinators' reviews (tagging/reviews.py) are applied by default: a relabelled tile carries the
reviewer's label with confidence 1, a rejected building is left out, a moved one is at its new
place, an added one is exported with confidence 1 and no votes. With reviews=False the export is
the crowd's alone. Every row says whether a review decided it (reviewed, review_action: what the live
reviews decided, review_id: the latest of them) and names every review of its tile or building
(review_ids, undone ones too; for an added building its add review and every later review of it) and
the classifications behind it (chain of custody). A building row says where it comes from: source
"crowd" (building_id) or "review", a building a coordinator added, named by its add review (added;
"review-<added>" as a feature's id). An added building moved later says review_action "move", like a
moved crowd building; "add" only while no live review came after the add.

A CSV file holds rows only (spreadsheets and csv.DictReader choke on comment lines); its
provenance is the same JSON as a GeoJSON collection's "properties", served beside it
(provenance(), the API's consensus/provenance.json, provenance.json in export folders).
"""

from __future__ import annotations

import csv
import json
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

from django.db.models import Count
from django.utils import timezone

from imagery.models import ImageryLayer, Tile
from tagging.consensus_store import access_latest_run
from tagging.models import Building, Classification, ConsensusRun, Project, TileConsensus
from tagging.reviews import EMPTY, ReviewIndex, added_state, building_state, review_index, tile_state

CHUNK = 500  # features per yielded piece of text
TILE_COLUMNS = ["tile_id", "tile_col", "tile_row", "label", "confidence", "agreement", "n_votes", "n_decisive"]
TILE_TAIL = ["tile_status", "method", "west", "south", "east", "north", "votes_url"]
REVIEW_COLUMNS = ["reviewed", "review_action", "review_id", "review_ids"]
TILE_REVIEW_TAIL = REVIEW_COLUMNS + ["crowd_label", "crowd_confidence", "classification_ids"]
BUILDING_COLUMNS = ["building_id", "lon", "lat", "ground_x", "ground_y", "confidence", "uncertainty_m",
                    "votes_for", "votes_against", "last_intact", "first_destroyed", "window_confidence", "is_gold",
                    "classification_ids", "opposing_classification_ids", "votes_url", "source", "added",
                    *REVIEW_COLUMNS, "crowd_confidence"]
EXPORTS = ("tiles.geojson", "tiles.csv", "buildings.geojson", "buildings.csv")
ID_LISTS = ("classification_ids", "opposing_classification_ids", "review_ids")  # space-separated in CSV


def count_columns(project: Project) -> list[str]:
    return [f"count_{key}" for key in project.answer_keys]


def tile_columns(project: Project) -> list[str]:
    return TILE_COLUMNS + count_columns(project) + TILE_TAIL + TILE_REVIEW_TAIL


def export_text(*, project: Project, name: str, base_url: str = "", min_confidence: float = 0.5,
                reviews: bool = True) -> Iterator[str]:
    """The export `name` (one of EXPORTS) as text chunks; links start with base_url (e.g. https://host).

    reviews=True applies the coordinators' reviews; False gives the crowd's consensus alone.
    """
    if name == "tiles.geojson":
        return tiles_geojson(project=project, base_url=base_url, reviews=reviews)
    if name == "tiles.csv":
        return tiles_csv(project=project, base_url=base_url, reviews=reviews)
    if name == "buildings.geojson":
        return buildings_geojson(project=project, base_url=base_url, min_confidence=min_confidence, reviews=reviews)
    if name == "buildings.csv":
        return buildings_csv(project=project, base_url=base_url, min_confidence=min_confidence, reviews=reviews)
    raise ValueError(f"unknown export {name}")


def write_exports(*, project: Project, folder: Path, min_confidence: float = 0.5, reviews: bool = True,
                  names: Iterable[str] = EXPORTS) -> list[Path]:
    """Write the text exports `names` into folder (made if missing), each through a temporary name; the paths."""
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for name in names:
        paths.append(write_atomically(folder / name, export_text(
            project=project, name=name, min_confidence=min_confidence, reviews=reviews)))
    return paths


def write_atomically(path: Path, chunks: Iterable[str]) -> Path:
    partial = path.with_name(f".{path.name}.partial")
    with partial.open("w", encoding="utf-8", newline="") as out:
        for chunk in chunks:
            out.write(chunk)
    partial.replace(path)  # a failure leaves no half-written export under the real name
    return path


def collection_properties(*, project: Project, kind: str, min_confidence: float | None = None,
                          reviews: bool = True) -> dict[str, Any]:
    """What a reader needs to trust and re-derive the collection: the run, its method and parameters, the
    imagery (dates and file checksums), whether reviews are applied, and when it was made."""
    run = access_latest_run(project=project)
    properties: dict[str, Any] = {
        "project": project.slug, "name": project.name, "kind": kind, "generated_at": timezone.now().isoformat(),
        "answers": project.answers, "coordinates": "WGS84 longitude, latitude (RFC 7946)",
        "run": _run_summary(run),
        "reviews": {"applied": reviews, "live": review_index(project=project).live_count},
        "layers": layers_summary(project),
    }
    grid = getattr(project, "grid", None)
    if grid is not None:
        properties["grid_crs"] = grid.crs  # of ground_x / ground_y, metres
    if min_confidence is not None:
        properties["min_confidence"] = min_confidence
    return properties


provenance = collection_properties


def layers_summary(project: Project) -> list[dict[str, Any]]:
    """Each imagery layer (date) with its source and the SHA-256 of its files."""
    layers = ImageryLayer.objects.filter(project=project).prefetch_related("files").order_by("date", "id")
    return [{"id": layer.pk, "date": layer.date.isoformat(), "source": layer.source, "crs": layer.crs,
             "resolution": layer.resolution, "bounds_wgs84": layer.bounds_wgs84, "status": layer.status,
             "files": [{"name": f.original_name, "sha256": f.sha256, "size_bytes": f.size_bytes}
                       for f in layer.files.all()]} for layer in layers]


def _run_summary(run: ConsensusRun | None) -> dict[str, Any] | None:
    if run is None:
        return None
    return {"id": run.pk, "method": run.method, "parameters": run.parameters, "counts": run.counts,
            "timings": run.timings, "started_at": run.started_at.isoformat(),
            "finished_at": run.finished_at.isoformat() if run.finished_at else None}


def _index(project: Project, reviews: bool) -> ReviewIndex:
    return review_index(project=project) if reviews else EMPTY


# --- tiles -----------------------------------------------------------------------------------------------------------

TILE_VALUES = ("tile_id", "tile__col", "tile__row", "tile__status", "tile__west", "tile__south", "tile__east",
               "tile__north", "label", "confidence", "agreement", "counts", "n_votes", "n_decisive", "method")


def _tile_rows(project: Project, index: ReviewIndex) -> Iterator[dict[str, Any]]:
    rows = (TileConsensus.objects.filter(project=project).order_by("tile__row", "tile__col")
            .values(*TILE_VALUES))
    yield from rows.iterator(chunk_size=2000)
    # Tiles a coordinator labelled that have no consensus (no counted votes): the review is their label.
    with_consensus = set(TileConsensus.objects.filter(tile_id__in=list(index.tiles)).values_list("tile_id", flat=True))
    for tile in Tile.objects.filter(pk__in=[t for t in index.tiles if t not in with_consensus]).order_by("row", "col"):
        yield {"tile_id": tile.pk, "tile__col": tile.col, "tile__row": tile.row, "tile__status": tile.status,
               "tile__west": tile.west, "tile__south": tile.south, "tile__east": tile.east, "tile__north": tile.north,
               "label": None, "confidence": None, "agreement": None, "counts": {}, "n_votes": 0, "n_decisive": 0,
               "method": "review"}


def _with_classifications(rows: Iterator[dict[str, Any]]) -> Iterator[dict[str, Any]]:
    """Each tile row with the ids of its classifications, read a batch of tiles at a time."""
    batch: list[dict[str, Any]] = []
    for row in rows:
        batch.append(row)
        if len(batch) == 2000:
            yield from _classified(batch)
            batch = []
    yield from _classified(batch)


def _classified(batch: list[dict[str, Any]]) -> Iterator[dict[str, Any]]:
    if not batch:
        return
    ids: dict[int, list[int]] = {}
    for tile_id, pk in (Classification.objects.filter(tile_id__in=[r["tile_id"] for r in batch])
                        .order_by("tile_id", "id").values_list("tile_id", "id")):
        ids.setdefault(tile_id, []).append(pk)
    for row in batch:
        row["classification_ids"] = ids.get(row["tile_id"], [])
        yield row


def tile_records(*, project: Project, base_url: str = "", reviews: bool = True) -> Iterator[dict[str, Any]]:
    """Every tile with a consensus or a review: its properties (reviews applied or not) and WGS84 bounds."""
    keys, index = project.answer_keys, _index(project, reviews)
    for row in _with_classifications(_tile_rows(project, index)):
        review = index.tiles.get(row["tile_id"])
        state = tile_state({"label": row["label"], "confidence": row["confidence"]} if row["label"] else None, review)
        properties = {
            "tile_id": row["tile_id"], "tile_col": row["tile__col"], "tile_row": row["tile__row"],
            "label": state["label"], "confidence": state["confidence"], "agreement": row["agreement"],
            "n_votes": row["n_votes"], "n_decisive": row["n_decisive"]}
        properties |= {f"count_{key}": int(row["counts"].get(key, 0)) for key in keys}
        properties |= {"tile_status": row["tile__status"], "method": row["method"],
                       "west": row["tile__west"], "south": row["tile__south"], "east": row["tile__east"],
                       "north": row["tile__north"],
                       "votes_url": f"{base_url}/api/v1/tiles/{row['tile_id']}/classifications/",
                       "reviewed": state["reviewed"], "review_action": state["review_action"],
                       "review_id": state["review_id"], "review_ids": index.history_tiles.get(row["tile_id"], []),
                       "crowd_label": row["label"], "crowd_confidence": row["confidence"],
                       "classification_ids": row["classification_ids"]}
        yield properties


def tiles_geojson(*, project: Project, base_url: str = "", reviews: bool = True) -> Iterator[str]:
    """Every tile with a consensus as a WGS84 polygon with its label, confidence, agreement and votes per answer."""

    def features() -> Iterator[dict[str, Any]]:
        for p in tile_records(project=project, base_url=base_url, reviews=reviews):
            w, s, e, n = (p.pop(k) for k in ("west", "south", "east", "north"))
            yield {"type": "Feature", "id": p["tile_id"],
                   "geometry": {"type": "Polygon", "coordinates": [[[w, s], [e, s], [e, n], [w, n], [w, s]]]},
                   "properties": p}

    return _feature_collection(collection_properties(project=project, kind="tiles", reviews=reviews), features())


def tiles_csv(*, project: Project, base_url: str = "", reviews: bool = True) -> Iterator[str]:
    columns = tile_columns(project)
    records = ([_csv_value(column, p[column]) for column in columns]
               for p in tile_records(project=project, base_url=base_url, reviews=reviews))
    return _csv(columns, records)


# --- buildings -------------------------------------------------------------------------------------------------------


def _building_rows(project: Project, min_confidence: float, index: ReviewIndex) -> Iterator[Building]:
    reviewed = [pk for pk, review in index.buildings.items() if review.action != "reject"]
    rows = (Building.objects.filter(project=project, confidence__gte=min_confidence)
            | Building.objects.filter(project=project, pk__in=reviewed))  # a confirmed building counts, however sure
    return rows.order_by("-confidence", "id").iterator(chunk_size=2000)


def building_records(*, project: Project, base_url: str = "", min_confidence: float = 0.5,
                     reviews: bool = True) -> Iterator[dict[str, Any]]:
    """Buildings at least min_confidence sure (reviews applied: confirmed, moved and added ones too, rejected ones
    left out), each with its evidence: the classifications and reviews behind it."""
    index = _index(project, reviews)
    for b in _building_rows(project, min_confidence, index):
        state = building_state(b, index.buildings.get(b.pk))
        if state is None:
            continue
        yield {
            "building_id": b.pk, "lon": state["lon"], "lat": state["lat"], "ground_x": state["ground_x"],
            "ground_y": state["ground_y"], "confidence": state["confidence"], "uncertainty_m": b.uncertainty_m,
            "votes_for": b.n_support, "votes_against": b.n_oppose,
            "last_intact": b.last_intact.isoformat() if b.last_intact else None,
            "first_destroyed": b.first_destroyed.isoformat() if b.first_destroyed else None,
            "window_confidence": b.window_confidence, "is_gold": b.is_gold,
            "classification_ids": b.classification_ids, "opposing_classification_ids": b.opposing_classification_ids,
            "votes_url": f"{base_url}/api/v1/buildings/{b.pk}/classifications/", "source": "crowd", "added": None,
            "reviewed": state["reviewed"], "review_action": state["review_action"], "review_id": state["review_id"],
            "review_ids": index.history_buildings.get(b.pk, []), "crowd_confidence": b.confidence}
    for added in index.added:
        state = added_state(added)
        assert state is not None
        # As for a crowd building, review_action is what its live reviews decided ("add" while none came after
        # the add) and review_id the latest of them; added names the building (its add review, "review-<id>");
        # review_ids every review of it, the add review first and undone ones too.
        yield {
            "building_id": None, "lon": state["lon"], "lat": state["lat"], "ground_x": state["ground_x"],
            "ground_y": state["ground_y"], "confidence": 1.0, "uncertainty_m": 0.0, "votes_for": 0,
            "votes_against": 0, "last_intact": None, "first_destroyed": None, "window_confidence": None,
            "is_gold": False, "classification_ids": [], "opposing_classification_ids": [], "votes_url": None,
            "source": "review", "added": state["added"], "reviewed": True, "review_action": state["latest_action"],
            "review_id": state["latest_review_id"], "review_ids": index.history_added[added.pk],
            "crowd_confidence": None}


def feature_id(p: dict[str, Any]) -> str | int:
    """A building's id; an added building (no crowd row) is "review-<id of its add review>"."""
    return p["building_id"] if p["building_id"] is not None else f"review-{p['added']}"


def buildings_geojson(*, project: Project, base_url: str = "", min_confidence: float = 0.5,
                      reviews: bool = True) -> Iterator[str]:
    """Buildings at least min_confidence sure, as WGS84 points with the evidence and date window behind each."""
    features = ({"type": "Feature", "id": feature_id(p),
                 "geometry": {"type": "Point", "coordinates": [p.pop("lon"), p.pop("lat")]}, "properties": p}
                for p in building_records(project=project, base_url=base_url, min_confidence=min_confidence,
                                          reviews=reviews))
    properties = collection_properties(project=project, kind="buildings", min_confidence=min_confidence,
                                       reviews=reviews)
    return _feature_collection(properties, features)


def buildings_csv(*, project: Project, base_url: str = "", min_confidence: float = 0.5,
                  reviews: bool = True) -> Iterator[str]:
    records = ([_csv_value(column, p[column]) for column in BUILDING_COLUMNS]
               for p in building_records(project=project, base_url=base_url, min_confidence=min_confidence,
                                         reviews=reviews))
    return _csv(BUILDING_COLUMNS, records)


def _csv_value(column: str, value: Any) -> Any:
    if column in ID_LISTS:
        return " ".join(map(str, value))
    return value


def _feature_collection(properties: dict[str, Any], features: Iterable[dict[str, Any]]) -> Iterator[str]:
    # "properties" on a FeatureCollection is a foreign member, which RFC 7946 (section 6.1) allows.
    yield '{"type": "FeatureCollection", "properties": ' + json.dumps(properties, default=str) + ', "features": ['
    batch: list[str] = []
    first = True
    for feature in features:
        batch.append(json.dumps(feature, default=str))
        if len(batch) == CHUNK:
            yield ("" if first else ",") + ",".join(batch)
            batch, first = [], False
    if batch:
        yield ("" if first else ",") + ",".join(batch)
    yield "]}\n"


class _Line:
    """A file-like object csv.writer writes one line into, for streaming."""

    def write(self, text: str) -> str:
        return text


def _csv(columns: list[str], records: Iterable[list[Any]]) -> Iterator[str]:
    writer = csv.writer(_Line())
    yield writer.writerow(columns)
    batch: list[str] = []
    for record in records:
        batch.append(writer.writerow(["" if value is None else value for value in record]))
        if len(batch) == CHUNK:
            yield "".join(batch)
            batch = []
    if batch:
        yield "".join(batch)


def consensus_summary(*, project: Project) -> dict[str, Any]:
    """Tiles per status and per consensus label, buildings found, and the latest run: the coordinators' overview."""
    tiles = Tile.objects.filter(grid__project=project).order_by()
    labels = TileConsensus.objects.filter(project=project).order_by()
    return {
        "project": project.slug,
        "tiles": dict(tiles.values_list("status").annotate(n=Count("id")).values_list("status", "n")),
        "labels": dict(labels.values_list("label").annotate(n=Count("id")).values_list("label", "n")),
        "buildings": Building.objects.filter(project=project, confidence__gte=0.5).count(),
        "run": _run_summary(access_latest_run(project=project)),
    }
