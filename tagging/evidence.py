"""The evidence bundle: one zip that lets someone outside the team re-derive and check every finding.

It holds the consensus exports with the reviews applied and without them; every classification
and mark; the gold tiles, each volunteer's gold results and estimated reliability; every review
with what it decides (target; an added building's reviews name it in `added`) and the state before
and after it (reviews.json, reviews.csv); the imagery layers (files, dates, CRS, SHA-256); the grid;
the method, its parameters and the code version; a methodology note; and MANIFEST.sha256, the
SHA-256 of every other file (check with `sha256sum -c MANIFEST.sha256` in the unzipped folder).

Every building and tile row names the classifications and reviews behind it (classification_ids,
review_ids), which are the ids in classifications.csv and reviews.json: the chain of custody.

Volunteers and reviewers appear under a pseudonym that is stable within a project (the same
person is the same pseudonym in every bundle of the project) but is neither their username
(usernames are often real names or e-mail handles) nor linkable across projects: an HMAC-SHA256
of (project id, user id) under the server's EVIDENCE_PSEUDONYM_KEY, or SECRET_KEY when unset.
Rotating that key changes the pseudonyms of later bundles.

The zip is written into a file (zipfile, member by member, hashing as it writes), so a project of
a million votes costs a file on disk, not memory; the API streams that file.
"""

from __future__ import annotations

import csv
import hashlib
import hmac
import io
import json
import subprocess
import tempfile
import zipfile
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import IO, Any

from django.conf import settings
from django.db.models import Prefetch
from django.utils import timezone
from pyproj import Transformer

from imagery.models import Grid, ImageryLayer, Tile
from tagging.consensus_exports import EXPORTS, _run_summary, export_text, layers_summary, provenance
from tagging.consensus_store import access_latest_run
from tagging.gis_exports import GIS_EXPORTS, kml_text, write_gpkg
from tagging.models import Classification, GoldAnswer, Mark, Project, Review, VolunteerReliability
from tagging.reviews import target_of

CODE_VERSION = "0.1.0"  # the platform's version when git cannot tell (an installed copy without .git)
MANIFEST = "MANIFEST.sha256"
BATCH = 2000


def pseudonym(project: Project, user_id: int | None, *, prefix: str = "v") -> str | None:
    """A volunteer's (prefix v) or reviewer's (prefix c) pseudonym in this project; None for a deleted account."""
    if user_id is None:
        return None
    key = getattr(settings, "EVIDENCE_PSEUDONYM_KEY", "") or settings.SECRET_KEY
    digest = hmac.new(key.encode(), f"{project.pk}:{user_id}".encode(), hashlib.sha256).hexdigest()
    return f"{prefix}-{digest[:12]}"


def code_version() -> str:
    """`git describe` of the running code when it is a git checkout, else CODE_VERSION."""
    try:
        described = subprocess.run(["git", "describe", "--always", "--dirty", "--tags"], cwd=settings.BASE_DIR,
                                   capture_output=True, text=True, timeout=5, check=True).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        described = ""
    return f"git {described}" if described else CODE_VERSION


class _Bundle:
    """A zip being written, with the SHA-256 of every member for the manifest."""

    def __init__(self, target: IO[bytes]) -> None:
        self.zip = zipfile.ZipFile(target, "w", compression=zipfile.ZIP_DEFLATED, allowZip64=True)
        self.hashes: dict[str, str] = {}

    def text(self, name: str, chunks: Iterable[str]) -> None:
        digest = hashlib.sha256()
        with self.zip.open(name, "w", force_zip64=True) as member:
            for chunk in chunks:
                data = chunk.encode()
                digest.update(data)
                member.write(data)
        self.hashes[name] = digest.hexdigest()

    def json(self, name: str, value: Any) -> None:
        self.text(name, [json.dumps(value, indent=2, default=str, ensure_ascii=False) + "\n"])

    def csv(self, name: str, columns: list[str], rows: Iterable[list[Any]]) -> None:
        def chunks() -> Iterator[str]:
            buffer = io.StringIO()
            writer = csv.writer(buffer)
            writer.writerow(columns)
            for n, row in enumerate(rows, 1):
                writer.writerow(["" if v is None else v for v in row])
                if n % BATCH == 0:
                    yield buffer.getvalue()
                    buffer.seek(0)
                    buffer.truncate()
            yield buffer.getvalue()

        self.text(name, chunks())

    def file(self, name: str, path: Path) -> None:
        digest = hashlib.sha256()
        with path.open("rb") as source, self.zip.open(name, "w", force_zip64=True) as member:
            while block := source.read(1 << 20):
                digest.update(block)
                member.write(block)
        self.hashes[name] = digest.hexdigest()

    def close(self) -> None:
        # sha256sum -c format: "<hex>  <path>", two spaces (text mode), one file a line.
        manifest = "".join(f"{digest}  {name}\n" for name, digest in sorted(self.hashes.items()))
        self.zip.writestr(MANIFEST, manifest)
        self.zip.close()


def write_evidence(*, project: Project, target: IO[bytes], min_confidence: float = 0.5) -> dict[str, str]:
    """Write the evidence bundle of the project as a zip into target (a binary file open for writing).

    Returns {member name: sha256} (the manifest). Reads the database a batch at a time; the
    GeoPackages pass through a temporary folder.
    """
    bundle = _Bundle(target)
    try:
        _write_members(bundle, project, min_confidence)
    except BaseException:
        bundle.zip.close()  # the caller discards the half-made file
        raise
    bundle.close()
    return bundle.hashes


def _write_members(bundle: _Bundle, project: Project, min_confidence: float) -> None:
    generated_at = timezone.now()
    with tempfile.TemporaryDirectory(prefix="evidence-") as scratch:
        for reviews, folder in ((True, "consensus/reviewed"), (False, "consensus/crowd")):
            for name in EXPORTS:
                bundle.text(f"{folder}/{name}", export_text(project=project, name=name, reviews=reviews,
                                                            min_confidence=min_confidence))
            for name in GIS_EXPORTS:
                if name.endswith(".kml"):
                    bundle.text(f"{folder}/{name}", kml_text(project=project, name=name, reviews=reviews,
                                                             min_confidence=min_confidence))
                else:
                    path = write_gpkg(project=project, name=name, path=Path(scratch) / folder / name,
                                      min_confidence=min_confidence, reviews=reviews)
                    bundle.file(f"{folder}/{name}", path)
            bundle.json(f"{folder}/provenance.json", provenance(project=project, kind="consensus", reviews=reviews,
                                                                 min_confidence=min_confidence))
    bundle.csv("classifications.csv", CLASSIFICATION_COLUMNS, classification_rows(project))
    bundle.csv("marks.csv", MARK_COLUMNS, mark_rows(project))
    bundle.csv("gold/gold_tiles.csv", ["tile_id", "tile_col", "tile_row", "answer", "marks_px"], gold_rows(project))
    bundle.csv("gold/gold_results.csv", GOLD_RESULT_COLUMNS, gold_result_rows(project))
    bundle.csv("volunteers/reliability.csv", RELIABILITY_COLUMNS, reliability_rows(project))
    reviews = reviews_json(project)
    bundle.json("reviews.json", reviews)
    bundle.csv("reviews.csv", REVIEW_COLUMNS, review_rows(reviews))
    bundle.json("imagery.json", imagery_json(project))
    bundle.json("grid.json", grid_json(project))
    method = method_json(project, generated_at=generated_at, min_confidence=min_confidence)
    bundle.json("method.json", method)
    bundle.text("METHODOLOGY.md", [methodology(project, method)])


def write_evidence_file(*, project: Project, path: Path, min_confidence: float = 0.5) -> Path:
    """The bundle at path, written through a temporary name so that a failure leaves no half-made zip."""
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(f".{path.name}.partial")
    try:
        with partial.open("wb") as out:
            write_evidence(project=project, target=out, min_confidence=min_confidence)
    except BaseException:
        partial.unlink(missing_ok=True)
        raise
    partial.replace(path)
    return path


# --- the crowd --------------------------------------------------------------------------------------------------------

CLASSIFICATION_COLUMNS = ["classification_id", "volunteer", "tile_id", "tile_col", "tile_row", "answer", "created_at",
                          "seconds", "too_fast", "is_gold", "source", "mark_ids"]
MARK_COLUMNS = ["mark_id", "classification_id", "x_px", "y_px", "ground_x", "ground_y", "lon", "lat", "date"]
GOLD_RESULT_COLUMNS = ["volunteer", "classification_id", "tile_id", "answer", "gold_answer", "correct"]
RELIABILITY_COLUMNS = ["volunteer", "reliability", "accuracy", "n_votes", "n_gold", "n_gold_correct", "hit_rate",
                       "false_rate", "confusion"]


def classification_rows(project: Project) -> Iterator[list[Any]]:
    classifications = (Classification.objects.filter(project=project).select_related("tile").order_by("id")
                       .prefetch_related(Prefetch("marks", queryset=Mark.objects.order_by("id").only("id",
                                                                                                     "classification"))))
    for c in classifications.iterator(chunk_size=BATCH):
        yield [c.pk, pseudonym(project, c.volunteer_id), c.tile_id, c.tile.col, c.tile.row, c.answer,
               c.created_at.isoformat(), c.seconds, c.too_fast, c.is_gold, c.source,
               " ".join(str(m.pk) for m in c.marks.all())]


def mark_rows(project: Project) -> Iterator[list[Any]]:
    grid = Grid.objects.filter(project=project).first()
    to_wgs84 = Transformer.from_crs(grid.crs, "EPSG:4326", always_xy=True) if grid else None
    marks = (Mark.objects.filter(classification__project=project).order_by("id")
             .values_list("id", "classification_id", "x", "y", "ground_x", "ground_y", "layer__date"))
    batch: list[tuple[Any, ...]] = []
    for mark in marks.iterator(chunk_size=BATCH):
        batch.append(mark)
        if len(batch) == BATCH:
            yield from _mark_batch(batch, to_wgs84)
            batch = []
    yield from _mark_batch(batch, to_wgs84)


def _mark_batch(batch: list[tuple[Any, ...]], to_wgs84: Transformer | None) -> Iterator[list[Any]]:
    if not batch:
        return
    if to_wgs84 is not None:
        lon, lat = to_wgs84.transform([m[4] for m in batch], [m[5] for m in batch])
    else:
        lon = lat = [None] * len(batch)
    for m, x, y in zip(batch, lon, lat):
        yield [m[0], m[1], m[2], m[3], m[4], m[5], None if x is None else round(float(x), 8),
               None if y is None else round(float(y), 8), m[6].isoformat() if m[6] else None]


def gold_rows(project: Project) -> Iterator[list[Any]]:
    for gold in GoldAnswer.objects.filter(tile__grid__project=project).select_related("tile").order_by("tile_id"):
        yield [gold.tile_id, gold.tile.col, gold.tile.row, gold.answer, json.dumps(gold.marks)]


def gold_result_rows(project: Project) -> Iterator[list[Any]]:
    gold = dict(GoldAnswer.objects.filter(tile__grid__project=project).values_list("tile_id", "answer"))
    votes = (Classification.objects.filter(project=project, tile_id__in=list(gold)).order_by("volunteer_id", "id")
             .values_list("volunteer_id", "id", "tile_id", "answer"))
    for volunteer_id, pk, tile_id, answer in votes.iterator(chunk_size=BATCH):
        yield [pseudonym(project, volunteer_id), pk, tile_id, answer, gold[tile_id], answer == gold[tile_id]]


def reliability_rows(project: Project) -> Iterator[list[Any]]:
    for r in VolunteerReliability.objects.filter(project=project).order_by("volunteer_id"):
        yield [pseudonym(project, r.volunteer_id), r.reliability, r.accuracy, r.n_votes, r.n_gold, r.n_gold_correct,
               r.hit_rate, r.false_rate, json.dumps(r.confusion)]


REVIEW_COLUMNS = ["id", "target", "tile_id", "building_id", "added", "action", "label", "ground_x", "ground_y", "lon",
                  "lat", "note", "reviewer", "created_at", "undone_at", "undone_by", "before", "after"]
TARGET_PREFIX = {"tile": "tile", "building": "building", "added": "review"}


def review_target(review: Review) -> str | None:
    """What the review decides, as the exports name it: "tile-<id>", "building-<id>", or "review-<id of the add
    review>" for a building a coordinator added (its add review and every later review of it); None for a review
    of a building a later consensus no longer finds."""
    target = target_of(review)
    return f"{TARGET_PREFIX[target[0]]}-{target[1]}" if target else None


def reviews_json(project: Project) -> list[dict[str, Any]]:
    """Every review, undone ones too, in the order they count (created_at, then id): what was decided on what
    (target groups the reviews of one tile or building), the state before and after, who, when, undone or not."""
    return [{"id": r.pk, "target": review_target(r), "tile_id": r.tile_id, "building_id": r.building_id,
             "added": r.added_id, "action": r.action, "label": r.label or None, "ground_x": r.ground_x,
             "ground_y": r.ground_y, "lon": r.lon, "lat": r.lat, "note": r.note,
             "reviewer": pseudonym(project, r.reviewer_id, prefix="c"), "created_at": r.created_at.isoformat(),
             "undone_at": r.undone_at.isoformat() if r.undone_at else None,
             "undone_by": pseudonym(project, r.undone_by_id, prefix="c"), "before": r.before, "after": r.after}
            for r in Review.objects.filter(project=project).order_by("created_at", "id")]


def review_rows(reviews: list[dict[str, Any]]) -> Iterator[list[Any]]:
    """reviews.json as rows of reviews.csv: the states before and after as JSON text."""
    for review in reviews:
        yield [json.dumps(review[c], sort_keys=True) if c in ("before", "after") else review[c]
               for c in REVIEW_COLUMNS]


# --- imagery, grid, method ------------------------------------------------------------------------------------------


def imagery_json(project: Project) -> list[dict[str, Any]]:
    layers = {layer["id"]: layer for layer in layers_summary(project)}
    for layer in ImageryLayer.objects.filter(project=project).prefetch_related("files"):
        layers[layer.pk] |= {"bounds": layer.bounds, "width": layer.width, "height": layer.height,
                             "band_count": layer.band_count, "dtype": layer.dtype, "tile_count": layer.tile_count,
                             "files": [{"position": f.position, "name": f.original_name, "path": f.path,
                                        "sha256": f.sha256, "size_bytes": f.size_bytes} for f in layer.files.all()]}
    return list(layers.values())


def grid_json(project: Project) -> dict[str, Any] | None:
    grid = Grid.objects.filter(project=project).first()
    if grid is None:
        return None
    return {"crs": grid.crs, "origin_x": grid.origin_x, "origin_y": grid.origin_y, "pixel_size": grid.pixel_size,
            "width": grid.width, "height": grid.height, "tile_size": grid.tile_size, "overlap": grid.overlap,
            "stride": grid.tile_size - grid.overlap, "tiles": Tile.objects.filter(grid=grid).count(),
            "convention": "tile (col, row) covers grid pixels from (col*stride, row*stride) of the top-left corner "
                          "(origin_x, origin_y); mark pixels x right, y down from the tile's top-left corner"}


def method_json(project: Project, *, generated_at: Any, min_confidence: float) -> dict[str, Any]:
    return {
        "project": {"slug": project.slug, "name": project.name, "question": project.question,
                    "answers": project.answers, "instructions": project.instructions,
                    "redundancy": project.redundancy, "retire_confidence": project.retire_confidence,
                    "gold_rate": project.gold_rate, "scheduling": project.scheduling, "status": project.status,
                    "consensus_settings": project.consensus_settings,
                    "published_at": project.published_at.isoformat() if project.published_at else None},
        "run": _run_summary(access_latest_run(project=project)),
        "code_version": code_version(),
        "generated_at": generated_at.isoformat(),
        "min_confidence": min_confidence,
        "pseudonyms": "HMAC-SHA256(server key, '<project id>:<user id>'), first 12 hex digits; v- volunteers, "
                      "c- coordinators. Stable within the project, not linkable to usernames or across projects.",
    }


def methodology(project: Project, method: dict[str, Any]) -> str:
    """The methodology note, in Markdown, from the project's settings and the latest consensus run."""
    p, run = method["project"], method["run"] or {}
    answers = "\n".join(f"- `{a['key']}`: {a['label']}{' (asks for point marks)' if a.get('damage') else ''}"
                        f"{' (abstention)' if a.get('abstain') else ''}" for a in p["answers"])
    dates = ", ".join(f"{layer.date}" for layer in ImageryLayer.objects.filter(project=project).order_by("date"))
    return f"""# Methodology: {project.name}

Generated {method['generated_at']} by code version `{method['code_version']}`.

## Question asked of volunteers

> {p['question']}

Answers:

{answers}

Each tile was to be seen by {p['redundancy']} distinct volunteers; gold tiles (known answers) were mixed in
at a rate of {p['gold_rate']:.0%}{'' if p['retire_confidence'] is None else
f", and a tile retired early once the consensus was {p['retire_confidence']} sure"}. Imagery dates: {dates or 'none'}
(see `imagery.json` for every source file with its SHA-256, and `grid.json` for the tile grid).

## Consensus

Method: {run.get('method', 'no consensus run yet')} (run {run.get('id', '-')}, finished {run.get('finished_at')}).
Parameters are in `method.json` (`run.parameters`) and in every export's provenance.

Tile labels weigh each volunteer by a confusion matrix estimated by expectation-maximisation (Dawid-Skene),
seeded by the gold tiles; the confidence is the estimated probability that the label is right. Buildings
are candidate points from volunteers' clicks (ground metres); each candidate's confidence is the posterior
probability that it is a destroyed building, given who marked it and who saw the spot without marking it.
Votes answered implausibly fast (`too_fast` in `classifications.csv`) are kept out of the estimate.

## Expert review

Coordinators' reviews (`reviews.json`, with the state before and after each, undone ones included) override
the crowd: a relabelled tile takes the reviewer's label with confidence 1, a rejected building is left out, a
moved or confirmed building has confidence 1, an added building has confidence 1 and no votes. The exports
under `consensus/reviewed/` apply them; those under `consensus/crowd/` are the crowd's consensus alone.
Buildings are exported from confidence {method['min_confidence']}. Each row says what its live reviews decided
(`review_action`: `relabel`, `move`, `confirm`, or `add` for an added building nothing came after) and the
latest of them (`review_id`); `source` says whether a building is the crowd's or a coordinator's (`review`),
so an added building moved later is `source` `review` with `review_action` `move`.

## Replaying the reviews

`reviews.json` (and the same rows in `reviews.csv`) lists every review in the order they count: by
`created_at`, then `id`. `target` says what each decides: `tile-<id>`, `building-<id>`, or `review-<id>` for
a building a coordinator added; that building is its `add` review (the `review-<id>` id of the GeoJSON and KML
exports, and the `added` column of every building export, empty for the crowd's buildings), and the
later reviews of it name it in `added`. To replay, take each target's reviews in order and drop the undone ones
(`undone_at` set). A tile or crowd building then starts from the crowd's consensus and each review changes the
state the ones before left: `relabel` sets the label, `move` the place (`ground_x`, `ground_y` in the grid's
CRS, `lon`, `lat` in WGS84); `reject` takes the tile's label or the building away until a later `confirm`,
`relabel` or `move` brings it back; each leaves confidence 1. An added building exists while its `add` review
is not undone, at the place of its last live `move` (else where it was added), unless its last live review is a
`reject`. Each review's `before` and `after` are the state it found and the state it left, so each step can be
checked on its own. A review without a target is of a building a later consensus run no longer finds; it is
kept for the record.

## Chain of custody

Every building and tile row lists `classification_ids` (rows of `classifications.csv`; their marks are in
`marks.csv`, in tile pixels and ground coordinates) and `review_ids` (entries of `reviews.json`). Gold answers
are in `gold/gold_tiles.csv`, each volunteer's gold results in `gold/gold_results.csv` and the estimated
reliability in `volunteers/reliability.csv`.

## Pseudonyms

{method['pseudonyms']}

## Checking this bundle

Unzip it and run `sha256sum -c {MANIFEST}`: every file is listed with its SHA-256.
"""
