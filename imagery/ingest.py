"""Adding imagery to a project: staging files, validating them, the grid, and the layer row.

The promise: a layer row exists only for files that passed validation and are stored
under IMAGERY_ROOT with their checksums; a failure leaves no row and no file behind.
"""

import datetime as dt
import hashlib
import logging
import os
import re
import shutil
import uuid
from collections.abc import Iterable, Iterator
from contextlib import nullcontext
from dataclasses import dataclass
from pathlib import Path

from django.conf import settings
from django.contrib.auth.models import AbstractBaseUser
from django.core.files.uploadedfile import TemporaryUploadedFile, UploadedFile
from django.db import transaction
from django.utils.translation import gettext as _
from pyproj.aoi import AreaOfInterest
from pyproj.database import query_utm_crs_info
from rasterio.crs import CRS
from rasterio.warp import calculate_default_transform

from imagery.errors import ImageryError
from imagery.grid import GridSpec
from imagery.jobs import enqueue_prepare
from imagery.models import Grid, ImageryLayer, LayerFile
from imagery.validation import (
    SourceInfo,
    bounds_in,
    check_mosaic,
    display_bands,
    inspect_source,
    mosaic_bounds,
)
from tagging.models import Project

log = logging.getLogger(__name__)
COPY_BUFFER = 8 * 1024 * 1024
_BAD_NAME = re.compile(r"[\x00-\x1f/\\]")


@dataclass(frozen=True)
class StagedFile:
    path: Path  # under DATA_DIR/tmp until the layer is created
    original_name: str
    sha256: str
    size_bytes: int


def check_file_name(name: str) -> str:
    """The file name as given, or ImageryError when it could escape its folder or hide."""
    if not name or _BAD_NAME.search(name) or name.startswith(".") or ".." in name or len(name) > 200:
        raise ImageryError(_("'%(name)s' is not an acceptable file name: use a plain name such as scene-1.tif.")
                           % {"name": name[:80]},
                           fields={"files": ["bad file name"]})
    return name


def _staging_path(name: str) -> Path:
    folder = Path(settings.FILE_UPLOAD_TEMP_DIR)
    folder.mkdir(parents=True, exist_ok=True)
    return folder / f"staging-{uuid.uuid4().hex}-{name}"


def _blocks(path: Path) -> Iterator[bytes]:
    with open(path, "rb") as source:
        while block := source.read(COPY_BUFFER):
            yield block


def _digest(blocks: Iterable[bytes], target: Path | None = None) -> tuple[str, int]:
    """sha256 and size of the blocks, written to ``target`` on the way when one is given."""
    digest, size = hashlib.sha256(), 0
    with open(target, "wb") if target else nullcontext() as out:
        for block in blocks:
            digest.update(block)
            size += len(block)
            if out:
                out.write(block)
    return digest.hexdigest(), size


def _stage_one(name: str, blocks: Iterable[bytes], linkable: Path | None = None) -> StagedFile:
    """Copy (or hard-link, when ``linkable``) one file into staging, hashing it; nothing is left on failure."""
    name = check_file_name(name)
    target = _staging_path(name)
    try:
        if linkable is None:
            sha256, size = _digest(blocks, target)
        else:
            sha256, size = _digest(blocks)
            try:
                os.link(linkable, target)
            except OSError:  # another file system: copy after all
                shutil.copyfile(linkable, target)
    except BaseException:
        target.unlink(missing_ok=True)
        raise
    return StagedFile(target, name, sha256, size)


def stage_upload(upload: UploadedFile) -> StagedFile:
    """One uploaded file into staging, hashed.

    Django has already streamed a large upload to a temporary file: that file is hard-linked,
    not copied, so a multi-GB upload is written to disk once. Small ones come from memory.
    """
    if isinstance(upload, TemporaryUploadedFile):
        source = Path(upload.temporary_file_path())
        return _stage_one(upload.name or "", _blocks(source), linkable=source)
    return _stage_one(upload.name or "", upload.chunks(COPY_BUFFER))


def stage_path(path: Path) -> StagedFile:
    """One file given on the command line into staging, copied and hashed on the way."""
    if not path.is_file():
        raise ImageryError(_("%(path)s: no such file.") % {"path": path})
    return _stage_one(path.name, _blocks(path))


def stage_all(items: Iterable[UploadedFile | Path]) -> list[StagedFile]:
    """Stage several files (uploads or paths); when one fails, those already staged are removed."""
    staged: list[StagedFile] = []
    try:
        for item in items:
            staged.append(stage_path(item) if isinstance(item, Path) else stage_upload(item))
    except BaseException:
        discard_staged(staged)
        raise
    return staged


def discard_staged(staged: Iterable[StagedFile]) -> None:
    for item in staged:
        item.path.unlink(missing_ok=True)


def create_layer(*, project: Project, date: dt.date, staged: list[StagedFile], source: str = "",
                 user: AbstractBaseUser | None = None, bands: list[int] | None = None) -> ImageryLayer:
    """Validate the staged files as one layer (a mosaic when several) and store them.

    Creates the project's grid from this layer when it has none. Consumes ``staged``: on
    success the files are moved under IMAGERY_ROOT, on any failure they are deleted.
    Raises ImageryError for bad input. Tiling is enqueued after commit.
    """
    moved: list[Path] = []
    try:
        if not staged:
            raise ImageryError(_("Give at least one GeoTIFF file."), fields={"files": ["required"]})
        infos = [inspect_source(s.path, display_name=s.original_name, max_pixels=settings.IMAGERY_MAX_PIXELS,
                                max_bands=settings.IMAGERY_MAX_BANDS) for s in staged]
        check_mosaic(infos, [s.original_name for s in staged])
        display = _choose_display(infos[0], bands)
        with transaction.atomic():
            project = Project.objects.select_for_update().get(pk=project.pk)
            grid = ensure_grid(project=project, infos=infos)
            _check_overlap(grid.spec(), infos)
            layer = _create_layer_row(project, date, source, user, infos, display)
            for position, item in enumerate(staged):
                relative = Path(f"p{project.pk}") / f"l{layer.pk}" / f"{position:03d}-{item.original_name}"
                target = settings.IMAGERY_ROOT / relative
                target.parent.mkdir(parents=True, exist_ok=True)
                os.replace(item.path, target)
                moved.append(target)
                LayerFile.objects.create(layer=layer, position=position, path=str(relative),
                                         original_name=item.original_name, sha256=item.sha256,
                                         size_bytes=item.size_bytes)
            transaction.on_commit(lambda: enqueue_prepare(layer.pk))
    except BaseException:
        discard_staged(staged)
        for path in moved:
            path.unlink(missing_ok=True)
        raise
    log.info("layer %s of %s created from %d file(s)", layer.pk, project.slug, len(staged))
    return layer


def _choose_display(info: SourceInfo, bands: list[int] | None) -> dict:
    chosen, alpha = display_bands(info)
    if bands:
        if len(bands) not in (1, 3) or any(not 1 <= b <= info.count for b in bands):
            raise ImageryError(_("bands must name 1 or 3 of the raster's bands 1..%(count)s, got %(bands)s.")
                               % {"count": info.count, "bands": bands},
                               fields={"bands": ["out of range"]})
        chosen = bands
    return {"bands": chosen, "alpha": alpha, "stretch": None}


def _create_layer_row(project: Project, date: dt.date, source: str, user: AbstractBaseUser | None,
                      infos: list[SourceInfo], display: dict) -> ImageryLayer:
    first = infos[0]
    bounds = mosaic_bounds(infos)
    return ImageryLayer.objects.create(
        project=project, date=date, source=source[:300], crs=first.crs_wkt, bounds=list(bounds),
        bounds_wgs84=list(bounds_in(first.crs_wkt, bounds, "EPSG:4326")), resolution=first.resolution[0],
        width=round((bounds[2] - bounds[0]) / first.resolution[0]),
        height=round((bounds[3] - bounds[1]) / first.resolution[1]),
        band_count=first.count, dtype=first.dtype, display=display, created_by=user,
    )


def ensure_grid(*, project: Project, infos: list[SourceInfo]) -> Grid:
    """The project's grid, made from these files when the project has none yet.

    The caller holds the project row lock (select_for_update) so two first layers cannot race.
    """
    existing = Grid.objects.filter(project=project).first()
    if existing:
        return existing
    spec = compute_grid_spec(infos, tile_size=project.tile_size, overlap=project.overlap)
    return Grid.objects.create(project=project, crs=spec.crs, origin_x=spec.origin_x, origin_y=spec.origin_y,
                               pixel_size=spec.pixel_size, width=spec.width, height=spec.height,
                               tile_size=spec.tile_size, overlap=spec.overlap)


def compute_grid_spec(infos: list[SourceInfo], *, tile_size: int, overlap: int) -> GridSpec:
    """A metric, north-up grid with square pixels covering the mosaic at its native resolution.

    A layer already in metres with square pixels keeps its own pixels (no resampling of the
    first date); anything else (degrees, feet, oblong pixels) goes to the UTM zone of its centre.
    """
    first = infos[0]
    crs = CRS.from_wkt(first.crs_wkt)
    bounds = mosaic_bounds(infos)
    xres, yres = first.resolution
    if _is_metric(crs) and abs(xres - yres) <= 1e-6 * xres:
        width = round((bounds[2] - bounds[0]) / xres)
        height = round((bounds[3] - bounds[1]) / yres)
        return GridSpec(_crs_text(crs), bounds[0], bounds[3], xres, width, height, tile_size, overlap)
    west, south, east, north = bounds_in(first.crs_wkt, bounds, "EPSG:4326")
    utm = query_utm_crs_info(datum_name="WGS 84", area_of_interest=AreaOfInterest(
        (west + east) / 2, (south + north) / 2, (west + east) / 2, (south + north) / 2))[0]
    dst = CRS.from_epsg(int(utm.code))
    width = round((bounds[2] - bounds[0]) / xres)
    height = round((bounds[3] - bounds[1]) / yres)
    transform, dst_width, dst_height = calculate_default_transform(crs, dst, width, height, *bounds)
    return GridSpec(_crs_text(dst), transform.c, transform.f, transform.a, dst_width, dst_height, tile_size, overlap)


def _is_metric(crs: CRS) -> bool:
    return crs.is_projected and (crs.linear_units or "").lower() in {"metre", "meter", "m"}


def _crs_text(crs: CRS) -> str:
    epsg = crs.to_epsg()
    return f"EPSG:{epsg}" if epsg else crs.to_wkt()


def _check_overlap(spec: GridSpec, infos: list[SourceInfo]) -> None:
    minx, miny, maxx, maxy = bounds_in(infos[0].crs_wkt, mosaic_bounds(infos), spec.crs)
    gx0, gy1 = spec.origin_x, spec.origin_y
    gx1, gy0 = gx0 + spec.width * spec.pixel_size, gy1 - spec.height * spec.pixel_size
    if maxx <= gx0 or minx >= gx1 or maxy <= gy0 or miny >= gy1:
        raise ImageryError(_("This imagery does not overlap the project's area (the grid made from its first "
                             "layer), so none of its pixels would reach a tile."))

