"""Imagery as web-mercator XYZ tiles for the coordinators' map: rendered on request, then served from storage.

``GET /api/v1/layers/<id>/xyz/<z>/<x>/<y>.webp`` reads the layer's source files (their fast-read
copies when the tiling job made them) through rio-tiler, mosaics several files the way the
volunteers' tiles do (a later file wins where files overlap), applies the layer's display bands and
stretch (so 16-bit imagery looks as it does to the volunteers) and encodes 256 px WebP.

- The first request for a tile renders it and stores it under a deterministic key,
  ``xyz/l<layer>/<version>/<z>/<x>/<y>.webp``; later requests read the stored bytes and never
  re-render. The version is a hash of what the pixels depend on (display bands and stretch, the
  files' checksums), so a changed stretch can never serve stale pixels.
- Tiles wholly outside the layer's bounds, or with no data in any file, are a 1x1 transparent WebP
  with status 200 (not 204): Leaflet draws nothing, the browser logs no failed image, and the
  answer is cached like any tile.
- Zooms run from 4 below the layer's native zoom to 2 above it (no more upsampling than that);
  outside them, and for x/y outside the zoom's range: 404. Each lower zoom would read 4 times the
  pixels, so the tiling job gives every file overviews (``ensure_overviews``: a ``.ovr`` file beside
  it, the file itself untouched) and a zoomed-out tile reads about as many pixels as a native one.
- Responses say ``X-Cache: hit`` (read from storage) or ``miss`` (rendered now), and carry an ETag and,
  when the URL holds the current version (``?v=``, as the map page
  builds it), ``Cache-Control: private, max-age=31536000, immutable``.
- Who may fetch: whoever can view the project (volunteers included). The access decision and the
  layer's rendering inputs are remembered by each server process for ACCESS_SECONDS per user and layer
  (the "local" cache: no round trip), so a map view's ~50 tile requests cost five queries once, not
  each. Removing someone from a private project therefore takes up to ACCESS_SECONDS to stop their
  imagery requests.

The rendering functions at the top take plain values (paths, a Display, z/x/y) and touch no database.
"""

import hashlib
import io
import json
import logging
import math
import os
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

import numpy as np
import rasterio
from django.conf import settings
from django.core.cache import caches
from django.core.files.base import ContentFile
from django.core.files.storage import FileSystemStorage, default_storage
from django.http import HttpResponse, HttpResponseBase, HttpResponseNotModified, HttpResponseRedirect
from django.utils.cache import patch_cache_control
from django.utils.translation import gettext as _
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema
from PIL import Image
from pyproj import CRS as ProjCRS
from rasterio.enums import Resampling
from rasterio.errors import RasterioError
from rest_framework.request import Request
from rest_framework.views import APIView

from config.errors import NotFound, PlatformError
from imagery.models import ImageryLayer
from imagery.tiling import Display, to_8bit
from tagging.access import can_view_project
from tagging.models import Project

log = logging.getLogger(__name__)

TILE_SIZE = 256
ZOOMS_BELOW_NATIVE = 4
ZOOMS_ABOVE_NATIVE = 2
MAX_ZOOM = 24
ACCESS_SECONDS = 60
EQUATOR_M = 40_075_016.686  # web-mercator world width, metres
METRES_PER_DEGREE = 111_320.0
SERVABLE = (ImageryLayer.Status.TILING, ImageryLayer.Status.READY)  # the display stretch is final from "tiling" on
CONTENT_TYPE = "image/webp"
YEAR = 31_536_000
OVERVIEW_OVER = 1024  # px: a longer file side than this gets overviews (its lowest zooms read 4+ tiles' worth)


# --- Rendering: plain values in, bytes out -------------------------------------------------------------------

@cache
def empty_tile() -> bytes:
    """A 1x1 fully transparent WebP: what a tile with nothing to show is."""
    buffer = io.BytesIO()
    Image.new("RGBA", (1, 1), (0, 0, 0, 0)).save(buffer, "WEBP", lossless=True)
    return buffer.getvalue()


def native_zoom(*, resolution_m: float, latitude: float) -> int:
    """The first zoom whose web-mercator pixels are at least as fine as the imagery's, at that latitude."""
    ground_at_zero = EQUATOR_M * math.cos(math.radians(latitude)) / TILE_SIZE
    return max(0, min(MAX_ZOOM, math.ceil(math.log2(ground_at_zero / max(resolution_m, 1e-6)) - 1e-9)))


def zoom_range(*, resolution_m: float, latitude: float) -> tuple[int, int]:
    native = native_zoom(resolution_m=resolution_m, latitude=latitude)
    return max(0, native - ZOOMS_BELOW_NATIVE), min(MAX_ZOOM, native + ZOOMS_ABOVE_NATIVE)


def tile_bounds(z: int, x: int, y: int) -> tuple[float, float, float, float]:
    """(west, south, east, north) of XYZ tile z/x/y in degrees (the web-mercator tile matrix)."""
    n = 2.0**z

    def latitude(row: float) -> float:
        return math.degrees(math.atan(math.sinh(math.pi * (1 - 2 * row / n))))

    return x / n * 360.0 - 180.0, latitude(y + 1), (x + 1) / n * 360.0 - 180.0, latitude(y)


def intersects(a: Sequence[float], b: Sequence[float]) -> bool:
    return a[0] < b[2] and b[0] < a[2] and a[1] < b[3] and b[1] < a[3]


def _read_tile(path: str, x: int, y: int, z: int, **options: Any) -> Any:
    from rio_tiler.io import Reader

    with Reader(path) as reader:
        return reader.tile(x, y, z, tilesize=TILE_SIZE, **options)


def render_tile(*, paths: Sequence[str], display: Display, z: int, x: int, y: int, quality: int) -> bytes | None:
    """The WebP of tile z/x/y over the files (a mosaic, later files on top), or None where none has data.

    Reads are decimated bilinearly and warped nearest: at 4 zooms below native that was 3x faster
    than bilinear warping (206 vs 527 ms on a 16384 px file without overviews) and looks the same.
    rio-tiler is imported here, not with the module: it takes a second to import, and serving stored
    tiles (or starting the web server) never needs it.
    """
    from rio_tiler.errors import EmptyMosaicError, TileOutsideBounds
    from rio_tiler.mosaic import mosaic_reader

    with rasterio.Env(GDAL_DISABLE_READDIR_ON_OPEN="EMPTY_DIR"):  # no directory listing on every open
        try:
            image, _ = mosaic_reader(list(reversed(paths)), _read_tile, x, y, z, threads=0,
                                     indexes=list(display.bands), resampling_method="bilinear",
                                     reproject_method="nearest", allowed_exceptions=(TileOutsideBounds,))
        except EmptyMosaicError:
            return None
    valid = image.mask > 0
    if not valid.any():
        return None
    pixels = to_8bit(image.data, display).transpose(1, 2, 0)
    return encode_webp(pixels, None if valid.all() else valid, quality=quality)


def ensure_overviews(path: str) -> bool:
    """Overviews for the file, halving down to a tile, in ``<path>.ovr`` beside it; True when built now.

    The file itself is not changed (GDAL writes external overviews with TIFF_USE_OVR, even opened for
    update), so its checksum still holds. A file that has overviews, or is at most OVERVIEW_OVER pixels
    on its longer side, is left as it is. A failed build leaves no partial ``.ovr`` behind.
    """
    with rasterio.open(path) as src:
        longest = max(src.width, src.height)
        if src.overviews(1) or longest <= OVERVIEW_OVER:
            return False
    factors = [2**i for i in range(1, int(math.log2(longest / TILE_SIZE)) + 1)]
    try:
        with rasterio.Env(TIFF_USE_OVR=True, COMPRESS_OVERVIEW="ZSTD", GDAL_NUM_THREADS="ALL_CPUS"):
            with rasterio.open(path, "r+") as dataset:
                dataset.build_overviews(factors, Resampling.average)
    except BaseException:
        Path(path + ".ovr").unlink(missing_ok=True)
        raise
    return True


def encode_webp(pixels: np.ndarray, valid: np.ndarray | None, *, quality: int) -> bytes:
    """(h, w, 1 or 3) uint8 pixels as WebP; transparent where ``valid`` is False."""
    grey = pixels.shape[2] == 1
    if valid is None:
        image = Image.fromarray(np.ascontiguousarray(pixels[..., 0] if grey else pixels))
    else:
        alpha = (valid * 255).astype(np.uint8)[..., None]
        image = Image.fromarray(np.ascontiguousarray(np.concatenate([pixels, alpha], axis=2)),
                                "LA" if grey else "RGBA")
        if grey:
            image = image.convert("RGBA")  # WebP has no grey-with-alpha mode
    buffer = io.BytesIO()
    image.save(buffer, "WEBP", quality=quality, method=2)  # method 2: as the volunteers' tiles (bench.tiling)
    return buffer.getvalue()


# --- The layer as the map sees it ------------------------------------------------------------------------------

@dataclass(frozen=True)
class XYZLayer:
    """What serving one layer's XYZ tiles needs; cached per user and layer (ACCESS_SECONDS)."""

    layer_id: int
    date: str
    version: str
    paths: tuple[str, ...]
    display: Display
    bounds: tuple[float, float, float, float]  # WGS84
    minzoom: int
    maxzoom: int

    @property
    def url_template(self) -> str:
        return f"/api/v1/layers/{self.layer_id}/xyz/{{z}}/{{x}}/{{y}}.webp?v={self.version}"

    def key(self, z: int, x: int, y: int) -> str:
        return f"xyz/l{self.layer_id}/{self.version}/{z}/{x}/{y}.webp"

    def to_json(self) -> dict[str, Any]:
        return {"id": self.layer_id, "date": self.date, "url": self.url_template, "bounds": list(self.bounds),
                "minzoom": self.minzoom, "maxzoom": self.maxzoom}


def resolution_in_metres(layer: ImageryLayer) -> float:
    crs = ProjCRS.from_user_input(layer.crs)
    if crs.is_geographic:
        return layer.resolution * METRES_PER_DEGREE
    return layer.resolution * crs.axis_info[0].unit_conversion_factor


def xyz_layer(layer: ImageryLayer) -> XYZLayer:
    """The layer's XYZ description; ``layer.files`` is read (prefetch it for several layers)."""
    files = list(layer.files.all())
    display = Display.from_json(layer.display)
    version = hashlib.sha1(json.dumps([display.to_json(), [f.sha256 for f in files]], sort_keys=True).encode(),
                           usedforsecurity=False).hexdigest()[:12]
    west, south, east, north = (float(v) for v in layer.bounds_wgs84)
    minzoom, maxzoom = zoom_range(resolution_m=resolution_in_metres(layer), latitude=(south + north) / 2)
    paths = tuple(str(settings.IMAGERY_ROOT / (f.read_path or f.path)) for f in files)
    return XYZLayer(layer.pk, str(layer.date), version, paths, display, (west, south, east, north), minzoom, maxzoom)


def xyz_layers(project: Project) -> list[XYZLayer]:
    """The project's layers that can be shown on the map, oldest date first."""
    layers = project.layers.filter(status__in=SERVABLE).prefetch_related("files").order_by("date", "id")
    return [xyz_layer(layer) for layer in layers]


def access_xyz_layer(user: Any, layer_id: int) -> XYZLayer:
    """The layer's XYZ description if the user can view its project, else NotFound. Cached (ACCESS_SECONDS)."""
    key = f"xyz:access:{user.pk}:{layer_id}"
    found = caches["local"].get(key)
    if found is not None:
        return found
    layer = ImageryLayer.objects.select_related("project").filter(pk=layer_id).first()
    if layer is None or not can_view_project(user, layer.project):
        raise NotFound(_("There is no imagery layer %(layer)s that you can see.") % {"layer": layer_id})
    if layer.status not in SERVABLE:
        raise NotFound(_("Imagery layer %(layer)s is %(status)s; its imagery is not ready to show yet.")
                       % {"layer": layer_id, "status": layer.status})
    entry = xyz_layer(layer)
    caches["local"].set(key, entry, ACCESS_SECONDS)
    return entry


# --- Storage: the cache of rendered tiles ------------------------------------------------------------------------

def read_stored(key: str) -> bytes | None:
    try:
        with default_storage.open(key, "rb") as stored:
            return stored.read()
    except (FileNotFoundError, OSError):
        return None


def store(key: str, data: bytes) -> None:
    """Save the tile; on a local disk by an atomic rename, so a concurrent reader never sees half a file."""
    if isinstance(default_storage, FileSystemStorage):
        target = Path(default_storage.path(key))
        target.parent.mkdir(parents=True, exist_ok=True)
        handle, partial = tempfile.mkstemp(dir=target.parent, prefix=".partial-")
        with os.fdopen(handle, "wb") as out:
            out.write(data)
        os.chmod(partial, 0o644)
        os.replace(partial, target)
        return
    default_storage.save(key, ContentFile(data))  # object stores replace whole objects


class ImageryUnavailable(PlatformError):
    code = "imagery_unavailable"
    status_code = 503


def tile_bytes(source: XYZLayer, z: int, x: int, y: int) -> bytes:
    """Render the tile and store it (the caller found no stored copy)."""
    if not intersects(tile_bounds(z, x, y), source.bounds):
        return empty_tile()  # nothing to read, nothing worth storing
    try:
        data = render_tile(paths=source.paths, display=source.display, z=z, x=x, y=y,
                           quality=settings.TILE_QUALITY) or empty_tile()
    except RasterioError as exc:
        # GDAL's words (and the server's paths in them) are for the log, not for the client.
        log.warning("layer %s: tile %s/%s/%s cannot be read: %s", source.layer_id, z, x, y, exc)
        raise ImageryUnavailable(_("The imagery of layer %(layer)s cannot be read now.")
                                 % {"layer": source.layer_id}) from exc
    store(source.key(z, x, y), data)
    return data


# --- The endpoint -------------------------------------------------------------------------------------------------

def check_tile_address(source: XYZLayer, z: int, x: int, y: int) -> None:
    if not source.minzoom <= z <= source.maxzoom:
        raise NotFound(_("Layer %(layer)s has XYZ tiles from zoom %(min)s to %(max)s.")
                       % {"layer": source.layer_id, "min": source.minzoom, "max": source.maxzoom})
    if not (0 <= x < 2**z and 0 <= y < 2**z):
        raise NotFound(_("There is no tile %(x)s/%(y)s at zoom %(z)s.") % {"x": x, "y": y, "z": z})


class XYZTileView(APIView):
    """One web-mercator tile of a layer (256 px WebP), for the map. Transparent 1x1 where there is no imagery."""

    @extend_schema(
        operation_id="layer_xyz_tile",
        parameters=[OpenApiParameter("v", str, description="The layer's imagery version (from the map page); "
                                                             "with it the answer is cached as immutable.")],
        responses={(200, CONTENT_TYPE): OpenApiTypes.BINARY, 304: None, 404: OpenApiTypes.OBJECT})
    def get(self, request: Request, layer_id: int, z: int, x: int, y: int) -> HttpResponseBase:
        source = access_xyz_layer(request.user, layer_id)
        check_tile_address(source, z, x, y)
        etag = f'"{source.version}"'  # the pixels of one URL depend on the version only
        current = request.query_params.get("v") == source.version
        if etag in request.headers.get("If-None-Match", ""):
            response: HttpResponse = HttpResponseNotModified()
        else:
            key = source.key(z, x, y)
            data = read_stored(key) if isinstance(default_storage, FileSystemStorage) else None
            if data is None and not isinstance(default_storage, FileSystemStorage) and default_storage.exists(key):
                # Object storage serves the stored bytes itself, through a short-lived signed URL.
                redirect = HttpResponseRedirect(default_storage.url(key))
                patch_cache_control(redirect, private=True, max_age=300)
                return redirect
            response = HttpResponse(data if data is not None else tile_bytes(source, z, x, y),
                                    content_type=CONTENT_TYPE)
            response["X-Cache"] = "hit" if data is not None else "miss"  # read from storage, or rendered now
        response["ETag"] = etag
        if current:
            patch_cache_control(response, private=True, max_age=YEAR, immutable=True)
        else:  # an old or missing version in the URL: the browser must ask again soon
            patch_cache_control(response, private=True, max_age=300)
        return response
