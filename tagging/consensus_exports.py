"""The consensus as files: tiles and buildings as GeoJSON (RFC 7946, WGS84) and CSV.

Each export is a generator of text chunks, read from the database in batches, so a project of
200,000 tiles streams in constant memory, through the API (StreamingHttpResponse) or to a file
(the export_consensus command). A GeoJSON collection names in its "properties" the consensus run
it comes from, with method, parameters and counts, so a finding can be re-derived.
"""

from __future__ import annotations

import csv
import json
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

from django.db.models import Count
from django.utils import timezone

from imagery.models import Tile
from tagging.consensus_store import access_latest_run
from tagging.models import Building, ConsensusRun, Project, TileConsensus

CHUNK = 500  # features per yielded piece of text
TILE_COLUMNS = ["tile_id", "tile_col", "tile_row", "label", "confidence", "agreement", "n_votes", "n_decisive"]
TILE_TAIL = ["tile_status", "method", "west", "south", "east", "north", "votes_url"]
BUILDING_COLUMNS = ["building_id", "lon", "lat", "ground_x", "ground_y", "confidence", "uncertainty_m",
                    "votes_for", "votes_against", "last_intact", "first_destroyed", "window_confidence", "is_gold",
                    "classification_ids", "opposing_classification_ids", "votes_url"]
EXPORTS = ("tiles.geojson", "tiles.csv", "buildings.geojson", "buildings.csv")


def count_columns(project: Project) -> list[str]:
    return [f"count_{key}" for key in project.answer_keys]


def tile_columns(project: Project) -> list[str]:
    return TILE_COLUMNS + count_columns(project) + TILE_TAIL


def export_text(*, project: Project, name: str, base_url: str = "", min_confidence: float = 0.5) -> Iterator[str]:
    """The export `name` (one of EXPORTS) as text chunks; links start with base_url (e.g. https://host)."""
    if name == "tiles.geojson":
        return tiles_geojson(project=project, base_url=base_url)
    if name == "tiles.csv":
        return tiles_csv(project=project, base_url=base_url)
    if name == "buildings.geojson":
        return buildings_geojson(project=project, base_url=base_url, min_confidence=min_confidence)
    if name == "buildings.csv":
        return buildings_csv(project=project, base_url=base_url, min_confidence=min_confidence)
    raise ValueError(f"unknown export {name}")


def write_exports(*, project: Project, folder: Path, min_confidence: float = 0.5) -> list[Path]:
    """Write the four exports into folder (made if missing), each through a temporary name; returns the paths."""
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for name in EXPORTS:
        path = folder / name
        partial = folder / f".{name}.partial"
        with partial.open("w", encoding="utf-8", newline="") as out:
            for chunk in export_text(project=project, name=name, min_confidence=min_confidence):
                out.write(chunk)
        partial.replace(path)  # a failure leaves no half-written export under the real name
        paths.append(path)
    return paths


def collection_properties(*, project: Project, kind: str, min_confidence: float | None = None) -> dict[str, Any]:
    """What a reader needs to trust and re-derive the collection: the run, its method and parameters."""
    run = access_latest_run(project=project)
    properties: dict[str, Any] = {
        "project": project.slug, "name": project.name, "kind": kind, "generated_at": timezone.now().isoformat(),
        "answers": project.answers, "coordinates": "WGS84 longitude, latitude (RFC 7946)",
        "run": _run_summary(run),
    }
    grid = getattr(project, "grid", None)
    if grid is not None:
        properties["grid_crs"] = grid.crs  # of ground_x / ground_y, metres
    if min_confidence is not None:
        properties["min_confidence"] = min_confidence
    return properties


def _run_summary(run: ConsensusRun | None) -> dict[str, Any] | None:
    if run is None:
        return None
    return {"id": run.pk, "method": run.method, "parameters": run.parameters, "counts": run.counts,
            "timings": run.timings, "started_at": run.started_at.isoformat(),
            "finished_at": run.finished_at.isoformat() if run.finished_at else None}


def _tile_rows(project: Project) -> Iterator[dict[str, Any]]:
    rows = (TileConsensus.objects.filter(project=project).order_by("tile__row", "tile__col")
            .values("tile_id", "tile__col", "tile__row", "tile__status", "tile__west", "tile__south", "tile__east",
                    "tile__north", "label", "confidence", "agreement", "counts", "n_votes", "n_decisive", "method"))
    return rows.iterator(chunk_size=2000)


def _tile_properties(row: dict[str, Any], keys: list[str], base_url: str) -> dict[str, Any]:
    properties = {
        "tile_id": row["tile_id"], "tile_col": row["tile__col"], "tile_row": row["tile__row"], "label": row["label"],
        "confidence": row["confidence"], "agreement": row["agreement"], "n_votes": row["n_votes"],
        "n_decisive": row["n_decisive"]}
    properties |= {f"count_{key}": int(row["counts"].get(key, 0)) for key in keys}
    properties |= {"tile_status": row["tile__status"], "method": row["method"],
                   "votes_url": f"{base_url}/api/v1/tiles/{row['tile_id']}/classifications/"}
    return properties


def tiles_geojson(*, project: Project, base_url: str = "") -> Iterator[str]:
    """Every tile with a consensus as a WGS84 polygon with its label, confidence, agreement and votes per answer."""
    keys = project.answer_keys

    def features() -> Iterator[dict[str, Any]]:
        for row in _tile_rows(project):
            w, s, e, n = row["tile__west"], row["tile__south"], row["tile__east"], row["tile__north"]
            yield {"type": "Feature", "id": row["tile_id"],
                   "geometry": {"type": "Polygon", "coordinates": [[[w, s], [e, s], [e, n], [w, n], [w, s]]]},
                   "properties": _tile_properties(row, keys, base_url)}

    return _feature_collection(collection_properties(project=project, kind="tiles"), features())


def tiles_csv(*, project: Project, base_url: str = "") -> Iterator[str]:
    keys, columns = project.answer_keys, tile_columns(project)

    def records() -> Iterator[list[Any]]:
        for row in _tile_rows(project):
            properties = _tile_properties(row, keys, base_url)
            properties |= {"west": row["tile__west"], "south": row["tile__south"], "east": row["tile__east"],
                           "north": row["tile__north"]}
            yield [properties[column] for column in columns]

    return _csv(columns, records())


def _building_rows(project: Project, min_confidence: float) -> Iterator[Building]:
    return (Building.objects.filter(project=project, confidence__gte=min_confidence).order_by("-confidence", "id")
            .iterator(chunk_size=2000))


def _building_properties(b: Building, base_url: str) -> dict[str, Any]:
    return {
        "building_id": b.pk, "confidence": b.confidence, "uncertainty_m": b.uncertainty_m, "votes_for": b.n_support,
        "votes_against": b.n_oppose, "last_intact": b.last_intact.isoformat() if b.last_intact else None,
        "first_destroyed": b.first_destroyed.isoformat() if b.first_destroyed else None,
        "window_confidence": b.window_confidence, "is_gold": b.is_gold, "ground_x": b.ground_x,
        "ground_y": b.ground_y, "classification_ids": b.classification_ids,
        "opposing_classification_ids": b.opposing_classification_ids,
        "votes_url": f"{base_url}/api/v1/buildings/{b.pk}/classifications/"}


def buildings_geojson(*, project: Project, base_url: str = "", min_confidence: float = 0.5) -> Iterator[str]:
    """Buildings at least min_confidence sure, as WGS84 points with the evidence and date window behind each."""
    features = ({"type": "Feature", "id": b.pk, "geometry": {"type": "Point", "coordinates": [b.lon, b.lat]},
                 "properties": _building_properties(b, base_url)}
                for b in _building_rows(project, min_confidence))
    properties = collection_properties(project=project, kind="buildings", min_confidence=min_confidence)
    return _feature_collection(properties, features)


def buildings_csv(*, project: Project, base_url: str = "", min_confidence: float = 0.5) -> Iterator[str]:
    def records() -> Iterator[list[Any]]:
        for b in _building_rows(project, min_confidence):
            properties = _building_properties(b, base_url) | {"lon": b.lon, "lat": b.lat}
            properties["classification_ids"] = " ".join(map(str, b.classification_ids))
            properties["opposing_classification_ids"] = " ".join(map(str, b.opposing_classification_ids))
            yield [properties[column] for column in BUILDING_COLUMNS]

    return _csv(BUILDING_COLUMNS, records())


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
