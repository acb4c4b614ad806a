"""The consensus in formats GIS people open directly: GeoPackage (QGIS, ArcGIS) and KML (Google Earth).

Both carry the same rows as the GeoJSON and CSV exports (tagging/consensus_exports.py: reviews
applied unless reviews=False) and the same provenance: in a GeoPackage as the layer's metadata
(key "provenance", JSON, in the gpkg_metadata table) and its description (gpkg_contents); in KML
as the Document's ExtendedData and description.

A GeoPackage is written with pyogrio (GDAL bundled in its wheel) into a file, since SQLite needs
one; the API streams that file (FileResponse). KML is plain XML and streams as text chunks.
"""

from __future__ import annotations

import json
import struct
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from xml.sax.saxutils import escape

import numpy as np
import pyogrio.raw

from tagging.consensus_exports import (
    BUILDING_COLUMNS,
    CHUNK,
    building_records,
    collection_properties,
    feature_id,
    tile_columns,
    tile_records,
    write_atomically,
)
from tagging.models import Project

GIS_EXPORTS = ("tiles.gpkg", "buildings.gpkg", "tiles.kml", "buildings.kml")
KML_NS = "http://www.opengis.net/kml/2.2"
INTEGER = {"tile_id", "tile_col", "tile_row", "n_votes", "n_decisive", "building_id", "votes_for", "votes_against",
           "review_id", "added"}
REAL = {"confidence", "agreement", "crowd_confidence", "ground_x", "ground_y", "uncertainty_m", "window_confidence",
        "lon", "lat", "west", "south", "east", "north"}
BOOLEAN = {"reviewed", "is_gold"}


def _kind_of(name: str) -> str:
    return "tiles" if name.startswith("tiles") else "buildings"


def _records(project: Project, kind: str, *, base_url: str, min_confidence: float,
             reviews: bool) -> Iterator[dict[str, Any]]:
    if kind == "tiles":
        return tile_records(project=project, base_url=base_url, reviews=reviews)
    return building_records(project=project, base_url=base_url, min_confidence=min_confidence, reviews=reviews)


def _columns(project: Project, kind: str) -> list[str]:
    return tile_columns(project) if kind == "tiles" else BUILDING_COLUMNS


def _text(value: Any) -> str | None:
    if value is None:
        return None
    if isinstance(value, (list, dict)):
        return " ".join(map(str, value)) if isinstance(value, list) else json.dumps(value)
    return str(value)


# --- GeoPackage ------------------------------------------------------------------------------------------------------


def _point_wkb(lon: float, lat: float) -> bytes:
    return struct.pack("<BIdd", 1, 1, lon, lat)


def _box_wkb(west: float, south: float, east: float, north: float) -> bytes:
    ring = [(west, south), (east, south), (east, north), (west, north), (west, south)]
    return struct.pack("<BIII", 1, 3, 1, len(ring)) + b"".join(struct.pack("<dd", x, y) for x, y in ring)


def _field(name: str, values: list[Any]) -> tuple[np.ndarray, np.ndarray | None]:
    """A column as pyogrio takes it: typed array, and a mask of the empty values (None: no mask needed)."""
    missing = np.array([v is None for v in values], dtype=bool)
    if name in INTEGER or name.startswith("count_"):
        return np.array([0 if v is None else int(v) for v in values], dtype=np.int64), missing
    if name in REAL:
        return np.array([np.nan if v is None else float(v) for v in values], dtype=np.float64), None
    if name in BOOLEAN:
        return np.array([bool(v) for v in values], dtype=bool), None
    return np.array([_text(v) for v in values], dtype=object), None


def write_gpkg(*, project: Project, name: str, path: Path, base_url: str = "", min_confidence: float = 0.5,
               reviews: bool = True) -> Path:
    """Write tiles.gpkg (polygons) or buildings.gpkg (points), WGS84, one layer named after the kind, to path.

    The rows are gathered in memory (pyogrio writes whole columns): about 1 KB per row, so 200 MB
    for 200,000 tiles. The provenance is the layer's metadata.
    """
    kind = _kind_of(name)
    columns = _columns(project, kind)
    geometry: list[bytes] = []
    values: dict[str, list[Any]] = {column: [] for column in columns}
    for record in _records(project, kind, base_url=base_url, min_confidence=min_confidence, reviews=reviews):
        if kind == "tiles":
            geometry.append(_box_wkb(record["west"], record["south"], record["east"], record["north"]))
        else:
            geometry.append(_point_wkb(record["lon"], record["lat"]))
        for column in columns:
            values[column].append(record[column])
    fields = [_field(column, values[column]) for column in columns]
    properties = collection_properties(project=project, kind=kind, reviews=reviews,
                                       min_confidence=min_confidence if kind == "buildings" else None)
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(f".{path.name}.partial.gpkg")
    partial.unlink(missing_ok=True)
    pyogrio.raw.write(
        str(partial), geometry=np.array(geometry, dtype=object), field_data=[f[0] for f in fields], fields=columns,
        field_mask=[f[1] for f in fields], layer=kind, driver="GPKG", crs="EPSG:4326",
        geometry_type="Polygon" if kind == "tiles" else "Point",
        layer_metadata={"provenance": json.dumps(properties, default=str)},
        layer_options={"DESCRIPTION": _summary(properties), "IDENTIFIER": f"{project.slug} {kind}"})
    partial.replace(path)
    return path


# --- KML -------------------------------------------------------------------------------------------------------------


def _summary(properties: dict[str, Any]) -> str:
    run = properties.get("run") or {}
    dates = ", ".join(layer["date"] for layer in properties.get("layers", []))
    return (f"{properties['name']} ({properties['project']}): {properties['kind']}, "
            f"reviews {'applied' if properties['reviews']['applied'] else 'not applied (crowd only)'}; "
            f"imagery dates {dates or 'none'}; method {run.get('method', 'none')} (run {run.get('id', '-')}); "
            f"exported {properties['generated_at']}.")


def _data(parent: ET.Element, name: str, value: Any) -> None:
    data = ET.SubElement(parent, "Data", name=name)
    ET.SubElement(data, "value").text = "" if value is None else (
        json.dumps(value, default=str) if isinstance(value, (dict, list)) and name in PROVENANCE_JSON else _text(value))


PROVENANCE_JSON = {"run", "layers", "answers", "reviews", "run_parameters"}


def _placemark(kind: str, record: dict[str, Any], columns: list[str]) -> ET.Element:
    placemark = ET.Element("Placemark", id=f"{kind}-{feature_id(record) if kind == 'buildings' else record['tile_id']}")
    if kind == "tiles":
        ET.SubElement(placemark, "name").text = f"tile {record['tile_col']},{record['tile_row']}: {record['label']}"
    else:
        ET.SubElement(placemark, "name").text = f"building {feature_id(record)} ({record['confidence']:.2f})"
    ET.SubElement(placemark, "styleUrl").text = "#reviewed" if record["reviewed"] else "#crowd"
    extended = ET.SubElement(placemark, "ExtendedData")
    for column in columns:
        _data(extended, column, record[column])
    if kind == "tiles":
        w, s, e, n = record["west"], record["south"], record["east"], record["north"]
        ring = ET.SubElement(ET.SubElement(ET.SubElement(placemark, "Polygon"), "outerBoundaryIs"), "LinearRing")
        ET.SubElement(ring, "coordinates").text = " ".join(
            f"{x!r},{y!r}" for x, y in [(w, s), (e, s), (e, n), (w, n), (w, s)])
    else:
        ET.SubElement(ET.SubElement(placemark, "Point"), "coordinates").text = f"{record['lon']!r},{record['lat']!r}"
    return placemark


def _styles() -> str:
    return ('<Style id="crowd"><IconStyle><color>ff1c19d7</color></IconStyle>'
            '<LineStyle><color>ff1c19d7</color></LineStyle><PolyStyle><color>401c19d7</color></PolyStyle></Style>'
            '<Style id="reviewed"><IconStyle><color>ffb07105</color></IconStyle>'
            '<LineStyle><color>ffb07105</color></LineStyle><PolyStyle><color>40b07105</color></PolyStyle></Style>')


def kml_text(*, project: Project, name: str, base_url: str = "", min_confidence: float = 0.5,
             reviews: bool = True) -> Iterator[str]:
    """tiles.kml or buildings.kml as text chunks: a Document with the provenance, a Placemark per row."""
    kind = _kind_of(name)
    columns = _columns(project, kind)
    properties = collection_properties(project=project, kind=kind, reviews=reviews,
                                       min_confidence=min_confidence if kind == "buildings" else None)
    head = ET.Element("ExtendedData")
    for key, value in properties.items():
        _data(head, key, value)
    yield (f'<?xml version="1.0" encoding="UTF-8"?>\n<kml xmlns="{KML_NS}"><Document>'
           f"<name>{escape(project.name)} {kind}</name><description>{escape(_summary(properties))}</description>"
           + ET.tostring(head, encoding="unicode") + _styles())
    batch: list[str] = []
    for record in _records(project, kind, base_url=base_url, min_confidence=min_confidence, reviews=reviews):
        batch.append(ET.tostring(_placemark(kind, record, columns), encoding="unicode"))
        if len(batch) == CHUNK:
            yield "".join(batch)
            batch = []
    yield "".join(batch) + "</Document></kml>\n"


def write_gis_exports(*, project: Project, folder: Path, names: tuple[str, ...] = GIS_EXPORTS,
                      min_confidence: float = 0.5, reviews: bool = True) -> list[Path]:
    """Write the GeoPackage and KML exports `names` into folder; the paths."""
    paths = []
    for name in names:
        if name.endswith(".gpkg"):
            paths.append(write_gpkg(project=project, name=name, path=folder / name, min_confidence=min_confidence,
                                    reviews=reviews))
        else:
            folder.mkdir(parents=True, exist_ok=True)
            paths.append(write_atomically(folder / name, kml_text(
                project=project, name=name, min_confidence=min_confidence, reviews=reviews)))
    return paths
